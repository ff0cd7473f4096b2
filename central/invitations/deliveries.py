"""Sending approved invitations: one delivery row per channel and recipient, sent through the outbound queue.

A delivery row is what the invitation's page shows (state, tries, last error, next try). Sending it is an
outbound job (``central.outbound``) of kind ``invitation_email`` or ``invitation_sms`` with the row as its
subject, so the approving request, the app's worker thread and ``vaora-central deliver`` share one claim and
one retry policy: 1, 2, 4, ... minutes between tries, at most an hour; after :data:`MAX_ATTEMPTS` the row
waits for a person to press "Gửi lại". A sent row forgets the link (it carries the invitation's secret).

The e-mail row carries the long link (``/registration/<number>?secret=``) and lists the meeting's shared
documents (:mod:`central.invitations.shared_documents`); the SMS rows carry the short one (``/dk/<token>``,
:mod:`central.invitations.shortlinks`). A failed try's error is a Vietnamese sentence
(:mod:`central.outbound.failures`); one that another try cannot cure is permanent: not retried, and it says what to
correct. The invitation becomes "sent" once any of its rows went; each row keeps its own state. "Gửi lại"
(:func:`resend`) sends to the organisation's corrected address or number, and :func:`resend_outcome` says what
came of it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from central.core.audit import audit
from central.core.db import database
from central.core.errors import ConflictError, NotFoundError
from central.core.states import DeliveryState, InvitationState, JobState
from central.invitations import shared_documents
from central.invitations.letter import InvitationLetter, build_invitation_email, render_pdf
from central.invitations.models import Delivery, Invitation
from central.invitations.organisations import invitation_email, invitation_phones
from central.outbound import queue
from central.outbound.engine import (
    JobCancelledError,
    JobFailedError,
    JobKind,
    OutboundWorker,
    Outcome,
    RetryPolicy,
    Senders,
    register,
)
from central.outbound.failures import mail_failure, sms_failure
from central.outbound.sms import SmsComposeError, compose_invitation_sms
from central.outbound.worker import send_mail
from protocols.logs import mask_email, mask_phone
from protocols.reasons import Reason

log = logging.getLogger(__name__)

EMAIL = "email"
SMS = "sms"
CHANNELS = (EMAIL, SMS)
MAX_ATTEMPTS = 5
RETRY = RetryPolicy(base=timedelta(minutes=1), cap=timedelta(hours=1), max_attempts=MAX_ATTEMPTS)


def current_senders() -> Senders:
    """Return the senders of the running app, for sending an invitation during the request."""
    from central.web import ctx

    context = ctx()
    # Delivery rows are already queued jobs: send with the real sender, not the app's queueing wrapper
    # (``central.outbound.jobs`` keeps the real sender as ``inner``).
    return Senders(
        mail=getattr(context.mail_sender, "inner", context.mail_sender),
        mail_from=context.config.mail_from,
        sms=context.sms_sender,
        pdf_font=context.config.pdf_font,
    )


def _enqueue(delivery: Delivery, now: datetime, *, max_attempts: int = MAX_ATTEMPTS) -> None:
    queue.enqueue(_KIND_OF[delivery.channel].name, recipient=delivery.recipient, now=now,
                  max_attempts=max_attempts, ref_id=delivery.id, group_key=f"invitation:{delivery.invitation_id}")


def queue_deliveries(
    invitation: Invitation, link: str, *, now: datetime, short_link: str | None = None
) -> list[Delivery]:
    """Create the invitation's delivery rows and their jobs: e-mail (with ``link``) to its office (or leader)
    and SMS (with ``short_link``, the ``/dk/<token>`` one, when given) to the leader's and office's phones. Call
    inside the approving transaction."""
    org = invitation.organisation
    rows = []
    address = invitation_email(org)
    if address:
        rows.append((EMAIL, address))
    rows += [(SMS, phone) for phone in invitation_phones(org)]
    created = []
    for channel, recipient in rows:
        delivery = Delivery.create(
            invitation=invitation, channel=channel, recipient=recipient, status=DeliveryState.QUEUED,
            next_attempt_at=now, link=short_link if channel == SMS and short_link else link, created_at=now,
        )
        _enqueue(delivery, now)
        created.append(delivery)
    if not rows:
        log.warning("invitation %s has no e-mail or phone to send to", invitation.id)
    return created


def letter_of(invitation: Invitation, link: str, *, now: datetime | None = None) -> InvitationLetter:
    """Return the letter for an invitation (plain data for the PDF and the e-mail), dated on its approval (a
    draft: ``now``), with its issuing body's letterhead."""
    from central.invitations.letterhead import body_of, letterhead_of
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
        letterhead=letterhead_of(body_of(invitation)),
        issued_at=invitation.approved_at or now or datetime.now(UTC),
    )


