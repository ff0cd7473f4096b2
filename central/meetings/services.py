"""Meetings: creation, editing, states, remote points, and the form gates see (``MeetingEntry``).

Cancelling a meeting revokes every delegate's code and tells them; moving its time re-issues every code
with the new validity and e-mails it. Both append the changes gates follow and are audited.

A meeting is held at its main hall and at its remote points ("điểm cầu"); the gates of every one of their sites
admit its delegates (:func:`meeting_entry` carries the sites). A remote point added at a new site sends that site's
gates the meeting's delegates through the change stream. Creating and editing apply the booking rules of
:mod:`central.meetings.booking` (remote points booked N working days ahead or with a leader's override; no hall
booked twice at once).

A meeting created through the API may carry its document system's id (``external_id``, unique per API client),
and a create sent with an ``Idempotency-Key`` makes one meeting however often it is retried
(:func:`create_meeting_idempotent`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee

from central.core import validation as v
from central.core.audit import audit
from central.core.changes import append_change
from central.core.db import write_transaction
from central.core.errors import ConflictError, InvalidInputError, NotFoundError
from central.core.keys import ActiveKey
from central.core.states import ApprovalState, DelegateMailState, MeetingState
from central.core.validity import DEFAULT_ENTRY_OPENS_BEFORE, DEFAULT_GRACE_AFTER_END, CodeValidity
from central.meetings.booking import (
    MAX_OVERRIDE_REASON,
    BookingOverride,
    BookingRules,
    check_double_booking,
    check_remote_booking,
)
from central.meetings.models import IdempotencyRecord, Meeting, MeetingVenue, Venue
from central.meetings.venues import meeting_sites
from central.registration.models import Delegate
from protocols import payloads
from protocols.codes import Scheme
from protocols.reasons import Reason

log = logging.getLogger(__name__)

SCHEMES = tuple(s.value for s in Scheme)
ENTRY_POLICIES = ("single", "reentry", "unlimited")
STATUSES = tuple(MeetingState)
TRANSITIONS: dict[MeetingState, tuple[MeetingState, ...]] = {
    MeetingState.DRAFT: (MeetingState.OPEN, MeetingState.CANCELLED),
    MeetingState.OPEN: (MeetingState.CLOSED, MeetingState.CANCELLED, MeetingState.DRAFT),
    MeetingState.CLOSED: (MeetingState.OPEN, MeetingState.HELD, MeetingState.CANCELLED),
    MeetingState.HELD: (),
    MeetingState.CANCELLED: (),
}
"""Which state a meeting may move to from each state."""
MAX_MEETING_LENGTH = timedelta(days=31)
"""The longest a meeting may run: longer is a typing error (a wrong year), and every per-day count, export column
and gate rule iterates its days."""


def _optional_datetime(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    return v.aware_datetime(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise v.FieldError("Phải là true hoặc false")
    return value


def _clean(data: Mapping[str, Any], *, partial: bool, current: Meeting | None = None) -> dict[str, Any]:
    """Validate meeting fields (all for a new meeting, the present ones for an edit)."""
    fields = v.FieldCollector(data)
    clean: dict[str, Any] = {}

    def want(name: str) -> bool:
        return not partial or name in data

    if want("title"):
        clean["title"] = fields.take("title", v.text, required=True, max_length=500)
    if want("starts_at"):
        clean["starts_at"] = fields.take("starts_at", v.aware_datetime)
    if want("ends_at"):
        clean["ends_at"] = fields.take("ends_at", v.aware_datetime)
    if want("agenda"):
        clean["agenda"] = fields.take("agenda", v.multiline_text, required=False, max_length=5000) or ""
    if want("chair"):
        clean["chair"] = fields.take("chair", v.text, required=False, max_length=200) or ""
    if want("registration_deadline"):
        clean["registration_deadline"] = fields.take("registration_deadline", _optional_datetime)
    if want("scheme") and not (partial and current is not None and current.delegates.count()):
        clean["scheme"] = fields.take("scheme", v.choice, SCHEMES, current.scheme if current else "compact")
    if want("entry_policy"):
        clean["entry_policy"] = fields.take(
            "entry_policy", v.choice, ENTRY_POLICIES, current.entry_policy if current else "single"
        )
    if want("registration_approval") and data.get("registration_approval") is not None:
        clean["registration_approval"] = fields.take("registration_approval", _flag)
    if not partial:
        clean["status"] = fields.take("status", v.choice, STATUSES, MeetingState.OPEN)
    if want("remote_venue_ids"):
        ids = fields.take("remote_venue_ids", v.positive_ids)
        if ids:
            found = {x.id for x in Venue.select().where(Venue.id.in_(ids))}
            if set(ids) - found:
                fields.add("remote_venue_ids", "Không tìm thấy điểm cầu")
        clean["remote_venue_ids"] = ids or []
    main_venue = None
    if data.get("main_venue_id") not in (None, ""):
        venue_id = fields.take("main_venue_id", v.positive_int)
        if venue_id is not None:
            main_venue = Venue.get_or_none(Venue.id == venue_id)
            if main_venue is None or main_venue.kind != "main":
                fields.add("main_venue_id", "Không tìm thấy hội trường chính")
                main_venue = None
        if main_venue is not None:
            clean["main_venue"] = main_venue.id
            clean["venue"] = main_venue.name
            clean["site_id"] = main_venue.site_id
    if main_venue is None and (want("venue") or want("site_id")) and "main_venue_id" not in data:
        if want("venue"):
            clean["venue"] = fields.take("venue", v.text, required=True, max_length=200)
        if want("site_id"):
            clean["site_id"] = fields.take("site_id", v.site_id)
    elif main_venue is None and not partial:
        fields.add("main_venue_id", "Chọn hội trường chính")
    starts = clean.get("starts_at", current.starts_at if current else None)
    ends = clean.get("ends_at", current.ends_at if current else None)
    if starts and ends and ends <= starts:
        fields.add("ends_at", "Giờ kết thúc phải sau giờ bắt đầu")
    elif starts and ends and ends - starts > MAX_MEETING_LENGTH:
        fields.add("ends_at", f"Một cuộc họp kéo dài tối đa {MAX_MEETING_LENGTH.days} ngày")
    deadline = clean.get("registration_deadline", current.registration_deadline if current else None)
    if deadline and starts and deadline > starts:
        fields.add("registration_deadline", "Hạn đăng ký phải trước giờ bắt đầu")
    fields.raise_if_any()
    return clean


class DuplicateExternalIdError(ConflictError):
    """The API client already has a meeting with this ``external_id``; ``meeting_id`` is that meeting."""

    def __init__(self, meeting_id: int) -> None:
        self.meeting_id = meeting_id
        super().__init__(Reason.MALFORMED, f"Đã có cuộc họp số {meeting_id} với mã văn bản này")


class IdempotencyKeyReusedError(ConflictError):
    """The ``Idempotency-Key`` was already used by this caller for a different request."""

    def __init__(self, meeting_id: int) -> None:
        self.meeting_id = meeting_id
        super().__init__(Reason.MALFORMED, "Khóa Idempotency-Key này đã được dùng cho một yêu cầu khác")


@dataclass(frozen=True)
class CreatedMeeting:
    """The meeting a create request made, and whether it was made by an earlier request with the same key."""

    meeting: Meeting
    replayed: bool = False


def _external_id(data: Mapping[str, Any], api_client_id: int | None) -> str | None:
    fields = v.FieldCollector(data)
    external_id = fields.take("external_id", v.text, required=False, max_length=100) or None
    if external_id is not None and api_client_id is None:
        fields.add("external_id", "Chỉ ứng dụng kết nối có mã truy cập riêng mới gửi được mã văn bản")
    fields.raise_if_any()
    return external_id


def _by_external_id(api_client_id: int, external_id: str) -> Meeting | None:
    return Meeting.get_or_none((Meeting.api_client == api_client_id) & (Meeting.external_id == external_id))


def _override(data: Mapping[str, Any], actor: str, role: str | None) -> BookingOverride | None:
    """The booking override asked in ``booking_override_reason`` (None when not asked)."""
    fields = v.FieldCollector(data)
    reason = fields.take("booking_override_reason", v.text, required=False, max_length=MAX_OVERRIDE_REASON)
    fields.raise_if_any()
    return BookingOverride(actor=actor, role=role, reason=reason) if reason else None


def _audit_override(used: BookingOverride | None, meeting: Meeting, rules: BookingRules, now: datetime) -> None:
    if used is not None:
        audit(used.actor, "meeting.booking_override", f"meeting:{meeting.id}",
              {"reason": used.reason, "starts_at": meeting.starts_at.isoformat(),
               "earliest_day": rules.earliest_meeting_day(now).isoformat(),
               "min_working_days": rules.min_working_days}, now=now)


def create_meeting(
    data: Mapping[str, Any],
    now: datetime,
    *,
    actor: str = "system",
    api_client_id: int | None = None,
    role: str | None = None,
    booking: BookingRules | None = None,
) -> Meeting:
    """Validate and store a meeting; appends a ``meeting_upsert`` change and an audit entry.

    Fields: ``title``, ``starts_at``, ``ends_at`` (ISO 8601 with offset), either ``main_venue_id`` or
    ``venue`` and ``site_id``; optional ``agenda``, ``chair``, ``registration_deadline``,
    ``remote_venue_ids``, ``scheme`` (compact), ``entry_policy`` (single), ``status`` (open), and, for an API
    client (``api_client_id``), ``external_id``: its document's id, of which it may have one meeting
    (:class:`DuplicateExternalIdError` names the meeting it has).

    Booking rules (``booking``, the configured :class:`BookingRules`): with remote points, booked at least its
    working days ahead, or with ``booking_override_reason`` from a leader (``role``; audited as
    ``meeting.booking_override``); its halls not booked by an overlapping meeting
    (:mod:`central.meetings.booking` raises what is wrong).
    """
    rules = booking or BookingRules()
    clean = _clean(data, partial=False)
    external_id = _external_id(data, api_client_id)
    override = _override(data, actor, role)
    remote = clean.pop("remote_venue_ids", [])
    used = check_remote_booking(clean["starts_at"], bool(remote), now, rules, override)
    if external_id is not None and api_client_id is not None:
        existing = _by_external_id(api_client_id, external_id)
        if existing is not None:
            raise DuplicateExternalIdError(existing.id)
    try:
        with write_transaction():
            check_double_booking(clean["starts_at"], clean["ends_at"], clean.get("main_venue"), remote)
            meeting = Meeting.create(**clean, created_at=now, updated_at=now, api_client=api_client_id,
                                     external_id=external_id)
            for venue_id in remote:
                MeetingVenue.create(meeting=meeting, venue=venue_id)
            meeting = Meeting.get_by_id(meeting.id)  # read back: aware UTC datetimes
            append_change(payloads.MeetingUpsert(meeting=meeting_entry(meeting)), now)
            details = {"title": meeting.title}
            if external_id is not None:
                details["external_id"] = external_id
            audit(actor, "meeting.create", f"meeting:{meeting.id}", details, now=now)
            _audit_override(used, meeting, rules, now)
    except peewee.IntegrityError:  # the same external id created by a concurrent request
        existing = _by_external_id(api_client_id, external_id) if api_client_id and external_id else None
        if existing is None:
            raise
        raise DuplicateExternalIdError(existing.id) from None
    return meeting


def request_fingerprint(data: Mapping[str, Any]) -> str:
    """Return the hex SHA-256 of a request body in canonical JSON (keys sorted, no spaces)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _idempotency_key(value: str) -> str:
    if not 1 <= len(value) <= 200 or not all("!" <= ch <= "~" for ch in value):
        raise InvalidInputError({"Idempotency-Key": "Từ 1 đến 200 ký tự ASCII in được, không có khoảng trắng"})
    return value


