"""E-mail: the code e-mail a delegate receives, and the sender interface (SMTP in production and tests).

The message has a Vietnamese text part with the code for manual entry and an HTML part showing the QR
inline (``multipart/related`` with a ``cid:`` PNG). The QR encodes exactly the code text.
"""

from __future__ import annotations

import html
import io
import logging
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Protocol, cast
from zoneinfo import ZoneInfo

import segno

from protocols.codes import Scheme, format_compact
from protocols.logs import mask_email

log = logging.getLogger(__name__)

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
QR_SCALE = 8
"""Pixels per module: large enough that phone screens, printers and zxing-cpp read it reliably."""
MAX_SIGNED_QR_VERSION = 6


def dated(message: EmailMessage, now: datetime | None = None) -> EmailMessage:
    """Give ``message`` its ``Date:`` header (RFC 5322 requires one) unless it has one: ``now``, else the time
    of sending. Every SMTP sender calls it, so all outgoing mail carries a date."""
    if message["Date"] is None:
        message["Date"] = format_datetime(now or datetime.now(UTC))
    return message


class MailSender(Protocol):
    """Anything that can deliver an e-mail; raises an exception when it could not."""

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` or raise."""


@dataclass
class SmtpMailSender:
    """Deliver through an SMTP server (plain SMTP; STARTTLS and login when configured)."""

    host: str
    port: int = 25
    timeout: float = 10.0
    starttls: bool = False
    username: str | None = None
    password: str | None = None

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message``; raises ``OSError`` or ``smtplib.SMTPException`` on failure."""
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(dated(message))
        log.info("mail sent to=%s", mask_email(str(message["To"])))


def qr_png(code: str, scheme: Scheme | str) -> bytes:
    """Return a PNG of the QR code for ``code`` (error correction M; signed codes must fit version 6)."""
    qr = segno.make(code, error="m", boost_error=False, micro=False)
    if Scheme(scheme) is Scheme.SIGNED and int(qr.version) > MAX_SIGNED_QR_VERSION:  # micro=False: a number
        raise ValueError(f"signed code QR is version {qr.version}, above {MAX_SIGNED_QR_VERSION}")
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=QR_SCALE, border=4)
    return buffer.getvalue()


def printable_code(code: str, scheme: Scheme | str) -> str:
    """Return the code as printed for manual entry (compact codes grouped by four)."""
    return format_compact(code) if Scheme(scheme) is Scheme.COMPACT else code


def _local(moment: datetime) -> str:
    return moment.astimezone(LOCAL_TZ).strftime("%H:%M ngày %d/%m/%Y")


def build_code_email(
    *,
    sender: str,
    to: str,
    delegate_name: str,
    organisation: str,
    meeting_title: str,
    starts_at: datetime,
    venue: str,
    invitation_number: str,
    code: str,
    scheme: Scheme | str,
) -> EmailMessage:
    """Return the e-mail carrying a delegate's code: Vietnamese text part, HTML part with the inline QR."""
    shown = printable_code(code, scheme)
    when = _local(starts_at)
    message = EmailMessage()
    message["Subject"] = f"Mã vào cổng: {meeting_title}"
    message["From"] = sender
    message["To"] = to
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    text = (
        f"Kính gửi {delegate_name} ({organisation}),\n\n"
        f"Ông/Bà được cử tham dự cuộc họp \"{meeting_title}\" theo thư mời số {invitation_number},\n"
        f"bắt đầu lúc {when} tại {venue}.\n\n"
        "Vui lòng xuất trình mã QR đính kèm tại cổng ra vào. Nếu không quét được, bảo vệ nhập mã sau:\n\n"
        f"    {shown}\n\n"
        "Mã này là của riêng Ông/Bà, vui lòng không chia sẻ.\n\n"
        "Trân trọng,\nVăn phòng UBND\n"
    )
    message.set_content(text)
    cid = make_msgid(domain="vaora.qr")
    esc = html.escape
    body = (
        "<!DOCTYPE html><html lang=\"vi\"><head><meta charset=\"utf-8\"></head><body>"
        f"<p>Kính gửi {esc(delegate_name)} ({esc(organisation)}),</p>"
        f"<p>Ông/Bà được cử tham dự cuộc họp <strong>{esc(meeting_title)}</strong> theo thư mời số "
        f"{esc(invitation_number)}, bắt đầu lúc {esc(when)} tại {esc(venue)}.</p>"
        "<p>Vui lòng xuất trình mã QR dưới đây tại cổng ra vào:</p>"
        f"<p><img src=\"cid:{cid[1:-1]}\" alt=\"Mã QR vào cổng\"></p>"
        f"<p>Mã nhập tay: <code style=\"font-size:1.4em\">{esc(shown)}</code></p>"
        "<p>Mã này là của riêng Ông/Bà, vui lòng không chia sẻ.</p>"
        "<p>Trân trọng,<br>Văn phòng UBND</p></body></html>"
    )
    message.add_alternative(body, subtype="html")
    html_part = cast(EmailMessage, message.get_payload(1))
    png = qr_png(code, scheme)
    html_part.add_related(png, maintype="image", subtype="png", cid=cid, filename="ma-qr.png")
    return message
