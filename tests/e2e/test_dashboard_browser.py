"""The live dashboard in a real browser on real parts: a gate (simulated pins, serial scanner on a pty) admits a
delegate, publishes the check-in through Mosquitto, central's ingest stores it, and the organiser's dashboard
(Chromium through Playwright, served by ``vaora-central serve``) shows the arrival pushed over its open event
stream, without reloading or polling (how fast is measured by benchmarks/dashboard_latency.py on a quiet machine,
not asserted on this one's wall clock). The wall display (large-screen mode) renders with big type and no
navigation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..conftest import CHROMIUM
from .conftest import REPO, Central, open_page, scan, setup_meeting, updated_live, watch_live_stream

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


def open_dashboard(browser: Any, central: Central, username: str, meeting_id: int, query: str = "",
                   **context_options: Any) -> Any:
    """Log in as ``username`` on a new page and open the live dashboard of ``meeting_id``, connected."""
    page = open_page(browser, **context_options)
    login(page, central.url, username)
    page.goto(f"{central.url}/meetings/{meeting_id}/truc-tiep{query}")
    page.wait_for_selector("#dash-live[data-state='live']")
    return page


def test_dashboard_shows_an_arrival_pushed_over_its_live_stream(
    central: Central, mail: Any, tmp_path: Path, scanner_pty: tuple[int, str], lobby_gate: Any, browser: Any,
) -> None:
    master, _ = scanner_pty
    registered = setup_meeting(central, mail, "compact", "hoa.nguyen@stp.hanoi.gov.vn")
    username = create_admin(central, tmp_path)
    gate, _factory = lobby_gate()
    page = open_dashboard(browser, central, username, registered["meeting_id"])
    assert page.text_content("#dash-present") == "0"
    assert page.text_content("#dash-expected") == "1"
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    state_url = page.evaluate("document.querySelector('[data-state-url]').dataset.stateUrl")
    refetched: list[str] = []
    page.on("request", lambda request: refetched.append(request.url) if state_url in request.url else None)
    watch_live_stream(page)

    record = scan(gate, master, registered["code"], before=0)  # the gate decided, opened and published
    assert record.allowed, record.reason
    page.wait_for_selector("#dash-arrivals li:has-text('Nguyễn Thị Hoà')")
    assert updated_live(page), "the arrival came over the open event stream, in the same document"
    assert refetched == [], "the arrival was pushed, not fetched with the page's state"
    assert page.text_content("#dash-present") == "1"
    row = page.text_content("#dash-arrivals li")
    assert "Sở Tư pháp compact" in row and "Cổng chính 1" in row, "the arrival names its gate, not its id"
    assert page.text_content("#dash-orgs").count("1") >= 2  # present 1 of expected 1
    assert navigations == [], f"the page navigated: {navigations}"

    wall = open_dashboard(browser, central, username, registered["meeting_id"], "?man-hinh-lon=1",
                          viewport={"width": 1920, "height": 1080})
    assert wall.locator("body.wall").count() == 1
    assert wall.locator("nav").count() == 0 and wall.get_by_role("button", name="Đăng xuất").count() == 0
    assert wall.text_content("#dash-present") == "1"
    assert "Nguyễn Thị Hoà" in wall.text_content("#dash-arrivals")
    big = wall.evaluate("parseFloat(getComputedStyle(document.getElementById('dash-present')).fontSize)")
    assert big >= 64, big
    assert wall.locator("#dash-chart svg polyline").count() == 1
    shot(page, "dashboard")
    shot(wall, "dashboard-wall")


def test_manual_mark_and_fleet_command_in_the_browser(central: Central, mail: Any, tmp_path: Path, lobby_gate: Any,
                                                      browser: Any) -> None:
    registered = setup_meeting(central, mail, "compact", "an.tran@sxd.hanoi.gov.vn")
    username = create_admin(central, tmp_path)
    _gate, _factory = lobby_gate()
    page = open_dashboard(browser, central, username, registered["meeting_id"])
    watch_live_stream(page)
    page.get_by_role("button", name="Ghi nhận có mặt").click()  # no reason: the browser refuses to send
    assert page.text_content("#dash-present") == "0"
    page.get_by_label("Lý do (bắt buộc)").fill("Quên điện thoại, đã đối chiếu giấy mời")
    page.get_by_role("button", name="Ghi nhận có mặt").click()
    page.wait_for_selector("#dash-arrivals li:has-text('Thủ công')")
    assert page.text_content("#dash-present") == "1"
    assert "Đã ghi nhận có mặt" in page.text_content("#dash-mark-result")
    assert updated_live(page)

    fleet = open_page(browser)
    login(fleet, central.url, username)
    fleet.goto(f"{central.url}/cong/")
    row = fleet.locator("tr[data-gate='lobby-1']")
    row.locator("select[name=action]").select_option("lockdown")
    fleet.once("dialog", lambda dialog: dialog.accept())  # lock down asks for confirmation first
    row.get_by_role("button", name="Gửi").click()
    row.locator(".fleet-status[data-status='ok']").wait_for()
    assert "Cổng đã thực hiện" in row.locator(".fleet-status").text_content()
    fleet.wait_for_function(  # a function, not an expression: the page's CSP forbids eval
        "() => document.querySelector(\"tr[data-gate='lobby-1'] .fleet-mode\")"
        ".textContent.includes('Khóa cổng')")
    assert "Khóa cổng" in fleet.text_content("#fleet-log")
    shot(fleet, "fleet")
    row.locator("select[name=action]").select_option("resume")
    row.get_by_role("button", name="Gửi").click()
    row.locator(".fleet-status[data-status='ok']").wait_for()
