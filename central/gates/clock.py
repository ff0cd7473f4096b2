"""Gate clocks as central sees them: the offset a heartbeat shows, when a gate's clock is suspect, and the
corrected arrival time of a check-in.

Offsets are ``central - gate`` in seconds (add it to a gate time to get central's). A heartbeat's offset is
central's receive time minus the gate's ``sent_at``: an upper bound of the true offset, off by the message's
delay (milliseconds on a site network). A gate more than :data:`MAX_SKEW_S` off is flagged on the fleet page
and the dashboard (IEC 60839-11-1 asks that access points keep synchronised time); a clock that is absurd
(before :data:`EARLIEST_PLAUSIBLE`, or more than :data:`MAX_PLAUSIBLE_OFFSET` off: a Pi without battery clock
that booted without time sync) is *suspect*: shown, never used to correct a check-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_SKEW_S = 2.0
"""A gate whose clock is further off than this is flagged."""
EARLIEST_PLAUSIBLE = datetime(2024, 1, 1, tzinfo=UTC)
"""No gate time before this is real (the product did not exist)."""
MAX_PLAUSIBLE_OFFSET = timedelta(days=1)
"""A heartbeat further off than this comes from a clock that was never set: suspect."""
MAX_BACKLOG = timedelta(days=30)
"""A check-in may arrive this long after it happened (a gate offline for weeks keeps its outbox)."""
FUTURE_SLACK = timedelta(seconds=60)
"""A corrected check-in time may be this much after central received it (central's processes' own clocks)."""


def is_skewed(offset_s: float | None, reported_offset_s: float | None = None) -> bool:
    """True when a gate's clock is certainly more than :data:`MAX_SKEW_S` off.

    ``offset_s`` (central's measurement from a heartbeat) is an upper bound of the true offset, ``reported_offset_s``
    (the gate's own estimate, from central's acks) a lower bound. A heartbeat that waited in a queue makes the
    first too high; when the gate's own estimate says the offset may be within the limit, it is not flagged.
    """
    if offset_s is None:
        return False
    if offset_s < -MAX_SKEW_S:
        return True
    return offset_s > MAX_SKEW_S and (reported_offset_s is None or reported_offset_s > MAX_SKEW_S)


@dataclass(frozen=True)
class HeartbeatClock:
    """What a heartbeat says of the gate's clock: ``offset_s`` measured by central, and whether it is suspect."""

    offset_s: float
    suspect: bool


def heartbeat_clock(sent_at: datetime, received_at: datetime) -> HeartbeatClock:
    """The offset a heartbeat stamped ``sent_at`` (gate clock) and received at ``received_at`` (central) shows."""
    offset = received_at - sent_at
    suspect = sent_at < EARLIEST_PLAUSIBLE or abs(offset) > MAX_PLAUSIBLE_OFFSET
    return HeartbeatClock(offset.total_seconds(), suspect)


def storable(at: datetime) -> datetime | None:
    """``at`` if it can be stored in UTC (``9999-12-31T23:00-05:00`` cannot), else None."""
    try:
        at.astimezone(UTC)
    except OverflowError:
        return None
    return at


def _plausible(at: datetime, received_at: datetime, ahead: timedelta = FUTURE_SLACK) -> bool:
    """True when ``at`` could be the time of a check-in received at ``received_at`` (at most ``ahead`` later)."""
    try:
        return max(EARLIEST_PLAUSIBLE, received_at - MAX_BACKLOG) <= at <= received_at + ahead
    except OverflowError:  # an offset that puts it beyond year 9999 in UTC
        return False


def _shifted(at: datetime, offset_s: float | None) -> datetime | None:
    if offset_s is None:
        return at
    try:
        return at + timedelta(seconds=offset_s)
    except OverflowError:
        return None


@dataclass(frozen=True)
class Arrival:
    """A check-in's time on central's clock: ``at``, the ``offset_s`` applied to the gate's time, ``suspect``."""

    at: datetime
    offset_s: float | None
    suspect: bool

    def apply(self, gate_time: datetime | None) -> datetime | None:
        """Another time of the same check-in (``completed_at``) moved by the same correction."""
        if gate_time is None:
            return None
        moved = _shifted(gate_time, self.offset_s)
        return moved if moved is not None and storable(moved) is not None else self.at


def arrival(scanned_at: datetime, received_at: datetime, reported_offset_s: float | None,
            gate_offset_s: float | None) -> Arrival:
    """The corrected time of a check-in the gate stamped ``scanned_at`` on its own clock.

    The offset is the one the check-in carries (the gate's estimate when it scanned), else ``gate_offset_s`` (the
    last trusted offset central measured from the gate's heartbeats), else none. A result that cannot be true
    (before 2024, after central received it, older than :data:`MAX_BACKLOG`) is replaced by ``received_at``.
    Suspect when the gate's own time was absurd (as for a heartbeat: before 2024, or more than
    :data:`MAX_PLAUSIBLE_OFFSET` ahead, or older than :data:`MAX_BACKLOG`), or when the offset had to be ignored.
    """
    offset = reported_offset_s if reported_offset_s is not None else gate_offset_s
    raw_plausible = _plausible(scanned_at, received_at, ahead=MAX_PLAUSIBLE_OFFSET)
    corrected = _shifted(scanned_at, offset)
    if corrected is not None and _plausible(corrected, received_at):
        return Arrival(corrected, offset, suspect=not raw_plausible)
    if _plausible(scanned_at, received_at) and offset is not None:  # an estimate that makes it absurd: not used
        return Arrival(scanned_at, None, suspect=True)
    try:
        applied: float | None = (received_at - scanned_at).total_seconds()
    except OverflowError:
        applied = None
    return Arrival(received_at, applied, suspect=not raw_plausible)
