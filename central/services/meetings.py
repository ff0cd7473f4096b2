"""Meetings: creation, lookup and the form gates see (:class:`protocols.payloads.MeetingEntry`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from central import models
from central.services import validation as v
from central.services.changes import append_change
from central.services.errors import NotFoundError
from protocols import payloads
from protocols.codes import Scheme
from protocols.reasons import Reason

SCHEMES = tuple(s.value for s in Scheme)
ENTRY_POLICIES = ("single", "reentry", "unlimited")
STATUSES = ("draft", "open", "closed", "held", "cancelled")


def create_meeting(data: Mapping[str, Any], now: datetime) -> models.Meeting:
    """Validate and store a meeting; appends a ``meeting_upsert`` change.

    Fields: ``title``, ``starts_at``, ``ends_at`` (ISO 8601 with offset), ``venue``, ``site_id``,
    optional ``scheme`` (compact), ``entry_policy`` (single), ``status`` (open).
    """
    fields = v.FieldCollector(data)
    title = fields.take("title", v.text, required=True, max_length=500)
    starts_at = fields.take("starts_at", v.aware_datetime)
    ends_at = fields.take("ends_at", v.aware_datetime)
    venue = fields.take("venue", v.text, required=True, max_length=200)
    site_id = fields.take("site_id", v.site_id)
    scheme = fields.take("scheme", v.choice, SCHEMES, "compact")
    entry_policy = fields.take("entry_policy", v.choice, ENTRY_POLICIES, "single")
    status = fields.take("status", v.choice, STATUSES, "open")
    if starts_at and ends_at and ends_at <= starts_at:
        fields.add("ends_at", "Giờ kết thúc phải sau giờ bắt đầu")
    fields.raise_if_any()
    with models.database.atomic():
        meeting = models.Meeting.create(
            title=title,
            starts_at=starts_at,
            ends_at=ends_at,
            venue=venue,
            site_id=site_id,
            scheme=scheme,
            entry_policy=entry_policy,
            status=status,
            created_at=now,
        )
        meeting = models.Meeting.get_by_id(meeting.id)  # read back: aware UTC datetimes
        append_change(payloads.MeetingUpsert(meeting=meeting_entry(meeting)), now)
    return meeting


def get_meeting(meeting_id: int) -> models.Meeting:
    """Return the meeting or raise :class:`NotFoundError`."""
    meeting = models.Meeting.get_or_none(models.Meeting.id == meeting_id)
    if meeting is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy cuộc họp")
    return meeting


def meeting_entry(meeting: models.Meeting) -> payloads.MeetingEntry:
    """Return what a gate knows of a meeting."""
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
    )


def meeting_to_dict(meeting: models.Meeting) -> dict[str, Any]:
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
    }
