"""The small things of issue 17 in a real browser (Debian's Chromium through Playwright) against central on a real
server: the organisation list says where invitations go (one rule, the one the sender uses), phones read
``0987 654 321``, a disabled "Gửi Mail" looks disabled, and adding a delegate does not jump to the top of the page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from central.outbound.sms import LogSender
from devtools import approval
from devtools.mailcatcher import MailCatcher

from ..conftest import CHROMIUM
from .staff import PASSWORD
from .test_browser import _api, _login, central  # noqa: F401 - the served central with three organisations

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


def test_organisations_show_where_invitations_go(central: tuple[str, LogSender], browser: Any,  # noqa: F811
                                                 mail: MailCatcher) -> None:
    url, _sms = central
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    _login(page, url, "admin")
    page.goto(f"{url}/admin/organisations")
    row = page.locator("tr", has_text="Sở Tài chính")
    assert "vp0@example.vn" in row.inner_text() and "0912 345 670" in row.inner_text()
    assert "+84" not in page.inner_text("main"), "phones in national format"
    page.get_by_role("link", name="Sở Tài chính").click()
    recipients = page.locator("#invitation-recipients")
    assert "vp0@example.vn" in recipients.inner_text() and "0912 345 670" in recipients.inner_text()
    assert page.get_by_label("Điện thoại lãnh đạo").input_value() == "0912 345 670"

    # Clear the office address: the list, the page and the mail all switch to the leader's address.
    page.get_by_label("Email lãnh đạo").fill("lanhdao.stc@example.vn")
    page.get_by_label("Email văn phòng").fill("")
    page.get_by_role("button", name="Lưu").click()
    assert "lanhdao.stc@example.vn" in page.locator("tr", has_text="Sở Tài chính").inner_text()
    assert page.locator("tr", has_text="Sở Tài chính").locator(".invitation-email").inner_text() == \
        "lanhdao.stc@example.vn"
    orgs = {o["name"]: o["id"] for o in _organisations(page, url)}
    meeting = _api(url, "/meetings", {"title": "Họp giao ban", "starts_at": "2026-12-01T01:00:00+00:00",
                                      "ends_at": "2026-12-01T03:00:00+00:00", "venue": "Hội trường", "site_id": "hq"})
    draft = _api(url, "/invitations", {"meeting_id": meeting["id"], "organisation_id": orgs["Sở Tài chính"]})
    approval.approve(approval.log_in(url, "lanhdao", PASSWORD), url, draft["id"])
    (message,) = mail.wait_for(1)
    assert message["To"] == "lanhdao.stc@example.vn", "the address shown is the address mailed"
    assert message["Date"] is not None


def _organisations(page: Any, url: str) -> list[dict[str, Any]]:
    links = page.locator("main table a")
    found = []
    for index in range(links.count()):
        href = links.nth(index).get_attribute("href") or ""
        match = re.search(r"/organisations/(\d+)$", href)
        if match:
            found.append({"name": links.nth(index).inner_text(), "id": int(match.group(1))})
    return found


def test_registration_keeps_its_place_and_shows_a_disabled_button(
        central: tuple[str, LogSender], browser: Any) -> None:  # noqa: F811
    url, sms = central
    meeting = _api(url, "/meetings", {"title": "Hội nghị chuyển đổi số", "starts_at": "2026-12-01T01:00:00+00:00",
                                      "ends_at": "2026-12-01T04:00:00+00:00", "venue": "Hội trường", "site_id": "hq"})
    draft = _api(url, "/invitations", {"meeting_id": meeting["id"], "organisation_id": 2, "delegate_limit": 5})
    approved = approval.approve(approval.log_in(url, "lanhdao", PASSWORD), url, draft["id"])
    link = approval.registration_link([text for _phone, text in sms.sent], approved["number"])
    page = browser.new_page(viewport={"width": 1100, "height": 700}, locale="vi-VN")
    register = f"{url}/dang-ky/{quote(link.number, safe='/')}?s={quote(link.secret, safe='')}"
    page.goto(register)

    send = page.locator("#send-mail")
    assert send.is_disabled() and send.get_attribute("aria-disabled") == "true"
    disabled_look = send.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).cursor]")
    assert disabled_look[1] == "not-allowed"

    for name, email, phone in (("Nguyễn Thị Hoà", "hoa@example.vn", "0987654321"),
                               ("Trần Văn Bình", "binh@example.vn", "+84 912 345 678")):
        page.get_by_label("Họ và tên").fill(name)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Số điện thoại").fill(phone)
        page.get_by_role("button", name="Thêm đại biểu").click()
        page.wait_for_url(re.compile(r".*#delegate-\d+$"))
        card = page.locator(page.url.rsplit("#", 1)[1].join(["#", ""]))
        assert name in card.inner_text()
        assert page.evaluate("window.scrollY") > 0, "the page kept its place instead of jumping to the top"
        box = card.bounding_box()
        assert box is not None and 0 <= box["y"] < 700, "the new delegate is in view"
    cards = page.locator("article.delegate")
    assert "0987 654 321" in cards.nth(0).inner_text() and "0912 345 678" in cards.nth(1).inner_text()
    assert "+84" not in page.inner_text("main")

    assert send.is_enabled() and send.get_attribute("aria-disabled") is None
    enabled_look = send.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).cursor]")
    assert enabled_look != disabled_look and enabled_look[1] == "pointer"

    page.goto(register + "&lang=en")
    assert page.get_by_role("heading", level=1).inner_text() == "Delegate registration"
    assert page.get_by_role("button", name=re.compile("Send e-mails")).is_visible()
