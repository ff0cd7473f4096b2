"""Booking rules for a meeting's halls: how far ahead a meeting with remote points is booked, and no hall twice.

Two rules, each one function that every path (the meeting pages, the JSON API, any import) reaches through
:func:`central.meetings.services.create_meeting` and :func:`~central.meetings.services.update_meeting`:

- :func:`check_remote_booking`: a meeting with remote points ("điểm cầu") is booked at least
  ``min_working_days`` working days before its day (the provincial practice: the remote sites need time to set up
  their link). Working days skip Saturdays, Sundays and the configured holidays (``VAORA_HOLIDAYS``). Booked later,
  it needs a leader's override with a reason, which is audited (``meeting.booking_override``).
- :func:`check_double_booking`: a main hall or a remote point is not booked by two meetings whose
  ``[starts_at, ends_at)`` overlap (cancelled meetings do not count); the refusal names the other meeting.

Days are Vietnam calendar days (:data:`protocols.meeting_days.MEETING_TZ`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import peewee

from central.auth.roles import ADMINISTRATOR, APPROVER
from central.config import CentralConfig
from central.core.db import database
from central.core.errors import ConflictError
from central.core.states import MeetingState
from central.meetings.models import Meeting, MeetingVenue, Venue
from protocols.meeting_days import MEETING_TZ
from protocols.reasons import Reason

DEFAULT_REMOTE_BOOKING_WORKING_DAYS = 3
LEADER_ROLES = (APPROVER, ADMINISTRATOR)
"""Who may override the booking rule: a leader ("lãnh đạo", the role that approves invitations) or an
administrator."""
MAX_OVERRIDE_REASON = 300
BOOKING_LOCK = 0x7661_6F72_6131  # "vaora1": PostgreSQL's advisory lock that serialises the double-booking check


@dataclass(frozen=True)
class BookingRules:
    """How many working days ahead a meeting with remote points is booked, and the holidays that are not ones."""

    min_working_days: int = DEFAULT_REMOTE_BOOKING_WORKING_DAYS
    holidays: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def configured(cls, config: CentralConfig) -> BookingRules:
        """The rule as central is configured (``VAORA_REMOTE_BOOKING_WORKING_DAYS``, ``VAORA_HOLIDAYS``)."""
        return cls(min_working_days=config.remote_booking_working_days, holidays=config.holidays)

    def is_working_day(self, day: date) -> bool:
        """Monday to Friday, not a holiday."""
        return day.weekday() < 5 and day not in self.holidays

    def earliest_meeting_day(self, booked_at: datetime) -> date:
        """The first local day a meeting with remote points booked at ``booked_at`` may be held: the booking day
        plus ``min_working_days`` working days (booked on a Monday with 3: Thursday)."""
        day = booked_at.astimezone(MEETING_TZ).date()
        counted = 0
        while counted < self.min_working_days:
            day += timedelta(days=1)
            counted += self.is_working_day(day)
        return day


@dataclass(frozen=True)
class BookingOverride:
    """A leader's permission to book a meeting with remote points late: who (``actor``) and why."""

    actor: str
    role: str | None
    reason: str


class BookingTooLateError(ConflictError):
    """A meeting with remote points booked later than the rule allows, without a leader's override."""

    def __init__(self, earliest: date, rules: BookingRules) -> None:
        self.earliest = earliest
        self.field = "starts_at"
        self.details: dict[str, Any] = {"earliest_day": earliest.isoformat(),
                                        "min_working_days": rules.min_working_days}
        super().__init__(
            Reason.BOOKING_TOO_LATE,
            f"Cuộc họp có điểm cầu phải đăng ký trước ít nhất {rules.min_working_days} ngày làm việc "
            f"(không kể thứ Bảy, Chủ nhật và ngày lễ): sớm nhất là ngày {earliest:%d/%m/%Y}. "
            "Muốn họp sớm hơn, cần lãnh đạo cho phép (ghi lý do).",
        )


