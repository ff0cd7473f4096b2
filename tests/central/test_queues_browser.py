"""The office's queues in a real browser (Debian's Chromium through Playwright) against central served by a werkzeug
server: the leader lands on the invitations awaiting approval, ticks "Chọn tất cả" and approves them at once; the
registrations of a meeting that asks for the office's approval wait on "Đăng ký chờ duyệt", where one is approved
(its code is mailed) and one refused with a reason; the menu's counts follow; the page fits a 360 px phone.

``VAORA_SCREENSHOTS=1`` saves the two queues to ``docs/screenshots/central-*.png``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from devtools.mailcatcher import MailCatcher

from ..conftest import CHROMIUM, ThreadedServer
from .conftest import Api
from .staff import PASSWORD
from .test_browser import _shot
from .test_queues import AN, BINH, staff  # noqa: F401 - the accounts fixture

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
    pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True),
]


def _login(page: Any, url: str, username: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()


def test_the_leader_approves_in_bulk_and_the_office_approves_registrations(
    app: Flask, api: Api, browser: Any, mail: MailCatcher, staff: None  # noqa: F811 - the fixture imported above
) -> None:
    meeting = api.meeting(registration_approval=True, title="Hội nghị triển khai nhiệm vụ năm 2027")
    organisations = [api.organisation(name)["id"] for name in ("Sở Tài chính", "Sở Y tế")]
    for organisation in organisations:
        api.draft(meeting["id"], organisation)

    with ThreadedServer(app) as server:
        url = server.url
        page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="vi-VN")
        _login(page, url, "lanhdao")
        page.wait_for_url(re.compile(r".*/invitations/cho-duyet$"))
        assert page.locator("#nav-inbox .nav-count").inner_text() == "2"
        assert page.locator("#waiting tbody tr").count() == 2
        _shot(page, "approval-inbox")
        page.get_by_label("Chọn tất cả").check()
        assert page.locator("#waiting input[name=chon]:checked").count() == 2
        page.get_by_role("button", name="Duyệt và gửi các thư mời đã chọn").click()
        page.wait_for_selector("#inbox-empty")
        assert "Đã duyệt 2 thư mời" in page.inner_text("main")
        assert page.locator("#nav-inbox .nav-count").count() == 0

        # The organisations register; the meeting asks for the office's approval, so nobody gets a code yet.
        numbers = [row["number"] for row in api.get("/api/v1/invitations").get_json() if row["number"]]
        assert len(numbers) == 2
        for number, person in zip(sorted(numbers), (AN, BINH), strict=True):
            invitation = {"number": number, "secret": api.received_link(number).secret}
            response = api.register(invitation, **person)
            assert response.status_code == 201 and response.get_json()["approval"] == "pending"
        assert not [m for m in mail.messages if m["To"] in (AN["email"], BINH["email"])]

        page.reload()
        assert page.locator("#nav-registrations .nav-count").inner_text() == "2"
        page.locator("#nav-registrations").click()
        page.wait_for_url(re.compile(r".*/invitations/dang-ky-cho-duyet$"))
        assert page.locator(".pending-registrations tbody tr").count() == 2
        _shot(page, "registrations-waiting")
        page.get_by_label(f"Chọn {AN['name']}").check()
        page.get_by_role("button", name="Duyệt các đại biểu đã chọn").click()
        page.wait_for_load_state()
        assert "Đã duyệt 1 đại biểu" in page.inner_text("main")
        row = page.locator(".pending-registrations tbody tr", has_text=BINH["name"])
        row.get_by_label("Lý do từ chối").fill("Đề nghị cử lãnh đạo Sở")
        row.get_by_role("button", name="Từ chối").click()
        page.wait_for_selector("#registrations-empty")
        assert f"Đã từ chối đăng ký của {BINH['name']}." in page.inner_text("main")
        assert page.locator("#nav-registrations .nav-count").count() == 0

        (code_mail,) = [m for m in mail.wait_for(1) if m["To"] == AN["email"]]
        assert str(code_mail["Subject"]).startswith("Mã vào cổng:")
        assert not [m for m in mail.messages if m["To"] == BINH["email"]]

        phone = browser.new_page(viewport={"width": 360, "height": 740})
        _login(phone, url, "chuyenvien")
        for path in ("/invitations/dang-ky-cho-duyet", "/invitations/"):
            phone.goto(f"{url}{path}")
            assert phone.evaluate("document.documentElement.scrollWidth") <= 360, path