def _replay(actor: str, key: str, fingerprint: str) -> Meeting | None:
    record = IdempotencyRecord.get_or_none((IdempotencyRecord.actor == actor) & (IdempotencyRecord.key == key))
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReusedError(record.meeting_id)
    return Meeting.get_by_id(record.meeting_id)


def create_meeting_idempotent(
    data: Mapping[str, Any],
    now: datetime,
    *,
    actor: str,
    idempotency_key: str | None,
    api_client_id: int | None = None,
    role: str | None = None,
    booking: BookingRules | None = None,
) -> CreatedMeeting:
    """Create a meeting (:func:`create_meeting`) at most once per ``actor`` and ``idempotency_key``.

    A retry with the same key and the same body returns the meeting the first request made (``replayed``);
    the same key with another body raises :class:`IdempotencyKeyReusedError`. Concurrent requests with one key
    make one meeting: the unique (actor, key) index lets one commit, and the other rolls back and replays it.
    Without a key this is :func:`create_meeting`.
    """
    if idempotency_key is None:
        return CreatedMeeting(create_meeting(data, now, actor=actor, api_client_id=api_client_id, role=role,
                                             booking=booking))
    key = _idempotency_key(idempotency_key)
    caller = actor[:64]  # as the column holds it
    fingerprint = request_fingerprint(data)
    try:
        with write_transaction():
            earlier = _replay(caller, key, fingerprint)
            if earlier is not None:
                return CreatedMeeting(earlier, replayed=True)
            meeting = create_meeting(data, now, actor=actor, api_client_id=api_client_id, role=role,
                                     booking=booking)
            IdempotencyRecord.create(actor=caller, key=key, fingerprint=fingerprint, meeting=meeting, created_at=now)
    except (peewee.IntegrityError, DuplicateExternalIdError):
        # A concurrent request with this key committed first (its meeting, and so its external id, won).
        earlier = _replay(caller, key, fingerprint)
        if earlier is None:
            raise
        return CreatedMeeting(earlier, replayed=True)
    return CreatedMeeting(meeting)