class OverrideNotAllowedError(ConflictError):
    """A booking override asked by someone who is not a leader."""

    def __init__(self) -> None:
        self.field = "booking_override_reason"
        self.details: dict[str, Any] = {}
        super().__init__(Reason.BOOKING_TOO_LATE,
                         "Chỉ lãnh đạo mới được cho phép đăng ký muộn cuộc họp có điểm cầu")


class DoubleBookingError(ConflictError):
    """A hall or remote point is already booked by an overlapping meeting (named in the message)."""

    def __init__(self, venue: str, other: Meeting, field_name: str) -> None:
        self.field = field_name
        self.other_meeting_id = other.id
        self.details = {"other_meeting_id": other.id, "venue": venue}
        start = other.starts_at.astimezone(MEETING_TZ)
        end = other.ends_at.astimezone(MEETING_TZ)
        super().__init__(
            Reason.VENUE_DOUBLE_BOOKED,
            f"{venue} đã được đặt cho cuộc họp số {other.id} \u201c{other.title}\u201d "
            f"từ {start:%H:%M %d/%m/%Y} đến {end:%H:%M %d/%m/%Y}",
        )


def check_remote_booking(
    starts_at: datetime,
    has_remote_points: bool,
    now: datetime,
    rules: BookingRules,
    override: BookingOverride | None = None,
) -> BookingOverride | None:
    """Apply the working-days rule to a meeting starting at ``starts_at``, booked at ``now``.

    Returns None when the rule is met (or the meeting has no remote points); the ``override`` when it was needed
    and given by a leader (the caller audits it). Raises :class:`BookingTooLateError` when it was needed and not
    given, :class:`OverrideNotAllowedError` when given by someone without a leader's role.
    """
    if not has_remote_points:
        return None
    earliest = rules.earliest_meeting_day(now)
    if starts_at.astimezone(MEETING_TZ).date() >= earliest:
        return None
    if override is None:
        raise BookingTooLateError(earliest, rules)
    if override.role not in LEADER_ROLES:
        raise OverrideNotAllowedError()
    return override


def check_double_booking(
    starts_at: datetime,
    ends_at: datetime,
    main_venue_id: int | None,
    remote_venue_ids: Iterable[int],
    *,
    exclude_meeting_id: int | None = None,
) -> None:
    """Refuse (:class:`DoubleBookingError`) when the main hall or a remote point is booked by another meeting,
    not cancelled, whose ``[starts_at, ends_at)`` overlaps this one's. Halls typed as free text (no venue of the
    list) are not compared.

    Call it inside the transaction that writes the meeting: on SQLite that transaction holds the write lock; on
    PostgreSQL this takes a transaction-scoped advisory lock, so two concurrent bookings of one hall cannot both
    pass."""
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (BOOKING_LOCK,))
    overlapping = ((Meeting.starts_at < ends_at) & (Meeting.ends_at > starts_at)
                   & (Meeting.status != MeetingState.CANCELLED))
    if exclude_meeting_id is not None:
        overlapping &= Meeting.id != exclude_meeting_id
    wanted: Collection[int] = set(remote_venue_ids)
    if main_venue_id is not None:
        wanted = {*wanted, main_venue_id}
    if not wanted:
        return
    # A venue is booked by a meeting as its main hall or as one of its remote points, whichever it is now.
    as_main = Meeting.select(Meeting, Meeting.main_venue.alias("booked_venue")).where(
        overlapping & Meeting.main_venue.in_(list(wanted))).objects()
    as_remote = (Meeting.select(Meeting, MeetingVenue.venue.alias("booked_venue")).join(MeetingVenue)
                 .where(overlapping & MeetingVenue.venue.in_(list(wanted))).objects())
    clashes = sorted([*as_main, *as_remote], key=lambda m: (m.starts_at, m.id))
    if not clashes:
        return
    other = clashes[0]
    venue_id = int(other.booked_venue)
    venue = Venue.get_or_none(Venue.id == venue_id)
    name = venue.name if venue is not None else f"Địa điểm số {venue_id}"
    raise DoubleBookingError(name, other, "main_venue_id" if venue_id == main_venue_id else "remote_venue_ids")
