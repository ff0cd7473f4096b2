"""The code e-mail on its own (QR size limits, grouping) and the field validators (phone, e-mail, text)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import segno
import zxingcpp
from PIL import Image

from central.core import validation as v
from central.outbound.mail import build_code_email, qr_png
from protocols.codes import SignedClaims, encode_signed, generate_compact, generate_signing_key

NOW = datetime(2025, 3, 10, 1, 0, tzinfo=UTC)


def _signed_code() -> str:
    biggest = 2**32 - 1
    claims = SignedClaims(
        key_id=65535,
        meeting_id=biggest,
        attendee_id=biggest,
        valid_from=NOW,
        valid_until=NOW + timedelta(hours=5),
    )
    return encode_signed(claims, generate_signing_key())


def test_signed_code_qr_fits_version_6_at_level_m_and_decodes() -> None:
    code = _signed_code()
    qr = segno.make(code, error="m", boost_error=False, micro=False)
    assert qr.version <= 6 and qr.error == "M"
    [result] = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr_png(code, "signed"))))
    assert result.text == code


def test_compact_email_groups_the_code_and_escapes_html() -> None:
    code = generate_compact()
    message = build_code_email(
        sender="vanphong@ubnd.example.vn", to="an@example.vn", delegate_name="<b>An</b>",
        organisation="Sở Tài chính", meeting_title="Họp", starts_at=NOW, venue="Phòng 1",
        invitation_number="5/TM-UBND", code=code, scheme="compact",
    )
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert f"{code[:4]}-{code[4:8]}-{code[8:12]}-{code[12:]}" in text
    assert "08:00 ngày 10/03/2025" in text  # shown in Hà Nội time
    assert "<b>An</b>" not in html and "&lt;b&gt;An&lt;/b&gt;" in html


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0912345678", "+84912345678"),
        ("+84 912 345 678", "+84912345678"),
        ("84912345678", "+84912345678"),
        ("091.234.5678", "+84912345678"),
        ("024 3825 1234", "+842438251234"),
        ("", None),
        (None, None),
    ],
)
def test_phone_is_normalised(raw: Any, expected: str | None) -> None:
    assert v.phone(raw) == expected


@pytest.mark.parametrize("raw", ["12345", "0112345678", "+1 415 555 0100", "09123456789", "abc", 912345678])
def test_bad_phone_is_refused_in_vietnamese(raw: Any) -> None:
    with pytest.raises(v.FieldError):
        v.phone(raw)


@pytest.mark.parametrize(
    "raw", ["an@", "@example.vn", "an example@x.vn", "an@x", "a@b@c.vn", "x" * 70 + "@a.vn"]
)
def test_bad_email_is_refused(raw: str) -> None:
    with pytest.raises(v.FieldError, match="email"):
        v.email(raw)


def test_text_limits() -> None:
    assert v.text("  Nguyễn Văn An ", required=True, max_length=120) == "Nguyễn Văn An"
    for bad in ["", "x" * 121, "An\u202eB", "An\nB", 5]:
        with pytest.raises(v.FieldError):
            v.text(bad, required=True, max_length=120)


def test_unexpected_error_is_json_500(central_config: dict, clock: Any) -> None:
    from central.app import create_app

    app = create_app(central_config, clock=clock)

    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    response = app.test_client().get("/api/v1/boom")
    assert response.status_code == 500
    assert response.get_json()["error"] == "internal_error"


def test_every_outgoing_mail_carries_a_date_header() -> None:
    """Through a real SMTP server: the direct sender and the worker's pooled sender both add ``Date:``; a
    message that has one keeps it."""
    from email.utils import format_datetime, parsedate_to_datetime

    from central.outbound.mail import SmtpMailSender
    from central.outbound.worker import PooledSmtpSender
    from devtools.mailcatcher import MailCatcher

    def code_mail() -> Any:
        return build_code_email(
            sender="vanphong@ubnd.example.vn", to="an@example.vn", delegate_name="An", organisation="Sở Tài chính",
            meeting_title="Họp", starts_at=NOW, venue="Phòng 1", invitation_number="5/GM-UBND",
            code=generate_compact(), scheme="compact",
        )

    with MailCatcher() as catcher:
        SmtpMailSender(catcher.host, catcher.port).send(code_mail())
        pooled = PooledSmtpSender(catcher.host, catcher.port)
        pooled.send(code_mail())
        dated_already = code_mail()
        dated_already["Date"] = format_datetime(NOW)
        pooled.send(dated_already)
        pooled.close()
        caught = catcher.wait_for(3)
    for message in caught:
        assert message["Date"] is not None
        assert parsedate_to_datetime(str(message["Date"])).tzinfo is not None
    assert parsedate_to_datetime(str(caught[2]["Date"])) == NOW


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("+84987654321", "0987 654 321"), ("+842438251234", "024 3825 1234"), ("0912345678", "0912 345 678"),
     (None, ""), ("", ""), ("not a phone", "not a phone")],
)
def test_phones_are_shown_in_national_format(stored: str | None, shown: str) -> None:
    assert v.national_phone(stored) == shown