def update_meeting(
    meeting_id: int,
    data: Mapping[str, Any],
    now: datetime,
    *,
    actor: str,
    reissue: Callable[[Delegate], None] | None = None,
    signing_key: Callable[[], ActiveKey] | None = None,
    entry_opens_before: timedelta = DEFAULT_ENTRY_OPENS_BEFORE,
    grace_after_end: timedelta = DEFAULT_GRACE_AFTER_END,
    role: str | None = None,
    booking: BookingRules | None = None,
) -> Meeting:
    """Edit the given fields of a meeting. Moving its start or end re-issues every active delegate's code,
    valid from ``entry_opens_before`` the start to ``grace_after_end`` after the end (:class:`CodeValidity`;
    signed with ``signing_key()`` for signed meetings);
    ``reissue`` is called for each re-issued delegate after the commit, to e-mail the new code.

    The booking rules of :func:`create_meeting` apply to what the edit changes: adding a remote point or moving a
    meeting that has some is booking it now; a new time or hall must not clash with another meeting. A remote
    point at a site that had none of the meeting's venues sends the meeting's delegates to that site's gates."""
    rules = booking or BookingRules()
    meeting = get_meeting(meeting_id)
    if meeting.status in MeetingState.FINAL:
        raise ConflictError(Reason.MEETING_CANCELLED, "Cuộc họp đã hủy hoặc đã họp, không sửa được")
    clean = _clean(data, partial=True, current=meeting)
    override = _override(data, actor, role)
    remote = clean.pop("remote_venue_ids", None)
    moved = any(
        key in clean and clean[key] != getattr(meeting, key) for key in ("starts_at", "ends_at")
    )
    current_remote = [venue.id for venue in remote_venues(meeting)]
    final_remote = remote if remote is not None else current_remote
    starts_at = clean.get("starts_at", meeting.starts_at)
    used = None
    if set(final_remote) - set(current_remote) or (final_remote and starts_at != meeting.starts_at):
        used = check_remote_booking(starts_at, bool(final_remote), now, rules, override)
    sites_before = set(meeting_sites(meeting))
    changed = {k: str(val) for k, val in clean.items() if getattr(meeting, k) != val}
    reissued: list[Delegate] = []
    with write_transaction():
        if moved or "main_venue" in clean or remote is not None:
            check_double_booking(starts_at, clean.get("ends_at", meeting.ends_at),
                                 clean.get("main_venue", meeting.main_venue), final_remote,
                                 exclude_meeting_id=meeting.id)
        for key, value in clean.items():
            setattr(meeting, key, value)
        meeting.updated_at = now
        meeting.save()
        if remote is not None:
            MeetingVenue.delete().where(MeetingVenue.meeting == meeting).execute()
            for venue_id in remote:
                MeetingVenue.create(meeting=meeting, venue=venue_id)
            changed["remote_venue_ids"] = str(remote)
        meeting = Meeting.get_by_id(meeting.id)
        publish_meeting(meeting, now, sites_before)
        _audit_override(used, meeting, rules, now)
        if moved:
            reissued = _reissue_codes(meeting, now, signing_key,
                                      CodeValidity(entry_opens_before, grace_after_end))
        audit(actor, "meeting.update", f"meeting:{meeting.id}",
              {"changed": changed, "codes_reissued": len(reissued)}, now=now)
    if reissue is not None:
        for delegate in reissued:
            reissue(delegate)
    return meeting


