"""The guard desk in a real browser, against central as processes, a real Mosquitto and a simulated gate.

A guard types a CCCD QR text into the desk page the way a keyboard-wedge scanner does (character by character,
then Enter); the server parses it and the form fills in with the Vietnamese name intact. The walk-in waits for
approval: an organiser, with the live dashboard open in a second browser, sees the walk-in appear and approves
it there; the desk's row updates without a reload. The guard then opens the lobby gate remotely: the gate (real
``gate.app.Gate`` on MockFactory pins, connected to the broker) pulses its relay, answers ok, central stores a
manual check-in naming the guard, and the organiser's dashboard shows the arrival, pushed over its open event
stream (no reload, no polling; the latency itself is measured by benchmarks/dashboard_latency.py).
"""

from __future__ import annotations

import io
import os
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from central.core.db import database, open_database
from devtools.mailcatcher import MailCatcher

from ..conftest import CHROMIUM, wait_until
from .conftest import RELAY, Central, approve, high_periods, open_page, start_gate, updated_live, watch_live_stream

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")

SCREENSHOTS = Path(os.environ.get("VAORA_SCREENSHOT_DIR")
                   or Path(__file__).resolve().parents[2] / "docs" / "screenshots")
GUARD, GUARD_NAME, PASSWORD = "baove1", "Phạm Văn Bảo", "mat-khau-bao-ve-123"
ORGANISER = "chuyenvien1"
NAME = "Nguyễn Thị Ánh Tuyết"
OTHER_NAME = "Trần Văn Đức"
OTHER_CARD = f"079190004321||{OTHER_NAME}|01021990|Nam||"
CARD = f"001085012345|123456789|{NAME}|15081985|Nữ|Số 1 Đinh Tiên Hoàng, Hoàn Kiếm, Hà Nội|20042021"

