"""Attendance statistics: per meeting and over a date range, by organisation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from central.attendance.exports import VIETNAM, build_attendance_list
from central.core.errors import InvalidInputError
from central.core.states import MeetingState
from central.gates.models import CheckIn
from central.meetings.models import Meeting


@dataclass
class OrganisationStats:
    """Counts for one organisation (over one meeting or many)."""

    organisation: str
    expected: int = 0
    present: int = 0
    late: int = 0

    @property
    def no_shows(self) -> int:
        """Expected delegates who never arrived."""
        return self.expected - self.present

    @property
    def rate(self) -> float:
        """Attendance rate between 0 and 1 (0 when nobody was expected)."""
        return self.present / self.expected if self.expected else 0.0


@dataclass
class Statistics:
    """Totals and the per-organisation breakdown, organisations sorted by name."""

    meetings: int
    expected: int
    present: int
    late: int
    manual_entries: int
    by_organisation: list[OrganisationStats]

    @property
    def no_shows(self) -> int:
        """Expected delegates who never arrived."""
        return self.expected - self.present

    @property
    def rate(self) -> float:
        """Overall attendance rate between 0 and 1."""
        return self.present / self.expected if self.expected else 0.0


def statistics(meetings: list[Meeting]) -> Statistics:
    """Aggregate the attendance of ``meetings``."""
    per_org: dict[str, OrganisationStats] = {}
    for meeting in meetings:
        counted: set[int] = set()  # seats: a replaced delegate who entered anyway and their replacement count once
        for row in build_attendance_list(meeting).rows:
            entry = per_org.setdefault(row.organisation, OrganisationStats(row.organisation))
            entry.expected += not row.revoked
            if row.arrived_at is not None and row.seat not in counted:
                counted.add(row.seat)
                entry.present += 1
                entry.late += row.late
    manual = (
        CheckIn.select()
        .where(CheckIn.meeting.in_([m.id for m in meetings]) & (CheckIn.manual == True))  # noqa: E712
        .count()
        if meetings
        else 0
    )
    ordered = sorted(per_org.values(), key=lambda s: s.organisation)
    return Statistics(
        meetings=len(meetings),
        expected=sum(s.expected for s in ordered),
        present=sum(s.present for s in ordered),
        late=sum(s.late for s in ordered),
        manual_entries=manual,
        by_organisation=ordered,
    )


def meeting_statistics(meeting: Meeting) -> Statistics:
    """Statistics of one meeting."""
    return statistics([meeting])


def meetings_between(start: datetime, end: datetime) -> list[Meeting]:
    """Every meeting that starts in ``[start, end)`` and was not cancelled, earliest first."""
    return list(
        Meeting.select()
        .where((Meeting.starts_at >= start) & (Meeting.starts_at < end)
               & (Meeting.status != MeetingState.CANCELLED))
        .order_by(Meeting.starts_at)
    )


def range_statistics(start: datetime, end: datetime) -> Statistics:
    """Statistics of every meeting that starts in ``[start, end)`` and was not cancelled."""
    return statistics(meetings_between(start, end))


MAX_RANGE_DAYS = 366
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class DateRange:
    """A range of whole days in Vietnam time, both ends included."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        """The first day's midnight in Vietnam time (aware)."""
        return datetime.combine(self.first, time(0), VIETNAM)

    @property
    def end(self) -> datetime:
        """Midnight after the last day in Vietnam time (aware, excluded)."""
        return datetime.combine(self.last + timedelta(days=1), time(0), VIETNAM)


def _day(raw: str | None, field: str, default: date, errors: dict[str, str]) -> date:
    text = (raw or "").strip()
    if not text:
        return default
    if len(text) > 10 or not _DATE.fullmatch(text):
        errors[field] = "Ngày phải có dạng YYYY-MM-DD"
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[field] = "Ngày không có thật"
        return default


def parse_range(first: str | None, last: str | None, today: date) -> DateRange:
    """Read a range of days from a form (``YYYY-MM-DD``; empty = this month so far); raises
    :class:`InvalidInputError` naming the bad field."""
    errors: dict[str, str] = {}
    start = _day(first, "tu", today.replace(day=1), errors)
    stop = _day(last, "den", today, errors)
    if not errors and stop < start:
        errors["den"] = "Ngày kết thúc phải không trước ngày bắt đầu"
    if not errors and (stop - start).days >= MAX_RANGE_DAYS:
        errors["den"] = f"Khoảng thời gian dài nhất là {MAX_RANGE_DAYS} ngày"
    if errors:
        raise InvalidInputError(errors)
    return DateRange(start, stop)
