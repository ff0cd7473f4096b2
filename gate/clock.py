"""The gate's estimate of central's clock, measured from the times central stamps on its messages.

Every ack carries central's clock when it answered (``Ack.sent_at``) and echoes the gate's own time of the
check-in it answers (``Ack.gate_time``: the check-in's ``completed_at`` or ``scanned_at``, which precede its
publication). When the ack arrives at gate time ``received``::

    sent_at - received  <=  central - gate  <=  sent_at - gate_time

(a message takes time ``>= 0`` to travel), an NTP-like round trip whose width is ``received - gate_time``. A
sample wider than :data:`MAX_SAMPLE_WIDTH_S` (a resent check-in, a broker that held the ack) is not used. The
estimate is the highest lower bound of the recent samples (the round trip that was fastest), as NTP's clock
filter keeps the sample of least delay; it is never later than central's true clock. Samples are tied to the
monotonic clock, not the gate's wall clock, so a wall clock that jumps (NTP finally synchronising, a Pi booting
at 1970) does not spoil them; they expire after :data:`SAMPLE_WINDOW_S` so drift and a corrected central clock
are followed.

:meth:`CentralClock.now` is central's time as the gate estimates it (the gate's own clock while there is no
sample): commands are judged by it and ``decide()`` gets it. :meth:`CentralClock.offset_s` goes into every
heartbeat and check-in (``clock_offset_s``), beside the gate's raw clock, so central can correct the times.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

MAX_SAMPLE_WIDTH_S = 2.0
"""A round trip longer than this (gate clock) says too little about the offset to be used."""
SAMPLE_WINDOW_S = 600.0
"""Samples older than this (monotonic seconds) no longer count."""
MAX_SAMPLES = 256
"""At most this many samples are kept (the newest)."""
LOG_CHANGE_S = 2.0
"""A change of the estimate larger than this is logged."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Sample:
    """One round trip: the gate's ``gate_time`` went out, central answered at ``sent_at``, seen at ``received_at``."""

    gate_time: datetime
    sent_at: datetime
    received_at: datetime
    """The gate's wall clock at receipt."""

    @property
    def lower_bound_s(self) -> float:
        """``sent_at - received_at``: the offset is at least this."""
        return (self.sent_at - self.received_at).total_seconds()

    @property
    def upper_bound_s(self) -> float:
        """``sent_at - gate_time``: the offset is at most this."""
        return (self.sent_at - self.gate_time).total_seconds()

    @property
    def width_s(self) -> float:
        """How far apart the two bounds are: the round trip on the gate's clock."""
        return (self.received_at - self.gate_time).total_seconds()


class CentralClock:
    """Central's clock as this gate estimates it (see the module docstring).

    ``clock``: the gate's wall clock (aware UTC, injected in tests); ``monotonic``: seconds that never go back.
    Thread-safe: samples arrive on paho's network thread, readers are the scan and command threads.
    """

    def __init__(self, clock: Callable[[], datetime] = _utcnow,
                 monotonic: Callable[[], float] = time.monotonic, window_s: float = SAMPLE_WINDOW_S,
                 max_width_s: float = MAX_SAMPLE_WIDTH_S) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self.window_s = window_s
        self.max_width_s = max_width_s
        self._samples: deque[tuple[float, float, Sample]] = deque(maxlen=MAX_SAMPLES)
        """(monotonic at receipt, lower bound of ``central - monotonic``, the sample)"""
        self._lock = threading.Lock()
        self._last_logged: float | None = None
        self.samples_taken = 0
        self.samples_refused = 0

    def observe(self, sent_at: datetime | None, gate_time: datetime | None) -> Sample | None:
        """Take the round trip of a message central stamped ``sent_at`` in answer to the gate's ``gate_time``,
        arriving now. Returns the sample, or None when it is missing a time or too wide to use."""
        if sent_at is None or gate_time is None:
            return None
        received_at, mono = self._clock(), self._monotonic()
        sample = Sample(gate_time, sent_at, received_at)
        if not 0.0 <= sample.width_s <= self.max_width_s:
            with self._lock:
                self.samples_refused += 1
            log.debug("clock sample not used width_s=%.3f", sample.width_s)
            return None
        central_minus_mono = sample.lower_bound_s + received_at.timestamp() - mono
        with self._lock:
            self._samples.append((mono, central_minus_mono, sample))
            self.samples_taken += 1
        offset = self.offset_s()
        if offset is not None and (self._last_logged is None or abs(offset - self._last_logged) > LOG_CHANGE_S):
            self._last_logged = offset
            level = logging.WARNING if abs(offset) > LOG_CHANGE_S else logging.INFO
            log.log(level, "gate clock offset to central offset_s=%+.3f width_s=%.3f", offset, sample.width_s)
        return sample

    def best_sample(self) -> Sample | None:
        """The sample the estimate rests on (the highest lower bound of the window), None without one."""
        self._best(self._monotonic())
        with self._lock:
            if not self._samples:
                return None
            return max(self._samples, key=lambda item: item[1])[2]

    def _best(self, mono: float) -> float | None:
        """The highest ``central - monotonic`` bound among the samples of the window (None without one)."""
        with self._lock:
            while self._samples and mono - self._samples[0][0] > self.window_s:
                self._samples.popleft()
            if not self._samples:
                return None
            return max(bound for _, bound, _ in self._samples)

    def offset_s(self) -> float | None:
        """Central's clock minus the gate's, in seconds, as estimated now; None without a recent sample."""
        wall, mono = self._clock(), self._monotonic()
        best = self._best(mono)
        if best is None:
            return None
        return (mono + best) - wall.timestamp()

    def now(self) -> datetime:
        """Central's time as the gate estimates it now (the gate's own clock while there is no estimate)."""
        return shift(self._clock(), self.offset_s())


def shift(local: datetime, offset_s: float | None) -> datetime:
    """``local`` (a time of the gate's clock) on central's clock: moved by ``offset_s``; unchanged for None."""
    return local if offset_s is None else local + timedelta(seconds=offset_s)
