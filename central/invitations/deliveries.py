"""Sending approved invitations: one delivery row per channel and recipient, retried with backoff.

A row is claimed before it is sent (its ``next_attempt_at`` is moved forward by a lease in one UPDATE),
so the request that approved an invitation and the retry worker never send the same row twice. A failure
records the error and schedules the next attempt (1, 2, 4, ... minutes, at most an hour); after
:data:`MAX_ATTEMPTS` the row waits for a person to press "Gửi lại". A sent row forgets the link.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from central.core.audit import audit
from central.core.db import database
from central.core.errors import ConflictError, NotFoundError
from central.core.states import InvitationState
from central.invitations.letter import InvitationLetter, build_invitation_email, render_pdf
from central.invitations.models import Delivery, Invitation
from central.invitations.organisations import invitation_email, invitation_phones
from central.outbound.mail import MailSender
from central.outbound.sms import SmsComposeError, SmsSender, compose_invitation_sms
from protocols.logs import mask_email, mask_phone
from protocols.reasons import Reason

log = logging.getLogger(__name__)

QUEUED = "queued"
SENT = "sent"
FAILED = "failed"
MAX_ATTEMPTS = 5
BASE_DELAY = timedelta(minutes=1)
MAX_DELAY = timedelta(hours=1)
LEASE = timedelta(minutes=5)
MAX_ERROR = 500


@dataclass
class Channels:
    """What delivering needs: the senders, the From address and the PDF font."""

    mail_sender: MailSender
    sms_sender: SmsSender
    mail_from: str
    pdf_font: Path



def current_channels() -> Channels:
    """Return the invitation delivery dependencies of the running app."""
    from central.web import ctx

    context = ctx()
    # Invitation deliveries keep their own per-channel rows, retries and status, so they send directly,
    # not through the mail queue (``central.outbound.jobs`` wraps the real sender as ``inner``).
    return Channels(
        mail_sender=getattr(context.mail_sender, "inner", context.mail_sender),
        sms_sender=context.sms_sender,
        mail_from=context.config.mail_from,
        pdf_font=context.config.pdf_font,
    )

def backoff(attempts: int) -> timedelta:
    """Return the wait after the ``attempts``-th failure (1, 2, 4, ... minutes, capped at an hour)."""
    return min(BASE_DELAY * (2 ** max(attempts - 1, 0)), MAX_DELAY)


def queue_deliveries(invitation: Invitation, link: str, *, now: datetime) -> list[Delivery]:
    """Create the invitation's delivery rows: e-mail to its office (or leader) and SMS to the leader's and
    office's phones. Call inside the approving transaction."""
    org = invitation.organisation
    rows = []
    address = invitation_email(org)
    if address:
        rows.append(("email", address))
    rows += [("sms", phone) for phone in invitation_phones(org)]
    created = []
    for channel, recipient in rows:
        created.append(Delivery.create(
            invitation=invitation, channel=channel, recipient=recipient, status=QUEUED,
            next_attempt_at=now, link=link, created_at=now,
        ))
    if not rows:
        log.warning("invitation %s has no e-mail or phone to send to", invitation.id)
    return created


def _claim(delivery_id: int, now: datetime) -> bool:
    updated = (
        Delivery.update(next_attempt_at=now + LEASE)
        .where(
            (Delivery.id == delivery_id)
            & (Delivery.status != SENT)
            & Delivery.next_attempt_at.is_null(False)
            & (Delivery.next_attempt_at <= now)
        )
        .execute()
    )
    return updated == 1


def letter_of(invitation: Invitation, link: str) -> InvitationLetter:
    """Return the letter for an invitation (plain data for the PDF and the e-mail)."""
    from central.meetings.services import remote_venues

    meeting = invitation.meeting
    return InvitationLetter(
        number=invitation.number or "",
        organisation=invitation.organisation.name,
        meeting_title=meeting.title,
        starts_at=meeting.starts_at,
        ends_at=meeting.ends_at,
        venue=meeting.venue,
        remote_points=tuple(v.name for v in remote_venues(meeting)),
        chair=meeting.chair,
        agenda=meeting.agenda,
        registration_deadline=meeting.registration_deadline,
        delegate_limit=invitation.delegate_limit,
        link=link,
    )


