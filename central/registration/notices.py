"""What registration tells people by e-mail besides their code: a removed or replaced delegate learns that their
code no longer opens the gates."""

from __future__ import annotations

from datetime import datetime

from central.outbound.mail import MailSender
from central.outbound.notices import build_notice, send_notice
from central.registration.models import Delegate


def code_revoked_text(delegate: Delegate, *, replaced: bool) -> str:
    """The notice's text (Vietnamese)."""
    invitation = delegate.invitation
    meeting = invitation.meeting
    why = ("đã cử người khác thay Ông/Bà" if replaced else "đã rút tên Ông/Bà khỏi danh sách đại biểu")
    return (
        f"Kính gửi {delegate.name},\n\n"
        f"{invitation.organisation.name} {why} dự cuộc họp \"{meeting.title}\" (thư mời số {invitation.number}).\n"
        "Mã vào cổng đã gửi cho Ông/Bà trước đây không còn hiệu lực: cổng sẽ từ chối mã này.\n\n"
        "Nếu có nhầm lẫn, vui lòng liên hệ đơn vị của Ông/Bà.\n\n"
        "Trân trọng,\nVăn phòng UBND\n"
    )


def send_code_revoked(
    delegate: Delegate, now: datetime, *, mail_sender: MailSender, mail_from: str, replaced: bool
) -> bool:
    """Tell a removed or replaced delegate by e-mail that their code no longer works (queued or sent)."""
    message = build_notice(
        sender=mail_from, to=delegate.email, now=now,
        subject=f"Mã vào cổng không còn hiệu lực: {delegate.invitation.meeting.title}"[:200],
        text=code_revoked_text(delegate, replaced=replaced),
    )
    return send_notice(message, now, mail_sender=mail_sender)
