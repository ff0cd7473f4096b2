"""Registration by the invited organisation: open an invitation, add, edit, replace and remove delegates,
and queue their code e-mails.

Plain functions over the models; the routes only translate. Every refusal is a ``ServiceError`` with a
reason code and a Vietnamese message (``InvalidInputError`` names each bad field). Nothing is changed
when a request is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from central.core.audit import audit
from central.core.changes import append_change
from central.core.db import write_transaction
from central.core.errors import (
    ConflictError,
    DuplicateError,
    InvalidInputError,
    NotFoundError,
    ServiceError,
)
from central.core.keys import ActiveKey
from central.core.states import DelegateMailState, InvitationState, MeetingState
from central.core.validity import DEFAULT_GRACE_AFTER_END
from central.invitations.models import Invitation
from central.invitations.services import find_invitation
from central.meetings.models import Meeting
from central.outbound import worker as outbound_mail
from central.outbound.mail import MailSender
from central.outbound.queue import Progress, batch_progress, new_batch
from central.registration import delegates as delegate_service
from central.registration.models import Delegate
from protocols import payloads
from protocols.reasons import Reason

log = logging.getLogger(__name__)

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOT_FOUND_MESSAGE = "Không tìm thấy thư mời hoặc mã bí mật không đúng"


@dataclass(frozen=True)
class Deps:
    """What registration needs from the app: code issuing, mail and the clock's settings."""

    signing_key: Callable[[], ActiveKey]
    mail_sender: MailSender
    mail_from: str
    entry_opens_before: timedelta
    grace_after_end: timedelta = DEFAULT_GRACE_AFTER_END


def group_key(invitation: Invitation) -> str:
    """Return the mail-queue group of an invitation's mails (for the progress figure)."""
    return f"invitation:{invitation.id}"


def open_invitation(number: str, secret: str | None) -> Invitation:
    """Return the invitation ``number`` when ``secret`` matches and it is approved or sent.

    Unknown number, wrong secret and an unpublished invitation raise the same ``NotFoundError``.
    """
    invitation = find_invitation(number, secret)
    # Drafts have no number or secret yet: only a registerable invitation opens its page.
    if getattr(invitation, "status", InvitationState.APPROVED) not in InvitationState.REGISTERABLE:
        raise NotFoundError(Reason.UNKNOWN_CODE, NOT_FOUND_MESSAGE)
    return invitation


def deadline_of(meeting: Meeting) -> datetime | None:
    """Return the meeting's registration deadline (None when it has none)."""
    return getattr(meeting, "registration_deadline", None)


def delegate_limit(invitation: Invitation) -> int | None:
    """Return how many delegates the organisation may send (None: no limit)."""
    limit = getattr(invitation, "delegate_limit", None)
    if limit is None:
        limit = getattr(invitation.meeting, "delegate_limit", None)
    return limit if isinstance(limit, int) and limit > 0 else None


def closed_reason(invitation: Invitation, now: datetime) -> str | None:
    """Return why the registration is read-only now (Vietnamese), or None while it is open."""
    meeting: Meeting = invitation.meeting
    if meeting.status == MeetingState.CANCELLED:
        return "Cuộc họp đã bị hủy."
    if meeting.ends_at <= now:
        return "Cuộc họp đã kết thúc."
    deadline = deadline_of(meeting)
    if deadline is not None and now > deadline:
        local = deadline.astimezone(LOCAL_TZ)
        return f"Đã hết hạn đăng ký ({local:%H:%M} ngày {local:%d/%m/%Y}). Trang chỉ còn để xem."
    return None


def _ensure_open(invitation: Invitation, now: datetime) -> None:
    reason = closed_reason(invitation, now)
    if reason is not None:
        meeting = invitation.meeting
        code = Reason.MEETING_CANCELLED if meeting.status == MeetingState.CANCELLED else Reason.EXPIRED
        raise ConflictError(code, reason)


def active_delegates(invitation: Invitation) -> list[Delegate]:
    """Return the invitation's delegates whose codes are valid (not removed or replaced), oldest first."""
    return list(
        Delegate.select()
        .where((Delegate.invitation == invitation) & Delegate.revoked_at.is_null())
        .order_by(Delegate.id)
    )


