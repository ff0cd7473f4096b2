"""Attendance statistics: per meeting and over a date range, by organisation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from central.attendance.exports import build_attendance_list
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
        for row in build_attendance_list(meeting).rows:
            entry = per_org.setdefault(row.organisation, OrganisationStats(row.organisation))
            entry.expected += 1
            entry.present += row.arrived_at is not None
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


def range_statistics(start: datetime, end: datetime) -> Statistics:
    """Statistics of every meeting that starts in ``[start, end)`` and was not cancelled."""
    meetings = list(
        Meeting.select()
        .where((Meeting.starts_at >= start) & (Meeting.starts_at < end)
               & (Meeting.status != MeetingState.CANCELLED))
        .order_by(Meeting.starts_at)
    )
    return statistics(meetings)
