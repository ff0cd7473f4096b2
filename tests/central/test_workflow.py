"""The invitation workflow as organiser and approver do it: draft, approve (numbered, e-mailed with a PDF,
sent by SMS), return with a comment, resubmit; failed deliveries retried with backoff and "Gửi lại";
meeting states, cancelling and rescheduling with their effects on delegates' codes."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database
from central.core.models import AuditEntry, Change
from central.invitations import deliveries
from central.invitations.models import Delivery, Invitation
from central.outbound.engine import OutboundWorker, Senders
from central.outbound.mail import SmtpMailSender
from central.outbound.models import MailJob
from central.outbound.sms import LogSender
from central.outbound.worker import enqueue_message
from central.registration.models import Delegate
from devtools.mailcatcher import MailCatcher

from .conftest import AUTH, Api, Clock, refusing_mail_server
from .staff import login, make_users, page_token, post_form, setup_meeting

TITLE = "Hội nghị tổng kết công tác năm 2025 và triển khai nhiệm vụ năm 2026 của Ủy ban nhân dân tỉnh"


@pytest.fixture
def world(app: Flask, client: FlaskClient, clock: Clock) -> dict[str, Any]:
    """Accounts, venues, two organisations and a meeting."""
    make_users(clock())
    return setup_meeting(app, client, title=TITLE)


def _sms(app: Flask) -> LogSender:
    return app.extensions["vaora"].sms_sender


def _draft_two(client: FlaskClient, world: dict[str, Any]) -> list[int]:
    login(client, "chuyenvien")
    meeting_url = f"/meetings/{world['meeting']}"
    response = post_form(client, meeting_url, f"{meeting_url}/invitations",
                         {"organisation_ids": [str(i) for i in world["orgs"]], "delegate_limit": "3"})
    assert response.status_code == 302
    page = client.get(meeting_url).text
    assert "Đã soạn 2 thư mời, chờ lãnh đạo duyệt." in page
    ids = [int(x) for x in re.findall(r'href="/invitations/(\d+)"', page)]
    assert len(ids) == 2
    client.post("/logout", data={"csrf_token": page_token(client)})
    return sorted(ids)


def _approve_with_mail_down(client: FlaskClient, world: dict[str, Any], mail: MailCatcher) -> int:
    """Draft two invitations and approve the first while the SMTP server is down; returns its id."""
    first, _ = _draft_two(client, world)
    mail.stop()
    login(client, "lanhdao")
    post_form(client, f"/invitations/{first}", f"/invitations/{first}/approve", {})
    return first


def _pdf_text(message: EmailMessage, tmp_path: Path) -> str:
    attachments = [part for part in message.iter_attachments() if part.get_content_type() == "application/pdf"]
    assert len(attachments) == 1
    path = tmp_path / attachments[0].get_filename()
    path.write_bytes(attachments[0].get_content())
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def test_organiser_drafts_approver_approves_and_returns(
    app: Flask, client: FlaskClient, world: dict[str, Any], mail: MailCatcher, tmp_path: Path
) -> None:
    first, second = _draft_two(client, world)
    mail.clear()
    login(client, "lanhdao")
    queue = client.get("/invitations/?status=draft").text
    assert "Sở Tài chính" in queue and "Sở Xây dựng" in queue

    response = post_form(client, f"/invitations/{first}", f"/invitations/{first}/approve", {})
    assert response.status_code == 302
    page = client.get(f"/invitations/{first}").text
    assert "Thư mời số 1/GM-UBND" in page
    rows = re.findall(r'<tr data-channel="(\w+)">(.*?)</tr>', page, re.S)
    assert {channel for channel, _ in rows} == {"email", "sms"}
    assert all("Đã gửi" in row for _, row in rows)

    (message,) = mail.wait_for(1)
    assert message["To"] == "vanphong0@example.vn"
    assert message["Subject"] == f"Thư mời số 1/GM-UBND: {TITLE}"
    html = message.get_body(("html",)).get_content()
    assert "https://vaora.example.vn/registration/1/GM-UBND?secret=" in html
    text = " ".join(_pdf_text(message, tmp_path).split())
    assert "GIẤY MỜI" in text and "Số: 1/GM-UBND" in text
    assert "Hội nghị tổng kết công tác năm 2025" in text and "Ủy ban nhân dân tỉnh" in text
    assert "Điểm cầu huyện Sơn Tịnh" in text

    ((phone, sms),) = _sms(app).sent
    assert phone == "+84912345678"
    assert sms.isascii() and len(sms) <= 160
    assert "So 1/GM-UBND" in sms and re.search(r"https://vaora\.example\.vn/dk/[A-Za-z0-9]{8}$", sms)

    # Returning needs a comment, in Vietnamese; nothing changes without one.
    empty = post_form(client, f"/invitations/{second}", f"/invitations/{second}/return", {"comment": "  "})
    assert empty.status_code == 400 and "Không được để trống" in empty.text
    assert "Dự thảo" in client.get(f"/invitations/{second}").text
    post_form(client, f"/invitations/{second}", f"/invitations/{second}/return",
              {"comment": "Đề nghị bớt số đại biểu còn 2"})
    page = client.get(f"/invitations/{second}").text
    assert "Bị trả lại" in page and "Đề nghị bớt số đại biểu còn 2" in page
    # An approver cannot resubmit; the organiser can.
    assert post_form(client, f"/invitations/{second}", f"/invitations/{second}/resubmit",
                     {"delegate_limit": "2"}).status_code == 403
    client.post("/logout", data={"csrf_token": page_token(client)})
    login(client, "chuyenvien")
    assert post_form(client, f"/invitations/{first}", f"/invitations/{first}/approve", {}).status_code == 403
    post_form(client, f"/invitations/{second}", f"/invitations/{second}/resubmit", {"delegate_limit": "2"})
    with database.connection_context():
        row = Invitation.get_by_id(second)
        assert (row.status, row.delegate_limit, row.number) == ("draft", 2, None)
        approved = Invitation.get_by_id(first)
        assert approved.status == "sent"
        assert all(d.link is None for d in approved.deliveries)  # the secret link is forgotten once sent
        actions = [e.action for e in AuditEntry.select().order_by(AuditEntry.id)]
    for action in ("invitation.draft", "invitation.approve", "delivery.sent", "invitation.return",
                   "invitation.resubmit"):
        assert action in actions


def test_failed_delivery_is_retried_with_backoff_then_resent(
    app: Flask, client: FlaskClient, world: dict[str, Any], mail: MailCatcher, clock: Clock
) -> None:
    first = _approve_with_mail_down(client, world, mail)
    page = client.get(f"/invitations/{first}").text
    email_row = re.search(r'<tr data-channel="email">(.*?)</tr>', page, re.S).group(1)
    assert "Gửi lỗi" in email_row and "Gửi lại" in email_row
    assert "Không kết nối được máy chủ thư (ConnectionRefusedError)" in email_row
    assert "Hệ thống sẽ tự gửi lại" in email_row and "Thử lại lúc" in email_row
    channels = delivery_channels_outside(app)
    with database.connection_context():
        row = Delivery.get((Delivery.invitation == first) & (Delivery.channel == "email"))
        assert (row.status, row.attempts) == ("failed", 1)
        assert row.next_attempt_at == clock() + timedelta(minutes=1)
        assert Invitation.get_by_id(first).status == "sent"  # its SMS went: "Đã gửi", the e-mail row says why not
        assert deliveries.deliver_due(channels, now=clock()) == 0  # not due yet
        clock.now += timedelta(minutes=1)
        assert deliveries.deliver_due(channels, now=clock()) == 1
        row = Delivery.get_by_id(row.id)
        assert row.attempts == 2 and row.next_attempt_at == clock() + timedelta(minutes=2)
        for _ in range(3):
            clock.now = row.next_attempt_at
            deliveries.deliver_due(channels, now=clock())
            row = Delivery.get_by_id(row.id)
        assert (row.attempts, row.next_attempt_at) == (5, None)  # given up: waits for a person

    with MailCatcher() as again:
        app.extensions["vaora"].mail_sender = SmtpMailSender(again.host, again.port)
        delivery_id = row.id
        post_form(client, f"/invitations/{first}", f"/invitations/{first}/deliveries/{delivery_id}/resend", {})
        (message,) = again.wait_for(1)
        assert "1/GM-UBND" in message["Subject"]
    page = client.get(f"/invitations/{first}").text
    assert "Gửi lại" not in page
    with database.connection_context():
        assert Invitation.get_by_id(first).status == "sent"
        assert Delivery.get_by_id(delivery_id).attempts == 6


def test_invitations_and_other_mail_go_through_one_outbound_queue(
    app: Flask, client: FlaskClient, world: dict[str, Any], mail: MailCatcher, clock: Clock
) -> None:
    first = _approve_with_mail_down(client, world, mail)
    with database.connection_context():
        rows = {d.id: d for d in Delivery.select().where(Delivery.invitation == first)}
        jobs = list(MailJob.select().where(MailJob.kind.in_(deliveries.KINDS)))
        # Each delivery row is one job of the outbound queue, its subject the row (the link stays on the row).
        assert sorted((job.kind, job.ref_id) for job in jobs) == sorted(
            (f"invitation_{row.channel}", row.id) for row in rows.values()
        )
        assert all(job.message is None for job in jobs)
        by_channel = {rows[job.ref_id].channel: job for job in jobs}
        assert (by_channel["sms"].status, by_channel["email"].status) == ("sent", "queued")
        assert by_channel["email"].next_attempt_at == clock() + timedelta(minutes=1)
        note = EmailMessage()
        note["From"], note["To"], note["Subject"] = "vanphong@ubnd.example.vn", "vanthu@example.vn", "Nhắc họp"
        note.set_content("Kính gửi")
        enqueue_message(note, clock())

    # One worker (the app's thread, ``vaora-central deliver``, ``python -m central.outbound``) sends every kind.
    mail.start()
    clock.now += timedelta(minutes=1)
    context = app.extensions["vaora"]
    worker = OutboundWorker(
        senders=Senders(mail=SmtpMailSender(mail.host, mail.port), mail_from=context.config.mail_from,
                        sms=context.sms_sender, pdf_font=context.config.pdf_font),
        clock=clock,
    )
    with database.connection_context():
        assert worker.run_once() == 2
        assert sorted(str(m["To"]) for m in mail.wait_for(2)) == ["vanphong0@example.vn", "vanthu@example.vn"]
        email_row = Delivery.get((Delivery.invitation == first) & (Delivery.channel == "email"))
        assert (email_row.status, email_row.attempts, email_row.link) == ("sent", 2, None)
        assert Invitation.get_by_id(first).status == "sent"
        assert worker.run_once() == 0, "nothing is sent twice"


def test_a_refused_invitation_mail_is_not_retried(
    app: Flask, client: FlaskClient, world: dict[str, Any], clock: Clock
) -> None:
    first, _ = _draft_two(client, world)
    with refusing_mail_server(app):
        login(client, "lanhdao")
        post_form(client, f"/invitations/{first}", f"/invitations/{first}/approve", {})
    page = client.get(f"/invitations/{first}").text
    email_row = re.search(r'<tr data-channel="email">(.*?)</tr>', page, re.S).group(1)
    assert "Máy chủ thư từ chối địa chỉ v***@example.vn (550 5.1.1 mailbox unavailable)" in email_row
    assert "sửa địa chỉ e-mail của đơn vị" in email_row and "Gửi lại" in email_row
    assert "Thử lại lúc" not in email_row, "a refusal for good is not scheduled again"
    with database.connection_context():
        row = Delivery.get((Delivery.invitation == first) & (Delivery.channel == "email"))
        assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 1, None)
        job = MailJob.get((MailJob.kind == "invitation_email") & (MailJob.ref_id == row.id))
        assert job.status == "failed"


def delivery_channels_outside(app: Flask) -> Senders:
    """The app's senders, for calling the worker's function directly."""
    with app.test_request_context():
        return deliveries.current_senders()


def test_api_covers_the_flow_with_token_and_session(
    app: Flask, client: FlaskClient, world: dict[str, Any], mail: MailCatcher
) -> None:
    drafted = client.post("/api/v1/invitations/drafts", headers=AUTH,
                          json={"meeting_id": world["meeting"], "organisation_ids": world["orgs"]})
    assert drafted.status_code == 201
    ids = [d["id"] for d in drafted.get_json()]
    again = client.post("/api/v1/invitations/drafts", headers=AUTH,
                        json={"meeting_id": world["meeting"], "organisation_ids": world["orgs"][:1]})
    assert again.status_code == 409 and "Đã có thư mời cho" in again.get_json()["fields"]["organisation_ids"]
    assert again.get_json()["error"] == "conflict" and again.get_json()["reason"] == "duplicate"

    login(client, "lanhdao")
    token = {"X-CSRFToken": page_token(client, "/invitations/")}
    approved = client.post(f"/api/v1/invitations/{ids[0]}/approve", headers=token)
    assert approved.status_code == 200, approved.get_json()
    body = approved.get_json()
    assert body["number"] == "1/GM-UBND" and body["status"] == "sent"
    assert {d["channel"]: d["status"] for d in body["deliveries"]} == {"email": "sent", "sms": "sent"}
    assert "secret" not in str(body) and body["deliveries"][0]["recipient"] != "vanphong0@example.vn"
    twice = client.post(f"/api/v1/invitations/{ids[0]}/approve", headers=token)
    assert twice.status_code == 409
    returned = client.post(f"/api/v1/invitations/{ids[1]}/return", json={"comment": "Sai đơn vị"}, headers=token)
    assert returned.get_json()["status"] == "returned"
    assert client.get(f"/api/v1/invitations/{ids[1]}").get_json()["comment"] == "Sai đơn vị"


def test_meeting_states_cancel_and_reschedule(
    app: Flask, client: FlaskClient, world: dict[str, Any], mail: MailCatcher, clock: Clock
) -> None:
    meeting = world["meeting"]
    invitation = Api(client, mail).invitation(meeting, world["orgs"][0])
    mail.clear()  # the invitation's own e-mail
    registered = client.post(
        f"/api/v1/invitations/{invitation['number']}/delegates",
        json={"name": "Nguyễn Văn An", "position": "Phó Giám đốc", "email": "an@example.vn"},
        headers={"X-Invitation-Secret": invitation["secret"]},
    )
    assert registered.status_code == 201
    mail.wait_for(1)
    mail.clear()
    with database.connection_context():
        old_code = Delegate.get().code

    # The meeting has a remote point: moved on Saturday to Tuesday is under 3 working days ahead; Wednesday is not.
    too_soon = client.patch(f"/api/v1/meetings/{meeting}", headers=AUTH,
                            json={"starts_at": "2025-03-11T08:00:00+07:00", "ends_at": "2025-03-11T11:00:00+07:00"})
    assert too_soon.status_code == 409 and too_soon.get_json()["reason"] == "booking_too_late"
    moved = client.patch(f"/api/v1/meetings/{meeting}", headers=AUTH,
                         json={"starts_at": "2025-03-12T08:00:00+07:00", "ends_at": "2025-03-12T11:00:00+07:00"})
    assert moved.status_code == 200, moved.get_json()
    (notice,) = mail.wait_for(1)
    with database.connection_context():
        delegate = Delegate.get()
        assert delegate.code != old_code
        assert delegate.valid_until.isoformat() == "2025-03-12T04:30:00+00:00"  # the new end plus the grace
        assert Change.select().order_by(Change.seq.desc()).get().kind == "delegate_upsert"
    assert "12/03/2025" in notice.get_body(("plain",)).get_content()
    mail.clear()

    bad = client.post(f"/api/v1/meetings/{meeting}/status", headers=AUTH, json={"status": "held"})
    assert bad.status_code == 409 and "Không thể chuyển" in bad.get_json()["message"]
    cancelled = client.post(f"/api/v1/meetings/{meeting}/status", headers=AUTH, json={"status": "cancelled"})
    assert cancelled.get_json()["status"] == "cancelled"
    (notice,) = mail.wait_for(1)
    assert notice["Subject"].startswith("Hủy cuộc họp")
    with database.connection_context():
        assert Delegate.get().revoked_at == clock()
        kinds = [c.kind for c in Change.select().order_by(Change.seq).limit(2).offset(Change.select().count() - 2)]
        assert kinds == ["meeting_upsert", "delegate_revoke"]  # the gates hear of the cancellation first
    edit = client.patch(f"/api/v1/meetings/{meeting}", headers=AUTH, json={"title": "Mới"})
    assert edit.status_code == 409


def test_deliver_cli_retries_what_failed(
    app: Flask, client: FlaskClient, world: dict[str, Any], mail: MailCatcher, central_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from central.cli import main

    first = _approve_with_mail_down(client, world, mail)
    with MailCatcher() as again:
        for name in ("VAORA_DATABASE_URL", "VAORA_MAIL_FROM", "VAORA_PUBLIC_URL"):
            monkeypatch.setenv(name, str(central_config[name]))
        monkeypatch.setenv("VAORA_SMTP_HOST", again.host)
        monkeypatch.setenv("VAORA_SMTP_PORT", str(again.port))
        assert main(["deliver", "--once"]) == 0  # the failed row was due a minute after the (2025) approval
        assert "attempted 1 deliveries" in capsys.readouterr().out
        (message,) = again.wait_for(1)
        assert message["To"] == "vanphong0@example.vn"
    with database.connection_context():
        assert Invitation.get_by_id(first).status == "sent"
