// The planner's page: a campaign's details and template with a live preview, its segments uploaded as `loa
// campaign submit` does (create, one streamed PUT per file with `?generation=`, discard on failure), the preview
// numbers, and the submission for approval.
"use strict";
(function () {
  const Loa = window.Loa, $ = Loa.$, t = Loa.t;
  const state = { files: [], draft: null, previewTimer: null, previewSeq: 0, preview: null };

  /** `d` as ISO 8601 with the browser's own offset (the API wants an offset). */
  function iso(d) {
    const pad = (n) => String(Math.abs(n)).padStart(2, "0");
    const off = -d.getTimezoneOffset();
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes()) +
      ":00" + (off >= 0 ? "+" : "-") + pad(Math.trunc(off / 60)) + ":" + pad(off % 60);
  }

  function fields() {
    const out = {};
    for (const part of $("#c-fields").value.split(",")) {
      const i = part.indexOf("=");
      if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
    return out;
  }

  /** The template rendered by the daemon (`POST /api/v1/preview/template`) while the planner types. */
  async function previewTemplate() {
    const text = $("#c-template").value;
    if (!text) { $("#tpl-text").textContent = ""; $("#tpl-facts").textContent = t("tpl.empty"); return; }
    const seq = ++state.previewSeq;
    try {
      const p = await Loa.post("/api/v1/preview/template", { template: text, encoding: $("#c-encoding").value, fields: fields() }, { quiet: true });
      if (seq !== state.previewSeq) return;
      $("#tpl-text").textContent = p.text;
      let facts = t("tpl.facts", p.encoding, p.parts, p.characters);
      if (p.unicode_characters && p.unicode_characters.length) facts += t("tpl.unicode", p.unicode_characters.join(" "));
      $("#tpl-facts").textContent = facts;
    } catch (e) {
      if (seq === state.previewSeq) { $("#tpl-text").textContent = ""; $("#tpl-facts").textContent = e.message; }
    }
  }

  function schedulePreview() {
    clearTimeout(state.previewTimer);
    state.previewTimer = setTimeout(previewTemplate, 250);
  }

  function addFiles(list) {
    for (const f of list) {
      if (!state.files.some((x) => x.file.name === f.name)) state.files.push({ file: f, progress: 0, result: "" });
    }
    renderFiles();
  }

  function renderFiles() {
    const body = $("#seg-list");
    body.replaceChildren(...state.files.map((x, i) => Loa.el("tr", { "data-file": x.file.name },
      Loa.el("th", { scope: "row", text: x.file.name }),
      Loa.el("td", { class: "n", text: Loa.num(x.file.size) + " B" }),
      Loa.el("td", {}, Loa.el("progress", { max: 100, value: x.progress, "aria-label": t("seg.progressLabel", x.file.name) }),
        Loa.el("span", { class: "pct", text: " " + x.progress + "%" })),
      Loa.el("td", { class: "result", text: x.result }),
      Loa.el("td", {}, state.draft ? null : Loa.el("button", { type: "button", class: "plain", "aria-label": t("seg.removeOne", x.file.name),
        text: "✕", onclick: () => { state.files.splice(i, 1); renderFiles(); } })))));
  }

  /** One segment file, streamed from disk by the browser with upload progress (XMLHttpRequest, not fetch). */
  function upload(draft, item) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      const url = "/api/v1/campaigns/" + encodeURIComponent(draft.id) + "/segments/" + encodeURIComponent(item.file.name) +
        "?generation=" + encodeURIComponent(draft.generation);
      xhr.open("PUT", url);
      xhr.setRequestHeader("Content-Type", "text/csv");
      xhr.setRequestHeader("X-CSRF-Token", Loa.session.csrf);
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) return;
        item.progress = Math.floor((e.loaded * 100) / e.total);
        const row = Loa.$$("#seg-list tr").find((r) => r.dataset.file === item.file.name);
        if (row) { $("progress", row).value = item.progress; $(".pct", row).textContent = " " + item.progress + "%"; }
      });
      xhr.addEventListener("load", () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        if (xhr.status === 200) { resolve(data || {}); return; }
        const err = new Loa.ApiError(xhr.status, item.file.name + ": " + Loa.errorMessage(data, xhr.responseText), data);
        if (xhr.status === 401) Loa.expired();
        reject(err);
      });
      xhr.addEventListener("error", () => reject(new Loa.ApiError(0, t("err.network"))));
      xhr.send(item.file);
    });
  }

  function submission() {
    const windows = $("#c-windows").value.split(",").map((s) => s.trim()).filter(Boolean);
    const body = {
      id: $("#c-id").value.trim(), sender: $("#c-sender").value.trim(),
      templates: [{ name: "template", text: $("#c-template").value }],
      segments: state.files.map((x) => ({ name: x.file.name, format: /\.txt$/i.test(x.file.name) ? "lines" : "csv" })),
      start: $("#c-start").value.trim(), deadline: $("#c-deadline").value.trim(), encoding: $("#c-encoding").value,
      windows, time_zone: $("#c-tz").value.trim() || "Asia/Ho_Chi_Minh",
    };
    const name = $("#c-name").value.trim();
    if (name) body.name = name;
    return body;
  }

  async function createAndUpload(ev) {
    ev.preventDefault();
    const status = $("#upload-status");
    if (!state.files.length) { status.textContent = t("c.nofiles"); return; }
    const body = submission();
    let created;
    try {
      const text = await Loa.post("/api/v1/campaigns", body, { text: true });
      // The generation is a 64-bit number: kept as its digits (JSON.parse would round it past 2^53).
      created = JSON.parse(text);
      created.generation = (text.match(/"generation"\s*:\s*(-?\d+)/) || [])[1];
    } catch (e) {
      status.textContent = e.message;
      return;
    }
    state.draft = { id: created.id, generation: created.generation };
    status.textContent = t("c.created", created.id);
    $("#c-upload").disabled = true;
    $("#c-discard").hidden = !Loa.may("planner");
    renderFiles();
    for (const item of state.files) {
      try {
        const c = await upload(state.draft, item);
        item.progress = 100;
        item.result = t("seg.done", Loa.num(c.rows), Loa.num(c.accepted), Loa.num(c.rejected), Loa.num(c.duplicates));
        renderFiles();
      } catch (e) {
        item.result = e.message;
        renderFiles();
        Loa.flash(e.message, "error");
        await discard(true);
        return;
      }
    }
    status.textContent = t("c.uploaded", state.files.length);
    await loadPreview();
  }

  async function loadPreview() {
    const d = state.draft;
    state.preview = await Loa.api("GET", "/api/v1/campaigns/" + encodeURIComponent(d.id) + "/preview");
    $("#planner-review").hidden = false;
    Loa.renderPreview($("#planner-preview"), state.preview);
    $("#submit-status").textContent = "";
    $("#c-submit").disabled = false;
    $("#c-submit").focus();
  }

  async function discard(quiet) {
    const d = state.draft;
    if (!d) return;
    try {
      await Loa.api("DELETE", "/api/v1/campaigns/" + encodeURIComponent(d.id) + "?generation=" + d.generation, undefined, { quiet: true });
      if (!quiet) $("#upload-status").textContent = t("c.discarded", d.id);
    } catch (e) { /* shown by Loa.api when it matters (403) */ }
    reset(false);
  }

  function reset(clearFiles) {
    state.draft = null;
    state.preview = null;
    if (clearFiles) state.files = [];
    for (const x of state.files) { x.progress = 0; x.result = x.result || ""; }
    $("#c-upload").disabled = false;
    $("#c-discard").hidden = true;
    $("#planner-review").hidden = true;
    renderFiles();
  }

  async function submit() {
    const d = state.draft;
    if (!d) return;
    try {
      const r = await Loa.post("/api/v1/campaigns/" + encodeURIComponent(d.id) + "/commit?generation=" + d.generation);
      const msg = t("c.submitted", d.id, Loa.stateText(r.state));
      $("#submit-status").textContent = msg;
      Loa.flash(msg, "ok");
      state.draft = null;
      $("#c-upload").disabled = false;
      $("#c-discard").hidden = true;
      $("#c-submit").disabled = true;
      state.files = [];
      renderFiles();
    } catch (e) {
      $("#submit-status").textContent = e.message;
    }
  }

  function init() {
    $("#campaign-form").addEventListener("submit", createAndUpload);
    $("#c-template").addEventListener("input", schedulePreview);
    $("#c-encoding").addEventListener("change", schedulePreview);
    $("#c-fields").addEventListener("input", schedulePreview);
    $("#c-submit").addEventListener("click", submit);
    $("#c-discard").addEventListener("click", () => discard(false));
    $("#seg-files").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
    const zone = $("#dropzone");
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); addFiles(e.dataTransfer.files); });
  }

  function enter() {
    const now = new Date();
    if (!$("#c-start").value) $("#c-start").value = iso(now);
    if (!$("#c-deadline").value) $("#c-deadline").value = iso(new Date(now.getTime() + 24 * 3600 * 1000));
    $("#c-submit").disabled = false;
    render();
  }

  function render() {
    renderFiles();
    if (state.preview) Loa.renderPreview($("#planner-preview"), state.preview);
    previewTemplate();
  }

  Loa.views.planner = { init, enter, render, reset: () => {
    reset(true);
    $("#campaign-form").reset();
    for (const sel of ["#tpl-text", "#tpl-facts", "#upload-status", "#submit-status"]) $(sel).textContent = "";
    $("#planner-preview").replaceChildren();
  } };
})();