def _send(delivery: Delivery, channels: Channels) -> str | None:
    """Send one row; return None on success or the error text."""
    invitation = delivery.invitation
    link = delivery.link or ""
    if not link:
        return "no link to send (already delivered)"
    if delivery.channel == "email":
        letter = letter_of(invitation, link)
        try:
            pdf = render_pdf(letter, channels.pdf_font)
            message = build_invitation_email(sender=channels.mail_from, to=delivery.recipient, letter=letter, pdf=pdf)
            channels.mail_sender.send(message)
        except (OSError, smtplib.SMTPException, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        log.info("invitation mail sent invitation=%s to=%s", invitation.id, mask_email(delivery.recipient))
        return None
    meeting = invitation.meeting
    try:
        text = compose_invitation_sms(invitation.number or "", meeting.title, meeting.starts_at, meeting.venue, link)
    except SmsComposeError as exc:
        return f"compose: {exc}"
    result = channels.sms_sender.send(delivery.recipient, text)
    if not result.ok:
        return f"{result.error}: {result.detail or ''}".strip()
    log.info("invitation sms sent invitation=%s to=%s ref=%s", invitation.id, mask_phone(delivery.recipient),
             result.reference)
    return None


def attempt(delivery_id: int, channels: Channels, *, now: datetime) -> Delivery | None:
    """Claim and send one due row and record the outcome; None when the row was not due or already taken."""
    if not _claim(delivery_id, now):
        return None
    delivery = Delivery.get_by_id(delivery_id)
    try:
        error = _send(delivery, channels)
    except Exception as exc:  # a sender bug must not kill the worker; the row records it
        log.exception("delivery %s crashed", delivery_id)
        error = f"{type(exc).__name__}: {exc}"
    delivery.attempts += 1
    if error is None:
        delivery.status = SENT
        delivery.sent_at = now
        delivery.last_error = None
        delivery.next_attempt_at = None
        delivery.link = None
    else:
        delivery.status = FAILED
        delivery.last_error = error[:MAX_ERROR]
        delivery.next_attempt_at = now + backoff(delivery.attempts) if delivery.attempts < MAX_ATTEMPTS else None
        log.warning("delivery failed id=%s channel=%s attempt=%d error=%s", delivery.id, delivery.channel,
                    delivery.attempts, delivery.last_error)
    with database.atomic():
        delivery.save()
        invitation = delivery.invitation
        if error is None and invitation.status == InvitationState.APPROVED and not invitation.deliveries.where(
            Delivery.status != SENT
        ).exists():
            invitation.status = InvitationState.SENT
            invitation.save()
        audit("system", "delivery.sent" if error is None else "delivery.failed", f"invitation:{invitation.id}",
              {"delivery": delivery.id, "channel": delivery.channel, "attempts": delivery.attempts,
               "error": delivery.last_error}, now=now)
    return delivery


def deliver_due(channels: Channels, *, now: datetime, invitation_id: int | None = None, limit: int = 100) -> int:
    """Send every due row (of one invitation, or all); return how many were attempted."""
    query = Delivery.select(Delivery.id).where(
        (Delivery.status != SENT)
        & Delivery.next_attempt_at.is_null(False)
        & (Delivery.next_attempt_at <= now)
    )
    if invitation_id is not None:
        query = query.where(Delivery.invitation == invitation_id)
    ids = [row.id for row in query.order_by(Delivery.next_attempt_at).limit(limit)]
    return sum(1 for delivery_id in ids if attempt(delivery_id, channels, now=now) is not None)


def resend(delivery_id: int, *, actor: str, now: datetime) -> Delivery:
    """Queue a failed (or still queued) row for an immediate new attempt ("Gửi lại")."""
    delivery = Delivery.get_or_none(Delivery.id == delivery_id)
    if delivery is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy lượt gửi")
    if delivery.status == SENT or not delivery.link:
        raise ConflictError(Reason.MALFORMED, "Đã gửi thành công, không cần gửi lại")
    with database.atomic():
        delivery.status = QUEUED
        delivery.next_attempt_at = now
        delivery.save()
        audit(actor, "delivery.resend", f"invitation:{delivery.invitation_id}",
              {"delivery": delivery.id, "channel": delivery.channel}, now=now)
    return delivery


def delivery_to_dict(delivery: Delivery) -> dict[str, Any]:
    """Return the JSON form of a delivery row (recipient masked, never the link)."""
    recipient = mask_email(delivery.recipient) if delivery.channel == "email" else mask_phone(delivery.recipient)
    return {
        "id": delivery.id,
        "channel": delivery.channel,
        "recipient": recipient,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
        "sent_at": delivery.sent_at.isoformat() if delivery.sent_at else None,
    }


def run_worker(channels: Channels, clock: Callable[[], datetime], stop: Any, interval: float = 15.0) -> None:
    """Deliver due rows every ``interval`` seconds until ``stop`` (a ``threading.Event``) is set."""
    while not stop.is_set():
        try:
            with database.connection_context():
                count = deliver_due(channels, now=clock())
            if count:
                log.info("delivery round attempted=%d", count)
        except Exception:
            log.exception("delivery round failed")
        stop.wait(interval)
