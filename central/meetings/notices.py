"""Notices to registered delegates when their meeting is cancelled (their code no longer opens the gate)."""

from __future__ import annotations

import html
import logging
import smtplib
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from zoneinfo import ZoneInfo

from central.registration.delegates import send_code_email
from central.web import ctx
from protocols.logs import mask_email

log = logging.getLogger(__name__)

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def build_cancellation_email(
    *, sender: str, to: str, delegate_name: str, meeting_title: str, starts_at: datetime, invitation_number: str
) -> EmailMessage:
    """Return the Vietnamese e-mail telling a delegate the meeting is cancelled and the code revoked."""
    when = starts_at.astimezone(LOCAL_TZ).strftime("%H:%M ngày %d/%m/%Y")
    message = EmailMessage()
    message["Subject"] = f"Hủy cuộc họp: {meeting_title}"
    message["From"] = sender
    message["To"] = to
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    text = (
        f"Kính gửi {delegate_name},\n\n"
        f"Cuộc họp \"{meeting_title}\" (thư mời số {invitation_number}) dự kiến lúc {when} đã bị hủy.\n"
        "Mã vào cổng đã cấp cho Ông/Bà không còn hiệu lực.\n\nTrân trọng,\nVăn phòng UBND\n"
    )
    message.set_content(text)
    esc = html.escape
    message.add_alternative(
        '<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"></head><body>'
        f"<p>Kính gửi {esc(delegate_name)},</p><p>Cuộc họp <strong>{esc(meeting_title)}</strong> (thư mời số "
        f"{esc(invitation_number)}) dự kiến lúc {esc(when)} <strong>đã bị hủy</strong>.</p>"
        "<p>Mã vào cổng đã cấp cho Ông/Bà không còn hiệu lực.</p><p>Trân trọng,<br>Văn phòng UBND</p></body></html>",
        subtype="html",
    )
    return message


def notify_cancelled(delegate: Any) -> None:
    """E-mail a delegate that their meeting is cancelled (failures are logged, the cancellation stands)."""
    context = ctx()
    message = build_cancellation_email(
        sender=context.config.mail_from, to=delegate.email, delegate_name=delegate.name,
        meeting_title=delegate.meeting.title, starts_at=delegate.meeting.starts_at,
        invitation_number=delegate.invitation.number or "",
    )
    try:
        context.mail_sender.send(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("cancellation notice failed to=%s error=%s", mask_email(delegate.email), exc)


def mail_reissued_code(delegate: Any) -> None:
    """E-mail a delegate their re-issued code (result recorded on the delegate row)."""
    context = ctx()
    send_code_email(delegate, mail_sender=context.mail_sender, mail_from=context.config.mail_from,
                    now=context.clock())
