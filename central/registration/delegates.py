"""Delegate registration: validate, issue a code in the meeting's scheme, record the change, e-mail the code.

A delegate is stored before the e-mail is sent; an SMTP failure is recorded (``mail_status`` FAILED and
``mail_error``) and the code can be resent, so no registration is lost.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from central.core import validation as v
from central.core.audit import audit
from central.core.changes import append_change
from central.core.db import write_transaction
from central.core.errors import ConflictError
from central.core.keys import ActiveKey
from central.core.states import ApprovalState, DelegateMailState, MeetingState
from central.core.validity import DEFAULT_ENTRY_OPENS_BEFORE, DEFAULT_GRACE_AFTER_END, CodeValidity
from central.invitations.models import Invitation
from central.meetings.models import Meeting
from central.outbound.mail import MailSender
from central.registration.models import Delegate
from protocols import payloads
from protocols.codes import (
    Scheme,
    SignedClaims,
    compact_hash,
    credential_of,
    encode_signed,
    generate_compact,
)
from protocols.logs import mask_email, mask_phone
from protocols.reasons import Reason

log = logging.getLogger(__name__)

MAX_MAIL_ERROR = 500


def validate_delegate(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return the clean delegate fields or raise ``InvalidInputError`` naming each bad one."""
    fields = v.FieldCollector(data)
    clean = {
        "name": fields.take("name", v.text, required=True, max_length=120),
        "position": fields.take("position", v.text, required=False, max_length=120),
        "email": fields.take("email", v.email, required=True),
        "phone": fields.take("phone", v.phone),
    }
    fields.raise_if_any()
    return clean


def registrar_of(invitation: Invitation) -> str:
    """The audit actor for changes made through an invitation's registration link (no user account)."""
    return f"invitation:{invitation.number}"


def register_delegate(
    invitation: Invitation,
    data: Mapping[str, Any],
    now: datetime,
    *,
    signing_key: Callable[[], ActiveKey],
    mail_sender: MailSender,
    mail_from: str,
    entry_opens_before: timedelta = DEFAULT_ENTRY_OPENS_BEFORE,
    grace_after_end: timedelta = DEFAULT_GRACE_AFTER_END,
    send_mail: bool = True,
    pending: bool = False,
) -> Delegate:
    """Register a delegate under ``invitation``, issue their code and e-mail it (unless ``send_mail=False``).

    With ``pending`` the delegate awaits the office's approval: stored without a code, not sent to the gates and
    not mailed (``central.registration.services.approve_registrations`` issues the code later).

    ``signing_key`` is called only for signed meetings. The code is valid from ``entry_opens_before``
    before the meeting starts until ``grace_after_end`` after it ends (:class:`CodeValidity`).
    Raises ``InvalidInputError`` for bad fields and
    ``ConflictError`` when the meeting is cancelled or over.
    """
    clean = validate_delegate(data)
    meeting: Meeting = invitation.meeting
    if meeting.status == MeetingState.CANCELLED:
        raise ConflictError(Reason.MEETING_CANCELLED)
    if meeting.ends_at <= now:
        raise ConflictError(Reason.EXPIRED, "Cuộc họp đã kết thúc")
    scheme = Scheme(meeting.scheme)
    valid_from, valid_until = CodeValidity(entry_opens_before, grace_after_end).window(meeting.starts_at,
                                                                                      meeting.ends_at)
    active_key = signing_key() if scheme is Scheme.SIGNED and not pending else None

    with write_transaction():
        delegate = Delegate.create(
            invitation=invitation,
            meeting=meeting,
            name=clean["name"],
            position=clean["position"],
            email=clean["email"],
            phone=clean["phone"],
            code="",
            credential=f"pending:{uuid.uuid4()}",
            valid_from=valid_from,
            valid_until=valid_until,
            mail_status=DelegateMailState.PENDING,
            created_at=now,
            approval=ApprovalState.PENDING if pending else ApprovalState.APPROVED,
        )
        if not pending:
            delegate = assign_code(delegate, active_key, now)
        audit(registrar_of(invitation), "delegate.register", f"delegate:{delegate.id}",
              {"invitation": invitation.number, "meeting": meeting.id, "name": delegate.name,
               **({"pending": True} if pending else {})}, now=now)
    log.info(
        "delegate registered id=%s meeting=%s scheme=%s email=%s phone=%s",
        delegate.id, meeting.id, scheme.value, mask_email(delegate.email), mask_phone(delegate.phone),
    )
    if send_mail and not pending:
        send_code_email(delegate, mail_sender=mail_sender, mail_from=mail_from, now=now)
    return delegate


