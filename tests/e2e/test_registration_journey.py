"""A registrar on a phone registers three delegates, sends their codes, and replaces one; the gate refuses the
replaced person's code and admits the new one.

Real parts: central's web server (with its mail worker) and ingest worker as processes, Mosquitto, an SMTP
server, Debian's Chromium driven by Playwright at a 360x740 viewport, and an in-process gate on simulated
pins whose serial scanner is a pseudo-terminal. With ``VAORA_SCREENSHOTS=1`` the page is saved to
``docs/screenshots/registration-phone.png``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from devtools.mailcatcher import MailCatcher
from protocols.reasons import Reason

from ..conftest import CHROMIUM, scaled
from .conftest import Central, invite, open_page, qr_text_of, scan

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "registration-phone.png"


@pytest.fixture
def phone(browser: Any) -> Any:
    """A Chromium page with a 360x740 phone viewport, Vietnamese locale."""
    return open_page(browser, viewport={"width": 360, "height": 740}, device_scale_factor=2, is_mobile=True,
                     has_touch=True)


def registration_link(central: Central) -> str:
    """The office creates a meeting and an invitation, the leader approves it; returns the link the organisation
    received (its letter is then cleared from the mail catcher, which from here on holds delegates' codes only)."""
    link = invite(central, "Hội nghị triển khai nhiệm vụ năm 2025", "Sở Kế hoạch và Đầu tư")["registration_url"]
    assert central.mail is not None
    central.mail.clear()
    return link


def fill_delegate(page, name: str, position: str, email: str, phone_number: str) -> None:
    page.get_by_label("Họ và tên").fill(name)
    page.get_by_label("Chức vụ").fill(position)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Số điện thoại").fill(phone_number)


def codes_by_recipient(messages) -> dict[str, str]:
    return {str(message["To"]): qr_text_of(message) for message in messages}


PEOPLE = [
    ("Nguyễn Thị Hoà", "Phó Giám đốc", "hoa.nguyen@skhdt.example.vn", "0912345678"),
    ("Trần Văn Bình", "Trưởng phòng", "binh.tran@skhdt.example.vn", "0987654321"),
    ("Lê Minh Châu", "Chuyên viên", "chau.le@skhdt.example.vn", "0901234567"),
]


def test_registrar_registers_sends_and_replaces_on_a_phone(
    central: Central, mail: MailCatcher, scanner_pty, lobby_gate, phone
) -> None:
    expect = playwright_sync.expect
    page = phone
    page.goto(registration_link(central))
    expect(page.get_by_role("heading", name="Đăng ký đại biểu")).to_be_visible()
    expect(page.get_by_text("Sở Kế hoạch và Đầu tư")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, "no sideways scrolling on a phone"

    for person in PEOPLE:
        fill_delegate(page, *person)
        page.get_by_role("button", name="Thêm đại biểu").click()
        expect(page.get_by_text(f"Đã thêm đại biểu {person[0]}.")).to_be_visible()
    expect(page.locator("article.delegate")).to_have_count(3)

    page.get_by_role("button", name="Gửi Mail (3)").click()
    expect(page.locator("#mail-progress")).to_have_text("Đã gửi 3/3", timeout=scaled(30) * 1000)
    expect(page.locator(".mail-status[data-status=sent]")).to_have_count(3)
    messages = mail.wait_for(3, timeout=30)
    codes = codes_by_recipient(messages)
    assert set(codes) == {person[2] for person in PEOPLE}
    for message in messages:
        types = [part.get_content_type() for part in message.iter_attachments()]
        assert types == ["application/pdf", "text/calendar"]
    if os.environ.get("VAORA_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    master, _ = scanner_pty
    gate, _factory = lobby_gate()
    old_code = codes["binh.tran@skhdt.example.vn"]
    binh = page.locator("article.delegate", has_text="Trần Văn Bình")
    binh.get_by_role("link", name="Thay người").click()
    expect(
        page.get_by_role("heading", name="Thay đại biểu Trần Văn Bình bằng người khác")
    ).to_be_visible()
    fill_delegate(page, "Phạm Quốc Dũng", "Trưởng phòng", "dung.pham@skhdt.example.vn", "0933333333")
    page.get_by_role("button", name="Thay người").click()
    expect(page.get_by_text("Đã thay bằng đại biểu Phạm Quốc Dũng")).to_be_visible()
    expect(page.locator("article.delegate", has_text="Trần Văn Bình")).to_have_count(0)
    expect(page.locator("article.delegate", has_text="Phạm Quốc Dũng")).to_have_count(1)

    after_replacing = mail.wait_for(5, timeout=30)[3:]  # the new delegate's code, the old one's notice: any order
    new_message = next(m for m in after_replacing if m["To"] == "dung.pham@skhdt.example.vn")
    notice = next(m for m in after_replacing if m["To"] == "binh.tran@skhdt.example.vn")
    assert str(notice["Subject"]).startswith("Mã vào cổng không còn hiệu lực"), "the replaced delegate is told"
    new_code = qr_text_of(new_message)
    assert new_code != old_code

    assert gate.refresh_snapshot(), "the gate reloaded its snapshot after the replacement"
    refused = scan(gate, master, old_code, before=0)
    assert not refused.allowed
    assert refused.reason is Reason.REVOKED
    admitted = scan(gate, master, new_code, before=1)
    assert admitted.allowed, admitted.reason
    kept = scan(gate, master, codes["hoa.nguyen@skhdt.example.vn"], before=2)
    assert kept.allowed, "the other delegates' codes still work"