def publish_meeting(meeting: Meeting, now: datetime, sites_before: set[str]) -> None:
    """Append the ``meeting_upsert`` of an edited meeting for its sites and ``sites_before`` (those it had before
    the edit: a site it left learns it is no longer its meeting), and its delegates for each site it gained.
    Call in the edit's transaction."""
    append_change(payloads.MeetingUpsert(meeting=meeting_entry(meeting)), now, was_at=sites_before)
    if set(meeting_sites(meeting)) - sites_before:
        _send_delegates_to_gates(meeting, now)


def _send_delegates_to_gates(meeting: Meeting, now: datetime) -> int:
    """Append a ``delegate_upsert`` for every delegate of ``meeting`` (revoked ones flagged), after its
    ``meeting_upsert`` named a new site: that site's gates, whose snapshots held no delegate of it, learn them
    from the change stream. Returns how many were sent."""
    from central.invitations.models import Invitation, Organisation
    from central.registration.delegates import delegate_entry

    delegates = (Delegate.select(Delegate, Invitation, Organisation).join(Invitation).join(Organisation)
                 .where(Delegate.meeting == meeting).order_by(Delegate.id))
    sent = 0
    for delegate in delegates:
        append_change(payloads.DelegateUpsert(delegate=delegate_entry(delegate)), now)
        sent += 1
    return sent