def _delegate_of(invitation: Invitation, delegate_id: int) -> Delegate:
    delegate = Delegate.get_or_none(
        (Delegate.id == delegate_id)
        & (Delegate.invitation == invitation)
        & Delegate.revoked_at.is_null()
    )
    if delegate is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy đại biểu")
    return delegate


@dataclass
class RowCheck:
    """The verdict of the registration rules on one delegate: the clean fields, or why it is refused."""

    clean: dict[str, Any] | None
    error: ServiceError | None


def check_registrations(
    invitation: Invitation,
    rows: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    exclude_id: int | None = None,
    adding: bool = True,
) -> list[RowCheck]:
    """The registration rules, for every path (page, JSON API, import): one verdict per row, nothing written.

    In order: the meeting must be open for registration (not cancelled, not over, not past its deadline: a
    ``ConflictError`` for the whole request); each row's fields must be valid (``InvalidInputError``); no two
    active delegates of the invitation, nor two rows, may share an e-mail, or a name with a phone
    (``DuplicateError``); and, when ``adding``, the rows that pass must fit within the invitation's delegate
    limit (``ConflictError``, on the first row over it and every later one). ``exclude_id`` is the delegate
    being edited or replaced, who does not count as a duplicate.
    """
    _ensure_open(invitation, now)
    others = [d for d in active_delegates(invitation) if d.id != exclude_id]
    taken_emails = {d.email.casefold() for d in others}
    taken_people = {(d.name.casefold(), d.phone) for d in others if d.phone}
    limit = delegate_limit(invitation) if adding else None
    room = None if limit is None else limit - len(active_delegates(invitation))
    checks: list[RowCheck] = []
    for data in rows:
        try:
            clean = delegate_service.validate_delegate(data)
        except InvalidInputError as exc:
            checks.append(RowCheck(None, exc))
            continue
        errors: dict[str, str] = {}
        if clean["email"] and clean["email"].casefold() in taken_emails:
            errors["email"] = "Email này đã được dùng cho một đại biểu khác của đơn vị"
        if clean["phone"] and (clean["name"].casefold(), clean["phone"]) in taken_people:
            errors["name"] = "Đại biểu cùng họ tên và số điện thoại đã có trong danh sách"
        if errors:
            checks.append(RowCheck(None, DuplicateError(errors)))
            continue
        taken_emails.add(clean["email"].casefold())
        if clean["phone"]:
            taken_people.add((clean["name"].casefold(), clean["phone"]))
        if room is not None:
            if room <= 0:
                checks.append(RowCheck(None, ConflictError(
                    Reason.MALFORMED, f"Đơn vị chỉ được cử tối đa {limit} đại biểu")))
                continue
            room -= 1
        checks.append(RowCheck(clean, None))
    return checks


def check_registration(
    invitation: Invitation,
    data: Mapping[str, Any],
    now: datetime,
    *,
    exclude_id: int | None = None,
    adding: bool = True,
) -> dict[str, Any]:
    """Apply :func:`check_registrations` to one delegate: return the clean fields or raise its refusal."""
    (check,) = check_registrations(invitation, [data], now, exclude_id=exclude_id, adding=adding)
    if check.error is not None:
        raise check.error
    assert check.clean is not None
    return check.clean


def _issue(invitation: Invitation, clean: Mapping[str, Any], now: datetime, deps: Deps) -> Delegate:
    """Register a validated delegate and issue their code; the e-mail is left to the caller."""
    return delegate_service.register_delegate(
        invitation,
        clean,
        now,
        signing_key=deps.signing_key,
        mail_sender=deps.mail_sender,
        mail_from=deps.mail_from,
        entry_opens_before=deps.entry_opens_before,
        grace_after_end=deps.grace_after_end,
        send_mail=False,
    )


def add_delegate(
    invitation: Invitation, data: Mapping[str, Any], now: datetime, deps: Deps
) -> Delegate:
    """Add a delegate (code issued, gates told); the e-mail waits for "Gửi Mail"."""
    with write_transaction():
        clean = check_registration(invitation, data, now)
        return _issue(invitation, clean, now, deps)


