"""The guard's status page on the gate: view JSON, the HTTP/SSE server on a real socket, and the page in Chromium.

A fake ``StatusSource`` stands in for ``Gate``; tests change its view (or make it raise) and check what a
client sees: ``/api/status``, the ``/events`` stream, and the rendered page (Playwright, system Chromium).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gate.status import GateView, ScanView, StatusServer, StatusSource, to_json
from gate.status.page import render_page
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until

REPO = Path(__file__).resolve().parents[2]
# 08:00 in Vietnam (UTC+7) on 2 June 2025.
NOW = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)
INJECTION = "<script>alert(1)</script>"
IMG_INJECTION = '<img src=x onerror="window.__pwned=1">'


def scan(
    minutes: float,
    *,
    allowed: bool = True,
    reason: Reason = Reason.OK,
    name: str | None = "Trần Văn An",
    organisation: str | None = "Sở Tư pháp",
    position: str | None = "Phó Giám đốc",
    manual: bool = False,
    outcome: str | None = "auto",
) -> ScanView:
    """A scan ``minutes`` after NOW; ``outcome=None`` is a passage still pending at the turnstile."""
    return ScanView(
        NOW + timedelta(minutes=minutes),
        allowed,
        reason,
        name,
        organisation,
        position,
        manual,
        ("entered" if allowed else "refused") if outcome == "auto" else outcome,
    )


def base_view(**changes: Any) -> GateView:
    """An online gate, cache seq 42 synced at 08:00 local, no scans yet."""
    view = GateView(
        gate_id="cong-chinh-1",
        name="Cổng chính",
        site_id="hq",
        direction="in",
        online=True,
        online_since=NOW - timedelta(hours=1),
        offline_since=None,
        cache_seq=42,
        synced_at=NOW,
        emergency=False,
        turnstile_state="locked",
        scanner_state="ok",
        scanner_detail=None,
        outbox_pending=0,
        recent=[],
    )
    return replace(view, **changes)


class FakeSource:
    """A ``StatusSource`` whose view tests replace; ``fail`` makes ``status_view`` raise."""

    def __init__(self, view: GateView | None = None) -> None:
        self._lock = threading.Lock()
        self._view = view or base_view()
        self.fail: Exception | None = None
        self.calls = 0

    def set(self, **changes: Any) -> None:
        """Change fields of the current view."""
        with self._lock:
            self._view = replace(self._view, **changes)

    def add_scan(self, new: ScanView) -> None:
        """Append a scan to the recent list."""
        with self._lock:
            self._view = replace(self._view, recent=[*self._view.recent, new])

    def status_view(self) -> GateView:
        """The current view, or raise ``fail``."""
        with self._lock:
            self.calls += 1
            if self.fail is not None:
                raise self.fail
            return self._view


class SseClient:
    """A raw ``/events`` reader on a real socket, parsing events and comments."""

    def __init__(self, server: StatusServer, timeout: float = 3.0) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
        self.conn.request("GET", "/events", headers={"Accept": "text/event-stream"})
        self.sock = self.conn.sock  # http.client lets go of it once an HTTP/1.0 response starts
        self.response = self.conn.getresponse()
        self.comments: list[str] = []

    def next_event(self, within: float | None = None) -> tuple[str, dict[str, Any]]:
        """Read up to the next event (comments are recorded); return ``(event name, parsed JSON data)``.

        ``within``: raise ``TimeoutError`` when no event came in that many seconds (checked as lines arrive,
        so keep-alive comments are what lets it notice).
        """
        deadline = None if within is None else time.monotonic() + within
        name, data = "message", []
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("no event")
            line = self.response.fp.readline()
            if not line:
                raise EOFError("stream closed")
            text = line.decode("utf-8").rstrip("\n")
            if text == "":
                if data:
                    return name, json.loads("\n".join(data))
                continue
            if text.startswith(":"):
                self.comments.append(text)
            elif text.startswith("event:"):
                name = text.split(":", 1)[1].strip()
            elif text.startswith("data:"):
                data.append(text.split(":", 1)[1][1:])

    def close(self) -> None:
        """Drop the connection like a browser tab being closed."""
        self.response.close()
        self.conn.close()
        self.sock.close()


@pytest.fixture
def source() -> FakeSource:
    """A fake gate."""
    return FakeSource()


@pytest.fixture
def server(source: FakeSource) -> Iterator[StatusServer]:
    """A started status server for ``source`` on a free loopback port, with a fixed clock."""
    srv = StatusServer(source, port=0, keepalive=0.5, clock=lambda: NOW).start()
    yield srv
    srv.stop()


def get(server: StatusServer, path: str) -> tuple[int, str, str]:
    """GET ``path``; return ``(status, content type, body)``."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=3)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read().decode("utf-8")
    finally:
        conn.close()


