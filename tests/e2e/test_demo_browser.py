"""`make demo` used from its printed output alone, in Chromium: log in with a printed account, open the printed
live-attendance page, type the printed code on the demo's terminal, and see the delegate arrive on the dashboard;
then read the invitation and the QR in the printed demo mailbox, whose messages are also a Maildir on disk."""

from __future__ import annotations

import mailbox
import signal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import CHROMIUM, scaled
from tests.e2e.test_demo import launch

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]


def test_a_newcomer_follows_the_printed_steps_from_login_to_a_check_in_on_the_dashboard(
    tmp_path: Path, browser: Any
) -> None:
    process, terminal = launch(tmp_path / "demo")
    try:
        login_url, username, password = terminal.wait_for(
            r"1\. Mở (http://127\.0\.0\.1:\d+/login) và đăng nhập: (\S+) / (\S+)$", timeout=120).groups()
        dashboard = terminal.wait_for(r"2\. Mở trang điểm danh trực tiếp: (http://\S+)$").group(1)
        name, code = terminal.wait_for(r"3\. Gõ \(hoặc dán\) mã của (.+) vào cửa sổ này rồi Enter: (\S+)$").groups()
        mailbox_url = terminal.wait_for(r"4\. Thư mời và mã QR đã gửi: (http://\S+/)\.").group(1)
        maildir = Path(terminal.wait_for(r"\(Maildir: (\S+)\)").group(1))
        terminal.wait_for(r"Ctrl-C")
        # Every printed password passes the project's policy (the seeding would have failed otherwise), and
        # none is printed twice.
        accounts = [line.split() for line in terminal.lines if line.startswith("    ") and line.split()[0] in {
            "quantri", "chuyenvien", "lanhdao", "baove", "tochuc"}]
        assert sorted(a[0] for a in accounts) == ["baove", "chuyenvien", "lanhdao", "quantri", "tochuc"]
        assert len({a[1] for a in accounts}) == 5 and all(len(a[1]) >= 12 for a in accounts)

        page = browser.new_context(locale="vi-VN").new_page()
        page.goto(login_url)
        page.get_by_label("Tên đăng nhập").fill(username)
        page.get_by_label("Mật khẩu").fill(password)
        page.get_by_role("button", name="Đăng nhập").click()
        page.wait_for_url(lambda url: not url.endswith("/login"), timeout=scaled(20) * 1000)
        page.goto(dashboard)
        page.wait_for_selector("#dash-live[data-state='live']", timeout=scaled(20) * 1000)
        expect(page.locator("#dash-present")).to_have_text("0")
        expect(page.locator("#dash-venues")).to_contain_text("Hội trường tầng 2")

        before = terminal.type(code)
        terminal.wait_for(rf"MỞ CỬA / OPEN.*{name}", after=before, timeout=20)
        expect(page.locator("#dash-arrivals")).to_contain_text(name, timeout=scaled(20) * 1000)
        expect(page.locator("#dash-present")).to_have_text("1")

        # The caught mail: the list, the invitation, the delegate's code e-mail with its QR shown.
        page.goto(mailbox_url)
        expect(page.locator("h1")).to_have_text("Hộp thư demo")
        page.get_by_role("link", name="Thư mời số 1/GM-UBND: Họp giao ban UBND thành phố (mã ngắn)").click()
        expect(page.locator("#text-body")).to_contain_text("Quý đơn vị vui lòng đăng ký danh sách đại biểu")
        expect(page.locator("#parts")).to_contain_text("application/pdf")
        expect(page.locator("#text-body")).to_contain_text("Chương trình họp.pdf")  # the shared agenda's link
        page.goto(mailbox_url)
        page.get_by_role("link", name="Mã vào cổng: Họp giao ban UBND thành phố (mã ngắn)").click()
        expect(page.locator("#html-body")).to_be_visible()
        image = page.locator("#parts img").first
        expect(image).to_be_visible()
        assert image.evaluate("img => img.naturalWidth") > 50, "the QR image loads"
        assert len(list(mailbox.Maildir(str(maildir), create=False).keys())) >= 4

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=scaled(30)) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert len(list(mailbox.Maildir(str(maildir), create=False).keys())) >= 4, "the mail outlives the demo"
