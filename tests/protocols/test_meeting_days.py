"""Meeting days (:mod:`protocols.meeting_days`): 04:00-to-04:00 Vietnam time, counted from the meeting's start."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from protocols.meeting_days import MEETING_TZ, day_count, day_dates, meeting_date, meeting_day


def local(day: int, hour: int, minute: int = 0, month: int = 6) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MEETING_TZ)


def test_a_one_day_meeting_is_day_1_from_before_it_opens_to_after_its_grace() -> None:
    start, end = local(8, 8), local(8, 11, 30)
    assert day_count(start, end) == 1
    assert day_dates(start, end) == [date(2026, 6, 8)]
    for at in (local(8, 6), start, local(8, 23, 59), end, local(9, 1)):
        assert meeting_day(start, end, at) == 1


def test_a_three_day_meeting_has_days_1_2_3_changing_at_04_00_local() -> None:
    start, end = local(8, 8), local(10, 17)
    assert day_count(start, end) == 3
    assert day_dates(start, end) == [date(2026, 6, 8), date(2026, 6, 9), date(2026, 6, 10)]
    assert meeting_day(start, end, local(8, 15)) == 1
    assert meeting_day(start, end, local(9, 3, 59)) == 1, "the small hours still belong to the evening before"
    assert meeting_day(start, end, local(9, 4)) == 2
    assert meeting_day(start, end, local(9, 7, 45)) == 2, "arriving before the start time is the same day"
    assert meeting_day(start, end, local(10, 16)) == 3
    assert meeting_day(start, end, local(11, 2)) == 3, "the grace after the end stays on the last day"


def test_an_overnight_meeting_is_one_day() -> None:
    start, end = local(8, 23), local(9, 2, 50)
    assert day_count(start, end) == 1
    assert meeting_day(start, end, local(8, 22)) == 1
    assert meeting_day(start, end, local(9, 1, 30)) == 1
    assert meeting_date(local(9, 1, 30)) == date(2026, 6, 8)


def test_the_day_is_taken_in_vietnam_time_whatever_the_timezone_of_the_moment() -> None:
    start, end = local(8, 8), local(10, 17)
    utc_moment = local(9, 4).astimezone(UTC)  # 21:00 UTC on the 8th is 04:00 on the 9th in Hanoi
    assert utc_moment.day == 8 and meeting_day(start, end, utc_moment) == 2


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        meeting_date(datetime(2026, 6, 8, 8))
