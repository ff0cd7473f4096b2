"""The two imports in a real browser (Debian's Chromium through Playwright) against central on a real server:
the office imports its organisations from the downloaded CSV template (a bad file first: its rows and cells are
named, nothing saved); an invited organisation, on a 360 px phone, imports its delegates from the downloaded XLSX
template, previews, saves and presses "Gửi Mail", and the progress bar follows the mail worker.

The ``browser`` fixture fails the test on any Content Security Policy violation (no inline script or style).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import openpyxl
import pytest
from flask import Flask

from central.app import create_app
from central.core.db import database, open_database
from central.invitations.models import Organisation
from central.migrations import migrate
from central.outbound.engine import OutboundWorker, Senders
from central.outbound.sms import LogSender
from central.outbound.worker import PooledSmtpSender
from central.registration.models import Delegate
from devtools import approval
from devtools.mailcatcher import MailCatcher

from ..conftest import CHROMIUM, ThreadedServer, wait_until
from .conftest import served_config
from .staff import PASSWORD, make_users
from .test_browser import _api, _login

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture
def central(tmp_path: Path, mail: MailCatcher) -> Iterator[tuple[str, LogSender, Flask]]:
    """Central with users, served on a free port (SQLite); the mail queue is on, its worker run by the test."""
    sms = LogSender()
    open_database(f"sqlite:///{tmp_path}/central.db")
    migrate()
    app = create_app({**served_config(tmp_path, mail), "VAORA_MAIL_QUEUE": "1", "VAORA_MAIL_WORKER": "0"},
                     clock=lambda: NOW, sms_sender=sms)
    make_users(NOW)
    with ThreadedServer(app) as server:
        yield server.url, sms, app
    if not database.is_closed():
        database.close()


def _download(page: Any, name: str, tmp_path: Path) -> Path:
    with page.expect_download() as info:
        page.get_by_role("link", name=name, exact=True).click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    return target


def _shot(page: Any, name: str) -> None:
    if os.environ.get("VAORA_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _fits(page: Any, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.url


def test_the_office_imports_organisations_and_an_organisation_its_delegates_on_a_phone(
    central: tuple[str, LogSender, Flask], browser: Any, mail: MailCatcher, tmp_path: Path
) -> None:
    url, sms, app = central

    # The office (organiser): the CSV template, a bad file first, then the good one.
    page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="vi-VN", accept_downloads=True)
    _login(page, url, "chuyenvien")
    page.goto(f"{url}/invitations/")
    page.get_by_role("link", name="Nhập danh sách đơn vị từ tệp").click()
    template = _download(page, "CSV", tmp_path)
    header = next(csv.reader(io.StringIO(template.read_text(encoding="utf-8-sig"))))
    assert header == ["Tên đơn vị", "Lãnh đạo", "Số điện thoại", "Email"]
    bad = tmp_path / "don-vi-loi.csv"
    bad.write_text(template.read_text(encoding="utf-8-sig") + "Sở Y tế,Ông Phạm Văn D,0912000111,khong-email\r\n"
                   "Sở Nội vụ,,=1+1,snv@example.vn\r\n", encoding="utf-8-sig")
    page.get_by_label("Tệp danh sách đơn vị").set_input_files(str(bad))
    page.get_by_role("button", name="Kiểm tra tệp").click()
    problems = page.locator("#import-problems tbody").inner_text()
    assert "D2 (Email)" in problems and "C3 (Số điện thoại)" in problems and "công thức" in problems
    with database.connection_context():
        assert Organisation.select().count() == 0
    good = tmp_path / "don-vi.csv"
    good.write_text(template.read_text(encoding="utf-8-sig") + "Sở Y tế,Ông Phạm Văn D,0912000111,syt@example.vn\r\n"
                    "Sở Nội vụ,Bà Vũ Thị E,0912000222,snv@example.vn\r\n", encoding="utf-8-sig")
    page.goto(f"{url}/invitations/don-vi/nhap")
    page.get_by_label("Tệp danh sách đơn vị").set_input_files(str(good))
    page.get_by_role("button", name="Kiểm tra tệp").click()
    assert page.locator("#import-preview tbody tr").count() == 2
    _shot(page, "central-organisation-import")
    page.get_by_role("button", name="Lưu 2 đơn vị").click()
    assert "Đã thêm 2 đơn vị từ tệp." in page.inner_text("main")
    with database.connection_context():
        health = Organisation.get(Organisation.name == "Sở Y tế")
    page.set_viewport_size({"width": 360, "height": 740})
    _fits(page, 360)

    # The leader approves an invitation of the imported organisation; its SMS carries the link.
    meeting = _api(url, "/meetings", {
        "title": "Hội nghị triển khai nhiệm vụ năm 2027", "starts_at": "2026-12-01T01:00:00+00:00",
        "ends_at": "2026-12-01T04:00:00+00:00", "venue": "Hội trường UBND tỉnh", "site_id": "hq",
    })
    draft = _api(url, "/invitations", {"meeting_id": meeting["id"], "organisation_id": health.id,
                                       "delegate_limit": 3})
    approved = approval.approve(approval.log_in(url, "lanhdao", PASSWORD), url, draft["id"])
    link = approval.registration_link([text for _phone, text in sms.sent], approved["number"])

    # The organisation, on a phone: the XLSX template, filled, previewed, saved, mailed.
    from playwright.sync_api import expect

    phone = browser.new_page(viewport={"width": 360, "height": 740}, locale="vi-VN", accept_downloads=True)
    phone.goto(f"{url}/dang-ky/{quote(link.number, safe='/')}?s={quote(link.secret, safe='')}")
    phone.get_by_role("link", name="Nhập danh sách từ tệp XLSX/CSV").click()
    phone.wait_for_url(re.compile(r"/nhap\?"))  # measured on the import page, not during the navigation to it
    _fits(phone, 360)
    book = openpyxl.load_workbook(_download(phone, "XLSX", tmp_path))
    sheet = book.worksheets[0]
    assert [c.value for c in sheet[1]] == ["Họ và tên", "Chức vụ", "Email", "Số điện thoại"]
    sheet.append(["Nguyễn Thị Hoà", "Phó Giám đốc", "hoa@example.vn", "0912345678"])
    sheet.append(["Trần Văn Bình", "Chuyên viên", "binh@example.vn", None])
    filled = tmp_path / "dai-bieu.xlsx"
    book.save(filled)
    phone.get_by_label("Tệp danh sách đại biểu").set_input_files(str(filled))
    phone.get_by_role("button", name="Kiểm tra tệp").click()
    preview = phone.locator("#import-preview tbody").inner_text()
    assert "Nguyễn Thị Hoà" in preview and "Trần Văn Bình" in preview and "0912345678" in preview
    assert phone.locator("#import-preview tbody td").first.inner_text() == "2", "the spreadsheet's row number"
    _shot(phone, "registration-import-phone")
    _fits(phone, 360)
    phone.get_by_role("button", name="Lưu 2 đại biểu").click()
    expect(phone.locator("main")).to_contain_text("Đã thêm 2 đại biểu từ tệp")  # waits for the answer's page
    _fits(phone, 360)
    phone.get_by_role("button", name=re.compile(r"^Gửi Mail \(2\)$")).click()
    bar = phone.locator("#mail-progress-bar")
    assert bar.get_attribute("max") == "2" and bar.get_attribute("value") == "0"

    senders = Senders(mail=PooledSmtpSender(mail.host, mail.port), mail_from="vanphong@ubnd.example.vn")
    worker = OutboundWorker(senders=senders, clock=lambda: NOW)
    with app.app_context(), database.connection_context():
        assert worker.run_once() == 2
    wait_until(lambda: phone.inner_text("#mail-progress") == "Đã gửi 2/2", timeout=30)
    assert phone.evaluate("document.getElementById('mail-progress-bar').value") == 2
    assert {m["To"] for m in mail.wait_for(3)} >= {"hoa@example.vn", "binh@example.vn"}
    with database.connection_context():
        assert {d.mail_status for d in Delegate.select()} == {"sent"}
    _fits(phone, 360)
