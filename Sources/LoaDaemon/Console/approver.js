// The approver's page: campaigns waiting in `pending-approval`, each with the planner's numbers and samples, a
// test send to a short proof list, and approve or reject with a comment. The two-person rule is the server's:
// approving one's own submission answers 403 and the page shows it.
"use strict";
(function () {
  const Loa = window.Loa, $ = Loa.$, t = Loa.t;
  const state = { list: [], selected: null, preview: null };

  async function load() {
    const all = await Loa.api("GET", "/api/v1/campaigns");
    state.list = (all || []).filter((c) => c.state === "pending-approval");
    renderList();
  }

  function renderList() {
    $("#pending-empty").hidden = state.list.length > 0;
    $("#pending-list").replaceChildren(...state.list.map((c) => Loa.el("tr", { "data-campaign": c.id },
      Loa.el("th", { scope: "row", text: c.id }),
      Loa.el("td", { text: c.submitted_by || "—" }),
      Loa.el("td", { class: "n", text: Loa.num(c.accepted) }),
      Loa.el("td", { class: "n", text: Loa.num(c.segments_total) }),
      Loa.el("td", { text: Loa.time(c.deadline_at) }),
      Loa.el("td", {}, Loa.el("button", { type: "button", "data-action": "review", "data-campaign": c.id,
        "aria-label": t("act.label", t("approver.review"), c.id), text: t("approver.review"), onclick: () => review(c.id) })))));
  }

  async function review(id) {
    state.selected = id;
    state.preview = await Loa.api("GET", "/api/v1/campaigns/" + encodeURIComponent(id) + "/preview");
    $("#approver-review").hidden = false;
    $("#ap-status").textContent = "";
    $("#ts-status").textContent = "";
    $("#ap-comment").value = "";
    render();
    $("#approver-review-h").focus();
  }

  async function testSend(ev) {
    ev.preventDefault();
    const numbers = $("#ts-numbers").value.split(",").map((s) => s.trim()).filter(Boolean);
    try {
      const r = await Loa.post("/api/v1/campaigns/" + encodeURIComponent(state.selected) + "/test-send", { numbers });
      $("#ts-status").textContent = t("ts.sent", r.accepted, r.test_campaign);
    } catch (e) {
      $("#ts-status").textContent = e.message;
    }
  }

  async function decide(approve) {
    const id = state.selected;
    if (!id) return;
    try {
      const r = await Loa.post("/api/v1/campaigns/" + encodeURIComponent(id) + (approve ? "/approve" : "/reject"),
                               { comment: $("#ap-comment").value });
      const msg = t("decide.done", id, Loa.stateText(r.state));
      $("#ap-status").textContent = msg;
      Loa.flash(msg, "ok");
      await load();
    } catch (e) {
      $("#ap-status").textContent = e.status === 403 ? t("err.forbidden", e.message) : e.message;
    }
  }

  function render() {
    renderList();
    if (state.selected && state.preview) {
      $("#approver-review-h").textContent = t("approver.reviewing", state.selected);
      Loa.renderPreview($("#approver-preview"), state.preview);
    }
  }

  function init() {
    $("#approver-review-h").setAttribute("tabindex", "-1");
    $("#test-send-form").addEventListener("submit", testSend);
    $("#ap-approve").addEventListener("click", () => decide(true));
    $("#ap-reject").addEventListener("click", () => decide(false));
  }

  function reset() {
    Object.assign(state, { list: [], selected: null, preview: null });
    $("#pending-list").replaceChildren();
    $("#approver-preview").replaceChildren();
    $("#approver-review").hidden = true;
  }

  Loa.views.approver = { init, render, reset, enter: () => { load().catch(() => {}); } };
})();
