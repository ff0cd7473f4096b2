"""The status page's HTML, CSS and JavaScript (inline, no third-party assets), and how the state is embedded.

The page renders everything from the JSON of :func:`gate.status.model.to_json` with ``textContent`` only
(names come from outside and are never parsed as HTML), then follows ``/events`` with ``EventSource``.
Vietnamese first, English second in small type. ``window.vaoraStatus`` exposes ``updates`` (how many states
were rendered), ``streamUp`` and ``last`` (the last JSON) for tests and debugging.
"""

from __future__ import annotations

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def embed_json(text: str) -> str:
    """Make JSON text safe inside a ``<script type="application/json">`` element (no ``</script>`` break-out)."""
    return "".join(_JSON_ESCAPES.get(char, char) for char in text)


def render_page(state_json: str) -> str:
    """The whole page with ``state_json`` (JSON text of the current state) embedded for the first render."""
    return PAGE.replace("__STATE__", embed_json(state_json))


PAGE = """<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cổng — vaora</title>
<style>
*{box-sizing:border-box}
html{font-size:18px}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;background:#f2f3f5;
color:#111;line-height:1.3}
main{max-width:960px;margin:0 auto;padding:.6rem}
.en{display:block;font-size:.72rem;font-weight:400;color:#555;letter-spacing:0;text-transform:none}
.banner{padding:.7rem .9rem;border-radius:.5rem;margin:0 0 .6rem;font-weight:700;font-size:1.25rem}
.banner .en{color:inherit;opacity:.85}
#emergency{background:#b00020;color:#fff;animation:pulse 1.2s ease-in-out infinite alternate}
#stream-lost{background:#222;color:#fff}
#mode-lockdown{background:#4a148c;color:#fff}
#mode-release{background:#e65100;color:#fff}
#error{background:#ffe08a;color:#3d2e00}
@keyframes pulse{from{opacity:1}to{opacity:.75}}
[hidden]{display:none!important}
#camera-snapshot{display:block;max-width:100%;margin-top:.5em}
header{display:flex;flex-wrap:wrap;align-items:baseline;justify-content:space-between;gap:.3rem .8rem;
margin-bottom:.6rem}
header h1{margin:0;font-size:1.35rem}
#result{border-radius:.8rem;padding:1rem;margin-bottom:.8rem;color:#fff;background:#6b7280}
#result.allowed{background:#0a7d32}
#result.refused{background:#c62828}
#result.done{background:#1f5135}
#result.missed{background:#8a5a00}
#result .verdict{font-size:3rem;font-weight:800;line-height:1.05;margin:0}
#result .verdict .en{color:#fff;opacity:.85;font-size:1rem;font-weight:600}
#result .reason{font-size:1.35rem;font-weight:600;margin:.5rem 0 .2rem}
#result .reason .en{color:#fff;opacity:.85}
#result .who{font-size:1.6rem;font-weight:700;margin-top:.6rem;overflow-wrap:anywhere}
#result .org,#result .pos{font-size:1.2rem;overflow-wrap:anywhere}
#result .when{font-size:1rem;opacity:.9;margin-top:.4rem}
.tag{display:inline-block;border-radius:.3rem;padding:0 .4rem;font-size:.85rem;font-weight:700;
background:#fff3;border:1px solid currentColor;margin-left:.3rem;vertical-align:middle}
#state{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.5rem;margin-bottom:.8rem}
.card{background:#fff;border-radius:.6rem;padding:.6rem .8rem;border-left:.4rem solid #0a7d32}
.card.warn{border-left-color:#e0a000}
.card.bad{border-left-color:#c62828}
.card .label{font-size:.8rem;color:#555;text-transform:uppercase;letter-spacing:.03em}
.card .value{font-size:1.2rem;font-weight:700;overflow-wrap:anywhere}
.card .detail{font-size:.95rem;overflow-wrap:anywhere}
h2{font-size:1.15rem;margin:.4rem 0}
#recent{list-style:none;margin:0;padding:0}
#recent li{background:#fff;border-radius:.5rem;padding:.5rem .7rem;margin-bottom:.4rem;
border-left:.4rem solid #6b7280;display:grid;grid-template-columns:auto 1fr;gap:0 .6rem}
#recent li.allowed{border-left-color:#0a7d32}
#recent li.refused{border-left-color:#c62828}
#recent .time{font-variant-numeric:tabular-nums;font-weight:700;font-size:1.05rem}
#recent .res{font-weight:800;font-size:1.05rem}
#recent li.allowed .res{color:#0a7d32}
#recent li.refused .res{color:#c62828}
#recent .body{grid-column:1/-1;overflow-wrap:anywhere}
#recent .rsn{font-size:1rem}
#recent .nm{font-weight:700;font-size:1.05rem}
#recent .tag{background:#eee}
.empty{color:#555;font-style:italic}
.en.inline{display:inline}
</style>
</head>
<body>
<main>
<div id="emergency" class="banner" role="alert" hidden>KHẨN CẤP — cổng đang mở tự do
<span class="en">EMERGENCY — the gate is released</span></div>
<div id="mode-lockdown" class="banner" role="alert" hidden>PHONG TỎA — trung tâm đã khóa cổng, mọi lượt quét bị từ chối
<span class="en">LOCKDOWN — central locked this gate, every scan is refused</span></div>
<div id="mode-release" class="banner" role="alert" hidden>MỞ TỰ DO — theo lệnh của trung tâm
<span class="en">RELEASED — held open by central's command</span></div>
<div id="stream-lost" class="banner" role="alert" hidden>Mất kết nối với cổng
<span class="en">Connection to the gate lost — retrying</span></div>
<div id="error" class="banner" role="alert" hidden><span id="error-vi">Không đọc được trạng thái cổng</span>
<span class="en" id="error-en">Cannot read the gate's state</span></div>
<header>
<h1 id="gate-name">Cổng</h1>
<div id="gate-meta" class="en"></div>
</header>
<section id="result" aria-live="polite">
<p class="verdict" id="verdict">Chưa có lượt quét<span class="en">No scans yet</span></p>
</section>
<section id="state" aria-label="Trạng thái cổng">
<div class="card" id="card-online"><div class="label">Kết nối</div><div class="value" id="online"></div>
<div class="detail" id="online-en"></div></div>
<div class="card" id="card-cache"><div class="label">Dữ liệu</div><div class="value" id="cache"></div>
<div class="detail" id="sync"></div></div>
<div class="card" id="card-scanner"><div class="label">Đầu đọc</div><div class="value" id="scanner"></div>
<div class="detail" id="scanner-detail"></div></div>
<div class="card" id="card-camera" hidden><div class="label">Camera</div><div class="value" id="camera"></div>
<div class="detail" id="camera-decode"></div><div class="detail" id="camera-refused"></div>
<button type="button" id="camera-snapshot-button" hidden>Xem ảnh camera<span class="en"> Camera picture</span></button>
</div>
<div class="card" id="card-turnstile"><div class="label">Cửa xoay lúc này</div><div class="value" id="turnstile"></div>
</div>
<div class="card" id="card-outbox"><div class="label">Chờ gửi về trung tâm</div><div class="value" id="outbox">
</div></div>
</section>
<h2>Lượt quét gần đây <span class="en inline">Recent scans</span></h2>
<ol id="recent"></ol>
</main>
<script type="application/json" id="initial-state">__STATE__</script>
<script>
"use strict";
(function () {
  var S = window.vaoraStatus = {updates: 0, streamUp: false, last: null};
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function bilingual(node, vi, en) {
    node.textContent = vi;
    if (en) { node.appendChild(el("span", "en", en)); }
  }
  function hm(text) { return text ? text.slice(0, 5) + text.slice(8) : ""; }
  function setCard(id, level) {
    var card = $(id);
    card.classList.toggle("warn", level === "warn");
    card.classList.toggle("bad", level === "bad");
  }
  var DIRECTION = {"in": ["Lối vào", "Entrance"], "out": ["Lối ra", "Exit"]};
  var SCANNER = {
    ok: ["Sẵn sàng", "Ready", ""], starting: ["Đang khởi động", "Starting", "warn"],
    lost: ["Mất đầu đọc", "Scanner lost", "bad"], ended: ["Nguồn hình đã dừng", "Source ended", "bad"],
    closed: ["Đã tắt", "Closed", "warn"], none: ["Chưa khởi động", "Not started", "warn"]
  };
  var TURNSTILE = {
    locked: ["Đang khóa", "Locked", ""], unlocked: ["Đang mở một lượt", "Unlocked for one passage", ""],
    emergency: ["Mở tự do (khẩn cấp)", "Released (emergency)", "bad"], stopped: ["Đã dừng", "Stopped", "warn"],
    released: ["Mở tự do", "Released", "warn"], lockdown: ["Phong tỏa", "Lockdown", "bad"]
  };
  // The banner follows the turnstile (gate.status.model.banner): class, verdict, English, state line.
  var BANNER = {
    refused: ["refused", "TỪ CHỐI", "Refused", null],
    enter: ["allowed", "MỜI VÀO", "Please enter", null],
    entered: ["done", "ĐÃ VÀO", "Entered",
              ["Cửa xoay đã khóa lại sau lượt vào", "The turnstile locked again after the entry"]],
    not_passed: ["missed", "KHÔNG QUA CỔNG", "Did not pass",
                 ["Hết thời gian mở, cửa xoay đã khóa lại", "Unlock time over; the turnstile locked again"]],
    unknown: ["missed", "CHƯA RÕ ĐÃ QUA", "Passage unknown",
              ["Cổng khởi động lại trước khi biết kết quả", "The gate restarted before the outcome was known"]],
    relocked: ["missed", "ĐÃ KHÓA LẠI", "Locked again", ["Cửa xoay đã khóa lại", "The turnstile locked again"]]
  };
  function renderResult(last, banner) {
    var box = $("result");
    box.textContent = "";
    var look = last ? (BANNER[banner] || BANNER[last.allowed ? "enter" : "refused"]) : null;
    box.className = look ? look[0] : "";
    box.dataset.banner = banner || "none";
    var verdict = el("p", "verdict");
    verdict.id = "verdict";
    if (!last) {
      bilingual(verdict, "Chưa có lượt quét", "No scans yet");
      box.appendChild(verdict);
      return;
    }
    bilingual(verdict, look[1], look[2]);
    if (last.manual) { verdict.insertBefore(el("span", "tag", "thủ công"), verdict.childNodes[1] || null); }
    box.appendChild(verdict);
    var reason = el("div", "reason");
    reason.id = "result-reason";
    bilingual(reason, last.reason_vi, last.reason_en);
    box.appendChild(reason);
    if (look[3]) {
      var after = el("div", "reason");
      after.id = "result-after";
      bilingual(after, look[3][0], look[3][1]);
      box.appendChild(after);
    }
    if (last.name) { var who = el("div", "who", last.name); who.id = "result-name"; box.appendChild(who); }
    if (last.position) { var pos = el("div", "pos", last.position); pos.id = "result-position"; box.appendChild(pos); }
    if (last.organisation) {
      var org = el("div", "org", last.organisation); org.id = "result-organisation"; box.appendChild(org);
    }
    box.appendChild(el("div", "when", "lúc " + last.time_local));
  }
  function renderRecent(scans) {
    var list = $("recent");
    list.textContent = "";
    if (!scans.length) { list.appendChild(el("li", "empty", "Chưa có lượt quét — No scans yet")); return; }
    scans.forEach(function (scan) {
      var item = el("li", scan.allowed ? "allowed" : "refused");
      item.appendChild(el("span", "time", scan.time_local));
      var res = el("span", "res", scan.allowed ? "Cho vào" : "Từ chối");
      if (scan.manual) { res.appendChild(el("span", "tag", "thủ công")); }
      if (scan.outcome === "not_passed") { res.appendChild(el("span", "tag", "không qua cổng")); }
      item.appendChild(res);
      var body = el("div", "body");
      var rsn = el("div", "rsn");
      rsn.textContent = scan.reason_vi;
      rsn.appendChild(el("span", "en inline", " · " + scan.reason_en));
      body.appendChild(rsn);
      if (scan.name) { body.appendChild(el("div", "nm", scan.name)); }
      var extra = [scan.position, scan.organisation].filter(Boolean).join(" — ");
      if (extra) { body.appendChild(el("div", "org", extra)); }
      item.appendChild(body);
      list.appendChild(item);
    });
  }
  function renderCamera(c) {
    $("card-camera").hidden = !c;
    if (!c) { return; }
    bilingual($("camera"), c.frames_per_s + " hình/giây", c.frames_per_s + " frames/s"
      + (c.dropped ? " · " + c.dropped + " dropped" : ""));
    var seen = c.last_decode_local ? hm(c.last_decode_local) : "";
    bilingual($("camera-decode"), seen ? "Đọc được mã lúc " + seen : "Chưa đọc được mã nào",
      seen ? "Last code read at " + seen : "No code read yet");
    var refused = $("camera-refused");
    refused.textContent = "";
    if (c.refused_reason) {
      bilingual(refused, "Thấy mã nhưng từ chối: " + c.refused_reason_vi + " (" + hm(c.refused_at_local) + ")",
        "Code seen but refused: " + c.refused_reason_en);
    }
    $("camera-snapshot-button").hidden = !c.snapshot;
    setCard("card-camera", c.frames_per_s < 5 || c.dropped > c.frames / 2 ? "warn" : "");
  }
  $("camera-snapshot-button").addEventListener("click", function () {
    var img = $("camera-snapshot");  // made on the first click: no picture is fetched unless asked for
    if (!img) {
      img = el("img");
      img.id = "camera-snapshot";
      img.alt = "Ảnh camera / Camera picture";
      $("card-camera").appendChild(img);
    }
    img.src = "/camera.jpg?t=" + Date.now();
  });
  function renderGate(g) {
    var dir = DIRECTION[g.direction] || [g.direction, ""];
    $("gate-name").textContent = (g.name || g.id) + " · " + dir[0];
    document.title = (g.name || g.id) + " — vaora";
    $("gate-meta").textContent = dir[1] + " · " + g.id + " @ " + g.site_id;
    if (g.online) {
      $("online").textContent = "Trực tuyến";
      $("online-en").textContent = "Online" + (g.online_since_local ? " since " + hm(g.online_since_local) : "");
      setCard("card-online", "");
    } else {
      var since = hm(g.offline_since_local);
      $("online").textContent = "Mất kết nối" + (since ? " từ " + since : "");
      $("online-en").textContent = "Offline" + (since ? " since " + since : "");
      setCard("card-online", "bad");
    }
    $("cache").textContent = "Phiên bản " + g.cache_seq;
    var sync, current = g.online && !g.sync_pending;
    if (!g.synced_at_local) { sync = ["chưa đồng bộ", "never synced"]; }
    else if (current) { sync = ["đồng bộ lúc " + g.synced_at_local, "synced at " + g.synced_at_local]; }
    else { sync = ["chưa đồng bộ từ " + g.synced_at_local, "not synced since " + g.synced_at_local]; }
    bilingual($("sync"), sync[0], sync[1]);
    setCard("card-cache", !g.synced_at_local ? "bad" : (current ? "" : "warn"));
    var sc = SCANNER[g.scanner_state] || [g.scanner_state, "", "warn"];
    var scSince = g.scanner_state !== "ok" && g.scanner_since_local ? hm(g.scanner_since_local) : "";
    bilingual($("scanner"), sc[0] + (scSince ? " từ " + scSince : ""), sc[1] + (scSince ? " since " + scSince : ""));
    $("scanner-detail").textContent = g.scanner_detail || "";
    setCard("card-scanner", sc[2]);
    renderCamera(g.camera);
    var ts = TURNSTILE[g.turnstile_state] || [g.turnstile_state, "", ""];
    bilingual($("turnstile"), ts[0], ts[1]);
    setCard("card-turnstile", g.emergency ? "bad" : ts[2]);
    bilingual($("outbox"), g.outbox_pending + " lượt", g.outbox_pending + " check-ins waiting");
    setCard("card-outbox", g.outbox_pending > 0 ? "warn" : "");
    $("emergency").hidden = !g.emergency;
    $("mode-lockdown").hidden = g.mode !== "lockdown";
    $("mode-release").hidden = g.mode !== "release";
  }
  function render(state) {
    S.last = state;
    S.updates += 1;
    if (!state.ok) {
      $("error").hidden = false;
      $("error-vi").textContent = "Không đọc được trạng thái cổng: " + (state.reason_vi || "");
      $("error-en").textContent = "Cannot read the gate's state: " + (state.reason_en || "");
      return;
    }
    $("error").hidden = true;
    renderGate(state.gate);
    renderResult(state.last, state.banner);
    renderRecent(state.recent);
  }
  function streamUp() { S.streamUp = true; $("stream-lost").hidden = true; }
  function streamDown() { S.streamUp = false; $("stream-lost").hidden = false; }
  var source = null, timer = null;
  function connect() {
    timer = null;
    if (!window.EventSource) { streamDown(); return; }
    source = new EventSource("/events");
    source.onopen = streamUp;
    source.addEventListener("status", function (event) {
      streamUp();
      try { render(JSON.parse(event.data)); } catch (err) { console.error(err); }
    });
    source.onerror = function () {
      streamDown();
      if (source.readyState === EventSource.CLOSED && timer === null) {
        source.close();
        timer = setTimeout(connect, 3000);
      }
    };
  }
  try { render(JSON.parse($("initial-state").textContent)); } catch (err) { console.error(err); }
  connect();
})();
</script>
</body>
</html>
"""
