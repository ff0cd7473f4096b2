"""Registration by the invited organisation: open an invitation, add, edit, replace and remove delegates,
and queue their code e-mails; and the office's approval of registrations, for meetings that ask for it.

When a meeting has ``registration_approval`` on, :func:`check_registrations` (the one rule of every path) marks each
accepted row as pending: the delegate is stored without a code, gets no mail and is not sent to the gates until a
clerk or leader of the office approves it (:func:`approve_registrations`: the code is issued and mailed) or refuses
it with a reason (:func:`refuse_registration`). A pending delegate counts within the invitation's limit.
Walk-ins' one-day codes, stored as delegates under the invitation they came with, are not the organisation's
delegates: they use none of its quota and are not on its page (:func:`active_delegates`).

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
from central.core.context import CentralContext
from central.core.db import write_transaction
from central.core.errors import (
    ConflictError,
    DuplicateError,
    InvalidInputError,
    NotFoundError,
    ServiceError,
)
from central.core.keys import ActiveKey
from central.core.states import ApprovalState, DelegateMailState, InvitationState, MeetingState
from central.core.validity import DEFAULT_GRACE_AFTER_END
from central.invitations.models import Invitation
from central.invitations.services import find_invitation
from central.meetings.models import Meeting
from central.outbound import worker as outbound_mail
from central.outbound.mail import MailSender
from central.outbound.queue import Progress, batch_progress, new_batch
from central.registration import delegates as delegate_service
from central.registration.models import Delegate, registered_by_organisation
from protocols import payloads
from protocols.codes import Scheme
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

    @classmethod
    def of(cls, ctx: CentralContext) -> Deps:
        """The registration's dependencies from the app's context."""
        return cls(signing_key=ctx.signing_key, mail_sender=ctx.mail_sender, mail_from=ctx.config.mail_from,
                   entry_opens_before=ctx.entry_opens_before, grace_after_end=ctx.code_validity.grace_after_end)


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
    """Return the delegates the organisation registered under the invitation and has not removed or replaced
    (approved or awaiting the office's approval), oldest first. Walk-ins admitted at the desk are not among them."""
    return list(
        Delegate.select()
        .where((Delegate.invitation == invitation) & Delegate.revoked_at.is_null() & registered_by_organisation())
        .order_by(Delegate.id)
    )


def refused_delegates(invitation: Invitation) -> list[Delegate]:
    """Return the invitation's registrations the office refused (with its reason), newest first."""
    return list(
        Delegate.select()
        .where((Delegate.invitation == invitation) & (Delegate.approval == ApprovalState.REFUSED))
        .order_by(Delegate.id.desc())
    )


def _delegate_of(invitation: Invitation, delegate_id: int) -> Delegate:
    delegate = Delegate.get_or_none(
        (Delegate.id == delegate_id)
        & (Delegate.invitation == invitation)
        & Delegate.revoked_at.is_null()
        & registered_by_organisation()
    )
    if delegate is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy đại biểu")
    return delegate


@dataclass
class RowCheck:
    """The verdict of the registration rules on one delegate: the clean fields, or why it is refused; ``pending``
    when the meeting asks the office to approve it before its code is issued."""

    clean: dict[str, Any] | None
    error: ServiceError | None
    pending: bool = False


def needs_approval(invitation: Invitation) -> bool:
    """True when the meeting asks the office to approve each registration before its code is issued."""
    return bool(getattr(invitation.meeting, "registration_approval", False))


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
    being edited or replaced, who does not count as a duplicate. A row that passes is ``pending`` when the meeting
    asks the office to approve registrations (:func:`needs_approval`): it is stored without a code until then.
    """
    _ensure_open(invitation, now)
    pending = needs_approval(invitation)
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
        checks.append(RowCheck(clean, None, pending))
    return checks


def check_registration(
    invitation: Invitation,
    data: Mapping[str, Any],
    now: datetime,
    *,
    exclude_id: int | None = None,
    adding: bool = True,
) -> RowCheck:
    """Apply :func:`check_registrations` to one delegate: return its accepted verdict (clean fields, pending or
    not) or raise its refusal."""
    (check,) = check_registrations(invitation, [data], now, exclude_id=exclude_id, adding=adding)
    if check.error is not None:
        raise check.error
    assert check.clean is not None
    return check


def register_checked(invitation: Invitation, check: RowCheck, now: datetime, deps: Deps) -> Delegate:
    """Store a delegate the rules accepted: with a code (gates told) when approved, without one while it waits
    for the office (``check.pending``). The e-mail is left to the caller. Every path writes through here."""
    assert check.clean is not None
    return delegate_service.register_delegate(
        invitation,
        check.clean,
        now,
        signing_key=deps.signing_key,
        mail_sender=deps.mail_sender,
        mail_from=deps.mail_from,
        entry_opens_before=deps.entry_opens_before,
        grace_after_end=deps.grace_after_end,
        send_mail=False,
        pending=check.pending,
    )


def add_delegate(
    invitation: Invitation, data: Mapping[str, Any], now: datetime, deps: Deps
) -> Delegate:
    """Add a delegate (code issued, gates told; or pending the office's approval); the e-mail waits for
    "Gửi Mail"."""
    with write_transaction():
        check = check_registration(invitation, data, now)
        return register_checked(invitation, check, now, deps)


def edit_delegate(
    invitation: Invitation, delegate_id: int, data: Mapping[str, Any], now: datetime
) -> Delegate:
    """Correct a delegate's details (same person, same code); a new e-mail address needs "Gửi Mail" again."""
    with write_transaction():
        _ensure_open(invitation, now)
        delegate = _delegate_of(invitation, delegate_id)
        clean = check_registration(invitation, data, now, exclude_id=delegate.id, adding=False).clean
        assert clean is not None
        email_changed = clean["email"] != delegate.email
        delegate.name, delegate.position = clean["name"], clean["position"]
        delegate.email, delegate.phone = clean["email"], clean["phone"]
        if email_changed:
            delegate.mail_status, delegate.mail_error = DelegateMailState.PENDING, None
            _cancel_queued_mail(delegate)
        delegate.save()
        if delegate.approval == ApprovalState.APPROVED:  # the gates know only approved delegates
            append_change(payloads.DelegateUpsert(delegate=delegate_service.delegate_entry(delegate)), now)
        audit(delegate_service.registrar_of(invitation), "delegate.edit", f"delegate:{delegate.id}",
              {"invitation": invitation.number, "email_changed": email_changed}, now=now)
    log.info("delegate edited id=%s email_changed=%s", delegate.id, email_changed)
    return delegate


def _cancel_queued_mail(delegate: Delegate) -> int:
    return outbound_mail.cancel_delegate_code(delegate.id, "delegate changed")


def _revoke(delegate: Delegate, now: datetime) -> bool:
    """Revoke a delegate's code; True when they had been told a code (so it is worth telling them it is gone)."""
    had_code = delegate.approval == ApprovalState.APPROVED
    delegate.revoked_at = now
    delegate.save(only=[Delegate.revoked_at])
    cancelled = _cancel_queued_mail(delegate)
    # told: the code mail went out (or is leaving now: a queued mail that could no longer be cancelled)
    told = had_code and (delegate.mail_status == DelegateMailState.SENT
                         or (delegate.mail_status == DelegateMailState.QUEUED and not cancelled))
    if had_code:
        append_change(payloads.DelegateRevoke(meeting_id=delegate.meeting_id, delegate_id=delegate.id), now)
    return told


def _tell_revoked(delegate: Delegate, now: datetime, deps: Deps | None, *, replaced: bool) -> None:
    """E-mail a removed or replaced delegate that their code no longer opens the gates (a failure is logged)."""
    if deps is None or not delegate.email:
        return
    from central.registration.notices import send_code_revoked

    send_code_revoked(delegate, now, mail_sender=deps.mail_sender, mail_from=deps.mail_from, replaced=replaced)


def remove_delegate(
    invitation: Invitation, delegate_id: int, now: datetime, deps: Deps | None = None
) -> Delegate:
    """Remove a delegate: their code is revoked (gates refuse it), unsent mail is cancelled, and a delegate who had
    been mailed their code is told by e-mail that it no longer works (with ``deps``)."""
    with write_transaction():
        _ensure_open(invitation, now)
        delegate = _delegate_of(invitation, delegate_id)
        told = _revoke(delegate, now)
        audit(delegate_service.registrar_of(invitation), "delegate.remove", f"delegate:{delegate.id}",
              {"invitation": invitation.number, "name": delegate.name}, now=now)
    log.info("delegate removed id=%s", delegate.id)
    if told:
        _tell_revoked(delegate, now, deps, replaced=False)
    return delegate


def replace_delegate(
    invitation: Invitation, delegate_id: int, data: Mapping[str, Any], now: datetime, deps: Deps
) -> Delegate:
    """Send another person instead: the old code is revoked (its holder, if mailed, is told by e-mail that it no
    longer works) and the new person's code is mailed at once, or waits for the office's approval."""
    with write_transaction():
        _ensure_open(invitation, now)
        old = _delegate_of(invitation, delegate_id)
        check = check_registration(invitation, data, now, exclude_id=old.id, adding=False)
        told = _revoke(old, now)
        new = register_checked(invitation, check, now, deps)
        audit(delegate_service.registrar_of(invitation), "delegate.replace", f"delegate:{old.id}",
              {"invitation": invitation.number, "replaced_by": new.id}, now=now)
    log.info("delegate replaced old=%s new=%s pending=%s", old.id, new.id, check.pending)
    if told:
        _tell_revoked(old, now, deps, replaced=True)
    if not check.pending:
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
    targets = [d for d in active_delegates(invitation)
               if d.mail_status in DelegateMailState.UNSENT and d.approval == ApprovalState.APPROVED]
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


# ------------------------------------------------------------------------------- the office's approval


def pending_registrations(meeting_id: int | None = None) -> list[Delegate]:
    """Return the registrations awaiting the office's approval (of one meeting, or of all meetings not over), by
    meeting, organisation and time of registration."""
    from central.invitations.models import Organisation

    query = (
        Delegate.select(Delegate, Invitation, Organisation, Meeting)
        .join(Invitation).join(Organisation).switch(Delegate).join(Meeting)
        .where((Delegate.approval == ApprovalState.PENDING) & Delegate.revoked_at.is_null())
        .order_by(Meeting.starts_at, Meeting.id, Organisation.name, Delegate.id)
    )
    if meeting_id is not None:
        query = query.where(Delegate.meeting == meeting_id)
    return list(query)


def count_pending_registrations() -> int:
    """How many registrations await the office's approval (the menu's count)."""
    return int(Delegate.select().where(
        (Delegate.approval == ApprovalState.PENDING) & Delegate.revoked_at.is_null()).count())


def _pending_of(delegate_id: int) -> Delegate:
    delegate = Delegate.get_or_none(Delegate.id == delegate_id)
    if delegate is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy đăng ký")
    if delegate.approval != ApprovalState.PENDING:
        raise ConflictError(Reason.MALFORMED,
                            f"Đăng ký của {delegate.name} không còn chờ duyệt ({ApprovalState(delegate.approval).vi})")
    meeting: Meeting = delegate.meeting
    if meeting.status == MeetingState.CANCELLED:
        raise ConflictError(Reason.MEETING_CANCELLED, "Cuộc họp đã bị hủy.")
    if delegate.revoked_at is not None:  # the organisation removed it meanwhile
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy đăng ký")
    return delegate


@dataclass(frozen=True)
class ApprovalOutcome:
    """What a bulk approval did: the delegates approved (codes issued and mailed) and, by delegate id, why the
    others were not."""

    approved: list[Delegate]
    refused: dict[int, str]


def approve_registrations(delegate_ids: Sequence[int], *, actor: str, now: datetime, deps: Deps) -> ApprovalOutcome:
    """Approve pending registrations: each gets its code (gates told) and its code e-mail, as a registration of a
    meeting without approval does. Each is approved on its own: one that is no longer pending, or whose meeting is
    cancelled or over, is reported and the others go on. Audited as ``delegate.approve``."""
    approved: list[Delegate] = []
    refused: dict[int, str] = {}
    for delegate_id in dict.fromkeys(delegate_ids):
        try:
            with write_transaction():
                delegate = _pending_of(delegate_id)
                meeting: Meeting = delegate.meeting
                if meeting.ends_at <= now:
                    raise ConflictError(Reason.EXPIRED, "Cuộc họp đã kết thúc.")
                key = deps.signing_key() if Scheme(meeting.scheme) is Scheme.SIGNED else None
                delegate.approval = ApprovalState.APPROVED
                delegate.decided_by, delegate.decided_at = actor[:64], now
                delegate = delegate_service.assign_code(delegate, key, now)
                audit(actor, "delegate.approve", f"delegate:{delegate.id}",
                      {"invitation": delegate.invitation.number, "name": delegate.name}, now=now)
        except ServiceError as exc:
            refused[delegate_id] = exc.message
            continue
        approved.append(delegate)
    by_invitation: dict[int, list[Delegate]] = {}
    for delegate in approved:
        by_invitation.setdefault(delegate.invitation_id, []).append(delegate)
    for delegates in by_invitation.values():
        _send(delegates[0].invitation, delegates, now, deps)
    log.info("registrations approved count=%d refused=%d by=%s", len(approved), len(refused), actor)
    return ApprovalOutcome(approved, refused)


MAX_REFUSAL = 500


def refuse_registration(delegate_id: int, reason: Any, *, actor: str, now: datetime) -> Delegate:
    """Refuse a pending registration with a (required) reason: no code is issued, the organisation sees the reason
    on its page and the place within its limit is free again. Audited as ``delegate.refuse``."""
    from central.core import validation as v

    fields = v.FieldCollector({"reason": reason})
    text = fields.take("reason", v.text, required=True, max_length=MAX_REFUSAL)
    fields.raise_if_any()
    with write_transaction():
        delegate = _pending_of(delegate_id)
        delegate.approval = ApprovalState.REFUSED
        delegate.decision_note = text
        delegate.decided_by, delegate.decided_at = actor[:64], now
        delegate.revoked_at = now  # no longer one of the invitation's delegates; the gates never knew it
        delegate.save()
        audit(actor, "delegate.refuse", f"delegate:{delegate.id}",
              {"invitation": delegate.invitation.number, "name": delegate.name, "reason": text}, now=now)
    log.info("registration refused id=%s by=%s", delegate.id, actor)
    return delegate
