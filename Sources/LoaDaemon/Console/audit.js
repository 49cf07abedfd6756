// The audit trail (`GET /api/v1/audit`, approvers and admins): filtered by user, action and campaign, newest first
// on the page, and exported whole as CSV.
"use strict";
(function () {
  const Loa = window.Loa, $ = Loa.$, t = Loa.t;
  const state = { rows: [] };
  /** Rows read for the page (the newest of them shown) and for an export: bounded, in pages of 1,000 / 10,000. */
  const pageRows = 2000, exportPages = 100;

  function query(limit, after) {
    const q = new URLSearchParams({ limit: String(limit), after: String(after) });
    for (const [k, sel] of [["user", "#au-user"], ["action", "#au-action"], ["campaign", "#au-campaign"]]) {
      const v = $(sel).value.trim();
      if (v) q.set(k, v);
    }
    return "/api/v1/audit?" + q.toString();
  }

  async function fetchAll(limit, pages) {
    let rows = [], after = 0;
    for (let i = 0; i < pages; i++) {
      const r = await Loa.api("GET", query(limit, after));
      rows = rows.concat(r.rows);
      if (r.next === null || r.next === undefined) break;
      after = r.next;
    }
    return rows;
  }

  async function load(ev) {
    if (ev) ev.preventDefault();
    const rows = await fetchAll(1000, 50);
    state.rows = rows.slice(-pageRows).reverse();
    render();
  }

  function detailText(d) {
    if (!d || typeof d !== "object") return "";
    return Object.entries(d).map(([k, v]) => k + "=" + v).join(", ");
  }

  function render() {
    $("#audit-list").replaceChildren(...state.rows.map((e) => Loa.el("tr", { "data-action": e.action, "data-user": e.user },
      Loa.el("td", { text: Loa.time(e.at) }), Loa.el("td", { text: e.user }), Loa.el("td", { text: e.address }),
      Loa.el("td", { text: e.action }), Loa.el("td", { text: e.campaign || "" }), Loa.el("td", { text: detailText(e.detail) }))));
  }

  async function exportCSV() {
    const rows = await fetchAll(10000, exportPages);
    let text = Loa.csv(["id", "time", "user", "address", "action", "campaign", "detail"]);
    for (const e of rows) text += Loa.csv([e.id, e.time, e.user, e.address, e.action, e.campaign || "", JSON.stringify(e.detail)]);
    Loa.download("loa-audit.csv", text, "text/csv");
    Loa.flash(t("audit.exported", Loa.num(rows.length)), "ok");
  }

  function init() {
    $("#audit-form").addEventListener("submit", (ev) => load(ev).catch(() => {}));
    $("#au-export").addEventListener("click", () => exportCSV().catch(() => {}));
  }

  function reset() {
    state.rows = [];
    $("#audit-list").replaceChildren();
    for (const sel of ["#au-user", "#au-action", "#au-campaign"]) $(sel).value = "";
  }

  Loa.views.audit = { init, render, reset, enter: () => { load().catch(() => {}); } };
})();
