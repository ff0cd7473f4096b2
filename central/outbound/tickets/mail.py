"""The e-mail a delegate receives: the code e-mail (inline QR, short code) plus the PDF ticket and an .ics."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage

from central.outbound.mail import build_code_email
from central.outbound.tickets.ics import CalendarEvent, build_ics
from central.outbound.tickets.pdf import TicketData, render_ticket_pdf
from central.registration.models import Delegate


def ticket_data(delegate: Delegate) -> TicketData:
    """Return what the delegate's ticket shows."""
    meeting = delegate.meeting
    return TicketData(
        delegate_name=delegate.name,
        position=delegate.position or "",
        organisation=delegate.invitation.organisation.name,
        meeting_title=meeting.title,
        starts_at=meeting.starts_at,
        ends_at=meeting.ends_at,
        venue=meeting.venue,
        invitation_number=delegate.invitation.number or "",
        code=delegate.code,
        scheme=meeting.scheme,
    )


def calendar_uid(delegate_id: int, mail_from: str) -> str:
    """Return the calendar UID of a delegate's entry: stable, so a re-sent ticket updates the same entry."""
    return f"vaora-delegate-{delegate_id}@{mail_from.rsplit('@', 1)[-1]}"


def calendar_event(delegate: Delegate, mail_from: str, now: datetime) -> CalendarEvent:
    """Return the calendar entry of the delegate's meeting."""
    meeting = delegate.meeting
    return CalendarEvent(
        uid=calendar_uid(delegate.id, mail_from),
        summary=meeting.title,
        starts_at=meeting.starts_at,
        ends_at=meeting.ends_at,
        location=meeting.venue,
        description=(
            f"Thư mời số {delegate.invitation.number}. Đại biểu: {delegate.name} "
            f"({delegate.invitation.organisation.name}). Mang theo mã QR trong thư để vào cổng."
        ),
        stamp=now,
    )


def attachment_name(delegate: Delegate, extension: str) -> str:
    """Return an ASCII file name for an attachment (``the-du-hop-42.pdf``)."""
    return f"the-du-hop-{delegate.id}.{extension}"


def build_delegate_mail(delegate: Delegate, *, mail_from: str, now: datetime) -> EmailMessage:
    """Return the complete e-mail for ``delegate``: text and HTML (inline QR), PDF ticket and .ics."""
    data = ticket_data(delegate)
    message = build_code_email(
        sender=mail_from,
        to=delegate.email,
        delegate_name=data.delegate_name,
        organisation=data.organisation,
        meeting_title=data.meeting_title,
        starts_at=data.starts_at,
        venue=data.venue,
        invitation_number=data.invitation_number,
        code=data.code,
        scheme=data.scheme,
    )
    message.add_attachment(
        render_ticket_pdf(data),
        maintype="application",
        subtype="pdf",
        filename=attachment_name(delegate, "pdf"),
    )
    message.add_attachment(
        build_ics(calendar_event(delegate, mail_from, now)),
        maintype="text",
        subtype="calendar",
        params={"method": "PUBLISH", "charset": "utf-8"},
        filename=attachment_name(delegate, "ics"),
    )
    return message
