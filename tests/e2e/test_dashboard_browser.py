"""The live dashboard in a real browser on real parts: a gate (simulated pins, serial scanner on a pty) admits a
delegate, publishes the check-in through Mosquitto, central's ingest stores it, and the organiser's dashboard
(Chromium through Playwright, served by ``vaora-central serve``) shows the arrival within one second without
reloading. The wall display (large-screen mode) renders with big type and no navigation."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ..conftest import CHROMIUM
from .conftest import REPO, Central
from .test_spine import scan, setup_meeting, start_gate

PASSWORD = "mat-khau-quan-tri-du-dai-2026"
SCREENSHOTS = REPO / "docs" / "screenshots"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


def shot(page: Any, name: str) -> None:
    """With ``VAORA_SCREENSHOTS=1``, save the page to ``docs/screenshots/central-<name>.png``."""
    if os.environ.get("VAORA_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"central-{name}.png"), full_page=True)


def create_admin(central: Central, tmp_path: Path) -> str:
    secret = tmp_path / "admin.password"
    secret.write_text(PASSWORD, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "central.cli", "create-admin", "quantri", "--password-file", str(secret),
                    "--full-name", "Quản trị"], env=central.env, cwd=REPO, check=True, capture_output=True)
    return "quantri"


def login(page: Any, url: str, username: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(lambda u: not u.endswith("/login"))


def test_dashboard_shows_an_arrival_within_a_second(central: Central, broker: Any, mail: Any, tmp_path: Path,
                                                    scanner_pty: tuple[int, str], browser: Any) -> None:
    master, device = scanner_pty
    registered = setup_meeting(central, mail, "compact", "hoa.nguyen@stp.hanoi.gov.vn")
    username = create_admin(central, tmp_path)
    gate, _factory = start_gate(central, broker, tmp_path, device)
    try:
        page = browser.new_page()
        login(page, central.url, username)
        dashboard = f"{central.url}/meetings/{registered['meeting_id']}/truc-tiep"
        page.goto(dashboard)
        page.wait_for_selector("#dash-live[data-state='live']", timeout=10_000)
        assert page.text_content("#dash-present") == "0"
        assert page.text_content("#dash-expected") == "1"
        navigations: list[str] = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))
        page.evaluate("window.__sameDocument = 'still here'")

        record = scan(gate, master, registered["code"], before=0)  # the gate decided, opened and published
        published = time.monotonic()
        assert record.allowed, record.reason
        page.wait_for_selector("#dash-arrivals li:has-text('Nguyễn Thị Hoà')", timeout=1_000)
        shown_after = time.monotonic() - published
        assert shown_after <= 1.0
        assert page.text_content("#dash-present") == "1"
        row = page.text_content("#dash-arrivals li")
        assert "Sở Tư pháp compact" in row and "lobby-1" in row
        assert page.text_content("#dash-orgs").count("1") >= 2  # present 1 of expected 1
        assert page.evaluate("window.__sameDocument") == "still here", "the page was reloaded"
        assert navigations == [], f"the page navigated: {navigations}"

        wall = browser.new_page(viewport={"width": 1920, "height": 1080})
        login(wall, central.url, username)
        wall.goto(f"{dashboard}?man-hinh-lon=1")
        wall.wait_for_selector("#dash-live[data-state='live']", timeout=10_000)
        assert wall.locator("body.wall").count() == 1
        assert wall.locator("nav").count() == 0 and wall.get_by_role("button", name="Đăng xuất").count() == 0
        assert wall.text_content("#dash-present") == "1"
        assert "Nguyễn Thị Hoà" in wall.text_content("#dash-arrivals")
        big = wall.evaluate("parseFloat(getComputedStyle(document.getElementById('dash-present')).fontSize)")
        assert big >= 64, big
        assert wall.locator("#dash-chart svg polyline").count() == 1
        shot(page, "dashboard")
        shot(wall, "dashboard-wall")
        print(f"arrival shown {shown_after * 1000:.0f} ms after the gate published it")
    finally:
        gate.stop()


def test_manual_mark_and_fleet_command_in_the_browser(central: Central, broker: Any, mail: Any, tmp_path: Path,
                                                      scanner_pty: tuple[int, str], browser: Any) -> None:
    _master, device = scanner_pty
    registered = setup_meeting(central, mail, "compact", "an.tran@sxd.hanoi.gov.vn")
    username = create_admin(central, tmp_path)
    gate, _factory = start_gate(central, broker, tmp_path, device)
    try:
        page = browser.new_page()
        login(page, central.url, username)
        page.goto(f"{central.url}/meetings/{registered['meeting_id']}/truc-tiep")
        page.wait_for_selector("#dash-live[data-state='live']", timeout=10_000)
        page.evaluate("window.__sameDocument = 'still here'")
        page.get_by_role("button", name="Ghi nhận có mặt").click()  # no reason: the browser refuses to send
        assert page.text_content("#dash-present") == "0"
        page.get_by_label("Lý do (bắt buộc)").fill("Quên điện thoại, đã đối chiếu giấy mời")
        page.get_by_role("button", name="Ghi nhận có mặt").click()
        page.wait_for_selector("#dash-arrivals li:has-text('Thủ công')", timeout=2_000)
        assert page.text_content("#dash-present") == "1"
        assert "Đã ghi nhận có mặt" in page.text_content("#dash-mark-result")
        assert page.evaluate("window.__sameDocument") == "still here"

        fleet = browser.new_page()
        login(fleet, central.url, username)
        fleet.goto(f"{central.url}/cong/")
        row = fleet.locator("tr[data-gate='lobby-1']")
        row.locator("select[name=action]").select_option("lockdown")
        fleet.once("dialog", lambda dialog: dialog.accept())  # lock down asks for confirmation first
        row.get_by_role("button", name="Gửi").click()
        row.locator(".fleet-status[data-status='ok']").wait_for(timeout=10_000)
        assert "Cổng đã thực hiện" in row.locator(".fleet-status").text_content()
        fleet.wait_for_function(
            "document.querySelector(\"tr[data-gate='lobby-1'] .fleet-mode\").textContent.includes('Khóa cổng')",
            timeout=5_000)
        assert "Khóa cổng" in fleet.text_content("#fleet-log")
        shot(fleet, "fleet")
        row.locator("select[name=action]").select_option("resume")
        row.get_by_role("button", name="Gửi").click()
        row.locator(".fleet-status[data-status='ok']").wait_for(timeout=10_000)
    finally:
        gate.stop()
