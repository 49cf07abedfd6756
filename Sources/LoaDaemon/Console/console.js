// Loa's console: the session, the API calls, the text table and the views by role. Plain JavaScript, no build
// step, no external assets (CSP `default-src 'self'`: no inline script or style anywhere). The server is the
// authority on roles: buttons a role may not use are hidden, and a 403 is shown as a clear message.
"use strict";
(function () {
  const Loa = window.Loa = { session: null, lang: "vi", views: {}, current: null };
  const $ = Loa.$ = (sel, root) => (root || document).querySelector(sel);
  Loa.$$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  try { if (localStorage.getItem("loa.lang") === "en") Loa.lang = "en"; } catch (e) { /* storage off: Vietnamese */ }

  /** The text for `key` in the current language, with {0}, {1}… replaced by `values`. */
  Loa.t = function (key, ...values) {
    const table = window.LoaText[Loa.lang] || window.LoaText.vi;
    const s = table[key] !== undefined ? table[key] : (window.LoaText.vi[key] !== undefined ? window.LoaText.vi[key] : key);
    return s.replace(/\{(\d+)\}/g, (_, i) => (values[+i] === undefined || values[+i] === null ? "" : String(values[+i])));
  };

  /** An element with attributes (`text` sets textContent, `class` the class name) and children. */
  Loa.el = function (tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  };

  Loa.locale = () => (Loa.lang === "en" ? "en-GB" : "vi-VN");
  Loa.num = (n) => (typeof n === "number" ? n.toLocaleString(Loa.locale()) : (n === undefined || n === null ? "—" : String(n)));
  Loa.time = (ms) => (ms ? new Date(ms).toLocaleString(Loa.locale()) : "—");
  Loa.stateText = (s) => Loa.t("state." + s);

  /** Whether the signed-in role may call an endpoint that needs `needed` (the server's Role.includes). */
  Loa.may = function (needed) {
    const role = Loa.session && Loa.session.role;
    if (!role) return false;
    if (role === "admin" || needed === "viewer") return true;
    if (role === "approver" && needed === "operator") return true;
    return role === needed;
  };

  /** The message of an API error body: `{"error": {"message"}}` or `{"error": "..."}`, else the text. */
  Loa.errorMessage = function (data, text) {
    if (data && data.error) return typeof data.error === "string" ? data.error : (data.error.message || data.error.code || "");
    return (text || "").slice(0, 300);
  };

  class ApiError extends Error {
    constructor(status, message, data) { super(message); this.status = status; this.data = data; }
  }
  Loa.ApiError = ApiError;

  /** Calls the operator API with the session cookie; state-changing calls carry the session's CSRF token.
   *  401 ends the session (back to the login page); 403 shows what the server refused. Other failures throw.
   *  `opts.text`: the answer's text, unparsed (for 64-bit numbers, which a JavaScript number would round). */
  Loa.api = async function (method, path, body, opts) {
    opts = opts || {};
    const headers = { "Accept": "application/json" };
    if (method !== "GET" && method !== "HEAD" && Loa.session) headers["X-CSRF-Token"] = Loa.session.csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let r;
    try {
      r = await fetch(path, { method, headers, credentials: "same-origin", cache: "no-store",
                              body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      Loa.flash(Loa.t("err.network"), "error");
      throw new ApiError(0, Loa.t("err.network"));
    }
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (r.ok) return opts.text || data === null ? text : data;
    const message = Loa.errorMessage(data, text);
    if (r.status === 401 && !opts.login) { Loa.expired(); }
    else if (r.status === 403) { Loa.flash(Loa.t("err.forbidden", message), "error"); }
    else if (!opts.quiet) { Loa.flash(Loa.t("err.http", r.status, message), "error"); }
    const err = new ApiError(r.status, message, data);
    err.retryAfter = r.headers.get("Retry-After");
    throw err;
  };
  Loa.post = (path, body, opts) => Loa.api("POST", path, body, opts);

  Loa.flash = function (message, kind) {
    const f = $("#flash");
    f.textContent = message;
    f.className = "flash " + (kind || "info");
    f.hidden = !message;
  };

  /** A file download from text built in the page (report CSV, audit export). */
  Loa.download = function (name, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type: type || "text/csv" }));
    const a = Loa.el("a", { href: url, download: name, class: "visually-hidden" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  };

  /** One CSV record (RFC 4180), with a cell that starts like a formula prefixed by an apostrophe. */
  Loa.csv = (fields) => fields.map((f) => {
    let s = f === null || f === undefined ? "" : String(f);
    if (/^[=+\-@]/.test(s) && !/^[+-]?\d/.test(s)) s = "'" + s;
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }).join(",") + "\r\n";

  /** A two-column table of counts, `data-key`/`data-value` on each row for tests and scripts. */
  Loa.countTable = function (caption, counts, field, label) {
    const rows = Object.entries(counts || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    return Loa.el("table", { class: "data", "data-field": field },
      Loa.el("caption", { text: caption }),
      Loa.el("thead", {}, Loa.el("tr", {}, Loa.el("th", { scope: "col", text: Loa.t("col.key") }), Loa.el("th", { scope: "col", class: "n", text: Loa.t("col.count") }))),
      Loa.el("tbody", {}, ...rows.map(([k, v]) => Loa.el("tr", { "data-key": k, "data-value": v },
        Loa.el("th", { scope: "row", text: label ? label(k) : k }), Loa.el("td", { class: "n", text: Loa.num(v) })))));
  };

  /** The preview numbers of a campaign (`GET /api/v1/campaigns/{id}/preview`), as the planner and approver see them. */
  Loa.renderPreview = function (box, p) {
    box.replaceChildren();
    const totals = [["rows", "pv.rows"], ["recipients", "pv.recipients"], ["duplicates", "pv.duplicates"], ["excluded", "pv.excluded"],
                    ["opted_out", "pv.opted_out"], ["suppressed", "pv.suppressed"], ["rejected", "pv.rejected"],
                    ["parts", "pv.parts"], ["ucs2_messages", "pv.ucs2"], ["gsm7_messages", "pv.gsm7"]];
    box.append(Loa.el("table", { class: "data totals", "data-field": "totals" },
      Loa.el("caption", { text: Loa.t("review.title") }),
      Loa.el("tbody", {}, ...totals.map(([k, label]) => Loa.el("tr", {},
        Loa.el("th", { scope: "row", text: Loa.t(label) }),
        Loa.el("td", { class: "n", "data-field": k, "data-value": p[k] === undefined ? "" : p[k], text: Loa.num(p[k]) }))))));
    const tables = Loa.el("div", { class: "tables" });
    tables.append(Loa.countTable(Loa.t("pv.reasons"), p.rejected_by_reason, "rejected_by_reason"));
    tables.append(Loa.countTable(Loa.t("pv.carriers"), p.per_carrier, "per_carrier"));
    tables.append(Loa.countTable(Loa.t("pv.networks"), p.per_network, "per_network"));
    if (p.per_ward && Object.keys(p.per_ward).length) tables.append(Loa.countTable(Loa.t("pv.wards"), p.per_ward, "per_ward"));
    box.append(tables);
    const f = p.feasibility;
    if (f) {
      box.append(Loa.el("h3", { text: Loa.t("pv.feasibility") }),
        Loa.el("p", { "data-field": "feasibility", "data-on-time": String(!!f.on_time), class: f.on_time ? "ok" : "warn",
          text: (f.on_time ? Loa.t("pv.ontime") : Loa.t("pv.late")) + " " +
                Loa.t("pv.needed", ((f.needed_seconds || 0) / 3600).toFixed(2), ((f.window_seconds || 0) / 3600).toFixed(2)) +
                (f.warning ? " " + f.warning : "") }));
    }
    const samples = p.samples || [];
    box.append(Loa.el("table", { class: "data samples", "data-field": "samples" },
      Loa.el("caption", { text: Loa.t("pv.samples") }),
      Loa.el("thead", {}, Loa.el("tr", {}, ...["col.phone", "col.carrier", "col.encoding", "col.parts", "col.text"]
        .map((k) => Loa.el("th", { scope: "col", text: Loa.t(k) })))),
      Loa.el("tbody", {}, ...samples.map((s) => Loa.el("tr", {},
        Loa.el("td", { text: s.phone }), Loa.el("td", { text: s.carrier }), Loa.el("td", { text: s.encoding }),
        Loa.el("td", { class: "n", text: Loa.num(s.parts) }), Loa.el("td", { class: "sms", text: s.text }))))));
  };

  // --- views and the session ---

  Loa.show = function (name) {
    if (!Loa.session && name !== "login") name = "login";
    for (const v of Loa.$$(".view")) v.hidden = v.id !== "view-" + name;
    for (const b of Loa.$$("#nav .tab")) {
      if (b.dataset.view === name) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
    }
    const previous = Loa.current;
    Loa.current = name;
    if (previous && previous !== name && Loa.views[previous] && Loa.views[previous].leave) Loa.views[previous].leave();
    if (Loa.views[name] && Loa.views[name].enter) Loa.views[name].enter();
  };

  /** Shows what the signed-in role may use, and its first page. */
  Loa.begin = function (session) {
    Loa.session = session;
    $("#who").textContent = Loa.t("who", session.user, Loa.t("role." + session.role));
    $("#logout").hidden = false;
    $("#nav").hidden = false;
    for (const e of Loa.$$("[data-role]")) e.hidden = !Loa.may(e.dataset.role);
    const first = Loa.$$("#nav .tab").find((b) => !b.hidden);
    Loa.flash("");
    Loa.show(first ? first.dataset.view : "dashboard");
  };

  /** Back to the login page, with nothing of the last user's left on the pages. */
  Loa.end = function () {
    if (Loa.current && Loa.views[Loa.current] && Loa.views[Loa.current].leave) Loa.views[Loa.current].leave();
    for (const v of Object.values(Loa.views)) if (v.reset) v.reset();
    Loa.flash("");
    Loa.session = null;
    Loa.current = null;
    $("#who").textContent = "";
    $("#logout").hidden = true;
    $("#nav").hidden = true;
    Loa.show("login");
  };

  Loa.expired = function () {
    if (!Loa.session) return;
    Loa.end();
    $("#login-error").textContent = Loa.t("login.expired");
  };

  async function login(ev) {
    ev.preventDefault();
    const user = $("#login-user").value.trim(), password = $("#login-password").value;
    const out = $("#login-error");
    out.textContent = "";
    if (!user || !password) { out.textContent = Loa.t("login.missing"); return; }
    try {
      const s = await Loa.api("POST", "/api/v1/session", { user, password }, { login: true, quiet: true });
      $("#login-password").value = "";
      Loa.begin(s);
    } catch (e) {
      if (e.status === 401) out.textContent = Loa.t("login.wrong");
      else if (e.status === 423 || (e.status === 429 && /lock/i.test(e.message))) out.textContent = Loa.t("login.locked", e.message);
      else if (e.status === 429) out.textContent = Loa.t("login.throttled", e.retryAfter || "?");
      else out.textContent = Loa.t("err.http", e.status, e.message);
      $("#login-password").focus();
    }
  }

  async function logout() {
    try { await Loa.api("DELETE", "/api/v1/session"); } catch (e) { /* gone already: the same for the user */ }
    Loa.end();
  }

  Loa.applyText = function () {
    document.documentElement.lang = Loa.lang;
    for (const e of Loa.$$("[data-i18n]")) e.textContent = Loa.t(e.dataset.i18n);
    for (const e of Loa.$$("[data-i18n-aria]")) e.setAttribute("aria-label", Loa.t(e.dataset.i18nAria));
    const lang = $("#lang");
    lang.textContent = Loa.lang === "vi" ? "English" : "Tiếng Việt";
    lang.setAttribute("lang", Loa.lang === "vi" ? "en" : "vi");
    if (Loa.session) $("#who").textContent = Loa.t("who", Loa.session.user, Loa.t("role." + Loa.session.role));
    if (Loa.current && Loa.views[Loa.current] && Loa.views[Loa.current].render) Loa.views[Loa.current].render();
  };

  document.addEventListener("DOMContentLoaded", async () => {
    Loa.applyText();
    $("#login-form").addEventListener("submit", login);
    $("#logout").addEventListener("click", logout);
    $("#lang").addEventListener("click", () => {
      Loa.lang = Loa.lang === "vi" ? "en" : "vi";
      try { localStorage.setItem("loa.lang", Loa.lang); } catch (e) { /* not kept: fine */ }
      Loa.applyText();
    });
    for (const b of Loa.$$("#nav .tab")) b.addEventListener("click", () => Loa.show(b.dataset.view));
    for (const v of Object.values(Loa.views)) if (v.init) v.init();
    try {
      Loa.begin(await Loa.api("GET", "/api/v1/session", undefined, { login: true, quiet: true }));
    } catch (e) {
      Loa.show("login");
    }
    document.body.dataset.ready = "true";
  });
})();
