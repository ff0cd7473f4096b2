"""Invitations: the official flow, numbering per year ("Số thư mời", e.g. ``125/GM-UBND``) and the secret.

An organiser drafts invitations (one per organisation); an approver approves one, which numbers it, gives
it its registration secret and queues its delivery by e-mail and SMS, or returns it with a comment; the
organiser can correct a returned draft and submit it again. Every way of creating an invitation (the
meeting page, ``POST /api/v1/invitations``, ``POST /api/v1/invitations/drafts``) makes a draft: only an
approver's :func:`approve_invitation` numbers it, gives it a secret and sends it. The secret exists in clear
only in the delivery rows still to be sent (the e-mail and SMS to the organisation); only its SHA-256 is
kept on the invitation, and no response to staff carries it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import peewee

from central.core import validation as v
from central.core.audit import audit
from central.core.db import write_transaction
from central.core.errors import ConflictError, DuplicateError, NotFoundError
from central.core.states import InvitationState, MeetingState
from central.core.tokens import digest, matches
from central.invitations import shortlinks
from central.invitations.guesses import GuessGuard, found_or_miss, request_guard
from central.invitations.models import Delivery, Invitation, Organisation
from central.meetings.models import Meeting
from protocols.reasons import Reason

log = logging.getLogger(__name__)

REGISTER_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
"""The register's year follows local time in Vietnam."""

MAX_NUMBERING_ATTEMPTS = 20


def format_number(fmt: str, seq: int, year: int) -> str:
    """Return the invitation number for ``seq`` in ``year`` using the configured format."""
    return fmt.format(seq=seq, year=year)


def _numbered(now: datetime, write: Callable[[int, int], Invitation]) -> Invitation:
    """Run ``write(year, seq)`` in a transaction with the next free number of the year's register.

    Two concurrent approvals cannot get the same number: the (year, seq) and number columns are unique,
    and a losing write retries with the next seq.
    """
    year = now.astimezone(REGISTER_TZ).year
    for attempt in range(MAX_NUMBERING_ATTEMPTS):
        try:
            with write_transaction():
                last = (
                    Invitation.select(peewee.fn.MAX(Invitation.seq))
                    .where(Invitation.year == year)
                    .scalar()
                )
                invitation = write(year, (last or 0) + 1)
            log.info("invitation numbered number=%s tries=%d", invitation.number, attempt + 1)
            return invitation
        except peewee.IntegrityError:
            log.info("invitation number taken, retrying year=%s attempt=%d", year, attempt)
    raise ConflictError(Reason.INTERNAL_ERROR, "Không cấp được số thư mời, vui lòng thử lại")


def find_invitation(number: str, secret: str | None, *, guard: GuessGuard | None = None) -> Invitation:
    """Return the invitation with ``number`` whose secret matches, else raise :class:`NotFoundError`.

    Numbers recur from year to year (the register restarts), so the secret picks among them. An unknown
    number and a wrong secret raise the same error, after the same constant-time comparisons, and both count
    as a guess of the caller's address at ``number`` (``guard``, by default the current request's:
    :mod:`central.invitations.guesses`); a pair that used up its guesses gets :class:`TooManyGuessesError`
    before anything is looked up.
    """
    guard = guard if guard is not None else request_guard()
    if guard is not None:
        guard.check(number)
    candidates: list[Invitation] = []
    if isinstance(number, str) and number and len(number) <= 64:
        candidates = list(Invitation.select().where(Invitation.number == number))
    given = digest(secret) if isinstance(secret, str) else ""
    found = None
    options: list[Invitation | None] = [*candidates] or [None]
    for invitation in options:
        # a numbered invitation always has a secret; the dummy keeps the comparison's time the same regardless.
        # The SMS link's short token (``shortlinks``) opens it as well as the long secret.
        long_ok = matches(invitation.secret_hash if invitation is not None else None, given)
        short_ok = matches(invitation.short_hash if invitation is not None else None, given)
        if (long_ok or short_ok) and invitation is not None:
            found = invitation
    return found_or_miss(found, guard, number)


def registration_url(public_url: str, number: str, secret: str) -> str:
    """Return the link an organisation opens to register its delegates."""
    return f"{public_url}/registration/{quote(number, safe='/')}?secret={quote(secret, safe='')}"


