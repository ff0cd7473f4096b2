"""The guard desk in a real browser, against central as processes, a real Mosquitto and a simulated gate.

A guard types a CCCD QR text into the desk page the way a keyboard-wedge scanner does (character by character,
then Enter); the server parses it and the form fills in with the Vietnamese name intact. The walk-in waits for
approval: an organiser, with the live dashboard open in a second browser, sees the walk-in appear and approves
it there; the desk's row updates without a reload. The guard then opens the lobby gate remotely: the gate (real
``gate.app.Gate`` on MockFactory pins, connected to the broker) pulses its relay, answers ok, central stores a
manual check-in naming the guard, and the organiser's dashboard shows the arrival within 1 second, no reload.
"""

from __future__ import annotations

import io
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from central.core.db import database, open_database
from devtools.mailcatcher import MailCatcher

from ..conftest import CHROMIUM, CHROMIUM_ARGS
from .conftest import Central
from .test_spine import RELAY, high_periods, start_gate, wait_until

playwright_sync = pytest.importorskip("playwright.sync_api")

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
def page() -> Iterator[Any]:
    """A desktop-sized Chromium page, Vietnamese locale."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="vi-VN")
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        try:
            yield tab
        finally:
            context.close()
            browser.close()


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
    invitation = central.api("POST", "/api/v1/invitations", json={
        "meeting_id": meeting.json()["id"], "organisation_id": organisation.json()["id"]})
    assert invitation.status_code == 201, invitation.text

    def make_guard() -> None:
        from argon2 import PasswordHasher, profiles

        from central.auth.passwords import use_hasher
        from central.services import users

        use_hasher(PasswordHasher.from_parameters(profiles.CHEAPEST))
        users.create_user({"username": GUARD, "password": PASSWORD, "role": "guard", "full_name": GUARD_NAME},
                          actor="test", now=now)
        users.create_user({"username": ORGANISER, "password": PASSWORD, "role": "organiser",
                           "full_name": "Lê Thu Hà"}, actor="test", now=now)

    with_central_db(central, make_guard)
    return {"meeting_id": meeting.json()["id"], "number": invitation.json()["number"]}


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
        organiser_context = page.context.browser.new_context(viewport={"width": 1280, "height": 900},
                                                              locale="vi-VN")
        dashboard = organiser_context.new_page()
        dashboard.set_default_timeout(15_000)
        log_in(dashboard, central.url, ORGANISER)
        dashboard.goto(f"{central.url}/meetings/{setup['meeting_id']}/truc-tiep")
        dashboard.locator("#dash-live[data-state='live']").wait_for()
        dashboard.evaluate("window.__noReload = true")

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
        page.wait_for_function("document.getElementById('full_name').value !== ''")
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
        waiting.wait_for(timeout=5_000)
        assert "********2345" in waiting.inner_text() and "001085012345" not in dashboard.content()
        waiting.get_by_label("Ghi chú").fill("Đồng ý cho vào")

        # Another visitor is registered meanwhile: the list changes under the organiser, the note being typed
        # stays.
        def another_walkin() -> None:
            from central import models
            from central.desk.cccd import parse_cccd
            from central.services import walkins

            invitation = models.Invitation.get(models.Invitation.number == setup["number"])
            walkins.register(invitation.meeting, invitation, parse_cccd(OTHER_CARD), GUARD, secret="e2e")

        with_central_db(central, another_walkin)
        dashboard.locator(f"#dash-walkins li:has-text('{OTHER_NAME}')").wait_for(timeout=5_000)
        assert waiting.get_by_label("Ghi chú").input_value() == "Đồng ý cho vào"
        waiting.get_by_role("button", name="Duyệt").click()
        dashboard.locator(f"#dash-walkins li:has-text('{NAME}')").wait_for(state="detached", timeout=5_000)
        row.get_by_role("button", name="Mở cổng").wait_for(timeout=6_000)
        assert f"{ORGANISER}: Đồng ý cho vào" in row.inner_text()
        assert page.evaluate("window.__noReload") is True, "updated in place"

        # Open the lobby gate remotely for the walk-in.
        row.get_by_label("Cổng").select_option("lobby-1")
        row.get_by_role("button", name="Mở cổng").click()
        wait_until(lambda: relay.state == 1, timeout=10, interval=0.005)
        opened = time.monotonic()
        # The arrival reaches the organiser's dashboard within 1 s of the relay opening, without a reload.
        dashboard.locator(f"#dash-arrivals li:has-text('{NAME}')").wait_for(timeout=1_000)
        shown = time.monotonic()
        assert shown - opened < 1.0, f"arrival shown {shown - opened:.3f} s after the relay opened"
        assert dashboard.evaluate("window.__noReload") is True, "the dashboard updated in place"
        # The walk-in's one-day delegate is newer than the page: the counts follow once the page refetched its state.
        dashboard.wait_for_function("document.getElementById('dash-present').textContent === '1'", timeout=2_000)
        result = page.locator("#gate-result")
        wait_until(lambda: result.get_attribute("data-result") is not None, timeout=15)
        assert result.get_attribute("data-result") == "ok", result.inner_text()
        assert re.search("đã mở", result.inner_text())
        shot(page, "opened")
        wait_until(lambda: len(high_periods(relay)) == 1, timeout=5)
        rows = wait_until(lambda: manual_checkins(central.database_path), timeout=10)
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
        organiser_context.close()
    finally:
        gate.stop()
