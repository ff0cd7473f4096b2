"""Honest sending status: each channel of an invitation shows its own state and, when it failed, why in
Vietnamese; the invitation is "Đã gửi" once any channel delivered; a permanent error (a landline, an address the
mail server refuses) is not retried and says what to fix; "Gửi lại" reports what really happened."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database
from central.invitations.models import Delivery, Invitation
from central.outbound.engine import JobFailedError
from central.outbound.failures import phone_problem, sms_failure
from central.outbound.mail import SmtpMailSender
from central.outbound.models import MailJob
from central.outbound.sms import SmsError, SmsResult
from devtools.mailcatcher import MailCatcher

from .conftest import Clock, refusing_mail_server
from .staff import login, make_users, page_token, post_form, setup_meeting


@pytest.fixture
def world(app: Flask, client: FlaskClient, clock: Clock) -> dict[str, Any]:
    """Accounts, venues, two organisations and a meeting."""
    make_users(clock())
    return setup_meeting(app, client)


def _draft(client: FlaskClient, world: dict[str, Any]) -> int:
    login(client, "chuyenvien")
    url = f"/meetings/{world['meeting']}"
    post_form(client, url, f"{url}/invitations", {"organisation_ids": [str(world["orgs"][0])]})
    (invitation_id,) = [int(x) for x in re.findall(r'href="/invitations/(\d+)"', client.get(url).text)]
    client.post("/logout", data={"csrf_token": page_token(client)})
    return invitation_id


def _set_phone(app: Flask, org: int, phone: str) -> None:
    """The administrator changes the organisation's leader's phone (its own session, as on the admin pages)."""
    admin = app.test_client()
    login(admin, "admin")
    token = page_token(admin, "/admin/organisations")
    answer = admin.patch(f"/api/v1/organisations/{org}", json={"leader_phone": phone}, headers={"X-CSRFToken": token})
    assert answer.status_code == 200, answer.get_json()


def _rows(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-channel="(\w+)">(.*?)</tr>', page, re.S))


def _status(page: str) -> str:
    return re.search(r'id="invitation-status">([^<]+)<', page).group(1)


def _flashes(page: str) -> list[str]:
    return re.findall(r'<p class="flash flash-(\w+)">([^<]+)</p>', page)


def _resend(client: FlaskClient, invitation_id: int, channel: str) -> Any:
    with database.connection_context():
        row = Delivery.get((Delivery.invitation == invitation_id) & (Delivery.channel == channel))
    url = f"/invitations/{invitation_id}"
    post_form(client, url, f"{url}/deliveries/{row.id}/resend", {})
    return client.get(url).text


def test_a_landline_fails_for_good_in_vietnamese_and_resend_after_the_fix_reports_success(
    app: Flask, client: FlaskClient, world: dict[str, Any], mail: MailCatcher
) -> None:
    org = world["orgs"][0]
    _set_phone(app, org, "024 3825 1234")
    invitation_id = _draft(client, world)
    login(client, "lanhdao")
    post_form(client, f"/invitations/{invitation_id}", f"/invitations/{invitation_id}/approve", {})

    page = client.get(f"/invitations/{invitation_id}").text
    rows = _rows(page)
    assert "Đã gửi" in rows["email"]
    assert "Gửi lỗi" in rows["sms"]
    assert "là số máy bàn (cố định), không nhận được tin nhắn SMS" in rows["sms"]
    assert "Hãy sửa số di động của đơn vị rồi bấm “Gửi lại”" in rows["sms"]
    assert "invalid_phone" not in page and "not a Vietnamese" not in page
    assert "Thử lại lúc" not in rows["sms"], "a landline stays a landline: not retried"
    assert _status(page) == "Đã gửi", "the e-mail went: the invitation reached the organisation"
    with database.connection_context():
        sms_row = Delivery.get((Delivery.invitation == invitation_id) & (Delivery.channel == "sms"))
        assert (sms_row.attempts, sms_row.next_attempt_at) == (1, None)
        job = MailJob.get((MailJob.kind == "invitation_sms") & (MailJob.ref_id == sms_row.id))
        assert job.status == "failed"
        assert Invitation.get_by_id(invitation_id).status == "sent"
    assert app.extensions["vaora"].sms_sender.sent == []

    # The office corrects the number; "Gửi lại" sends to it and says so.
    _set_phone(app, org, "0987 111 222")
    page = _resend(client, invitation_id, "sms")
    assert ("success", "Đã gửi lại thành công qua SMS tới ********222.") in _flashes(page)
    assert "Đã gửi" in _rows(page)["sms"]
    ((phone, text),) = app.extensions["vaora"].sms_sender.sent
    assert phone == "+84987111222" and "/dk/" in text


def test_a_refused_address_says_what_to_fix_and_a_failed_resend_says_it_failed(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    invitation_id = _draft(client, world)
    with refusing_mail_server(app):
        login(client, "lanhdao")
        post_form(client, f"/invitations/{invitation_id}", f"/invitations/{invitation_id}/approve", {})
        page = client.get(f"/invitations/{invitation_id}").text
        email = _rows(page)["email"]
        assert "Máy chủ thư từ chối địa chỉ v***@example.vn (550 5.1.1 mailbox unavailable)" in email
        assert "Hãy kiểm tra, sửa địa chỉ e-mail của đơn vị rồi bấm “Gửi lại”." in email
        assert "Thử lại lúc" not in email
        assert _status(page) == "Đã gửi" and "Đã gửi" in _rows(page)["sms"]

        page = _resend(client, invitation_id, "email")
        ((category, message),) = _flashes(page)
        assert category == "error"
        assert message.startswith("Gửi lại qua e-mail tới v***@example.vn không thành công: Máy chủ thư từ chối")
        assert "Đã gửi lại." not in page

    # With the mail server accepting again, "Gửi lại" reports the success.
    with MailCatcher() as good:
        app.extensions["vaora"].mail_sender = SmtpMailSender(good.host, good.port)
        page = _resend(client, invitation_id, "email")
        assert ("success", "Đã gửi lại thành công qua e-mail tới v***@example.vn.") in _flashes(page)
        good.wait_for(1)


def test_with_every_channel_failing_the_invitation_stays_approved(
    app: Flask, client: FlaskClient, world: dict[str, Any], mail: MailCatcher
) -> None:
    _set_phone(app, world["orgs"][0], "0236 3821 234")
    invitation_id = _draft(client, world)
    mail.stop()
    login(client, "lanhdao")
    post_form(client, f"/invitations/{invitation_id}", f"/invitations/{invitation_id}/approve", {})
    page = client.get(f"/invitations/{invitation_id}").text
    assert _status(page) == "Đã duyệt"
    rows = _rows(page)
    assert "Không kết nối được máy chủ thư" in rows["email"] and "Hệ thống sẽ tự gửi lại" in rows["email"]
    assert "Thử lại lúc" in rows["email"], "a server that is down is tried again"
    assert "là số máy bàn" in rows["sms"] and "Thử lại lúc" not in rows["sms"]


@pytest.mark.parametrize(("phone", "says"), [
    ("+842438251234", "là số máy bàn (cố định)"),
    ("024 3825 1234", "là số máy bàn (cố định)"),
    ("091234567", "thiếu chữ số"),
    ("091234567890", "thừa chữ số"),
    ("0112345678", "không phải số di động Việt Nam"),
    ("", "Chưa có số điện thoại"),
])
def test_why_a_number_is_not_a_mobile_one(phone: str, says: str) -> None:
    assert says in phone_problem(phone)


def test_only_what_another_try_cannot_cure_is_permanent() -> None:
    invalid = sms_failure(SmsResult.failed(SmsError.INVALID_PHONE, "not a Vietnamese mobile number"), "0243825123")
    assert isinstance(invalid, JobFailedError) and invalid.permanent
    assert "not a Vietnamese" not in str(invalid)
    for error in (SmsError.TIMEOUT, SmsError.CONNECTION_FAILED, SmsError.HTTP_STATUS, SmsError.MODEM_ERROR):
        failed = sms_failure(SmsResult.failed(error, "HTTP 503"), "0912345678")
        assert not failed.permanent and str(failed).endswith("Hệ thống sẽ tự gửi lại."), error