def invitation_to_dict(invitation: Invitation, *, with_deliveries: bool = False) -> dict[str, Any]:
    """Return the JSON form of an invitation (never its secret)."""
    body = {
        "id": invitation.id,
        "number": invitation.number,
        "year": invitation.year,
        "seq": invitation.seq,
        "meeting_id": invitation.meeting_id,
        "organisation_id": invitation.organisation_id,
        "created_at": invitation.created_at.isoformat(),
        "status": invitation.status,
        "delegate_limit": invitation.delegate_limit,
        "comment": invitation.comment,
        "drafted_by": invitation.drafted_by,
        "approved_by": invitation.approved_by,
        "approved_at": invitation.approved_at.isoformat() if invitation.approved_at else None,
        "returned_by": invitation.returned_by,
        "returned_at": invitation.returned_at.isoformat() if invitation.returned_at else None,
        "issuing_body_id": invitation.issuing_body_id,
    }
    if with_deliveries:
        from central.invitations.deliveries import delivery_to_dict

        body["deliveries"] = [delivery_to_dict(d) for d in invitation.deliveries.order_by(Delivery.id)]
    return body


# ------------------------------------------------------------------------------------------ the official flow

STATUSES = tuple(InvitationState)
MAX_COMMENT = 1000
MAX_DELEGATE_LIMIT = 500


