"""Delegate registration through the API: codes in both schemes, the e-mail with its QR, and refusals."""

from __future__ import annotations

import io
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import segno
import zxingcpp
from PIL import Image

from central.core.db import database
from central.meetings.models import Meeting
from central.registration.models import Delegate
from devtools.mailcatcher import MailCatcher
from protocols.codes import (
    Scheme,
    check_compact,
    compact_hash,
    format_compact,
    public_key_from_text,
    short_public_key_from_text,
    signed_version,
    verify_signed,
)
from protocols.reasons import Reason

from .conftest import START, Api


def _qr_texts(message: EmailMessage) -> list[str]:
    images = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1, "exactly one inline PNG"
    image = Image.open(io.BytesIO(images[0].get_payload(decode=True)))
    return [result.text for result in zxingcpp.read_barcodes(image)]


def _parts(message: EmailMessage) -> tuple[str, str, EmailMessage]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    image = next(part for part in message.walk() if part.get_content_type() == "image/png")
    return text, html, image


def _delegate_row(delegate_id: int) -> Delegate:
    with database.connection_context():
        return Delegate.get_by_id(delegate_id)


def test_compact_registration_mails_a_code_whose_qr_decodes(api: Api, mail: MailCatcher) -> None:
    invitation = api.invitation()
    response = api.register(invitation, phone="091 234 5678")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["mail_status"] == "sent"
    assert body["phone"] == "+84912345678"
    assert "code" not in body and "code_hash" not in body

    row = _delegate_row(body["id"])
    assert check_compact(row.code) is Reason.OK
    assert row.code_hash == compact_hash(row.code)

    [message] = mail.wait_for(1)
    assert message["To"] == "an.nguyen@example.vn"
    assert "Họp giao ban tháng 3" in message["Subject"]
    text, html, image = _parts(message)
    assert format_compact(row.code) in text
    assert "Nguyễn Văn An" in text and invitation["number"] in text
    assert f'cid:{image["Content-ID"].strip("<>")}' in html
    assert _qr_texts(message) == [row.code]


def test_signed_code_verifies_against_the_snapshot_key(api: Api, mail: MailCatcher, client: Any) -> None:
    meeting = api.meeting(scheme="signed")
    invitation = api.invitation(meeting_id=meeting["id"])
    response = api.register(invitation)
    assert response.status_code == 201, response.get_json()
    delegate_id = response.get_json()["id"]
    row = _delegate_row(delegate_id)
    assert row.code_hash is None

    token = api.gate()
    headers = {"Authorization": f"Bearer {token}"}
    snapshot = client.get("/api/v1/gates/g1/snapshot", headers=headers).get_json()
    keys = {entry["key_id"]: public_key_from_text(entry["public_key"]) for entry in snapshot["keys"]}
    short = {entry["key_id"]: short_public_key_from_text(entry["short_key"]) for entry in snapshot["keys"]}
    assert signed_version(row.code) == 2, "central issues the short code (a version 4 QR)"
    assert segno.make_qr(row.code, error="m", boost_error=False).version <= 4
    assert verify_signed(row.code, keys, now=START).reason is Reason.UNKNOWN_KEY, "needs the short key"
    result = verify_signed(row.code, keys, now=START, short_keys=short)
    assert result.reason is Reason.OK
    assert result.claims.meeting_id == meeting["id"]
    assert result.claims.attendee_id == delegate_id
    assert result.claims.valid_from == START - timedelta(minutes=120)
    assert result.claims.valid_until == START + timedelta(hours=3, minutes=30), "the meeting's end plus the grace"
    assert verify_signed(row.code, keys, now=START + timedelta(hours=4), short_keys=short).reason is Reason.EXPIRED

    [message] = mail.wait_for(1)
    text, _, _ = _parts(message)
    assert row.code in text
    assert _qr_texts(message) == [row.code]