def _reissue_codes(
    meeting: Meeting,
    now: datetime,
    signing_key: Callable[[], ActiveKey] | None,
    validity: CodeValidity,
) -> list[Delegate]:
    from central.registration.delegates import assign_code

    valid_from, valid_until = validity.window(meeting.starts_at, meeting.ends_at)
    reissued = []
    # A walk-in's one-day code was handed over at the desk for today: it keeps its window and is never e-mailed.
    active = Delegate.select().where(
        (Delegate.meeting == meeting) & Delegate.revoked_at.is_null()
        & (Delegate.mail_status != DelegateMailState.DESK)
        & (Delegate.approval == ApprovalState.APPROVED)  # one awaiting the office gets its code when approved
    )
    for delegate in active:
        if meeting.scheme == Scheme.SIGNED.value and signing_key is None:
            raise ConflictError(Reason.INTERNAL_ERROR, "Chưa có khóa ký mã")
        delegate.valid_from = valid_from
        delegate.valid_until = valid_until
        delegate.mail_status = DelegateMailState.PENDING
        key = signing_key() if meeting.scheme == Scheme.SIGNED.value and signing_key is not None else None
        delegate = assign_code(delegate, key, now)
        reissued.append(delegate)
    return reissued


def set_status(
    meeting_id: int,
    status: Any,
    now: datetime,
    *,
    actor: str,
    notify_cancelled: Callable[[Delegate], None] | None = None,
) -> Meeting:
    """Move a meeting to ``status`` along :data:`TRANSITIONS`. Cancelling revokes every delegate's code
    (``notify_cancelled`` is called for each after the commit)."""
    if status not in STATUSES:
        raise InvalidInputError({"status": "Phải là một trong: " + ", ".join(STATUSES)})
    meeting = get_meeting(meeting_id)
    if status == meeting.status:
        return meeting
    if status not in TRANSITIONS[MeetingState(meeting.status)]:
        raise ConflictError(
            Reason.MEETING_CANCELLED if meeting.status == MeetingState.CANCELLED else Reason.MALFORMED,
            f"Không thể chuyển cuộc họp từ trạng thái '{meeting.status}' sang '{status}'",
        )
    revoked: list[Delegate] = []
    with write_transaction():
        previous = meeting.status
        meeting.status = status
        meeting.updated_at = now
        meeting.save()
        meeting = Meeting.get_by_id(meeting.id)
        # The meeting's new status goes to the gates before its revocations, so a gate that has applied any of
        # them already knows the meeting is cancelled and refuses its codes as ``meeting_cancelled``.
        append_change(payloads.MeetingUpsert(meeting=meeting_entry(meeting)), now)
        if status == MeetingState.CANCELLED:
            active = Delegate.select().where(
                (Delegate.meeting == meeting) & Delegate.revoked_at.is_null()
            )
            for delegate in active:
                delegate.revoked_at = now
                delegate.save()
                if delegate.approval != ApprovalState.APPROVED:
                    continue  # awaiting the office: it had no code, the gates never knew it
                append_change(payloads.DelegateRevoke(meeting_id=meeting.id, delegate_id=delegate.id), now)
                revoked.append(delegate)
        audit(actor, "meeting.status", f"meeting:{meeting.id}",
              {"from": previous, "to": status, "codes_revoked": len(revoked)}, now=now)
    if notify_cancelled is not None:
        for delegate in revoked:
            notify_cancelled(delegate)
    return meeting


