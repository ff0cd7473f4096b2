"""Meeting days: which day of a meeting a moment belongs to, the one rule gates and central share.

The rule: a meeting day runs from 04:00 to 04:00 the next morning, Vietnam time (UTC+7, no daylight saving:
:data:`MEETING_TZ`). Day 1 is the meeting day in which the meeting starts; a moment's day is its meeting day's
distance from that one, plus 1. So a meeting from 08:00 on Monday to 17:00 on Wednesday has days 1, 2 and 3, and
an overnight meeting from 23:00 to 02:50 is one day (its night belongs to the evening it started). A moment
before the first day (a code opens up to two hours before the start) counts as day 1; one after the last day
(the grace after the end) counts as the last day.

The entry policy ``single`` admits a credential once per meeting day (:func:`gate.decision.decide`); central's
attendance counts, the dashboard and the exports count presence per meeting day with the same function.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

MEETING_TZ = timezone(timedelta(hours=7), "ICT")
"""Where meetings are held: Asia/Ho_Chi_Minh, a fixed UTC+7 (Vietnam has no daylight saving)."""
DAY_STARTS_AT = time(4, 0)
"""The local time at which one meeting day ends and the next begins."""

_SHIFT = timedelta(hours=DAY_STARTS_AT.hour, minutes=DAY_STARTS_AT.minute)


def meeting_date(at: datetime) -> date:
    """The local calendar date of the meeting day ``at`` (aware) falls in: before 04:00 local, the day before."""
    if at.tzinfo is None:
        raise ValueError("a meeting day needs a timezone-aware time")
    return (at.astimezone(MEETING_TZ) - _SHIFT).date()


def day_count(starts_at: datetime, ends_at: datetime) -> int:
    """How many meeting days a meeting from ``starts_at`` to ``ends_at`` spans (at least 1)."""
    return max(1, (meeting_date(ends_at) - meeting_date(starts_at)).days + 1)


def meeting_day(starts_at: datetime, ends_at: datetime, at: datetime) -> int:
    """The day (1-based) of the meeting from ``starts_at`` to ``ends_at`` that the moment ``at`` belongs to.

    Clamped to the meeting's days: before day 1 is day 1, after the last day is the last day.
    """
    index = (meeting_date(at) - meeting_date(starts_at)).days + 1
    return min(max(index, 1), day_count(starts_at, ends_at))


def day_dates(starts_at: datetime, ends_at: datetime) -> list[date]:
    """The local date on which each meeting day begins, day 1 first (for column headings)."""
    first = meeting_date(starts_at)
    return [first + timedelta(days=offset) for offset in range(day_count(starts_at, ends_at))]
