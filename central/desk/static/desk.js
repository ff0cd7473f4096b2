// vaora guard desk: turns a keyboard-wedge scan of a CCCD QR into the form's fields (parsed by the server),
// suggests invitations, opens gates without leaving the page and notices an organiser's decision (polling).
// Plain JavaScript, no libraries; the page still works without it (the server parses the scan on submit).
"use strict";
(() => {
  const root = document.getElementById("desk");
  const printButton = document.querySelector("[data-print]");
  if (printButton) printButton.addEventListener("click", () => window.print());
  if (!root) return;

  const csrf = root.dataset.csrf;
  const $ = (id) => document.getElementById(id);
  const scan = $("scan");
  const scanData = $("scan-data");
  const scanError = $("scan-error");
  const scanStatus = $("scan-status");
  const meeting = $("meeting_id");
  const invitation = $("invitation");
  const results = $("invitation-results");
  const gateResult = $("gate-result");
  const table = $("walkins");
  const rows = $("walkin-rows");

  function showError(message) {
    scanError.textContent = message;
    scanError.hidden = false;
    scan.setAttribute("aria-invalid", "true");
  }

  function fill(card) {
    $("full_name").value = card.full_name;
    $("date_of_birth").value = card.date_of_birth;
    $("sex").value = card.sex;
    $("id_masked").value = card.id_masked;
  }

  async function parseScan() {
    const text = scan.value;
    if (!text.trim()) return;
    scanStatus.textContent = "Đang đọc thẻ…";
    let body;
    try {
      const response = await fetch(root.dataset.parseUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ text }),
        credentials: "same-origin",
      });
      body = await response.json();
    } catch (error) {
      body = { ok: false, message: "Không kết nối được máy chủ, thử quét lại." };
    }
    scanStatus.textContent = "";
    if (!body.ok) {
      // A bad scan changes nothing: the fields keep the last good card. Select the text so the next scan
      // replaces it.
      showError(body.message || "Không đọc được mã QR");
      scan.select();
      return;
    }
    fill(body);
    scanError.hidden = true;
    scanError.textContent = "";
    scan.removeAttribute("aria-invalid");
    // The full text (with the ID number) travels in a hidden field; the visible one shows the masked number.
    scanData.value = text;
    scanData.name = "scan";
    scan.removeAttribute("name");
    scan.value = "";
    scan.placeholder = "Đã đọc thẻ " + body.id_masked;
    scanStatus.textContent = "Đã đọc thẻ của " + body.full_name + ".";
    (meeting && !Number(meeting.value) ? meeting : invitation || scan).focus();
  }

  scan.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      parseScan();
    }
  });
  scan.addEventListener("paste", () => window.setTimeout(parseScan, 0));

  function showPolicy() {
    if (!meeting) return;
    document.querySelectorAll("#policy-note [data-meeting]").forEach((note) => {
      note.hidden = note.dataset.meeting !== meeting.value;
    });
  }
  if (meeting) meeting.addEventListener("change", showPolicy);

  let searchTimer = null;
  async function search() {
    const query = invitation.value.trim();
    results.replaceChildren();
    if (query.length < 2) return;
    const params = new URLSearchParams({ q: query });
    if (meeting && Number(meeting.value)) params.set("meeting_id", meeting.value);
    const response = await fetch(root.dataset.searchUrl + "?" + params, { headers: { "Accept": "application/json" } });
    if (!response.ok) return;
    const found = (await response.json()).invitations;
    for (const item of found) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link suggestion";
      button.textContent = item.number + " — " + item.organisation + " (" + item.meeting_title + ")";
      button.addEventListener("click", () => {
        invitation.value = item.number;
        if (meeting) {
          meeting.value = String(item.meeting_id);
          showPolicy();
        }
        results.replaceChildren();
        $("register").focus();
      });
      li.append(button);
      results.append(li);
    }
  }
  if (invitation) {
    invitation.addEventListener("input", () => {
      window.clearTimeout(searchTimer);
      searchTimer = window.setTimeout(search, 250);
    });
    invitation.addEventListener("keydown", (event) => {
      const first = results.querySelector("button");
      if (event.key === "ArrowDown" && first) {
        event.preventDefault();
        first.focus();
      }
    });
    results.addEventListener("keydown", (event) => {
      const buttons = [...results.querySelectorAll("button")];
      const index = buttons.indexOf(document.activeElement);
      if (event.key === "ArrowDown" && index < buttons.length - 1) buttons[index + 1].focus();
      else if (event.key === "ArrowUp") (index > 0 ? buttons[index - 1] : invitation).focus();
      else return;
      event.preventDefault();
    });
  }

  // Opening a gate: post the form in the background and say what the gate answered.
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.classList || !form.classList.contains("open-gate")) return;
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    gateResult.hidden = false;
    gateResult.className = "gate-result";
    gateResult.textContent = "Đang gửi lệnh mở cổng…";
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { "Accept": "application/json", "X-CSRFToken": csrf },
        credentials: "same-origin",
      });
      const body = await response.json();
      gateResult.textContent = body.message;
      gateResult.dataset.result = body.result;
      gateResult.className = "gate-result gate-" + body.result;
    } catch (error) {
      gateResult.textContent = "Không kết nối được máy chủ.";
      gateResult.dataset.result = "failed";
      gateResult.className = "gate-result gate-failed";
    } finally {
      button.disabled = false;
      refreshRows(true);
    }
  });

  // Poll for decisions (an organiser approving a pending walk-in) and swap in the rows when anything changed.
  let busy = false;
  async function refreshRows(force) {
    if (busy) return;
    busy = true;
    try {
      const status = await fetch(root.dataset.statusUrl, { headers: { "Accept": "application/json" } });
      if (!status.ok) return;
      const { version } = await status.json();
      if (!force && version === table.dataset.version) return;
      const fragment = await fetch(root.dataset.rowsUrl);
      if (!fragment.ok) return;
      const focused = document.activeElement && rows.contains(document.activeElement) ? document.activeElement : null;
      const focusKey = focused ? (focused.id || (focused.closest("form") || {}).action) : null;
      rows.innerHTML = await fragment.text();
      table.dataset.version = version;
      if (focusKey) {
        const again = document.getElementById(focusKey) ||
          [...rows.querySelectorAll("form")].find((f) => f.action === focusKey)?.querySelector("button");
        if (again) again.focus();
      }
    } catch (error) {
      // The next poll tries again.
    } finally {
      busy = false;
    }
  }
  window.setInterval(() => refreshRows(false), 2000);
})();