# --- the view's JSON -------------------------------------------------------------------------------------


def test_json_shows_vietnam_time_reason_texts_and_newest_scan_first() -> None:
    view = base_view(recent=[scan(5.15), scan(12, allowed=False, reason=Reason.REVOKED, name="Lê Thị B")])
    data = to_json(view, now=NOW)
    assert data["ok"] is True
    assert [s["name"] for s in data["recent"]] == ["Lê Thị B", "Trần Văn An"]
    last = data["last"]
    assert last == data["recent"][0]
    assert last["time_local"] == "08:12:00"
    assert last["allowed"] is False
    assert (last["reason"], last["reason_vi"], last["reason_en"]) == ("revoked", "Mã đã bị thu hồi", "Code revoked")
    assert data["recent"][1]["time_local"] == "08:05:09"
    assert data["gate"]["synced_at_local"] == "08:00:00"
    assert data["gate"]["cache_seq"] == 42
    json.dumps(data)  # plain JSON types only


def test_json_adds_the_date_when_a_time_is_on_another_local_day() -> None:
    yesterday = NOW - timedelta(days=1, hours=2)  # 06:00 local on 1 June
    data = to_json(base_view(online=False, offline_since=yesterday, synced_at=yesterday), now=NOW)
    assert data["gate"]["offline_since_local"] == "06:00:00 01/06"
    # 23:30 UTC on 1 June is already 06:30 on 2 June in Vietnam: same local day as NOW, no date.
    assert (
        to_json(base_view(synced_at=datetime(2025, 6, 1, 23, 30, tzinfo=UTC)), now=NOW)["gate"]["synced_at_local"]
        == "06:30:00"
    )


def test_json_of_an_empty_gate_has_no_last_scan() -> None:
    data = to_json(base_view())
    assert data["last"] is None
    assert data["recent"] == []


def test_fake_source_satisfies_the_protocol(source: FakeSource) -> None:
    assert isinstance(source, StatusSource)


def test_embedded_state_cannot_break_out_of_its_script_element() -> None:
    view = base_view(recent=[scan(1, name=f"{INJECTION}</script><script>alert(2)</script>")])
    page = render_page(json.dumps(to_json(view), ensure_ascii=False))
    assert "alert(1)" in page  # the name is there...
    assert "<script>alert" not in page  # ...but never as markup
    assert page.count("</script>") == 2  # the JSON element and the page script, nothing else


# --- HTTP endpoints --------------------------------------------------------------------------------------


def test_api_status_returns_the_current_view(server: StatusServer, source: FakeSource) -> None:
    status, content_type, body = get(server, "/api/status")
    assert status == 200
    assert content_type.startswith("application/json")
    assert json.loads(body)["gate"]["id"] == "cong-chinh-1"
    source.add_scan(scan(3, name="Nguyễn Thị Hoà"))
    data = json.loads(get(server, "/api/status")[2])
    assert data["last"]["name"] == "Nguyễn Thị Hoà"


def test_page_and_unknown_paths(server: StatusServer) -> None:
    status, content_type, body = get(server, "/")
    assert status == 200
    assert content_type == "text/html; charset=utf-8"
    assert '<html lang="vi">' in body
    assert "cong-chinh-1" in body  # state embedded for the first render
    assert "http://" not in body.split("<body>", 1)[1]  # no external assets
    assert get(server, "/nope")[0] == 404
    assert get(server, "/api/status?x=1")[0] == 200


def test_binds_to_loopback_by_default(source: FakeSource) -> None:
    srv = StatusServer(source, port=0).start()
    try:
        assert srv._httpd is not None
        assert srv._httpd.server_address[0] == "127.0.0.1"
        assert srv.url == f"http://127.0.0.1:{srv.port}/"
        assert srv.port != 0
    finally:
        srv.stop()


