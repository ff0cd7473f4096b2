"""The turnstile cycle: an explicit state machine over the relay, the passage sensor and the guard's inputs.

States (``TurnstileCycle.state``)::

    locked --authorise(t)--> unlocked(t) --sensor turn--> locked         outcome(t) = entered
                             unlocked(t) --unlock time over--> locked    outcome(t) = not_passed
                             unlocked(t) --authorise(t2)--> unlocked(t2) outcome(t) = not_passed
    locked --sensor turn--> locked + alarm                               forced() (door forced / tailgating)
    any --emergency input active--> emergency (relay held open)  --input inactive--> back to rest
    any --stop()--> stopped                                              outcome(pending) = unknown

A turn is counted once per ``sensor_debounce_s`` (a rotation switch bounces). The first turn after an
authorisation consumes it and relocks the relay at once, so a second turn in the same unlock is a forced
passage. While the emergency input is active the relay is held open (free passage, slow green flashing):
an authorisation then needs no relay action and counts as entered at once, and turns are not alarms (people
are leaving). Without a passage sensor the gate never calls ``authorise``: an allowed decision is a timed
unlock and counts as entered.

Listener calls (``on_outcome``, ``on_forced``, ``on_manual``, ``on_emergency``) run on the thread that caused
them (gpiozero's input callbacks, the unlock timer, or the caller of ``authorise``), always outside the
cycle's lock, and an exception from one is logged, never propagated into gpiozero.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from protocols.payloads import Outcome

from .turnstile import Indicator, Turnstile

log = logging.getLogger(__name__)

LOCKED, UNLOCKED, EMERGENCY, STOPPED = "locked", "unlocked", "emergency", "stopped"


@dataclass
class _Pending:
    token: str
    deadline: float
    timer: threading.Timer | None


class TurnstileCycle:
    """Drive ``turnstile`` and ``indicator`` from authorisations and the optional gpiozero inputs.

    ``sensor``, ``manual_button``, ``emergency``: gpiozero input devices (``DigitalInputDevice``/``Button``)
    or None. ``clock``: monotonic seconds. Listeners: ``on_outcome(token, Outcome)``, ``on_forced()``,
    ``on_manual()`` (the guard pressed the button; the listener records it and calls ``authorise``),
    ``on_emergency(active)``.
    """

    def __init__(
        self,
        turnstile: Turnstile,
        indicator: Indicator,
        unlock_seconds: float,
        sensor: Any = None,
        manual_button: Any = None,
        emergency: Any = None,
        sensor_debounce_s: float = 0.1,
        on_outcome: Callable[[str, Outcome], None] | None = None,
        on_forced: Callable[[], None] | None = None,
        on_manual: Callable[[], object] | None = None,
        on_emergency: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.turnstile = turnstile
        self.indicator = indicator
        self.unlock_seconds = unlock_seconds
        self.sensor = sensor
        self.manual_button = manual_button
        self.emergency_input = emergency
        self.sensor_debounce_s = sensor_debounce_s
        self.on_outcome = on_outcome
        self.on_forced = on_forced
        self.on_manual = on_manual
        self.on_emergency = on_emergency
        self._clock = clock
        self._lock = threading.RLock()
        self._pending: _Pending | None = None
        self._emergency = False
        self._stopped = False
        self._last_turn: float | None = None
        self.turns = 0
        """Turns counted (after debouncing), authorised or not."""
        self.forced = 0
        """Turns without authorisation."""

    @property
    def has_sensor(self) -> bool:
        """True when a passage sensor confirms passages."""
        return self.sensor is not None

    @property
    def state(self) -> str:
        """"locked", "unlocked", "emergency" or "stopped"."""
        with self._lock:
            if self._stopped:
                return STOPPED
            if self._emergency:
                return EMERGENCY
            return UNLOCKED if self._pending is not None else LOCKED

    @property
    def emergency(self) -> bool:
        """True while the emergency input holds the turnstile open."""
        return self._emergency

    def start(self) -> None:
        """Attach the input callbacks; an emergency input already active releases the turnstile now."""
        if self.sensor is not None:
            self.sensor.when_activated = self._sensor_turned
        if self.manual_button is not None:
            self.manual_button.when_activated = self._manual_pressed
        if self.emergency_input is not None:
            self.emergency_input.when_activated = lambda: self.set_emergency(True)
            self.emergency_input.when_deactivated = lambda: self.set_emergency(False)
            if self.emergency_input.is_active:
                self.set_emergency(True)

    # ----- events

    def authorise(self, token: str) -> None:
        """Let one person through for ``token`` (a check-in id): unlock and wait for the sensor or timeout."""
        calls: list[Callable[[], None]] = []
        with self._lock:
            if self._stopped:
                calls.append(self._outcome_call(token, Outcome.UNKNOWN))
            elif self._emergency:
                calls.append(self._outcome_call(token, Outcome.ENTERED))
            else:
                if self._pending is not None:
                    previous = self._end_pending()
                    log.info("unlock superseded by a new authorisation; previous not passed")
                    calls.append(self._outcome_call(previous.token, Outcome.NOT_PASSED))
                timer = threading.Timer(self.unlock_seconds, self._timed_out, args=(token,))
                timer.daemon = True
                self._pending = _Pending(token, self._clock() + self.unlock_seconds, timer)
                self.turnstile.unlock(self.unlock_seconds)
                timer.start()
        self._run(calls)

    def set_emergency(self, active: bool) -> None:
        """Enter or leave the emergency state (the emergency input's callbacks call this)."""
        with self._lock:
            if self._stopped or active == self._emergency:
                return
            self._emergency = active
            if active:
                self.turnstile.hold_open()
                self.indicator.emergency()
            else:
                self.indicator.off()
                pending = self._pending
                remaining = pending.deadline - self._clock() if pending is not None else 0.0
                self.turnstile.end_hold(remaining if remaining > 0.05 else None)
        log.warning("emergency input %s: turnstile %s", "active" if active else "released",
                    "held open" if active else "back to rest")
        if self.on_emergency is not None:
            self._run([lambda: self.on_emergency(active)])  # type: ignore[misc]

    def _sensor_turned(self) -> None:
        calls: list[Callable[[], None]] = []
        with self._lock:
            now = self._clock()
            if self._last_turn is not None and now - self._last_turn < self.sensor_debounce_s:
                return
            self._last_turn = now
            if self._stopped:
                return
            self.turns += 1
            if self._pending is not None:
                pending = self._end_pending()
                if not self._emergency:
                    self.turnstile.lock()
                calls.append(self._outcome_call(pending.token, Outcome.ENTERED))
            elif self._emergency:
                log.debug("turn during emergency: free passage")
            else:
                self.forced += 1
                self.indicator.alarm()
                log.warning("turnstile turned without authorisation: door forced or tailgating")
                if self.on_forced is not None:
                    calls.append(self.on_forced)
        self._run(calls)

    def _manual_pressed(self) -> None:
        if self._stopped:
            return
        log.info("manual open button pressed")
        if self.on_manual is not None:
            self._run([self.on_manual])

    def _timed_out(self, token: str) -> None:
        calls: list[Callable[[], None]] = []
        with self._lock:
            pending = self._pending
            if pending is None or pending.token != token:
                return  # already passed or superseded
            self._end_pending()
            if not self._emergency:
                self.turnstile.lock()
            calls.append(self._outcome_call(token, Outcome.NOT_PASSED))
        self._run(calls)

    def stop(self) -> None:
        """Ignore the inputs from now on and cancel timers; an authorisation still waiting ends ``unknown``."""
        calls: list[Callable[[], None]] = []
        with self._lock:
            if self._stopped:
                return
            self._stopped = True  # every input callback checks this; the gate closes the devices afterwards
            if self._pending is not None:
                calls.append(self._outcome_call(self._end_pending().token, Outcome.UNKNOWN))
        self._run(calls)

    # ----- helpers

    def _end_pending(self) -> _Pending:
        pending = self._pending
        assert pending is not None
        self._pending = None
        if pending.timer is not None:
            pending.timer.cancel()
        return pending

    def _outcome_call(self, token: str, outcome: Outcome) -> Callable[[], None]:
        def call() -> None:
            if self.on_outcome is not None:
                self.on_outcome(token, outcome)

        return call

    @staticmethod
    def _run(calls: Sequence[Callable[[], object]]) -> None:
        for call in calls:
            try:
                call()
            except Exception:
                log.exception("turnstile cycle listener failed")