def edit_delegate(
    invitation: Invitation, delegate_id: int, data: Mapping[str, Any], now: datetime
) -> Delegate:
    """Correct a delegate's details (same person, same code); a new e-mail address needs "Gửi Mail" again."""
    with write_transaction():
        _ensure_open(invitation, now)
        delegate = _delegate_of(invitation, delegate_id)
        clean = check_registration(invitation, data, now, exclude_id=delegate.id, adding=False)
        email_changed = clean["email"] != delegate.email
        delegate.name, delegate.position = clean["name"], clean["position"]
        delegate.email, delegate.phone = clean["email"], clean["phone"]
        if email_changed:
            delegate.mail_status, delegate.mail_error = DelegateMailState.PENDING, None
            _cancel_queued_mail(delegate)
        delegate.save()
        append_change(payloads.DelegateUpsert(delegate=delegate_service.delegate_entry(delegate)), now)
        audit(delegate_service.registrar_of(invitation), "delegate.edit", f"delegate:{delegate.id}",
              {"invitation": invitation.number, "email_changed": email_changed}, now=now)
    log.info("delegate edited id=%s email_changed=%s", delegate.id, email_changed)
    return delegate


def _cancel_queued_mail(delegate: Delegate) -> None:
    outbound_mail.cancel_delegate_code(delegate.id, "delegate changed")


def _revoke(delegate: Delegate, now: datetime) -> None:
    delegate.revoked_at = now
    delegate.save(only=[Delegate.revoked_at])
    _cancel_queued_mail(delegate)
    append_change(payloads.DelegateRevoke(meeting_id=delegate.meeting_id, delegate_id=delegate.id), now)


def remove_delegate(invitation: Invitation, delegate_id: int, now: datetime) -> Delegate:
    """Remove a delegate: their code is revoked (gates refuse it) and unsent mail is cancelled."""
    with write_transaction():
        _ensure_open(invitation, now)
        delegate = _delegate_of(invitation, delegate_id)
        _revoke(delegate, now)
        audit(delegate_service.registrar_of(invitation), "delegate.remove", f"delegate:{delegate.id}",
              {"invitation": invitation.number, "name": delegate.name}, now=now)
    log.info("delegate removed id=%s", delegate.id)
    return delegate


def replace_delegate(
    invitation: Invitation, delegate_id: int, data: Mapping[str, Any], now: datetime, deps: Deps
) -> Delegate:
    """Send another person instead: the old code is revoked and the new person's code is mailed at once."""
    with write_transaction():
        _ensure_open(invitation, now)
        old = _delegate_of(invitation, delegate_id)
        clean = check_registration(invitation, data, now, exclude_id=old.id, adding=False)
        _revoke(old, now)
        new = _issue(invitation, clean, now, deps)
        audit(delegate_service.registrar_of(invitation), "delegate.replace", f"delegate:{old.id}",
              {"invitation": invitation.number, "replaced_by": new.id}, now=now)
    log.info("delegate replaced old=%s new=%s", old.id, new.id)
    _send(invitation, [new], now, deps)
    return new


def _send(
    invitation: Invitation, targets: list[Delegate], now: datetime, deps: Deps
) -> str | None:
    enqueue = getattr(deps.mail_sender, "enqueue_delegate_code", None)
    if not callable(enqueue):  # queue off (some tests): send now, one by one
        for delegate in targets:
            delegate_service.send_code_email(
                delegate, mail_sender=deps.mail_sender, mail_from=deps.mail_from, now=now
            )
        return None
    batch = new_batch()
    with write_transaction():
        for delegate in targets:
            enqueue(delegate, group_key=group_key(invitation), batch=batch)
    return batch


def send_mails(invitation: Invitation, now: datetime, deps: Deps) -> int:
    """Queue the code e-mail of every delegate not yet mailed (or whose mail failed); returns how many.

    Only queues: the worker sends, and :func:`mail_progress` reports how far it got.
    """
    _ensure_open(invitation, now)
    targets = [d for d in active_delegates(invitation) if d.mail_status in DelegateMailState.UNSENT]
    if targets:
        _send(invitation, targets, now, deps)
        with write_transaction():
            audit(delegate_service.registrar_of(invitation), "delegate.send_mail", f"invitation:{invitation.id}",
                  {"count": len(targets)}, now=now)
    log.info("registration mails queued invitation=%s count=%d", invitation.id, len(targets))
    return len(targets)


def mail_progress(invitation: Invitation) -> Progress:
    """Return the progress of the invitation's latest "Gửi Mail"."""
    return batch_progress(group_key(invitation))
