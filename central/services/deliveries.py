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

from central import models
from central.core.audit import audit
from central.core.errors import ConflictError, NotFoundError
from central.core.states import InvitationState
from central.notify.invitation import InvitationLetter, build_invitation_email, render_pdf
from central.notify.mail import MailSender
from central.notify.sms import SmsComposeError, SmsSender, compose_invitation_sms
from central.services.organisations import invitation_email, invitation_phones
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


def backoff(attempts: int) -> timedelta:
    """Return the wait after the ``attempts``-th failure (1, 2, 4, ... minutes, capped at an hour)."""
    return min(BASE_DELAY * (2 ** max(attempts - 1, 0)), MAX_DELAY)


def queue_deliveries(invitation: models.Invitation, link: str, *, now: datetime) -> list[models.Delivery]:
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
        created.append(models.Delivery.create(
            invitation=invitation, channel=channel, recipient=recipient, status=QUEUED,
            next_attempt_at=now, link=link, created_at=now,
        ))
    if not rows:
        log.warning("invitation %s has no e-mail or phone to send to", invitation.id)
    return created


def _claim(delivery_id: int, now: datetime) -> bool:
    updated = (
        models.Delivery.update(next_attempt_at=now + LEASE)
        .where(
            (models.Delivery.id == delivery_id)
            & (models.Delivery.status != SENT)
            & models.Delivery.next_attempt_at.is_null(False)
            & (models.Delivery.next_attempt_at <= now)
        )
        .execute()
    )
    return updated == 1


def letter_of(invitation: models.Invitation, link: str) -> InvitationLetter:
    """Return the letter for an invitation (plain data for the PDF and the e-mail)."""
    from central.services.meetings import remote_venues

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


def _send(delivery: models.Delivery, channels: Channels) -> str | None:
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


def attempt(delivery_id: int, channels: Channels, *, now: datetime) -> models.Delivery | None:
    """Claim and send one due row and record the outcome; None when the row was not due or already taken."""
    if not _claim(delivery_id, now):
        return None
    delivery = models.Delivery.get_by_id(delivery_id)
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
    with models.database.atomic():
        delivery.save()
        invitation = delivery.invitation
        if error is None and invitation.status == InvitationState.APPROVED and not invitation.deliveries.where(
            models.Delivery.status != SENT
        ).exists():
            invitation.status = InvitationState.SENT
            invitation.save()
        audit("system", "delivery.sent" if error is None else "delivery.failed", f"invitation:{invitation.id}",
              {"delivery": delivery.id, "channel": delivery.channel, "attempts": delivery.attempts,
               "error": delivery.last_error}, now=now)
    return delivery


def deliver_due(channels: Channels, *, now: datetime, invitation_id: int | None = None, limit: int = 100) -> int:
    """Send every due row (of one invitation, or all); return how many were attempted."""
    query = models.Delivery.select(models.Delivery.id).where(
        (models.Delivery.status != SENT)
        & models.Delivery.next_attempt_at.is_null(False)
        & (models.Delivery.next_attempt_at <= now)
    )
    if invitation_id is not None:
        query = query.where(models.Delivery.invitation == invitation_id)
    ids = [row.id for row in query.order_by(models.Delivery.next_attempt_at).limit(limit)]
    return sum(1 for delivery_id in ids if attempt(delivery_id, channels, now=now) is not None)


def resend(delivery_id: int, *, actor: str, now: datetime) -> models.Delivery:
    """Queue a failed (or still queued) row for an immediate new attempt ("Gửi lại")."""
    delivery = models.Delivery.get_or_none(models.Delivery.id == delivery_id)
    if delivery is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy lượt gửi")
    if delivery.status == SENT or not delivery.link:
        raise ConflictError(Reason.MALFORMED, "Đã gửi thành công, không cần gửi lại")
    with models.database.atomic():
        delivery.status = QUEUED
        delivery.next_attempt_at = now
        delivery.save()
        audit(actor, "delivery.resend", f"invitation:{delivery.invitation_id}",
              {"delivery": delivery.id, "channel": delivery.channel}, now=now)
    return delivery


def delivery_to_dict(delivery: models.Delivery) -> dict[str, Any]:
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
            with models.database.connection_context():
                count = deliver_due(channels, now=clock())
            if count:
                log.info("delivery round attempted=%d", count)
        except Exception:
            log.exception("delivery round failed")
        stop.wait(interval)