def _delivery_of(job: Any) -> Delivery:
    delivery = Delivery.get_or_none(Delivery.id == job.ref_id)
    if delivery is None:
        raise JobCancelledError("delivery deleted")
    if delivery.status == DeliveryState.SENT or not delivery.link:
        raise JobCancelledError("already delivered")
    return delivery


def _send_email(job: Any, senders: Senders, now: datetime) -> None:
    delivery = _delivery_of(job)
    invitation = delivery.invitation
    letter = letter_of(invitation, delivery.link or "")
    if senders.pdf_font is None:
        raise JobFailedError("Máy chủ chưa cấu hình phông chữ cho tệp PDF (VAORA_PDF_FONT). Hệ thống sẽ tự gửi lại.")
    try:
        pdf = render_pdf(letter, senders.pdf_font)
        message = build_invitation_email(sender=senders.mail_from, to=delivery.recipient, letter=letter, pdf=pdf)
    except (OSError, ValueError) as exc:
        raise JobFailedError(f"Không tạo được thư mời ({type(exc).__name__}: {exc}). Hệ thống sẽ tự gửi lại.") from exc
    shared_documents.add_links(message, shared_documents.links_for(invitation, delivery.link or ""))
    try:
        send_mail(senders, message)
    except JobFailedError as failed:
        raise mail_failure(failed, delivery.recipient) from failed.__cause__
    log.info("invitation mail sent invitation=%s to=%s", invitation.id, mask_email(delivery.recipient))


def _send_sms(job: Any, senders: Senders, now: datetime) -> None:
    delivery = _delivery_of(job)
    invitation = delivery.invitation
    meeting = invitation.meeting
    if senders.sms is None:
        raise JobFailedError("Máy chủ chưa cấu hình cách gửi SMS (VAORA_SMS_BACKEND). Hệ thống sẽ tự gửi lại.")
    try:
        text = compose_invitation_sms(invitation.number or "", meeting.title, meeting.starts_at, meeting.venue,
                                      delivery.link or "")
    except SmsComposeError as exc:
        raise JobFailedError(f"Không soạn được tin nhắn ({exc}).", permanent=True) from exc
    result = senders.sms.send(delivery.recipient, text)
    if not result.ok:
        raise sms_failure(result, delivery.recipient)
    log.info("invitation sms sent invitation=%s to=%s ref=%s", invitation.id, mask_phone(delivery.recipient),
             result.reference)


def _record(job: Any, outcome: Outcome) -> None:
    """Mirror one try on the delivery row, mark the invitation sent once any row went (each row keeps its own
    state on the page), and audit it."""
    if outcome.state == JobState.CANCELLED:
        return
    delivery = Delivery.get_or_none(Delivery.id == job.ref_id)
    if delivery is None:
        return
    sent = outcome.state == JobState.SENT
    delivery.attempts += 1
    if sent:
        delivery.status = DeliveryState.SENT
        delivery.sent_at = outcome.at
        delivery.last_error = None
        delivery.next_attempt_at = None
        delivery.link = None
    else:
        delivery.status = DeliveryState.FAILED
        delivery.last_error = outcome.error
        delivery.next_attempt_at = outcome.next_attempt_at
    with database.atomic():
        delivery.save()
        invitation = delivery.invitation
        if sent and invitation.status == InvitationState.APPROVED:
            invitation.status = InvitationState.SENT
            invitation.save()
        audit("system", "delivery.sent" if sent else "delivery.failed", f"invitation:{invitation.id}",
              {"delivery": delivery.id, "channel": delivery.channel, "attempts": delivery.attempts,
               "error": delivery.last_error}, now=outcome.at)