def shot(page: Any, name: str) -> None:
    """With ``VAORA_SCREENSHOTS=1``, save the page as ``desk-<name>.png`` (for the README)."""
    if os.environ.get("VAORA_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"desk-{name}.png"), full_page=True)


@pytest.fixture
def page(browser: Any) -> Any:
    """A desktop-sized Chromium page, Vietnamese locale."""
    return open_page(browser, viewport={"width": 1200, "height": 900})


def with_central_db(central: Central, action: Any) -> Any:
    """Run ``action`` against central's SQLite file from the test process (as a second central would)."""
    open_database(f"sqlite:///{central.database_path}")
    with database.connection_context():
        return action()


def setup_desk(central: Central) -> dict[str, Any]:
    """A meeting at site hq running now, one organisation's invitation, and a guard account."""
    now = datetime.now(UTC)
    meeting = central.api("POST", "/api/v1/meetings", json={
        "title": "Hội nghị triển khai nhiệm vụ năm 2027", "starts_at": (now - timedelta(minutes=10)).isoformat(),
        "ends_at": (now + timedelta(hours=2)).isoformat(), "venue": "Hội trường A", "site_id": "hq"})
    assert meeting.status_code == 201, meeting.text
    organisation = central.api("POST", "/api/v1/organisations", json={"name": "Sở Khoa học và Công nghệ"})
    draft = central.api("POST", "/api/v1/invitations", json={
        "meeting_id": meeting.json()["id"], "organisation_id": organisation.json()["id"]})
    assert draft.status_code == 201, draft.text
    invitation = approve(central, draft.json()["id"])

    def make_guard() -> None:
        from argon2 import PasswordHasher, profiles

        from central.auth import users
        from central.auth.passwords import use_hasher

        use_hasher(PasswordHasher.from_parameters(profiles.CHEAPEST))
        users.create_user({"username": GUARD, "password": PASSWORD, "role": "guard", "full_name": GUARD_NAME},
                          actor="test", now=now)
        users.create_user({"username": ORGANISER, "password": PASSWORD, "role": "organiser",
                           "full_name": "Lê Thu Hà"}, actor="test", now=now)

    with_central_db(central, make_guard)
    return {"meeting_id": meeting.json()["id"], "number": invitation["number"]}


def log_in(page: Any, url: str, username: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()


def manual_checkins(database_path: Path) -> list[tuple]:
    with sqlite3.connect(database_path) as connection:
        return connection.execute(
            "SELECT manual, reason, operator, delegate_id FROM check_in WHERE manual = 1").fetchall()


def test_guard_scans_a_cccd_registers_and_opens_the_gate(
    central: Central, broker: Any, mail: MailCatcher, tmp_path: Path, scanner_pty: Any, page: Any
) -> None:
    setup = setup_desk(central)
    _, device = scanner_pty
    gate, factory = start_gate(central, broker, tmp_path, device)
    try:
        relay = factory.pin(RELAY)
        # The organiser's live dashboard, in a browser context of its own (another person's session).
        dashboard = open_page(page.context.browser, viewport={"width": 1280, "height": 900})
        log_in(dashboard, central.url, ORGANISER)
        dashboard.goto(f"{central.url}/meetings/{setup['meeting_id']}/truc-tiep")
        dashboard.locator("#dash-live[data-state='live']").wait_for()
        watch_live_stream(dashboard)

        log_in(page, central.url, GUARD)
        page.goto(f"{central.url}/ban-tiep-don/")
        scan = page.locator("#scan")
        assert scan.evaluate("el => el === document.activeElement"), "the scan field has the focus"

        # A malformed scan: the parser's reason, and nothing filled in.
        page.keyboard.type("001085012345|123|Nguyễn Văn A|15081985", delay=8)
        page.keyboard.press("Enter")
        page.get_by_text("Số CMND cũ phải gồm 9 hoặc 12 chữ số, hoặc để trống").wait_for()
        assert page.locator("#full_name").input_value() == ""

        # The real card, at a wedge scanner's pace; the selected bad text is replaced.
        page.keyboard.type(CARD, delay=8)
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.getElementById('full_name').value !== ''")
        assert page.locator("#full_name").input_value() == NAME
        assert page.locator("#date_of_birth").input_value() == "15/08/1985"
        assert page.locator("#sex").input_value() == "Nữ"
        assert page.locator("#id_masked").input_value() == "********2345"
        assert page.locator("#scan-error").is_hidden()
        assert "001085012345" not in page.locator("#scan").input_value()

        # Find the invitation by organisation (no accents typed), pick it with the keyboard, submit.
        page.locator("#invitation").focus()
        page.keyboard.type("khoa hoc", delay=20)
        suggestion = page.locator("#invitation-results button").first
        suggestion.wait_for()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        assert page.locator("#invitation").input_value() == setup["number"]
        page.keyboard.press("Enter")  # the focus is on the register button
        row = page.locator("#walkin-rows tr", has_text=NAME)
        row.get_by_text("Chờ duyệt", exact=True).wait_for()
        assert NAME in row.inner_text()

        # The organiser sees the walk-in waiting on the dashboard and approves it there; the desk's row changes
        # without a reload.
        page.evaluate("window.__noReload = true")
        waiting = dashboard.locator(f"#dash-walkins li:has-text('{NAME}')")
        waiting.wait_for()
        assert "********2345" in waiting.inner_text() and "001085012345" not in dashboard.content()
        waiting.get_by_label("Ghi chú").fill("Đồng ý cho vào")

        # Another visitor is registered meanwhile: the list changes under the organiser, the note being typed
        # stays.
        def another_walkin() -> None:
            from central.desk import walkins
            from central.desk.cccd import parse_cccd
            from central.invitations.models import Invitation

            invitation = Invitation.get(Invitation.number == setup["number"])
            walkins.register(invitation.meeting, invitation, parse_cccd(OTHER_CARD), GUARD, secret="e2e")

        with_central_db(central, another_walkin)
        dashboard.locator(f"#dash-walkins li:has-text('{OTHER_NAME}')").wait_for()
        assert waiting.get_by_label("Ghi chú").input_value() == "Đồng ý cho vào"
        waiting.get_by_role("button", name="Duyệt").click()
        dashboard.locator(f"#dash-walkins li:has-text('{NAME}')").wait_for(state="detached")
        row.get_by_role("button", name="Mở cổng").wait_for()
        assert "Lê Thu Hà: Đồng ý cho vào" in row.inner_text(), "the organiser who decided, by full name"
        assert "(online)" not in row.inner_text(), "the gate's link state in Vietnamese"
        assert page.evaluate("window.__noReload") is True, "updated in place"

        # Open the lobby gate remotely for the walk-in.
        row.get_by_label("Cổng").select_option("lobby-1")
        row.get_by_role("button", name="Mở cổng").click()
        wait_until(lambda: any(state.state for state in relay.states), timeout=20)  # the history: a pulse is short
        # The arrival reaches the organiser's dashboard over its open event stream, without a reload.
        dashboard.locator(f"#dash-arrivals li:has-text('{NAME}')").wait_for()
        assert updated_live(dashboard), "the dashboard updated in place, from its live stream"
        # The walk-in's one-day delegate is newer than the page: the counts follow once the page refetched its state.
        dashboard.wait_for_function("() => document.getElementById('dash-present').textContent === '1'")
        result = page.locator("#gate-result")
        wait_until(lambda: result.get_attribute("data-result") is not None, timeout=20)
        assert result.get_attribute("data-result") == "ok", result.inner_text()
        assert re.search("đã mở", result.inner_text())
        shot(page, "opened")
        wait_until(lambda: len(high_periods(relay)) == 1)
        rows = wait_until(lambda: manual_checkins(central.database_path))
        (manual, reason, operator, delegate_id) = rows[0]
        assert (manual, reason) == (1, "manual_open")
        assert GUARD in (operator or "")
        assert delegate_id is not None
        page.get_by_role("link", name="Xem / in mã").click()
        page.locator("svg.qr").wait_for()
        assert page.locator("#ticket-name").inner_text() == NAME
        (decoded,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(page.locator("svg.qr").screenshot())))
        with sqlite3.connect(central.database_path) as connection:
            (code,) = connection.execute("SELECT code FROM delegate WHERE id = ?", (delegate_id,)).fetchone()
        assert decoded.text == code, "the QR on screen is the walk-in's one-day code"
        shot(page, "code")
    finally:
        gate.stop()