def get_meeting(meeting_id: int) -> Meeting:
    """Return the meeting or raise :class:`NotFoundError`."""
    meeting = Meeting.get_or_none(Meeting.id == meeting_id)
    if meeting is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy cuộc họp")
    return meeting


def list_meetings(status: str | None = None) -> list[Meeting]:
    """Return meetings, latest start first, optionally in one state."""
    query = Meeting.select().order_by(Meeting.starts_at.desc())
    if status in STATUSES:
        query = query.where(Meeting.status == status)
    return list(query)


def remote_venues(meeting: Meeting) -> list[Venue]:
    """Return the meeting's remote points."""
    return list(
        Venue.select()
        .join(MeetingVenue)
        .where(MeetingVenue.meeting == meeting)
        .order_by(Venue.name)
    )


def meeting_entry(meeting: Meeting, sites: list[str] | None = None) -> payloads.MeetingEntry:
    """Return what a gate knows of a meeting; ``sites`` (:func:`central.meetings.venues.meeting_sites`) is looked
    up unless given. ``sites`` is sent only for a meeting at more than its main hall's site, so a gate older than
    the field reads every other meeting as before."""
    sites = sites if sites is not None else meeting_sites(meeting)
    return payloads.MeetingEntry(
        id=meeting.id,
        title=meeting.title,
        scheme=Scheme(meeting.scheme),
        starts_at=meeting.starts_at,
        ends_at=meeting.ends_at,
        site_id=meeting.site_id,
        venue=meeting.venue,
        status=meeting.status,
        entry_policy=meeting.entry_policy,
        sites=sites if len(sites) > 1 else None,
    )


def meeting_to_dict(meeting: Meeting) -> dict[str, Any]:
    """Return the JSON form of a meeting."""
    return {
        "id": meeting.id,
        "title": meeting.title,
        "starts_at": meeting.starts_at.isoformat(),
        "ends_at": meeting.ends_at.isoformat(),
        "venue": meeting.venue,
        "site_id": meeting.site_id,
        "scheme": meeting.scheme,
        "entry_policy": meeting.entry_policy,
        "status": meeting.status,
        "created_at": meeting.created_at.isoformat(),
        "agenda": meeting.agenda,
        "chair": meeting.chair,
        "registration_deadline": meeting.registration_deadline.isoformat()
        if meeting.registration_deadline else None,
        "registration_approval": meeting.registration_approval,
        "main_venue_id": meeting.main_venue,
        "remote_venue_ids": [venue.id for venue in remote_venues(meeting)],
        "sites": meeting_sites(meeting),
        "external_id": meeting.external_id,
    }


def delegates_of(meeting: Meeting, *, active_only: bool = True) -> Sequence[Delegate]:
    """Return the meeting's delegates (only those whose code is not revoked, by default)."""
    query = Delegate.select().where(Delegate.meeting == meeting)
    if active_only:
        query = query.where(Delegate.revoked_at.is_null())
    return list(query)