def test_unknown_number_and_wrong_secret_give_the_same_404(api: Api) -> None:
    invitation = api.invitation()
    unknown = api.register({"number": "999/TM-UBND", "secret": invitation["secret"]})
    wrong_secret = api.register(invitation, secret="not-the-secret")
    assert unknown.status_code == wrong_secret.status_code == 404
    assert unknown.get_json() == wrong_secret.get_json()
    assert unknown.get_json()["error"] == "not_found"
    assert unknown.get_json()["reason"]
    delegate = {"name": "Nguyễn Văn A", "email": "a@example.vn"}  # a valid body: a bad one is 400 before the lookup
    missing_header = api.client.post(f"/api/v1/invitations/{invitation['number']}/delegates", json=delegate)
    assert missing_header.status_code == 404


def test_invalid_fields_are_named_in_vietnamese_and_nothing_is_stored(api: Api, mail: MailCatcher) -> None:
    invitation = api.invitation()
    response = api.register(invitation, email="an.nguyen@", name="A\x07B", phone="12345")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid"
    assert set(body["fields"]) == {"email", "name", "phone"}
    assert "email" in body["fields"] and "không hợp lệ" in body["fields"]["email"]
    with database.connection_context():
        assert Delegate.select().count() == 0
    assert mail.messages == []


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(b"{not json", "application/json"), (b"[1, 2]", "application/json"), (b"\xff\xfe", "text/plain")],
)
def test_body_that_is_not_a_json_object_is_refused(api: Api, data: bytes, content_type: str) -> None:
    invitation = api.invitation()
    response = api.client.post(
        f"/api/v1/invitations/{invitation['number']}/delegates",
        data=data,
        content_type=content_type,
        headers={"X-Invitation-Secret": invitation["secret"]},
    )
    assert response.status_code == 400
    assert response.get_json()["reason"] == "malformed"


def test_body_over_64_kb_is_413(api: Api) -> None:
    invitation = api.invitation()
    response = api.register(invitation, position="x" * 70_000)
    assert response.status_code == 413
    assert response.get_json()["error"] == "too_large"


def test_smtp_failure_keeps_the_delegate_and_reports_it(api: Api, app, mail: MailCatcher) -> None:
    mail.stop()
    invitation = api.invitation()
    response = api.register(invitation)
    assert response.status_code == 201
    body = response.get_json()
    assert body["mail_status"] == "failed"
    assert body["mail_error"]
    row = _delegate_row(body["id"])
    assert row.mail_status == "failed" and check_compact(row.code) is Reason.OK


def test_cancelled_meeting_refuses_registration(api: Api) -> None:
    meeting = api.meeting()
    invitation = api.invitation(meeting_id=meeting["id"])
    with database.connection_context():
        Meeting.update(status="cancelled").where(Meeting.id == meeting["id"]).execute()
    response = api.register(invitation)
    assert response.status_code == 409
    assert response.get_json()["reason"] == Reason.MEETING_CANCELLED


def test_organiser_routes_need_the_api_token(client, api: Api) -> None:
    assert client.post("/api/v1/meetings", json={}).status_code == 401
    wrong = client.post("/api/v1/organisations", json={"name": "X"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.get_json()["error"] == "unauthorized"
    assert client.get("/api/v1/meetings/1/attendance").status_code == 401
    assert client.post("/api/v1/gates", json={}).status_code == 401


def test_json_errors_for_unknown_routes_and_methods(client) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    wrong_method = client.get("/api/v1/invitations/drafts")
    assert wrong_method.status_code == 405 and wrong_method.get_json()["error"] == "method_not_allowed"


def test_meeting_validation_and_lookup(api: Api) -> None:
    response = api.post(
        "/api/v1/meetings",
        {"title": "", "starts_at": "2025-03-10T08:00:00", "ends_at": "x", "venue": "P1", "site_id": "HQ!"},
    )
    assert response.status_code == 400
    assert set(response.get_json()["fields"]) == {"title", "starts_at", "ends_at", "site_id"}
    meeting = api.meeting(scheme=Scheme.SIGNED.value)
    fetched = api.get(f"/api/v1/meetings/{meeting['id']}").get_json()
    assert fetched == meeting
    assert api.get("/api/v1/meetings/9999").status_code == 404
