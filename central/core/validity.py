"""The validity window of a code, from its meeting: the one rule every issuer calls.

A code follows its meeting, not the calendar day: it is valid from ``entry_opens_before`` before the meeting
starts (or, for a code handed over on the spot such as a walk-in's, from when it was issued less a minute of
clock tolerance) until the meeting ends plus ``grace_after_end`` (``VAORA_GRACE_AFTER_END_MIN``). A meeting that
runs past midnight keeps its codes valid past midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_ENTRY_OPENS_BEFORE = timedelta(minutes=120)
DEFAULT_GRACE_AFTER_END = timedelta(minutes=30)
CLOCK_TOLERANCE = timedelta(minutes=1)
"""A code issued on the spot is valid from this long before it was issued, so a gate whose clock lags admits it."""


@dataclass(frozen=True)
class CodeValidity:
    """The configured margins around a meeting: how early its codes open, how long after its end they last."""

    entry_opens_before: timedelta = DEFAULT_ENTRY_OPENS_BEFORE
    grace_after_end: timedelta = DEFAULT_GRACE_AFTER_END

    def window(self, starts_at: datetime, ends_at: datetime, *, issued_at: datetime | None = None
               ) -> tuple[datetime, datetime]:
        """Return ``(valid_from, valid_until)`` of a code for a meeting from ``starts_at`` to ``ends_at``.

        ``issued_at`` is given for a code handed over on the spot (a walk-in's): it is valid from then, less
        :data:`CLOCK_TOLERANCE`. The end is always the meeting's end plus the grace, whatever the calendar day.
        """
        if starts_at.tzinfo is None or ends_at.tzinfo is None:
            raise ValueError("a meeting's times must be timezone-aware")
        valid_from = issued_at - CLOCK_TOLERANCE if issued_at is not None else starts_at - self.entry_opens_before
        return valid_from, ends_at + self.grace_after_end
