"""The invitation workflow in a real browser (Debian's Chromium through Playwright) against central served
by a real werkzeug server: organiser creates a meeting and drafts two invitations, approver approves one and
returns the other; the e-mail (HTML + PDF) and the SMS go out; pages work at 360 px and by keyboard.

``VAORA_SCREENSHOTS=1`` saves the key pages to ``docs/screenshots/central-*.png``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from central.app import create_app
from central.core.db import database, open_database
from central.migrations import migrate
from central.outbound.sms import LogSender
from devtools import approval
from devtools.mailcatcher import MailCatcher

from ..conftest import CHROMIUM, ThreadedServer
from .conftest import API_TOKEN, served_config
from .staff import PASSWORD, make_users

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TITLE = "Hội nghị sơ kết 6 tháng đầu năm về chuyển đổi số"
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture
def central(tmp_path: Path, mail: MailCatcher) -> Iterator[tuple[str, LogSender]]:
    """Central with users, two halls and three organisations, served on a free port (SQLite)."""
    sms = LogSender()
    open_database(f"sqlite:///{tmp_path}/central.db")
    migrate()
    # TESTING: mail sent directly, no mail-queue worker thread outliving the test
    app = create_app(served_config(tmp_path, mail), clock=lambda: NOW, sms_sender=sms)
    make_users(NOW)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    with database.connection_context():
        from central.meetings import venues

        venues.create_venue({"name": "Hội trường UBND tỉnh", "kind": "main", "site_id": "hq"}, actor="t", now=NOW)
        venues.create_venue({"name": "Điểm cầu huyện Bình Sơn", "kind": "remote"}, actor="t", now=NOW)
    for index, name in enumerate(["Sở Tài chính", "Sở Thông tin và Truyền thông", "Sở Nội vụ"]):
        response = client.post("/api/v1/organisations", headers=auth, json={
            "name": name, "office_email": f"vp{index}@example.vn", "leader_phone": f"091234567{index}",
            "leader_name": "Ông Lê Văn C",
        })
        assert response.status_code == 201
    with ThreadedServer(app) as server:
        yield server.url, sms
    if not database.is_closed():
        database.close()


def _shot(page: Any, name: str) -> None:
    if os.environ.get("VAORA_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"central-{name}.png"), full_page=True)


def _login(page: Any, url: str, username: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()


def _logout(page: Any) -> None:
    page.get_by_role("button", name="Đăng xuất").click()
    page.wait_for_url(re.compile(r".*/login$"))


def test_invitation_workflow_in_the_browser(
    central: tuple[str, LogSender], browser: Any, mail: MailCatcher, tmp_path: Path
) -> None:
    url, sms = central
    page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="vi-VN")

    # Organiser: log in, create the meeting, draft invitations for two organisations.
    page.goto(f"{url}/login")
    _shot(page, "login")
    _login(page, url, "chuyenvien")
    page.get_by_role("link", name="Tạo cuộc họp").click()
    page.get_by_label("Tên cuộc họp").fill(TITLE)
    page.get_by_label("Nội dung, chương trình").fill("1. Báo cáo sơ kết\n2. Thảo luận")
    page.get_by_label("Lãnh đạo chủ trì").fill("Phó Chủ tịch UBND tỉnh")
    page.get_by_label("Bắt đầu").fill("2026-12-01T08:00")
    page.get_by_label("Kết thúc").fill("2026-12-01T11:30")
    page.get_by_label("Hội trường chính").select_option(label="Hội trường UBND tỉnh")
    page.get_by_label("Điểm cầu").select_option(label="Điểm cầu huyện Bình Sơn")
    page.get_by_role("button", name="Lưu").click()
    page.wait_for_url(re.compile(r".*/meetings/\d+$"))
    assert "Đã tạo cuộc họp." in page.inner_text("main")
    page.get_by_label("Đơn vị được mời").select_option(label=["Sở Tài chính", "Sở Thông tin và Truyền thông"])
    page.get_by_label("Số đại biểu tối đa mỗi đơn vị").fill("3")
    page.get_by_role("button", name="Soạn thư mời").click()
    assert "Đã soạn 2 thư mời, chờ lãnh đạo duyệt." in page.inner_text("main")
    meeting_url = page.url
    _shot(page, "meeting")
    _logout(page)

    # Approver: approve the first, return the second with a comment.
    _login(page, url, "lanhdao")
    page.goto(f"{url}/invitations/?status=draft")
    page.get_by_role("link", name="Sở Tài chính").click()
    page.get_by_role("button", name="Duyệt và gửi").click()
    assert "Đã duyệt thư mời số 1/GM-UBND." in page.inner_text("main")
    assert page.get_by_role("heading", level=1).inner_text() == "Thư mời số 1/GM-UBND"
    statuses = page.locator("#deliveries tbody tr")
    assert statuses.count() == 2
    rows = [statuses.nth(i).inner_text() for i in range(2)]
    assert any(r.startswith("Thư điện tử") and "Đã gửi" in r for r in rows)
    assert any(r.startswith("Tin nhắn SMS") and "Đã gửi" in r for r in rows)
    _shot(page, "invitation")

    page.goto(f"{url}/invitations/?status=draft")
    page.get_by_role("link", name="Sở Thông tin và Truyền thông").click()
    page.get_by_label("Ý kiến (lý do trả lại)").fill("Đề nghị ghi rõ thành phần tham dự")
    page.get_by_role("button", name="Trả lại").click()
    assert "Bị trả lại" in page.inner_text("#invitation-status")
    assert page.inner_text("#invitation-comment") == "Đề nghị ghi rõ thành phần tham dự"
    page.goto(meeting_url)
    invitations = page.locator("section[aria-labelledby=inv-h] tbody").inner_text()
    assert "1/GM-UBND" in invitations and "Bị trả lại" in invitations

    # What the organisation received.
    (message,) = mail.wait_for(1)
    assert message["To"] == "vp0@example.vn"
    assert TITLE in message.get_body(("html",)).get_content()
    (pdf,) = [p for p in message.iter_attachments() if p.get_content_type() == "application/pdf"]
    (tmp_path / "thu-moi.pdf").write_bytes(pdf.get_content())
    text = subprocess.run(["pdftotext", str(tmp_path / "thu-moi.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert TITLE in " ".join(text.split())
    ((phone, body),) = sms.sent
    assert phone == "+84912345670" and body.isascii() and len(body) <= 160 and "So 1/GM-UBND" in body
    _logout(page)

    # The administrator reads the audit log.
    _login(page, url, "admin")
    page.get_by_role("link", name="Nhật ký").click()
    page.get_by_label("Người thực hiện").select_option("lanhdao")
    page.get_by_role("button", name="Lọc").click()
    log_text = page.inner_text("#audit")
    assert "Lanhdao duyệt thư mời 1/GM-UBND" in log_text and "Lanhdao trả lại" in log_text
    assert "chuyenvien" not in log_text
    page.goto(f"{url}/admin/audit")
    _shot(page, "audit")


def test_phone_width_and_keyboard(central: tuple[str, LogSender], browser: Any) -> None:
    url, _ = central
    page = browser.new_page(viewport={"width": 360, "height": 740})
    # Keyboard only: the login form (username is focused), Tab, Enter.
    page.goto(f"{url}/login")
    assert page.evaluate("document.activeElement.id") == "username"
    page.keyboard.type("chuyenvien")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/meetings/$"))
    # The first Tab reaches the skip link, which moves focus to the main content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # A form submitted with errors puts focus on the first field in error.
    page.goto(f"{url}/meetings/new")
    page.get_by_label("Tên cuộc họp").focus()
    page.keyboard.type("Họp thử")
    page.keyboard.press("Enter")
    assert page.locator("#starts_at-error").inner_text() == "Không được để trống"
    # The page's script moves the focus once it has run (it may run after the error text is in the page).
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'starts_at'")
    for path in ("/meetings/", "/meetings/new", "/invitations/", "/login"):
        page.goto(f"{url}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, path
    # English on request, remembered in the session.
    page.goto(f"{url}/meetings/?lang=en")
    assert page.get_by_role("heading", level=1).inner_text() == "Meetings"
    page.goto(f"{url}/meetings/")
    assert page.get_by_role("heading", level=1).inner_text() == "Meetings"


def _api(url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """POST JSON to central's API (with the API token unless ``headers`` are given) and return the answer."""
    request = urllib.request.Request(
        f"{url}/api/v1{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **(headers or {"Authorization": f"Bearer {API_TOKEN}"})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_a_leader_downloads_the_attendance_list(
    central: tuple[str, LogSender], browser: Any, tmp_path: Path
) -> None:
    url, sms = central
    meeting = _api(url, "/meetings", {
        "title": TITLE, "starts_at": "2026-12-01T01:00:00+00:00", "ends_at": "2026-12-01T04:00:00+00:00",
        "venue": "Hội trường UBND tỉnh", "site_id": "hq",
    })
    draft = _api(url, "/invitations", {"meeting_id": meeting["id"], "organisation_id": 1})
    approved = approval.approve(approval.log_in(url, "lanhdao", PASSWORD), url, draft["id"])
    link = approval.registration_link([text for _phone, text in sms.sent], approved["number"])
    _api(url, f"/invitations/{link.number}/delegates",
         {"name": "Nguyễn Thị Hoà", "position": "Phó Giám đốc", "email": "hoa@example.vn"},
         headers={"X-Invitation-Secret": link.secret})
    page = browser.new_page(accept_downloads=True)
    _login(page, url, "lanhdao")
    page.goto(f"{url}/meetings/{meeting['id']}")
    files = {}
    for name in ("XLSX", "CSV", "PDF"):
        with page.expect_download() as info:
            page.locator("#attendance-links").get_by_role("link", name=name, exact=True).click()
        download = info.value
        files[name] = tmp_path / download.suggested_filename
        download.save_as(files[name])
    assert sorted(path.name for path in files.values()) == [
        f"danh-sach-tham-du-{meeting['id']}.{ext}" for ext in ("csv", "pdf", "xlsx")
    ]
    sheet = openpyxl.load_workbook(files["XLSX"]).active
    cells = [cell for row in sheet.iter_rows(values_only=True) for cell in row if cell]
    assert "DANH SÁCH THÀNH PHẦN THAM DỰ" in cells and "Nguyễn Thị Hoà" in cells and "Sở Tài chính" in cells
    assert "Nguyễn Thị Hoà" in files["CSV"].read_text(encoding="utf-8-sig")
    text = subprocess.run(["pdftotext", str(files["PDF"]), "-"], capture_output=True, text=True, check=True).stdout
    assert "Nguyễn Thị Hoà" in text and "Có mặt: 0/1" in text

    # The statistics page, reached from the menu.
    page.get_by_role("link", name="Thống kê", exact=True).first.click()
    page.get_by_label("Từ ngày").fill("2026-12-01")
    page.get_by_label("Đến ngày").fill("2026-12-31")
    page.get_by_role("button", name="Xem").click()
    assert page.locator('[data-total="meetings"]').inner_text() == "1"
    assert page.locator("svg.chart g[data-organisation='Sở Tài chính']").count() == 1
