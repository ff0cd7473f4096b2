// vaora live attendance dashboard: keeps the page current from server-sent events, without reloading.
// State comes embedded in the page (#dash-state); events: checkins, gate, walkins, reset (reload the state).
// Written for this project; no third-party code.
"use strict";
(() => {
  const root = document.getElementById("dashboard");
  const stateNode = document.getElementById("dash-state");
  if (!root || !stateNode) return;
  const en = root.dataset.lang === "en";
  const wall = root.dataset.wall === "1";
  const T = (vi, english) => (en ? english : vi);
  const TZ = "Asia/Ho_Chi_Minh";
  const MODES = { normal: T("Bình thường", "Normal"), lockdown: T("Khóa cổng", "Locked down"),
                  release: T("Mở thoát hiểm", "Released") };
  let state = null;
  let seen = new Set();
  let people = new Map();

  const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" })[c]);
  const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString("vi-VN", { timeZone: TZ, hour12: false }) : "");
  const byId = (id) => document.getElementById(id);
  // A gate by its name, "Cổng <id>" when it has none (central.gates.names).
  const gateName = (name, id) => name || `${T("Cổng", "Gate")} ${id}`;

  function load(next) {
    state = next;
    seen = new Set(state.arrivals.map((a) => a.checkin_id));
    people = new Map(state.people.map((p) => [p.delegate_id, p]));
    renderAll();
    if (window.vaoraAlarms && state.alarms) window.vaoraAlarms.update(state.alarms);
  }

  function renderAll() {
    renderTotals(); renderDays(); renderOrgs(); renderVenues(); renderArrivals(); renderLate(); renderSubs(); renderChart();
    renderGates(); renderWalkins(); renderMarkOptions(); renderConflicts();
  }

  // Conflicts: entries central stored but flagged (who, which gate, when, why); the server owns the rules.
  function renderConflicts() {
    const count = byId("dash-conflict-count");
    if (!count) return;
    count.textContent = state.conflicts.length;
    count.className = state.conflicts.length ? "badge badge-queued" : "badge";
    byId("dash-conflicts").innerHTML = state.conflicts.map((c) =>
      `<tr data-conflict="${c.id}"><td><time datetime="${esc(c.at)}">${clock(c.at)}</time></td>` +
      `<td><strong>${esc(c.name)}</strong> · ${esc(c.organisation)}</td>` +
      `<td>${c.manual ? T("Thủ công", "Manual") : esc(gateName(c.gate_name, c.gate_id))}</td><td>${esc(en ? c.reason_en : c.reason_vi)}` +
      (c.other_at ? ` — ${T("lần đầu", "first")}: ${esc(c.other_gate_id ? gateName(c.other_gate_name, c.other_gate_id) : T("Thủ công", "Manual"))} ${clock(c.other_at)}` : "") +
      (c.replaced_by ? ` — ${T("đã thay bằng", "replaced by")} ${esc(c.replaced_by)}` : "") + "</td></tr>").join("");
  }

  function renderTotals() {
    byId("dash-present").textContent = state.present;
    byId("dash-expected").textContent = state.expected;
  }

  // Per meeting day (a multi-day meeting only): the days and counts come from the server, which owns the rule.
  function renderDays() {
    const body = byId("dash-days");
    if (!body) return;
    body.innerHTML = state.days.map((d) =>
      `<tr data-day="${d.day}"><td>${T("Ngày", "Day")} ${d.day} (${esc(d.date.slice(8, 10))}/${esc(d.date.slice(5, 7))})` +
      (d.day === state.today ? ` <span class="badge badge-open">${T("Hôm nay", "Today")}</span>` : "") +
      `</td><td>${d.present}</td></tr>`).join("");
  }

  function renderOrgs() {
    byId("dash-orgs").innerHTML = state.by_organisation.map((r) =>
      `<tr data-org="${esc(r.organisation)}"><td>${esc(r.organisation)}</td><td>${r.present}</td>` +
      `<td>${r.expected}</td></tr>`).join("");
  }

  function renderVenues() {
    byId("dash-venues").innerHTML = state.by_venue.map((r) =>
      `<tr data-venue="${esc(r.venue)}"><td>${esc(r.venue)}</td><td>${r.present}</td></tr>`).join("");
  }

  function arrivalItem(a) {
    const where = a.manual ? `<span class="badge badge-manual" title="${esc(a.note)}">${T("Thủ công", "Manual")}</span>`
      : `<span class="gate">${esc(gateName(a.gate_name, a.gate_id))}</span>`;
    return `<li data-checkin="${a.checkin_id}"><time datetime="${esc(a.at)}">${clock(a.at)}</time> ` +
      `<strong>${esc(a.name)}</strong> · ${esc(a.organisation)} · ${where}` +
      (a.clock_suspect ? ` <span class="badge badge-queued clock-flag">${T("Giờ đã hiệu chỉnh", "Time corrected")}</span>` : "") +
      "</li>";
  }

  function renderArrivals() {
    byId("dash-arrivals").innerHTML = state.arrivals.map(arrivalItem).join("");
  }

  function renderLate() {
    const late = state.people.filter((p) => p.late).sort((a, b) => a.first_entry_at.localeCompare(b.first_entry_at));
    byId("dash-late").innerHTML = late.map((p) => `<li><time datetime="${esc(p.first_entry_at)}">` +
      `${clock(p.first_entry_at)}</time> ${esc(p.name)} · ${esc(p.organisation)}</li>`).join("");
  }

  function renderSubs() {
    const subs = state.people.filter((p) => p.substitute_for);
    byId("dash-subs").innerHTML = subs.map((p) => `<li>${esc(p.name)} · ${esc(p.organisation)} — ` +
      `${T("thay cho", "replacing")} ${esc(p.substitute_for)} ` +
      (p.present ? `<span class="badge badge-open">${T("Có mặt", "Present")}</span>`
        : `<span class="badge">${T("Chưa đến", "Not yet")}</span>`) + "</li>").join("");
  }

  let walkinsShown = null;

  function renderWalkins() {
    // Re-render only when the list changed, and keep what the organiser was typing in a note: the list is
    // refreshed every second and on every check-in.
    const shown = JSON.stringify(state.walkins || []);
    if (shown === walkinsShown) return;
    walkinsShown = shown;
    const list = byId("dash-walkins");
    const notes = {};
    list.querySelectorAll("li[data-walkin]").forEach((li) => {
      const note = li.querySelector("input[name=note]");
      if (note && note.value) notes[li.dataset.walkin] = note.value;
    });
    const focused = document.activeElement && list.contains(document.activeElement)
      ? document.activeElement.closest("li[data-walkin]")?.dataset.walkin : null;
    const canDecide = root.dataset.canDecide === "1";
    list.innerHTML = (state.walkins || []).map((w) => {
      let form = "";
      if (canDecide) {
        const base = `${root.dataset.base}/khach/${w.id}`;
        form = `<form method="post" class="inline dash-decide" action="${base}/duyet">` +
          `<input type="hidden" name="csrf_token" value="${esc(root.dataset.csrf)}">` +
          `<label>${T("Ghi chú", "Note")} <input name="note" maxlength="500"></label> ` +
          `<button type="submit">${T("Duyệt", "Approve")}</button> ` +
          `<button type="submit" class="secondary" formaction="${base}/tu-choi">${T("Từ chối", "Reject")}</button>` +
          "</form>";
      }
      return `<li data-walkin="${w.id}"><strong>${esc(w.full_name)}</strong> · ${esc(w.organisation)} · ` +
        `${esc(w.id_masked)} ${form}</li>`;
    }).join("");
    list.querySelectorAll("li[data-walkin]").forEach((li) => {
      const note = li.querySelector("input[name=note]");
      if (note && notes[li.dataset.walkin]) note.value = notes[li.dataset.walkin];
      if (note && li.dataset.walkin === focused) note.focus();
    });
  }

  function clockFlag(g) {
    const off = g.clock_offset_s === null || g.clock_offset_s === undefined ? "" :
      `${g.clock_offset_s >= 0 ? "+" : "-"}${Math.round(Math.abs(g.clock_offset_s))} s`;
    if (g.clock_suspect) return ` <span class="badge badge-failed clock-flag">${T("Đồng hồ sai", "Clock wrong")} ${off}</span>`;
    if (g.clock_skewed) return ` <span class="badge badge-queued clock-flag">${T("Lệch giờ", "Clock off")} ${off}</span>`;
    return "";
  }

  function renderGates() {
    byId("dash-gates").innerHTML = state.gates.map((g) => {
      const online = g.online ? `<span class="badge badge-open">${T("Trực tuyến", "Online")}</span>`
        : `<span class="badge badge-failed">${T("Mất kết nối", "Offline")}</span>`;
      let cache = "—";
      if (g.cache === "current") cache = T("Mới nhất", "Current");
      else if (g.cache === "behind") cache = `<span class="badge badge-queued">${T("Chậm", "Behind")} ${g.behind_by}</span>`;
      const emergency = g.emergency ? `<span class="badge badge-failed">${T("KHẨN CẤP", "EMERGENCY")}</span>` : "—";
      return `<tr data-gate="${esc(g.gate_id)}"><td>${esc(g.name || g.gate_id)} <span class="muted">` +
        `(${esc(g.gate_id)})</span></td><td>${online}</td><td>${clock(g.last_seen_at) || "—"}${clockFlag(g)}</td>` +
        `<td>${cache}</td><td>${emergency}</td><td>${esc(MODES[g.mode] || g.mode)}</td></tr>`;
    }).join("");
  }

  function renderMarkOptions() {
    const select = byId("mark-delegate");
    if (!select) return;
    const chosen = select.value;
    const absent = state.people.filter((p) => p.active && !p.present_today);  // today: the server's meeting day
    select.innerHTML = absent.length ? absent.map((p) =>
      `<option value="${p.delegate_id}">${esc(p.name)} · ${esc(p.organisation)}</option>`).join("")
      : `<option value="" disabled selected>${T("— Mọi đại biểu đã có mặt —", "— Everyone is present —")}</option>`;
    if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  }

  // The chart: arrivals so far (cumulative) over time, as an inline SVG drawn here.
  function renderChart() {
    const box = byId("dash-chart");
    const W = 640; const H = 200; const P = 36;
    const times = state.arrival_times.map((t) => Date.parse(t));
    const start = Date.parse(state.meeting.starts_at);
    const now = Date.now();
    const lo = Math.min(start - 30 * 60000, ...(times.length ? [times[0]] : []));
    const hi = Math.max(lo + 60000, Math.min(Math.max(now, start), Date.parse(state.meeting.ends_at)),
      ...(times.length ? [times[times.length - 1]] : []));
    const top = Math.max(1, state.expected, times.length);
    const x = (t) => P + ((t - lo) / (hi - lo)) * (W - 2 * P);
    const y = (n) => H - P + 4 - (n / top) * (H - 2 * P);
    let points = `${x(lo).toFixed(1)},${y(0).toFixed(1)}`;
    times.forEach((t, i) => { points += ` ${x(t).toFixed(1)},${y(i).toFixed(1)} ${x(t).toFixed(1)},${y(i + 1).toFixed(1)}`; });
    points += ` ${x(hi).toFixed(1)},${y(times.length).toFixed(1)}`;
    const label = (t) => new Date(t).toLocaleTimeString("vi-VN", { timeZone: TZ, hour: "2-digit", minute: "2-digit", hour12: false });
    const startX = x(start);
    box.innerHTML = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${T("Số người đến theo thời gian", "Arrivals over time")}: ${times.length}/${state.expected}">` +
      `<line x1="${P}" y1="${y(0)}" x2="${W - P}" y2="${y(0)}" class="axis"/>` +
      `<line x1="${P}" y1="${y(0)}" x2="${P}" y2="${y(top)}" class="axis"/>` +
      `<line x1="${P}" y1="${y(state.expected)}" x2="${W - P}" y2="${y(state.expected)}" class="expected"/>` +
      (startX >= P && startX <= W - P ? `<line x1="${startX}" y1="${y(0)}" x2="${startX}" y2="${y(top)}" class="start"/>` +
        (startX > W / 2 ? `<text x="${startX - 3}" y="${y(top) + 10}" text-anchor="end">` : `<text x="${startX + 3}" y="${y(top) + 10}">`) +
        `${T("Bắt đầu", "Start")}</text>` : "") +
      `<polyline points="${points}" class="line"/>` +
      `<text x="${P}" y="${H - 8}">${label(lo)}</text><text x="${W - P}" y="${H - 8}" text-anchor="end">${label(hi)}</text>` +
      `<text x="${P - 4}" y="${y(top) + 4}" text-anchor="end">${top}</text><text x="${P - 4}" y="${y(0)}" text-anchor="end">0</text>` +
      "</svg>";
  }

  function onCheckins(items) {
    let unknown = false;
    let perDay = false;
    for (const a of items) {
      if (seen.has(a.checkin_id) || !a.entry || a.meeting_id !== state.meeting.id) continue;
      seen.add(a.checkin_id);
      state.arrivals.unshift(a);
      const person = people.get(a.delegate_id);
      if (!person || person.shares_seat || !person.active) { unknown = true; continue; }  // the server counts seats
      if (state.days.length > 1) perDay = true;  // its meeting day is the server's rule: reload the state
      if (person.present) continue;
      person.present = true;
      person.present_today = true;  // a one-day meeting (a multi-day one is refreshed from the server below)
      person.first_entry_at = a.at;
      person.manual = a.manual;
      person.late = Date.parse(a.at) > Date.parse(state.meeting.starts_at);
      state.present += 1;
      const org = state.by_organisation.find((r) => r.organisation === person.organisation);
      if (org) org.present += 1;
      const venueName = a.manual ? state.manual_venue : (state.site_venues[a.site_id] || T("Khác", "Other"));
      let venue = state.by_venue.find((r) => r.venue === venueName);
      if (!venue) { venue = { venue: venueName, present: 0 }; state.by_venue.push(venue); }
      venue.present += 1;
      state.arrival_times.push(a.at);
      state.arrival_times.sort();
    }
    state.arrivals = state.arrivals.slice(0, 50);
    renderAll();
    if (unknown || perDay) refresh();  // someone registered since the page was built (an admitted walk-in)
  }

  function onGate(g) {
    if (!state.sites.includes(g.site_id)) return;
    const index = state.gates.findIndex((x) => x.gate_id === g.gate_id);
    if (index >= 0) state.gates[index] = g; else state.gates.push(g);
    renderGates();
  }

  async function refresh() {
    try {
      const response = await fetch(root.dataset.stateUrl, { headers: { Accept: "application/json" } });
      if (response.ok) load(await response.json());
    } catch (_err) { /* the next event or reconnect tries again */ }
  }

  async function refreshWalkins() {
    try {
      const response = await fetch(root.dataset.walkinsUrl, { headers: { Accept: "application/json" } });
      if (response.ok) { state.walkins = await response.json(); renderWalkins(); }
    } catch (_err) { /* ignored */ }
  }

  function setLive(kind, text) {
    const badge = byId("dash-live");
    badge.dataset.state = kind;
    badge.textContent = text;
  }

  function connect() {
    // EventSource reconnects by itself and sends Last-Event-ID; "after" covers the gap since the page was built.
    const source = new EventSource(`${root.dataset.events}?after=${encodeURIComponent(state.cursor)}`);
    source.addEventListener("open", () => setLive("live", T("Đang cập nhật trực tiếp", "Live")));
    source.addEventListener("error", () => {
      setLive("lost", T("Mất kết nối, đang thử lại…", "Disconnected, retrying…"));
      if (source.readyState === EventSource.CLOSED) {  // the browser gave up (e.g. an error status): start over
        window.setTimeout(async () => { await refresh(); connect(); }, 5000);
      }
    });
    source.addEventListener("checkins", (e) => onCheckins(JSON.parse(e.data)));
    source.addEventListener("gate", (e) => onGate(JSON.parse(e.data)));
    source.addEventListener("walkins", () => refreshWalkins());
    source.addEventListener("alarms", (e) => {
      state.alarms = JSON.parse(e.data);
      if (window.vaoraAlarms) window.vaoraAlarms.update(state.alarms);
    });
    source.addEventListener("conflicts", () => refresh());
    source.addEventListener("reset", () => refresh());
    window.vaoraDashboard = { source, state: () => state };
  }

  async function post(form, action) {
    const response = await fetch(action, { method: "POST", body: new FormData(form),
      headers: { Accept: "application/json", "X-CSRFToken": root.dataset.csrf || "" } });
    let body = {};
    try { body = await response.json(); } catch (_err) { body = { ok: false, message: response.statusText }; }
    return body;
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (form.id === "dash-mark") {
      event.preventDefault();
      const body = await post(form, form.action);
      const result = byId("dash-mark-result");
      result.textContent = body.message || "";
      result.className = body.ok ? "ok" : "error";
      if (body.ok) form.reset();
    } else if (form.classList.contains("dash-decide")) {
      event.preventDefault();
      const action = (event.submitter && event.submitter.getAttribute("formaction")) || form.action;
      const body = await post(form, action);
      if (!body.ok) window.alert(body.message || "");
      refreshWalkins();
    }
  });

  function autoScroll() {
    // Wall display: the long lists scroll slowly by themselves, and jump back to the top at the end.
    for (const list of document.querySelectorAll(".dash-scroll, #dash-orgs")) {
      const box = list.closest(".dash-scroll") || list.closest(".table-wrap");
      if (!box || box.scrollHeight <= box.clientHeight) continue;
      box.scrollTop = box.scrollTop + box.clientHeight >= box.scrollHeight - 1 ? 0 : box.scrollTop + 1;
    }
    const clockNode = byId("dash-clock");
    if (clockNode) clockNode.textContent = clock(new Date().toISOString());
  }

  load(JSON.parse(stateNode.textContent));
  connect();
  if (wall) window.setInterval(autoScroll, 50);
  window.setInterval(renderChart, 30000);
})();