def assign_code(delegate: Delegate, active_key: ActiveKey | None, now: datetime) -> Delegate:
    """Give a stored delegate a new code for its validity window and publish it on the change stream.

    With ``active_key`` the code is signed by it (signed meetings; only central's public key reaches the gates);
    without, it is a random compact code of which the gates learn only the hash. Returns the delegate as stored.
    """
    if active_key is not None:
        claims = SignedClaims(key_id=active_key.key_id, meeting_id=delegate.meeting_id, attendee_id=delegate.id,
                              valid_from=delegate.valid_from, valid_until=delegate.valid_until)
        code = encode_signed(claims, active_key.private_key, version=2)  # version 1 when the claims do not fit
        delegate.code_hash = None
    else:
        code = generate_compact()
        delegate.code_hash = compact_hash(code)
    credential = credential_of(code)
    if credential is None:  # a code just issued is always well formed
        raise RuntimeError("an issued code carries no credential")
    delegate.code = code
    delegate.credential = credential
    delegate.save()
    delegate = Delegate.get_by_id(delegate.id)
    append_change(payloads.DelegateUpsert(delegate=delegate_entry(delegate)), now)
    return delegate


def send_code_email(
    delegate: Delegate, *, mail_sender: MailSender, mail_from: str, now: datetime | None = None
) -> bool:
    """E-mail the delegate their code, PDF ticket and calendar entry; record the result on the row.

    With a queueing sender (``central.outbound.jobs``) the mail is only queued (``DelegateMailState.QUEUED``, the
    worker sets ``SENT`` or ``FAILED`` later) and False is returned; otherwise True when it was sent.
    """
    from central.outbound.tickets.mail import build_delegate_mail

    enqueue = getattr(mail_sender, "enqueue_delegate_code", None)
    if callable(enqueue):
        enqueue(delegate)
        return False
    message = build_delegate_mail(delegate, mail_from=mail_from, now=now or datetime.now(UTC))
    try:
        mail_sender.send(message)
    except (OSError, smtplib.SMTPException) as exc:
        delegate.mail_status = DelegateMailState.FAILED
        delegate.mail_error = f"{type(exc).__name__}: {exc}"[:MAX_MAIL_ERROR]
        log.warning("code mail failed delegate=%s error=%s", delegate.id, delegate.mail_error)
    else:
        delegate.mail_status = DelegateMailState.SENT
        delegate.mail_error = None
    delegate.save(only=[Delegate.mail_status, Delegate.mail_error])
    return delegate.mail_status == DelegateMailState.SENT


def delegate_entry(delegate: Delegate) -> payloads.DelegateEntry:
    """Return what a gate knows of a delegate (compact codes only as their hash)."""
    return payloads.DelegateEntry(
        id=delegate.id,
        meeting_id=delegate.meeting_id,
        name=delegate.name,
        organisation=delegate.invitation.organisation.name,
        position=delegate.position or "",
        code_hash=delegate.code_hash,
        valid_from=delegate.valid_from,
        valid_until=delegate.valid_until,
        revoked=delegate.revoked_at is not None,
    )


def delegate_to_dict(delegate: Delegate) -> dict[str, Any]:
    """Return the JSON form of a delegate for the registering organisation (never the code or its hash)."""
    return {
        "id": delegate.id,
        "meeting_id": delegate.meeting_id,
        "invitation_number": delegate.invitation.number,
        "name": delegate.name,
        "position": delegate.position,
        "email": delegate.email,
        "phone": delegate.phone,
        "valid_from": delegate.valid_from.isoformat(),
        "valid_until": delegate.valid_until.isoformat(),
        "revoked": delegate.revoked_at is not None,
        "mail_status": delegate.mail_status,
        "mail_error": delegate.mail_error,
        "approval": delegate.approval,
        "decision_note": delegate.decision_note,
    }