def test_source_failure_is_an_error_state_logged_once_then_recovers(
    server: StatusServer, source: FakeSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gate.status.server")
    source.fail = RuntimeError("cache locked")
    for _ in range(3):
        status, _ctype, body = get(server, "/api/status")
        assert status == 503
        assert json.loads(body) == {
            "ok": False,
            "reason": "internal_error",
            "reason_vi": "Lỗi hệ thống, gọi bảo vệ",
            "reason_en": "System error, call the guard",
        }
    assert get(server, "/")[0] == 200  # the page still loads and shows the error
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    source.fail = None
    assert get(server, "/api/status")[0] == 200
    assert any("recovered" in r.getMessage() for r in caplog.records)


# --- Server-Sent Events ----------------------------------------------------------------------------------


def test_events_send_the_state_at_connect_then_only_changes(server: StatusServer, source: FakeSource) -> None:
    client = SseClient(server)
    try:
        assert client.response.status == 200
        assert client.response.getheader("Content-Type", "").startswith("text/event-stream")
        name, first = client.next_event()
        assert name == "status"
        assert first["last"] is None
        source.add_scan(scan(1, name="Nguyễn Thị Hoà"))
        # The very next event is the change: the stream pushes it (polling the source), not a periodic resend.
        _, second = client.next_event(within=scaled(5.0))
        assert second["last"]["name"] == "Nguyễn Thị Hoà"
        # Nothing changes for a while: only keep-alive comments (keepalive=0.5 s here), no repeated state.
        client.comments.clear()
        source.set(outbox_pending=3)
        _, third = client.next_event()
        assert third["gate"]["outbox_pending"] == 3
        assert client.comments == []
        source.set(outbox_pending=3)  # same value: no event
        with pytest.raises(TimeoutError):
            client.next_event(within=1.4)
        assert client.comments.count(": keep-alive") >= 2
    finally:
        client.close()


def test_events_show_a_failing_source_as_an_error_and_recover(server: StatusServer, source: FakeSource) -> None:
    client = SseClient(server)
    try:
        client.next_event()
        source.fail = OSError("database is locked")
        _, broken = client.next_event()
        assert broken["ok"] is False
        assert broken["reason"] == "internal_error"
        source.fail = None
        source.set(emergency=True)
        _, back = client.next_event()
        assert back["ok"] is True
        assert back["gate"]["emergency"] is True
    finally:
        client.close()


def test_client_disconnect_is_quiet_and_frees_the_slot(
    server: StatusServer, source: FakeSource, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="gate.status.server")
    client = SseClient(server)
    client.next_event()
    assert server.clients == 1
    # Close hard (RST) so the server's next write fails.
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()
    for minute in range(3):  # each change makes the server write to the reset socket
        source.add_scan(scan(minute))
        if wait_until(lambda: server.clients == 0, timeout=scaled(1.0)):
            break
    assert wait_until(lambda: server.clients == 0, timeout=scaled(3.0))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("closed" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)
    err = capsys.readouterr().err
    assert "Exception occurred during processing of request" not in err  # socketserver's default traceback dump
    assert "Exception in thread" not in err
    # The server still serves.
    assert get(server, "/api/status")[0] == 200


def test_streams_are_capped_and_a_freed_slot_is_reusable(source: FakeSource) -> None:
    srv = StatusServer(source, port=0, max_clients=2, keepalive=0.2).start()
    clients: list[SseClient] = []
    try:
        clients = [SseClient(srv), SseClient(srv)]
        for client in clients:
            client.next_event()
        refused = SseClient(srv)
        assert refused.response.status == 503
        assert refused.response.getheader("Retry-After") == "5"
        refused.close()
        clients.pop().close()
        assert wait_until(lambda: srv.clients == 1, timeout=3)
        again = SseClient(srv)
        clients.append(again)
        assert again.response.status == 200
        assert again.next_event()[0] == "status"
    finally:
        for client in clients:
            client.close()
        srv.stop()


def test_stop_ends_open_streams_promptly(source: FakeSource) -> None:
    srv = StatusServer(source, port=0).start()  # default 15 s keep-alive: stop must not wait for it
    client = SseClient(srv)
    client.next_event()
    stopper = threading.Thread(target=srv.stop)
    stopper.start()
    # stop() ends the stream itself: it returns long before the 15 s keep-alive would have woken the stream.
    stopper.join(timeout=scaled(5.0))
    assert not stopper.is_alive()
    with pytest.raises(EOFError):
        client.next_event()
    client.close()
    srv.stop()  # twice is fine


# --- the page in Chromium --------------------------------------------------------------------------------

CHROMIUM = os.environ.get("VAORA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """System Chromium driven by Playwright (one per module)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; fails the test if any JavaScript dialog opens (an injected script ran)."""
    context = browser.new_context(viewport={"width": 800, "height": 900})
    tab = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert dialogs == []
    assert errors == []


def expect(locator: Any) -> Any:
    """Playwright's ``expect`` (imported late so the module loads without Playwright)."""
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def test_page_shows_the_initial_state(server: StatusServer, page: Any) -> None:
    page.goto(server.url)
    expect(page.locator("#gate-name")).to_have_text("Cổng chính · Lối vào")
    expect(page.locator("#verdict")).to_contain_text("Chưa có lượt quét")
    expect(page.locator("#online")).to_have_text("Trực tuyến")
    expect(page.locator("#cache")).to_have_text("Phiên bản 42")
    expect(page.locator("#sync")).to_contain_text("đồng bộ lúc 08:00:00")
    expect(page.locator("#scanner")).to_contain_text("Sẵn sàng")
    expect(page.locator("#outbox")).to_contain_text("0 lượt")
    expect(page.locator("#emergency")).to_be_hidden()
    expect(page.locator("#stream-lost")).to_be_hidden()
    page.wait_for_function("() => window.vaoraStatus.streamUp === true", timeout=2000)


def test_page_updates_live_without_reload(server: StatusServer, source: FakeSource, page: Any) -> None:
    page.goto(server.url)
    page.wait_for_function("() => window.vaoraStatus.streamUp === true", timeout=2000)
    page.evaluate("window.__noReloadMarker = 'still here'")

    source.set(turnstile_state="unlocked")
    source.add_scan(scan(3, name="Nguyễn Thị Hoà", organisation="UBND huyện Cần Giờ", position="Chủ tịch",
                         outcome=None))
    result = page.locator("#result")
    expect(page.locator("#verdict")).to_contain_text("MỜI VÀO", timeout=scaled(5000))
    expect(result).to_have_class("allowed")
    expect(page.locator("#result-name")).to_have_text("Nguyễn Thị Hoà")
    expect(page.locator("#result-organisation")).to_have_text("UBND huyện Cần Giờ")
    expect(page.locator("#result-position")).to_have_text("Chủ tịch")
    expect(page.locator("#result-reason")).to_contain_text("Hợp lệ, mời vào")
    assert result.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(10, 125, 50)"

    source.set(turnstile_state="locked")
    source.add_scan(scan(4, allowed=False, reason=Reason.REVOKED, name="Phạm Văn Cường"))
    expect(page.locator("#verdict")).to_contain_text("TỪ CHỐI", timeout=scaled(5000))
    expect(result).to_have_class("refused")
    expect(page.locator("#result-reason")).to_contain_text("Mã đã bị thu hồi")
    expect(page.locator("#result-reason")).to_contain_text("Code revoked")
    expect(page.locator("#result-name")).to_have_text("Phạm Văn Cường")
    assert result.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(198, 40, 40)"

    rows = page.locator("#recent li")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("08:04:00")
    expect(rows.nth(0)).to_contain_text("Từ chối")
    expect(rows.nth(0)).to_contain_text("Mã đã bị thu hồi")
    expect(rows.nth(1)).to_contain_text("08:03:00")
    expect(rows.nth(1)).to_contain_text("Cho vào")
    expect(rows.nth(1)).to_contain_text("Nguyễn Thị Hoà")
    expect(rows.nth(1)).to_contain_text("Chủ tịch — UBND huyện Cần Giờ")

    source.add_scan(scan(5, reason=Reason.MANUAL_OPEN, name=None, organisation=None, position=None, manual=True))
    expect(rows).to_have_count(3, timeout=1000)
    expect(rows.nth(0)).to_contain_text("thủ công")
    expect(page.locator("#verdict")).to_contain_text("thủ công")

    assert page.evaluate("window.__noReloadMarker") == "still here"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert page.evaluate("performance.getEntriesByType('navigation')[0].type") == "navigate"
    assert page.evaluate("window.vaoraStatus.updates") >= 4  # embedded + connect + three scans


def test_page_shows_offline_state_scanner_loss_and_emergency(
    server: StatusServer, source: FakeSource, page: Any
) -> None:
    page.goto(server.url)
    page.wait_for_function("() => window.vaoraStatus.streamUp === true", timeout=2000)
    source.set(
        online=False,
        online_since=None,
        offline_since=NOW + timedelta(minutes=12),
        outbox_pending=7,
        scanner_state="lost",
        scanner_detail="open failed: /dev/video0",
        scanner_since=NOW + timedelta(minutes=15),
    )
    expect(page.locator("#online")).to_have_text("Mất kết nối từ 08:12", timeout=1000)
    expect(page.locator("#online-en")).to_have_text("Offline since 08:12")
    expect(page.locator("#sync")).to_contain_text("chưa đồng bộ từ 08:00:00")
    expect(page.locator("#outbox")).to_contain_text("7 lượt")
    expect(page.locator("#scanner")).to_contain_text("Mất đầu đọc từ 08:15")
    expect(page.locator("#scanner")).to_contain_text("Scanner lost since 08:15")
    expect(page.locator("#scanner-detail")).to_have_text("open failed: /dev/video0")
    expect(page.locator("#card-online")).to_have_class("card bad")
    expect(page.locator("#emergency")).to_be_hidden()

    source.set(emergency=True, turnstile_state="emergency")
    banner = page.locator("#emergency")
    expect(banner).to_be_visible(timeout=1000)
    expect(banner).to_contain_text("KHẨN CẤP — cổng đang mở tự do")
    expect(page.locator("#turnstile")).to_contain_text("Mở tự do (khẩn cấp)")

    source.set(emergency=False, online=True, online_since=NOW + timedelta(minutes=20), offline_since=None)
    expect(banner).to_be_hidden(timeout=1000)
    expect(page.locator("#online")).to_have_text("Trực tuyến")
    expect(page.locator("#sync")).to_contain_text("đồng bộ lúc 08:00:00")


def test_banner_follows_the_turnstile_after_the_decision(
    server: StatusServer, source: FakeSource, page: Any
) -> None:
    """The big banner never says "MỜI VÀO" while the turnstile panel says "Đang khóa"."""
    page.goto(server.url)
    page.wait_for_function("() => window.vaoraStatus.streamUp === true", timeout=2000)
    verdict, panel, after = page.locator("#verdict"), page.locator("#turnstile"), page.locator("#result-after")
    expect(page.locator("#card-turnstile .label")).to_have_text("Cửa xoay lúc này")

    source.set(turnstile_state="unlocked")
    source.add_scan(scan(1, name="Trần Văn An", outcome=None))
    expect(verdict).to_contain_text("MỜI VÀO", timeout=scaled(5000))
    expect(panel).to_contain_text("Đang mở một lượt")
    expect(after).to_have_count(0)

    # the sensor saw the passage: the cycle reports "entered" and locks again
    source.set(turnstile_state="locked", recent=[scan(1, name="Trần Văn An", outcome="entered")])
    expect(verdict).to_contain_text("ĐÃ VÀO", timeout=scaled(5000))
    expect(verdict).not_to_contain_text("MỜI VÀO")
    expect(after).to_contain_text("Cửa xoay đã khóa lại")
    expect(panel).to_contain_text("Đang khóa")

    # the unlock time ran out
    source.set(turnstile_state="unlocked", recent=[scan(2, name="Lê Thị Bình", outcome=None)])
    expect(verdict).to_contain_text("MỜI VÀO", timeout=scaled(5000))
    source.set(turnstile_state="locked", recent=[scan(2, name="Lê Thị Bình", outcome="not_passed")])
    expect(verdict).to_contain_text("KHÔNG QUA CỔNG", timeout=scaled(5000))
    expect(page.locator("#result")).to_have_class("missed")

    # locked again with no outcome (central's lockdown): the banner says so instead of inviting in
    source.set(turnstile_state="lockdown", recent=[scan(3, name="Phạm Văn Cường", outcome=None)])
    expect(verdict).to_contain_text("ĐÃ KHÓA LẠI", timeout=scaled(5000))
    expect(panel).to_contain_text("Phong tỏa")


def test_banner_rule_in_the_json() -> None:
    pending = scan(1, outcome=None)
    assert to_json(base_view(turnstile_state="unlocked", recent=[pending]), NOW)["banner"] == "enter"
    assert to_json(base_view(turnstile_state="locked", recent=[pending]), NOW)["banner"] == "relocked"
    assert to_json(base_view(recent=[scan(1)]), NOW)["banner"] == "entered"
    # a gate without a passage sensor records "entered" as it opens: still "MỜI VÀO" while it is open
    assert to_json(base_view(turnstile_state="unlocked", recent=[scan(1)]), NOW)["banner"] == "enter"
    assert to_json(base_view(recent=[scan(1, allowed=False, reason=Reason.REVOKED)]), NOW)["banner"] == "refused"
    assert to_json(base_view(recent=[scan(1, outcome="unknown")]), NOW)["banner"] == "unknown"
    assert to_json(base_view(), NOW)["banner"] == "none"


def test_names_from_outside_are_shown_as_text(source: FakeSource, server: StatusServer, page: Any) -> None:
    source.add_scan(scan(1, name=INJECTION, organisation=IMG_INJECTION, position="<b>Trưởng phòng</b>"))
    page.goto(server.url)  # first render from the embedded state
    expect(page.locator("#result-name")).to_have_text(INJECTION)
    expect(page.locator("#result-organisation")).to_have_text(IMG_INJECTION)
    expect(page.locator("#result-position")).to_have_text("<b>Trưởng phòng</b>")
    page.wait_for_function("() => window.vaoraStatus.streamUp === true", timeout=2000)
    source.add_scan(scan(2, allowed=False, reason=Reason.UNKNOWN_CODE, name=IMG_INJECTION.replace("__pwned", "__p2")))
    expect(page.locator("#verdict")).to_contain_text("TỪ CHỐI", timeout=1000)  # and via the live stream
    expect(page.locator("#recent li").nth(1)).to_contain_text(INJECTION)
    assert page.locator("main script, main img, main b").count() == 0
    assert page.evaluate("window.__pwned === undefined && window.__p2 === undefined")


def test_page_shows_a_source_error_and_a_lost_stream_then_reconnects(source: FakeSource, page: Any) -> None:
    srv = StatusServer(source, port=0, clock=lambda: NOW).start()
    port = srv.port
    try:
        page.goto(srv.url)
        page.wait_for_function("() => window.vaoraStatus.streamUp === true", timeout=2000)
        page.evaluate("window.__noReloadMarker = 1")
        source.fail = RuntimeError("boom")
        expect(page.locator("#error")).to_be_visible(timeout=1000)
        expect(page.locator("#error")).to_contain_text("Lỗi hệ thống, gọi bảo vệ")
        source.fail = None
        expect(page.locator("#error")).to_be_hidden(timeout=1000)

        srv.stop()
        lost = page.locator("#stream-lost")
        expect(lost).to_be_visible(timeout=2000)
        expect(lost).to_contain_text("Mất kết nối với cổng")

        source.add_scan(scan(9, name="Nguyễn Thị Hoà"))
        srv = StatusServer(source, port=port, clock=lambda: NOW).start()
        expect(lost).to_be_hidden(timeout=6000)  # EventSource reconnects by itself (retry 2 s)
        expect(page.locator("#result-name")).to_have_text("Nguyễn Thị Hoà")
        assert page.evaluate("window.__noReloadMarker") == 1
    finally:
        srv.stop()


def test_small_screen_screenshot(source: FakeSource, browser: Any) -> None:
    source.set(
        recent=[
            scan(1, name="Trần Văn An", organisation="Sở Tư pháp", position="Phó Giám đốc"),
            scan(
                2,
                allowed=False,
                reason=Reason.ALREADY_INSIDE,
                name="Lê Minh Tuấn",
                organisation="Sở Nội vụ",
                position="Chuyên viên",
            ),
            scan(3, reason=Reason.MANUAL_OPEN, name=None, organisation=None, position=None, manual=True),
            scan(4, name="Nguyễn Thị Hoà", organisation="Ủy ban nhân dân huyện Cần Giờ", position="Chủ tịch",
                 outcome=None),
        ],
        turnstile_state="unlocked",
        outbox_pending=2,
    )
    srv = StatusServer(source, port=0, clock=lambda: NOW).start()
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=1)
    try:
        tab = context.new_page()
        tab.goto(srv.url)
        tab.wait_for_function("() => window.vaoraStatus.streamUp === true", timeout=2000)
        expect(tab.locator("#verdict")).to_contain_text("MỜI VÀO")
        assert tab.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scrolling
        verdict_px = float(tab.locator("#verdict").evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
        assert verdict_px >= 40  # readable at arm's length
        out = REPO / "docs" / "screenshots" / "gate-status.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(out), full_page=True)
        assert out.stat().st_size > 10_000
    finally:
        context.close()
        srv.stop()
