// vaora gate fleet page: send a command, show "waiting" with a countdown, then ok / failed / timeout;
// gate rows follow server-sent "gate" events. Written for this project; no third-party code.
"use strict";
(() => {
  const root = document.getElementById("fleet");
  if (!root) return;
  const en = root.dataset.lang === "en";
  const T = (vi, english) => (en ? english : vi);
  const gateName = (name, id) => name || `${T("Cổng", "Gate")} ${id}`;  // central.gates.names
  const TZ = "Asia/Ho_Chi_Minh";
  const CONFIRM = { lockdown: T("Khóa cổng: mọi lượt quét sẽ bị từ chối. Tiếp tục?", "Lock down: every scan is refused. Continue?"),
                    release: T("Mở thoát hiểm: cổng mở tự do cho mọi người. Tiếp tục?", "Release: the turnstile opens for everyone. Continue?") };
  const MODES = { normal: T("Bình thường", "Normal"), lockdown: T("Khóa cổng", "Locked down"),
                  release: T("Mở thoát hiểm", "Released") };
  const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" })[c]);
  const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString("vi-VN", { timeZone: TZ, hour12: false }) : "");
  const timeout = Number(root.dataset.timeout) || 10;
  const stamp = (iso) => (iso ? new Date(iso).toLocaleString("vi-VN", { timeZone: TZ, hour12: false }) : "");
  const SITE_LABELS = JSON.parse(root.dataset.siteLabels || "{}");  // central.core.states.SiteLinkState
  const GATE_LABELS = JSON.parse(root.dataset.gateLabels || "{}");

  function statusText(c) {
    const label = en ? c.status_en : c.status_vi;
    const reason = en ? c.reason_en : c.reason_vi;
    return reason ? `${label} · ${reason}` : label;
  }

  function renderLog(commands) {
    document.getElementById("fleet-log").innerHTML = commands.map((c) =>
      `<tr><td>${clock(c.issued_at)}</td><td>${esc(gateName(c.gate_name, c.gate_id))}</td><td>${esc(en ? c.action_en : c.action_vi)}</td>` +
      `<td>${esc(c.issued_by)}</td><td><span class="fleet-${c.waiting ? "pending" : c.status}">` +
      `${esc(statusText(c))}</span></td><td>${esc(c.note || "")}</td></tr>`).join("");
  }

  function clockFlag(g) {
    const off = g.clock_offset_s === null || g.clock_offset_s === undefined ? "" :
      `${g.clock_offset_s >= 0 ? "+" : "-"}${Math.round(Math.abs(g.clock_offset_s))} s`;
    if (g.clock_suspect) return ` <span class="badge badge-failed clock-flag">${T("Đồng hồ sai", "Clock wrong")} ${off}</span>`;
    if (g.clock_skewed) return ` <span class="badge badge-queued clock-flag">${T("Lệch giờ", "Clock off")} ${off}</span>`;
    return "";
  }

  function renderGate(g) {
    const row = root.querySelector(`tr[data-gate="${CSS.escape(g.gate_id)}"]`);
    if (!row) return;
    const set = (cls, html) => { const cell = row.querySelector(cls); if (cell) cell.innerHTML = html; };
    set(".fleet-seen", (clock(g.last_seen_at) || "—") + clockFlag(g));
    set(".fleet-version", esc(g.software_version || "—"));
    set(".fleet-fail", g.fail_mode === "safe" ? T("Mở (an toàn)", "Open (safe)")
      : g.fail_mode === "secure" ? T("Khóa (an ninh)", "Locked (secure)") : "—");
    const siteChanged = row.dataset.siteOffline !== String(Boolean(g.site_offline));
    row.dataset.siteOffline = String(Boolean(g.site_offline));
    set(".fleet-online", g.site_offline
      ? `<span class="badge badge-failed">${T("Trạm mất kết nối", "Site offline")}</span><br>` +
        `<span class="muted">${T("Lần cuối", "Last known")}: ${esc(GATE_LABELS[g.state] || g.state)}</span>`
      : g.online ? `<span class="badge badge-open">${T("Trực tuyến", "Online")}</span>`
        : `<span class="badge badge-failed">${T("Mất kết nối", "Offline")}</span>`);
    set(".fleet-cache", g.cache === "current" ? `${T("Mới nhất", "Current")} (${g.cache_seq})`
      : g.cache === "behind" ? `<span class="badge badge-queued">${T("Chậm", "Behind")} ${g.behind_by}</span> ` +
        `(${g.cache_seq}/${g.current_seq})` : "—");
    set(".fleet-mode", esc(MODES[g.mode] || g.mode) +
      (g.emergency ? ` <span class="badge badge-failed">${T("KHẨN CẤP", "EMERGENCY")}</span>` : ""));
    return siteChanged;
  }

  // Each site's link to central (its site broker's bridge): the banner names the sites offline, the list all.
  function renderSites(sites) {
    const since = (s) => `${T("từ", "since")} ${esc(stamp(s.since))}`;
    const banner = document.getElementById("fleet-site-offline");
    if (banner) {
      banner.innerHTML = sites.filter((s) => s.offline).map((s) =>
        `<p class="error-box site-offline" role="alert" data-site="${esc(s.site_id)}"><strong>` +
        `${T("Mất kết nối trạm (site offline)", "Site offline")}: ${esc(s.site_id)}</strong> · ` +
        (s.state === "never" ? T("chưa từng kết nối tới trung tâm", "never connected to central") : since(s)) +
        `. ${T("Các cổng của trạm vẫn cho vào và giữ lượt quét đến khi nối lại. Kiểm tra nhật ký (log) của máy chủ " +
               "MQTT tại trạm: địa chỉ, mật khẩu hoặc chứng chỉ của cầu nối.",
               "The site's gates still admit people and keep their scans until the link is back. Check the site " +
               "broker's log: the bridge's address, password or certificate.")}</p>`).join("");
    }
    const list = document.getElementById("fleet-sites");
    if (!list) return;
    list.innerHTML = sites.map((s) => {
      let link = T("nối thẳng về trung tâm", "gates connect to central directly");
      if (s.bridged) {
        const badge = `<span class="badge ${s.offline ? "badge-failed" : "badge-open"}">${esc(SITE_LABELS[s.state] || s.state)}</span>`;
        link = s.state === "never" ? badge : `${badge} ${since(s)}`;
      }
      return `<li data-site="${esc(s.site_id)}"><strong>${esc(s.site_id)}</strong> (${s.gates} ${T("cổng", "gates")}): ${link}</li>`;
    }).join("");
  }

  async function refresh() {
    try {
      const response = await fetch(root.dataset.stateUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const state = await response.json();
      state.gates.forEach(renderGate);
      renderSites(state.sites || []);
      renderLog(state.commands);
    } catch (_err) { /* next event retries */ }
  }

  async function follow(output, command) {
    const started = Date.now();
    const url = root.dataset.commandUrl.replace("__ID__", encodeURIComponent(command.command_id));
    for (;;) {
      const left = Math.max(0, Math.ceil(timeout - (Date.now() - started) / 1000));
      output.className = "fleet-status fleet-pending";
      output.textContent = `${T("Đang chờ cổng trả lời", "Waiting for the gate")}… ${left}s`;
      await new Promise((resolve) => setTimeout(resolve, 400));
      let current = null;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        if (response.ok) current = await response.json();
      } catch (_err) { /* keep waiting */ }
      if (current && !current.waiting) {
        output.className = `fleet-status fleet-${current.status}`;
        output.textContent = statusText(current);
        output.dataset.status = current.status;
        refresh();
        return;
      }
    }
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.classList.contains("fleet-command")) return;
    event.preventDefault();
    const data = new FormData(form);
    const action = data.get("action");
    if (CONFIRM[action] && data.get("confirm") !== "1") {
      if (!window.confirm(CONFIRM[action])) return;
      data.set("confirm", "1");
    }
    const output = form.querySelector(".fleet-status");
    output.dataset.status = "";
    output.className = "fleet-status fleet-pending";
    output.textContent = T("Đang gửi…", "Sending…");
    let body = {};
    try {
      // form.getAttribute: the form's "action" property is shadowed by its <select name="action">.
      const response = await fetch(form.getAttribute("action"), { method: "POST", body: data,
        headers: { Accept: "application/json", "X-CSRFToken": root.dataset.csrf } });
      body = await response.json();
    } catch (_err) { body = { ok: false, message: T("Không gửi được lệnh", "Could not send") }; }
    if (!body.ok) {
      output.className = "fleet-status fleet-failed";
      output.textContent = body.message || "";
      output.dataset.status = "refused";
      return;
    }
    form.querySelector("input[name=confirm]").checked = false;
    refresh();
    follow(output, body.command);
  });

  const source = new EventSource(root.dataset.events);
  source.addEventListener("gate", (e) => { if (renderGate(JSON.parse(e.data))) refresh(); });
  source.addEventListener("alarms", (e) => { if (window.vaoraAlarms) window.vaoraAlarms.update(JSON.parse(e.data)); });
  window.vaoraFleet = { source };
  source.addEventListener("reset", () => refresh());
})();
