// The operator's and viewer's dashboard: campaigns with progress, rate and ETA against the deadline, pause /
// resume / cancel by role, one campaign's progress per carrier and per ward, its report and CSV, the delivery log
// following live (server-sent events), and the carriers' health. Polled every few seconds while shown.
"use strict";
(function () {
  const Loa = window.Loa, $ = Loa.$, t = Loa.t;
  const state = { list: [], views: {}, carriers: [], open: null, report: null, timer: null, source: null, busy: false, ticks: 0 };
  const live = ["scheduled", "running", "paused"];
  /** Campaign views fetched per refresh (rate, ETA): the live ones, at most this many. */
  const viewLimit = 20;
  const logLimit = 300;

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    try {
      const [list, carriers] = await Promise.all([Loa.api("GET", "/api/v1/campaigns"), Loa.api("GET", "/api/v1/carriers")]);
      state.list = (list || []).filter((c) => !/--test-\d+$/.test(c.id) || c.id === state.open);
      state.carriers = carriers || [];
      const wanted = state.list.filter((c) => live.includes(c.state) || c.id === state.open).slice(0, viewLimit).map((c) => c.id);
      if (state.open && !wanted.includes(state.open)) wanted.push(state.open);
      const views = await Promise.all(wanted.map((id) => Loa.api("GET", "/api/v1/campaigns/" + encodeURIComponent(id), undefined, { quiet: true }).catch(() => null)));
      state.views = {};
      wanted.forEach((id, i) => { if (views[i]) state.views[id] = views[i]; });
      render();
    } catch (e) {
      /* shown by Loa.api */
    } finally {
      state.busy = false;
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(async () => {
      await refresh();
      // The report (per-ward states, deliveries over time) is an aggregate over the campaign's messages on the
      // store's one writer: the open campaign's is read again every fifth refresh (15 s), not every 3 s.
      if (state.open && ++state.ticks % 5 === 0) loadReport(state.open);
      if (Loa.current === "dashboard") schedule();
    }, 3000);
  }

  function progressOf(c) {
    const v = state.views[c.id];
    if (v) return { fraction: v.progress, done: v.final };
    const s = Object.entries(c.states || {}).filter(([k]) => k !== "rejected");
    const total = s.reduce((a, [, n]) => a + n, 0);
    const done = s.filter(([k]) => ["delivered", "failed", "expired", "unknown", "cancelled", "suppressed"].includes(k)).reduce((a, [, n]) => a + n, 0);
    return { fraction: total ? done / total : 0, done };
  }

  function actionButtons(c) {
    const out = [];
    const button = (action, label) => Loa.el("button", { type: "button", "data-action": action, "data-campaign": c.id, class: action === "cancel" ? "danger" : "",
      "aria-label": t("act.label", label, c.id), text: label, onclick: () => act(c.id, action) });
    out.push(button("open", t("act.open")));
    if (Loa.may("operator") && ["running", "scheduled"].includes(c.state)) out.push(button("pause", t("act.pause")));
    if (Loa.may("operator") && c.state === "paused") out.push(button("resume", t("act.resume")));
    if (Loa.may("approver") && ["pending-approval", "scheduled", "running", "paused"].includes(c.state)) out.push(button("cancel", t("act.cancel")));
    return out;
  }

  function rateText(v) {
    const r = v && v.measured && v.measured.messages_per_second;
    return typeof r === "number" ? t("rate.value", r.toFixed(1)) : "—";
  }

  function etaText(v) {
    if (!v) return "—";
    if (v.state === "paused") return t("eta.paused");
    const m = v.measured;
    if (m && m.eta) return Loa.time(m.eta);
    if (m && m.warning) return t("eta.late", m.warning);
    const f = v.feasibility;
    if (f && f.eta) return Loa.time(f.eta);
    if (f && f.on_time === false) return t("eta.late", f.warning || "");
    return "—";
  }

  /** The campaigns' rows, updated in place: a refresh every few seconds must not take the keyboard focus off a
   *  button (a row's buttons are rebuilt only when the actions they offer change). */
  function renderList() {
    const body = $("#campaign-list");
    if (!state.list.length) { body.replaceChildren(Loa.el("tr", {}, Loa.el("td", { colspan: 7, text: t("dash.none") }))); return; }
    const ids = state.list.map((c) => c.id);
    if (ids.join("\n") !== Array.from(body.children).map((tr) => tr.dataset.campaign || "").join("\n")) {
      body.replaceChildren(...ids.map((id) => Loa.el("tr", { "data-campaign": id },
        Loa.el("th", { scope: "row", text: id }), Loa.el("td", { "data-field": "state" }),
        Loa.el("td", {}, Loa.el("progress", { max: 100, value: 0 }), Loa.el("span", { "data-field": "pct" })),
        Loa.el("td", { "data-field": "rate" }), Loa.el("td", { "data-field": "eta" }), Loa.el("td", { "data-field": "deadline" }),
        Loa.el("td", { class: "row-actions", "data-field": "actions" }))));
    }
    state.list.forEach((c, i) => fillRow(body.children[i], c));
  }

  function fillRow(tr, c) {
    const p = progressOf(c), v = state.views[c.id];
    const pct = Math.floor(p.fraction * 100);
    const set = (field, text) => { const e = $("[data-field=" + field + "]", tr); if (e.textContent !== text) e.textContent = text; };
    tr.dataset.state = c.state;
    set("state", Loa.stateText(c.state));
    $("[data-field=state]", tr).className = "state s-" + c.state;
    const bar = $("progress", tr);
    bar.value = pct;
    bar.setAttribute("aria-label", t("col.progress") + " " + c.id);
    set("pct", " " + pct + "%");
    set("rate", rateText(v));
    set("eta", etaText(v));
    set("deadline", Loa.time(c.deadline_at));
    const sig = [c.state, Loa.lang, Loa.session && Loa.session.role].join(" ");
    if (tr.dataset.actions !== sig) {
      $("[data-field=actions]", tr).replaceChildren(...actionButtons(c));
      tr.dataset.actions = sig;
    }
  }

  function renderCarriers() {
    $("#carrier-list").replaceChildren(...state.carriers.map((c) => Loa.el("tr", { "data-carrier": c.name },
      Loa.el("th", { scope: "row", text: c.name }),
      Loa.el("td", { class: "breaker b-" + c.breaker, text: t("breaker." + c.breaker) + (c.breaker_cause ? " — " + c.breaker_cause : "") }),
      Loa.el("td", { text: t("rate.value", (c.current_rate || 0).toFixed(1)) + " / " + Loa.num(c.configured_rate) }),
      Loa.el("td", { text: c.paused_until > Date.now() ? t("throttled.until", Loa.time(c.paused_until)) : (c.allowed_rate < c.configured_rate ? Loa.num(Math.round(c.allowed_rate)) : t("no")) }),
      Loa.el("td", { class: c.auth_refused ? "warn" : "", text: c.auth_refused || c.paused_reason || t("no") }),
      Loa.el("td", { text: Object.entries(c.answers || {}).map(([k, n]) => k + " " + Loa.num(n)).join(", ") || "—" }))));
  }

  /** A table of state counts per carrier or per ward: rows are the keys, columns the states seen. */
  function statesTable(table, byKey) {
    const keys = Object.keys(byKey || {}).sort();
    const states = Array.from(new Set(keys.flatMap((k) => Object.keys(byKey[k])))).sort();
    $("thead", table).replaceChildren(Loa.el("tr", {}, Loa.el("th", { scope: "col", text: t("col.key") }),
      ...states.map((s) => Loa.el("th", { scope: "col", class: "n", text: t("ms." + s) }))));
    $("tbody", table).replaceChildren(...keys.map((k) => Loa.el("tr", { "data-key": k }, Loa.el("th", { scope: "row", text: k }),
      ...states.map((s) => Loa.el("td", { class: "n", "data-state": s, text: Loa.num(byKey[k][s] || 0) })))));
    table.hidden = keys.length === 0;
  }

  function renderDetail() {
    const id = state.open;
    const box = $("#detail");
    if (!id) { box.hidden = true; return; }
    const v = state.views[id];
    box.hidden = false;
    $("#detail-h").textContent = t("detail.title", id);
    if (!v) return;
    let total = 0;
    for (const [k, n] of Object.entries(v.states || {})) if (k !== "rejected") total += n;
    $("#detail-summary").textContent = t("detail.summary", Loa.stateText(v.state), Loa.num(v.final), Loa.num(total),
      Math.floor((v.progress || 0) * 100) + "%", v.submitted_by || "—", v.approved_by || "—") +
      (v.stalled ? t("detail.stalled", v.stalled.detail) : "");
    $("#detail-summary").dataset.state = v.state;
    statesTable($("#detail-carriers"), v.carriers);
    statesTable($("#detail-wards"), v.wards);
    renderReport();
  }

  function renderReport() {
    const r = state.report, box = $("#report-summary");
    box.replaceChildren();
    box.className = "tables";
    if (!r) return;
    // Progress per ward: the report's breakdown by the campaign's group column (ward), when the view has none.
    const v = state.views[state.open];
    if (!(v && v.wards) && (r.groups || []).length) {
      const wards = {};
      for (const g of r.groups) wards[g.name || "—"] = g.states;
      statesTable($("#detail-wards"), wards);
    }
    box.append(timelineTable(r.timeline || []));
    const reasons = {};
    for (const g of r.reason_groups || []) reasons[g.code + " (" + g.class + ")"] = g.count;
    box.append(Loa.countTable(t("report.reasons"), reasons, "reasons"));
  }

  /** Deliveries over time: at most 12 rows of time, oldest first (the report's buckets merged in order), a column
   * per carrier. */
  function timelineTable(buckets) {
    const carriers = Array.from(new Set(buckets.map((b) => b.carrier))).sort();
    const first = Array.from(new Set(buckets.map((b) => b.start))).sort((a, b) => a - b);
    const per = Math.max(1, Math.ceil(first.length / 12));
    const rowOf = new Map(first.map((start, i) => [start, first[Math.floor(i / per) * per]]));
    const byStart = new Map();
    for (const b of buckets) {
      const row = rowOf.get(b.start);
      if (!byStart.has(row)) byStart.set(row, {});
      byStart.get(row)[b.carrier] = (byStart.get(row)[b.carrier] || 0) + b.delivered;
    }
    const starts = Array.from(byStart.keys()).sort((a, b) => a - b);
    return Loa.el("table", { class: "data", "data-field": "delivered" },
      Loa.el("caption", { text: t("report.delivered") }),
      Loa.el("thead", {}, Loa.el("tr", {}, Loa.el("th", { scope: "col", text: t("col.time") }),
        ...carriers.map((c) => Loa.el("th", { scope: "col", class: "n", text: c })))),
      Loa.el("tbody", {}, ...starts.map((s) => Loa.el("tr", { "data-key": String(s) },
        Loa.el("th", { scope: "row", text: Loa.time(s) }),
        ...carriers.map((c) => Loa.el("td", { class: "n", "data-value": byStart.get(s)[c] || 0, text: Loa.num(byStart.get(s)[c] || 0) }))))));
  }

  async function loadReport(id) {
    try { state.report = await Loa.api("GET", "/api/v1/campaigns/" + encodeURIComponent(id) + "/report", undefined, { quiet: true }); }
    catch (e) { state.report = null; }
    if (state.open === id) renderReport();
  }

  /** The delivery log of the open campaign, following live (`GET /api/v1/log/stream?campaign=ID`). */
  function follow(id) {
    stopFollowing();
    $("#log").replaceChildren();
    const source = new EventSource("/api/v1/log/stream?campaign=" + encodeURIComponent(id));
    state.source = source;
    source.addEventListener("open", () => { $("#log-state").textContent = t("log.live"); });
    source.addEventListener("error", () => { $("#log-state").textContent = t("log.reconnecting"); });
    // The server's own notes: lines it could not give on a resume (rotated away), or this client cut off as too slow
    // (the browser reconnects from the last id it saw).
    source.addEventListener("gap", () => { $("#log").append(Loa.el("li", { class: "note", text: t("log.gap") })); });
    source.addEventListener("cut", () => { $("#log-state").textContent = t("log.cut"); });
    source.addEventListener("message", (ev) => {
      let e;
      try { e = JSON.parse(ev.data); } catch (x) { return; }
      const log = $("#log");
      const phone = String(e.recipient || "");
      const masked = phone.length > 6 ? phone.slice(0, phone.length - 6) + "***" + phone.slice(-3) : phone;
      log.append(Loa.el("li", { "data-event": e.event || "", "data-status": e.status || "" },
        Loa.el("time", { text: e.time || "" }), " ", Loa.el("strong", { text: (e.event || "") + " → " + (e.status || "") }),
        " " + masked + " " + (e.carrier || "") + (e.detail ? " · " + e.detail : "")));
      while (log.children.length > logLimit) log.firstElementChild.remove();
    });
  }

  function stopFollowing() {
    if (state.source) state.source.close();
    state.source = null;
  }

  async function downloadCSV() {
    const id = state.open;
    if (!id) return;
    const header = ["message_id", "recipient", "carrier", "final_state", "reason", "attempts", "last_change", "segment", "line", "group", "gateway_id"];
    let text = Loa.csv(header), after = 0, rows = 0;
    // Page by page (10,000 rows a page), bounded: a report of more than 5 million rows is for `loa report`.
    for (let page = 0; page < 500; page++) {
      const r = await Loa.api("GET", "/api/v1/campaigns/" + encodeURIComponent(id) + "/messages?after=" + after + "&limit=10000");
      for (const row of r.rows) {
        const f = row.slice();
        f[6] = new Date(f[6]).toISOString();
        text += Loa.csv(f);
      }
      rows += r.rows.length;
      if (r.next === null || r.next === undefined) break;
      after = r.next;
    }
    const name = "loa-report-" + id + ".csv";
    Loa.download(name, text, "text/csv");
    $("#report-status").textContent = t("report.saved", Loa.num(rows), name);
  }

  async function act(id, action) {
    if (action === "open") { open(id); return; }
    if (action === "cancel" && !window.confirm(t("act.confirmCancel", id))) return;
    try {
      const r = await Loa.post("/api/v1/campaigns/" + encodeURIComponent(id) + "/" + action);
      Loa.flash(t("act.done", id, Loa.stateText(r.state)), "ok");
    } catch (e) { /* shown by Loa.api */ }
    await refresh();
  }

  function open(id) {
    state.open = id;
    state.report = null;
    follow(id);
    loadReport(id);
    refresh().then(() => $("#detail-h").focus());
  }

  function render() {
    renderList();
    renderCarriers();
    renderDetail();
  }

  function init() {
    $("#detail-h").setAttribute("tabindex", "-1");
    $("#report-csv").addEventListener("click", () => downloadCSV().catch(() => {}));
  }

  function enter() {
    refresh();
    schedule();
    if (state.open && !state.source) follow(state.open);
  }

  function leave() {
    clearTimeout(state.timer);
    stopFollowing();
  }

  function reset() {
    leave();
    Object.assign(state, { list: [], views: {}, carriers: [], open: null, report: null, ticks: 0 });
    $("#campaign-list").replaceChildren();
    $("#carrier-list").replaceChildren();
    $("#log").replaceChildren();
    $("#report-status").textContent = "";
    $("#detail").hidden = true;
  }

  Loa.views.dashboard = { init, enter, leave, reset, render, refresh, open };
})();
