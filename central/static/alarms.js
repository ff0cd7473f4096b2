// vaora gate alarms panel (#alarms, templates/_alarms.html): re-renders the active alarms from the page's event
// stream (window.vaoraAlarms.update, called by the dashboard and the fleet page, or its own stream on the alarm
// page) and acknowledges one without reloading. Written for this project; no third-party code.
"use strict";
(() => {
  const root = document.getElementById("alarms");
  if (!root) return;
  const en = root.dataset.lang === "en";
  const T = (vi, english) => (en ? english : vi);
  const gateName = (name, id) => name || `${T("Cổng", "Gate")} ${id}`;  // central.gates.names
  const TZ = "Asia/Ho_Chi_Minh";
  const sites = root.dataset.sites ? JSON.parse(root.dataset.sites) : null;
  const canAck = root.dataset.canAck === "1";
  const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" })[c]);
  const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString("vi-VN", { timeZone: TZ, hour12: false }) : "");
  const byId = (id) => document.getElementById(id);

  function item(a) {
    let form = "";
    if (canAck) {
      form = `<form method="post" class="inline alarm-ack" action="${root.dataset.ackBase}/${a.id}/xac-nhan">` +
        `<input type="hidden" name="csrf_token" value="${esc(root.dataset.csrf)}">` +
        `<label>${T("Ghi chú", "Note")} <input name="note" maxlength="200"></label> ` +
        `<button type="submit">${T("Xác nhận", "Acknowledge")}</button></form>`;
    }
    return `<li data-alarm="${a.id}" class="alarm alarm-${esc(a.kind)}"><strong>${esc(en ? a.kind_en : a.kind_vi)}</strong>` +
      ` · <span class="gate">${esc(gateName(a.gate_name, a.gate_id))}</span> · ` +
      `<time datetime="${esc(a.raised_at)}">${clock(a.raised_at)}</time>` +
      (a.cleared_at ? ` · ${T("đã kết thúc lúc", "ended at")} ${clock(a.cleared_at)}` : "") + ` ${form}</li>`;
  }

  function render(list) {
    const shown = list.filter((a) => !sites || sites.includes(a.site_id));
    const notes = {};
    byId("alarm-list").querySelectorAll("li[data-alarm]").forEach((li) => {
      const note = li.querySelector("input[name=note]");
      if (note && note.value) notes[li.dataset.alarm] = note.value;
    });
    byId("alarm-list").innerHTML = shown.length ? shown.map(item).join("")
      : `<li class="muted alarm-none">${T("Không có cảnh báo.", "No alarms.")}</li>`;
    byId("alarm-list").querySelectorAll("li[data-alarm]").forEach((li) => {
      const note = li.querySelector("input[name=note]");
      if (note && notes[li.dataset.alarm]) note.value = notes[li.dataset.alarm];
    });
    const count = byId("alarm-count");
    count.textContent = shown.length;
    count.className = shown.length ? "badge badge-failed" : "badge";
    if (root.dataset.historyUrl) refreshHistory();
  }

  async function refreshHistory() {
    try {
      const response = await fetch(root.dataset.historyUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const state = await response.json();
      byId("alarm-history").innerHTML = state.history.map((a) =>
        `<tr data-alarm="${a.id}"><td>${clock(a.raised_at)}</td><td>${esc(gateName(a.gate_name, a.gate_id))}</td>` +
        `<td>${esc(en ? a.kind_en : a.kind_vi)}</td><td>${a.acknowledged_at ? `${clock(a.acknowledged_at)} · ` +
        `${esc(a.acknowledged_by)}` : `<span class="badge badge-failed">${T("Chưa xác nhận", "Not acknowledged")}</span>`}` +
        `</td><td>${esc(a.note)}</td></tr>`).join("");
    } catch (_err) { /* the next event tries again */ }
  }

  window.vaoraAlarms = { update: render };

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.classList.contains("alarm-ack")) return;
    event.preventDefault();
    let body = {};
    try {
      const response = await fetch(form.getAttribute("action"), { method: "POST", body: new FormData(form),
        headers: { Accept: "application/json", "X-CSRFToken": root.dataset.csrf } });
      body = await response.json();
    } catch (_err) { body = { ok: false, message: T("Không gửi được", "Could not send") }; }
    const result = byId("alarm-result");
    result.textContent = body.message || "";
    result.className = body.ok ? "ok" : "error";
    const li = form.closest("li[data-alarm]");
    if (li && (body.ok || body.reason === "duplicate")) {  // acknowledged (here or by someone else a moment ago)
      li.remove();
      const left = byId("alarm-list").querySelectorAll("li[data-alarm]").length;
      byId("alarm-count").textContent = left;
      if (!left) render([]);
      else if (root.dataset.historyUrl) refreshHistory();
    }
  });

  if (root.dataset.events) {  // the alarm page: its own stream (the dashboard and the fleet page share theirs)
    const source = new EventSource(root.dataset.events);
    source.addEventListener("alarms", (e) => render(JSON.parse(e.data)));
    window.vaoraAlarms.source = source;
  }
})();