def _delegate_limit(value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DELEGATE_LIMIT:
        raise v.FieldError(f"Phải là số từ 1 đến {MAX_DELEGATE_LIMIT}")
    return value


def _organisation_ids(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise v.FieldError("Chọn ít nhất một đơn vị")
    return v.positive_ids(value, message="Phải là danh sách mã đơn vị")


def _meeting_of(fields: v.FieldCollector, meeting_id: int | None) -> Meeting | None:
    if meeting_id is None:
        return None
    meeting = Meeting.get_or_none(Meeting.id == meeting_id)
    if meeting is None:
        fields.add("meeting_id", "Không tìm thấy cuộc họp")
    return meeting


def _check_not_invited(fields: v.FieldCollector, field: str, meeting: Meeting | None, org_ids: list[int]) -> None:
    """An organisation has at most one invitation to a meeting (a returned one is corrected and resubmitted)."""
    if meeting is None or not org_ids:
        return
    taken = [
        inv.organisation.name
        for inv in Invitation.select().where((Invitation.meeting == meeting) & Invitation.organisation.in_(org_ids))
    ]
    if taken:  # a duplicate (409), once every field is otherwise valid
        fields.raise_if_any()
        raise DuplicateError({field: "Đã có thư mời cho: " + ", ".join(sorted(set(taken)))})


def _issuing_body(fields: v.FieldCollector) -> int | None:
    """The optional ``issuing_body_id`` of a draft, which must exist (none: the default body)."""
    from central.invitations.models import IssuingBody

    if fields.data.get("issuing_body_id") in (None, "", 0):
        return None
    body_id = fields.take("issuing_body_id", v.positive_int)
    if body_id is not None and not IssuingBody.select().where(IssuingBody.id == body_id).exists():
        fields.add("issuing_body_id", "Không tìm thấy cơ quan ban hành")
    return body_id


def _store_drafts(meeting: Meeting, orgs: list[Organisation], limit: int | None, *, actor: str,
                  now: datetime, body_id: int | None = None) -> list[Invitation]:
    if meeting.status in MeetingState.FINAL:
        raise ConflictError(Reason.MEETING_CANCELLED, "Cuộc họp đã hủy hoặc đã họp")
    created = []
    with write_transaction():
        for org in sorted(orgs, key=lambda o: o.name):
            invitation = Invitation.create(
                meeting=meeting, organisation=org, status=InvitationState.DRAFT, delegate_limit=limit,
                drafted_by=actor, created_at=now, issuing_body=body_id,
            )
            audit(actor, "invitation.draft", f"invitation:{invitation.id}",
                  {"meeting": meeting.id, "organisation": org.id, "delegate_limit": limit,
                   **({"issuing_body": body_id} if body_id else {})}, now=now)
            created.append(invitation)
    return created


def draft_invitations(data: Mapping[str, Any], *, actor: str, now: datetime) -> list[Invitation]:
    """Draft one invitation per organisation: ``meeting_id``, ``organisation_ids`` (a list), optional
    ``delegate_limit`` and ``issuing_body_id`` (the giấy mời's letterhead; none: the default body). An
    organisation that already has an invitation to the meeting is refused."""
    fields = v.FieldCollector(data)
    meeting_id = fields.take("meeting_id", v.positive_int)
    org_ids = fields.take("organisation_ids", _organisation_ids)
    limit = fields.take("delegate_limit", _delegate_limit)
    body_id = _issuing_body(fields)
    meeting = _meeting_of(fields, meeting_id)
    orgs: list[Organisation] = []
    if org_ids:
        orgs = list(Organisation.select().where(Organisation.id.in_(org_ids)))
        if len(orgs) != len(org_ids):
            fields.add("organisation_ids", "Không tìm thấy đơn vị")
        else:
            _check_not_invited(fields, "organisation_ids", meeting, org_ids)
    fields.raise_if_any()
    assert meeting is not None  # raise_if_any() refused a missing or unknown one
    return _store_drafts(meeting, orgs, limit, actor=actor, now=now, body_id=body_id)


def draft_invitation(data: Mapping[str, Any], *, actor: str, now: datetime) -> Invitation:
    """Draft the invitation of one organisation: ``meeting_id``, ``organisation_id``, optional
    ``delegate_limit``. It has no number and no secret until an approver approves it."""
    fields = v.FieldCollector(data)
    meeting_id = fields.take("meeting_id", v.positive_int)
    organisation_id = fields.take("organisation_id", v.positive_int)
    limit = fields.take("delegate_limit", _delegate_limit)
    body_id = _issuing_body(fields)
    meeting = _meeting_of(fields, meeting_id)
    organisation = None
    if organisation_id is not None:
        organisation = Organisation.get_or_none(Organisation.id == organisation_id)
        if organisation is None:
            fields.add("organisation_id", "Không tìm thấy đơn vị")
        else:
            _check_not_invited(fields, "organisation_id", meeting, [organisation_id])
    fields.raise_if_any()
    assert meeting is not None and organisation is not None  # raise_if_any() refused a missing or unknown one
    (invitation,) = _store_drafts(meeting, [organisation], limit, actor=actor, now=now, body_id=body_id)
    return invitation


def get_invitation(invitation_id: int) -> Invitation:
    """Return the invitation or raise :class:`NotFoundError`."""
    invitation = Invitation.get_or_none(Invitation.id == invitation_id)
    if invitation is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy thư mời")
    return invitation


def list_invitations(status: str | None = None, meeting_id: int | None = None) -> list[Invitation]:
    """Return invitations, newest first, optionally filtered by state and meeting."""
    query = Invitation.select().order_by(Invitation.id.desc())
    if status in STATUSES:
        query = query.where(Invitation.status == status)
    if meeting_id:
        query = query.where(Invitation.meeting == meeting_id)
    return list(query)


def _require(invitation: Invitation, *states: InvitationState) -> None:
    if invitation.status not in states:
        raise ConflictError(
            Reason.MALFORMED, f"Thư mời đang ở trạng thái '{invitation.status}', không thực hiện được thao tác này"
        )


@dataclass(frozen=True)
class ApprovedInvitation:
    """An invitation just approved, and its registration link (the only time it exists outside delivery)."""

    invitation: Invitation
    link: str


def approve_invitation(
    invitation_id: int, *, actor: str, now: datetime, number_format: str, public_url: str
) -> ApprovedInvitation:
    """Approve a draft: number it, give it a secret and queue its e-mail and SMS deliveries. The number takes its
    issuing body's symbols (``12/GM-UBND``); ``number_format`` (``VAORA_INVITATION_FORMAT``) serves an office
    that configured no issuing body."""
    from central.invitations.deliveries import queue_deliveries
    from central.invitations.letterhead import number_format_of

    invitation = get_invitation(invitation_id)
    _require(invitation, InvitationState.DRAFT)
    number_format = number_format_of(invitation, number_format)
    if invitation.meeting.status in MeetingState.FINAL:
        raise ConflictError(Reason.MEETING_CANCELLED, "Cuộc họp đã hủy hoặc đã họp")
    secret = secrets.token_urlsafe(24)
    holder: dict[str, str] = {}

    def write(year: int, seq: int) -> Invitation:
        row = Invitation.get_by_id(invitation.id)
        _require(row, InvitationState.DRAFT)
        row.number = format_number(number_format, seq, year)
        row.year, row.seq = year, seq
        row.secret_hash = digest(secret)
        token = shortlinks.new_token()  # drawn per try: a (most unlikely) taken token retries with another
        row.short_hash = digest(token)
        row.status = InvitationState.APPROVED
        row.approved_by = actor
        row.approved_at = now
        row.save()
        holder["link"] = registration_url(public_url, row.number, secret)
        queue_deliveries(row, holder["link"], now=now, short_link=shortlinks.short_url(public_url, token))
        audit(actor, "invitation.approve", f"invitation:{row.id}", {"number": row.number}, now=now)
        return row

    approved = _numbered(now, write)
    return ApprovedInvitation(invitation=approved, link=holder["link"])


def return_invitation(invitation_id: int, comment: Any, *, actor: str, now: datetime) -> Invitation:
    """Send a draft back to the organiser with a (required) comment; the clerk sees it in their menu's count and on
    the invitation (:func:`notify_returned` also e-mails them)."""
    fields = v.FieldCollector({"comment": comment})
    text = fields.take("comment", v.text, required=True, max_length=MAX_COMMENT)
    fields.raise_if_any()
    with write_transaction():
        invitation = get_invitation(invitation_id)
        _require(invitation, InvitationState.DRAFT)
        invitation.status = InvitationState.RETURNED
        invitation.comment = text
        invitation.returned_by, invitation.returned_at = actor[:64], now
        invitation.save()
        audit(actor, "invitation.return", f"invitation:{invitation.id}", {"comment": text}, now=now)
    return invitation


def resubmit_invitation(
    invitation_id: int, data: Mapping[str, Any], *, actor: str, now: datetime
) -> Invitation:
    """Edit a draft, or correct a returned invitation and submit it again for approval: ``delegate_limit`` (empty:
    none) and, when given, ``organisation_id`` (another organisation not yet invited to the meeting)."""
    fields = v.FieldCollector(data)
    limit = fields.take("delegate_limit", _delegate_limit)
    organisation = None
    invitation = get_invitation(invitation_id)
    if data.get("organisation_id") not in (None, ""):
        organisation_id = fields.take("organisation_id", v.positive_int)
        if organisation_id is not None and organisation_id != invitation.organisation_id:
            organisation = Organisation.get_or_none(Organisation.id == organisation_id)
            if organisation is None:
                fields.add("organisation_id", "Không tìm thấy đơn vị")
            else:
                _check_not_invited(fields, "organisation_id", invitation.meeting, [organisation_id])
    fields.raise_if_any()
    with write_transaction():
        invitation = get_invitation(invitation_id)
        _require(invitation, *InvitationState.EDITABLE)
        previous = invitation.status
        changes: dict[str, Any] = {"from": previous, "delegate_limit": limit}
        invitation.status = InvitationState.DRAFT
        invitation.delegate_limit = limit
        if organisation is not None:
            changes["organisation"] = {"from": invitation.organisation_id, "to": organisation.id}
            invitation.organisation = organisation
        invitation.save()
        audit(actor, "invitation.resubmit", f"invitation:{invitation.id}", changes, now=now)
    return invitation


def waiting_for_approval() -> list[Invitation]:
    """The leader's queue: drafts waiting for approval, oldest meeting first."""
    return list(
        Invitation.select(Invitation, Meeting, Organisation).join(Meeting).switch(Invitation).join(Organisation)
        .where(Invitation.status == InvitationState.DRAFT)
        .order_by(Meeting.starts_at, Meeting.id, Organisation.name)
    )


def count_by_status(status: InvitationState) -> int:
    """How many invitations are in ``status`` (the menu's counts: drafts for leaders, returned for clerks)."""
    return int(Invitation.select().where(Invitation.status == status).count())


@dataclass(frozen=True)
class BulkApproval:
    """What approving several invitations at once did: the ones approved, and why each other one was not."""

    approved: list[ApprovedInvitation]
    refused: dict[int, str]


def approve_invitations(
    invitation_ids: list[int], *, actor: str, now: datetime, number_format: str, public_url: str
) -> BulkApproval:
    """Approve several drafts, each as :func:`approve_invitation` does (numbered in order, sent): one that cannot be
    approved (no longer a draft, its meeting cancelled) is reported and the others go on."""
    from central.core.errors import ServiceError

    approved: list[ApprovedInvitation] = []
    refused: dict[int, str] = {}
    for invitation_id in dict.fromkeys(invitation_ids):
        try:
            approved.append(approve_invitation(invitation_id, actor=actor, now=now, number_format=number_format,
                                               public_url=public_url))
        except ServiceError as exc:
            refused[invitation_id] = exc.message
    log.info("invitations approved in bulk count=%d refused=%d by=%s", len(approved), len(refused), actor)
    return BulkApproval(approved, refused)


def notify_returned(invitation: Invitation, *, now: datetime, mail_sender: Any, mail_from: str) -> bool:
    """E-mail the clerk who drafted ``invitation`` that the leader returned it, with the leader's comment.

    True when a mail was queued or sent; False when the clerk has no account or e-mail address (the menu's count
    and the invitation page still tell them).
    """
    from central.auth.models import User
    from central.auth.users import person_label
    from central.outbound.notices import build_notice, send_notice

    clerk = User.get_or_none(User.username == invitation.drafted_by) if invitation.drafted_by else None
    if clerk is None or not clerk.email or not clerk.active:
        return False
    meeting = invitation.meeting
    text = (
        f"Kính gửi {clerk.full_name or clerk.username},\n\n"
        f"Thư mời {invitation.organisation.name} dự cuộc họp \"{meeting.title}\" đã bị trả lại "
        f"bởi {person_label(invitation.returned_by)}.\n\n"
        f"Ý kiến của lãnh đạo:\n{invitation.comment}\n\n"
        "Vui lòng sửa thư mời và trình lại trên trang Thư mời của hệ thống.\n"
    )
    message = build_notice(sender=mail_from, to=clerk.email, now=now, text=text,
                           subject=f"Thư mời bị trả lại: {meeting.title}"[:200])
    return send_notice(message, now, mail_sender=mail_sender)
