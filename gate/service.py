"""The gate as a service: the loop ``Gate.run()`` serves in, with systemd's notifications, its watchdog and the
periodic housekeeping (pruning delivered outbox rows and the passages of ended meetings).

From the main thread it installs SIGTERM/SIGINT handlers. It notifies systemd: READY=1 once started,
WATCHDOG=1 every half ``$WATCHDOG_USEC`` while the gate is healthy (the scan handler is idle or made progress
within ``stall_after_s``, and delivery runs), STATUS= lines when that changes, STOPPING=1 before shutdown.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from protocols import systemd as sd

from .delivery import DeliveryLoop
from .store import GateStore

if TYPE_CHECKING:
    from .app import Gate

log = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(hours=1)


def is_healthy(busy_since: float | None, stall_after_s: float, delivery: DeliveryLoop | None,
               now: float | None = None) -> bool:
    """True when scan handling is idle or busy for at most ``stall_after_s`` (monotonic seconds), and the
    delivery loop (when there is one) is alive."""
    moment = time.monotonic() if now is None else now
    if busy_since is not None and moment - busy_since > stall_after_s:
        return False
    return delivery is None or delivery.is_alive()


class OutboxRetention:
    """Deletes delivered outbox rows older than ``keep``, and the passages (anti-passback entries), meetings and
    delegates (names) of meetings that ended more than ``keep`` ago, at most once every ``every`` by ``clock``.

    ``clock`` is the wall clock that stamped the rows delivered (the delivery loop's).
    """

    def __init__(self, store: GateStore, keep: timedelta, clock: Callable[[], datetime],
                 every: timedelta = PRUNE_EVERY) -> None:
        self.store = store
        self.keep = keep
        self.every = every
        self._clock = clock
        self._last: datetime | None = None

    def tick(self) -> int:
        """Prune when due; returns how many outbox rows and passages were deleted (0 when not due)."""
        now = self._clock()
        if self._last is not None and now - self._last < self.every:
            return 0
        self._last = now
        pruned = 0
        try:
            pruned = self.store.prune_delivered(now - self.keep)
        except Exception:
            log.exception("delivered outbox rows not pruned")
        else:
            if pruned:
                log.info("delivered outbox rows pruned count=%d older_than=%s", pruned, now - self.keep)
        try:
            forgotten = self.store.prune_consumed(now - self.keep)
            meetings = self.store.prune_ended_meetings(now - self.keep)
        except Exception:
            log.exception("passages and delegates of ended meetings not pruned")
            return pruned
        if forgotten or meetings:
            log.info("ended meetings pruned passages=%d meetings=%d ended_before=%s", forgotten, meetings,
                     now - self.keep)
        return pruned + forgotten


class Watchdog:
    """Feeds systemd's watchdog every ``interval`` seconds while healthy, and says when health changes."""

    def __init__(self, interval: float | None, status: Callable[[], str], stall_after_s: float) -> None:
        self.interval = interval
        self._status = status
        self._stall_after_s = stall_after_s
        self._last_ping = 0.0
        self._fed = True

    def observe(self, healthy: bool) -> None:
        """Ping when healthy and due; log and publish STATUS= when health changed."""
        if self.interval and healthy and time.monotonic() - self._last_ping >= self.interval:
            sd.notify("WATCHDOG=1")
            self._last_ping = time.monotonic()
        if healthy == self._fed:
            return
        self._fed = healthy
        if healthy:
            log.info("scan handling recovered; watchdog fed again")
        else:
            log.error("scan handler stalled for more than %.1fs; watchdog no longer fed", self._stall_after_s)
        sd.notify(f"STATUS={self._status()}")


def serve(gate: Gate, stop_requested: threading.Event | None = None) -> None:
    """Start ``gate``, serve until SIGTERM/SIGINT (or ``stop_requested`` is set), then stop it."""
    stop_event = stop_requested or threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal received signal=%s", signal.Signals(signum).name)
        stop_event.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    interval = sd.watchdog_interval()
    tick = min(1.0, interval) if interval else 1.0
    try:
        gate.start()
        sd.notify("READY=1")
        sd.notify(f"STATUS={gate.status_line()}")
        watchdog = Watchdog(interval, gate.status_line, gate.stall_after_s)
        while not stop_event.wait(tick):
            watchdog.observe(gate.is_healthy())
            gate.housekeeping()
    finally:
        sd.notify("STOPPING=1")
        gate.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