INVITATION_EMAIL = register(JobKind("invitation_email", RETRY, _send_email, _record))
INVITATION_SMS = register(JobKind("invitation_sms", RETRY, _send_sms, _record, recipient_mask=mask_phone))
_KIND_OF = {EMAIL: INVITATION_EMAIL, SMS: INVITATION_SMS}
KINDS = tuple(kind.name for kind in _KIND_OF.values())


def deliver_due(senders: Senders, *, now: datetime, invitation_id: int | None = None, limit: int = 100) -> int:
    """Send every due delivery job now (of one invitation, or all); return how many were tried."""
    ref_ids = None
    if invitation_id is not None:
        ref_ids = [row.id for row in Delivery.select(Delivery.id).where(Delivery.invitation == invitation_id)]
    worker = OutboundWorker(senders=senders, clock=lambda: now, batch_size=limit)
    return worker.run_once(kinds=KINDS, ref_ids=ref_ids)


def send_now(delivery_id: int, senders: Senders, *, now: datetime) -> int:
    """Send one delivery row's due job now (after :func:`resend`); returns 1 when it was tried."""
    worker = OutboundWorker(senders=senders, clock=lambda: now)
    return worker.run_once(kinds=KINDS, ref_ids=[delivery_id])


def resend(delivery_id: int, *, actor: str, now: datetime) -> Delivery:
    """Queue a failed (or still queued) row for an immediate new attempt ("Gửi lại")."""
    delivery = Delivery.get_or_none(Delivery.id == delivery_id)
    if delivery is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy lượt gửi")
    if delivery.status == DeliveryState.SENT or not delivery.link:
        raise ConflictError(Reason.MALFORMED, "Đã gửi thành công, không cần gửi lại")
    kind = _KIND_OF[delivery.channel].name
    with database.atomic():
        queue.cancel_queued(kind, delivery.id, "resent")
        previous = delivery.recipient
        delivery.recipient = _current_recipient(delivery)
        delivery.status = DeliveryState.QUEUED
        delivery.next_attempt_at = now
        delivery.save()
        # The retries left carry over: a row that used up its tries gets this one try, pressed by a person.
        _enqueue(delivery, now, max_attempts=max(1, MAX_ATTEMPTS - delivery.attempts))
        audit(actor, "delivery.resend", f"invitation:{delivery.invitation_id}",
              {"delivery": delivery.id, "channel": delivery.channel,
               "recipient_changed": delivery.recipient != previous}, now=now)
    return delivery


def _current_recipient(delivery: Delivery) -> str:
    """The row's recipient, or the organisation's corrected one when the office fixed the address or number
    that failed (the first current one of the channel that no other row of the invitation has)."""
    org = delivery.invitation.organisation
    current = [invitation_email(org)] if delivery.channel == EMAIL else invitation_phones(org)
    current = [value for value in current if value]
    if not current or delivery.recipient in current:
        return delivery.recipient
    taken = {row.recipient for row in Delivery.select(Delivery.recipient).where(
        (Delivery.invitation == delivery.invitation_id) & (Delivery.channel == delivery.channel))}
    return next((value for value in current if value not in taken), delivery.recipient)


CHANNEL_NAMES = {EMAIL: "e-mail", SMS: "SMS"}


def resend_outcome(delivery_id: int) -> tuple[bool | None, str]:
    """What "Gửi lại" came to, to tell the person who pressed it: (True: sent, False: failed, None: still
    waiting for a worker) and a Vietnamese sentence naming the channel, the masked recipient and the error."""
    delivery = Delivery.get_by_id(delivery_id)
    shown = delivery_to_dict(delivery)
    where = f"{CHANNEL_NAMES.get(delivery.channel, delivery.channel)} tới {shown['recipient']}"
    if delivery.status == DeliveryState.SENT:
        return True, f"Đã gửi lại thành công qua {where}."
    if delivery.status == DeliveryState.FAILED:
        return False, f"Gửi lại qua {where} không thành công: {delivery.last_error or 'lỗi không rõ'}"
    return None, f"Đã xếp lượt gửi lại qua {where}; hệ thống đang gửi."


def delivery_to_dict(delivery: Delivery) -> dict[str, Any]:
    """Return the JSON form of a delivery row (recipient masked, never the link)."""
    recipient = mask_email(delivery.recipient) if delivery.channel == EMAIL else mask_phone(delivery.recipient)
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
