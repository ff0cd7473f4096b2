"""Actuators behind small interfaces over gpiozero: the turnstile relay and the guard's LEDs.

Wiring convention (see firmware_config/README.md): a de-energised relay (pin LOW) is the fail mode's state on
power loss. ``secure``: de-energised = locked, so at rest the pin is LOW and an unlock drives it HIGH.
``safe``: de-energised = released, so at rest the pin is HIGH (energised, holding the arm locked) and an
unlock drives it LOW. Every device takes ``pin_factory`` (gpiozero MockFactory in tests and simulation).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

from gpiozero import LED, DigitalOutputDevice

log = logging.getLogger(__name__)

FailMode = Literal["safe", "secure"]


class Turnstile:
    """The turnstile lock relay.

    ``unlock()`` returns at once; the relock is timed by gpiozero's background blink thread.
    ``is_unlocked`` is True while an unlock is in progress.
    """

    def __init__(self, relay_pin: int | str, fail_mode: FailMode, unlock_seconds: float,
                 pin_factory: Any = None) -> None:
        if fail_mode not in ("safe", "secure"):
            raise ValueError(f"fail_mode must be 'safe' or 'secure', not {fail_mode!r}")
        self.fail_mode = fail_mode
        self.unlock_seconds = unlock_seconds
        self._lock = threading.Lock()
        # The device is "on" while unlocked: secure -> pin HIGH, safe -> pin LOW (active_high=False).
        # initial_value=False puts the relay at rest (locked) immediately.
        self._relay = DigitalOutputDevice(
            relay_pin, active_high=(fail_mode == "secure"), initial_value=False, pin_factory=pin_factory
        )
        self._pin = self._relay.pin  # kept after close() so tests can read the final level
        self._released = False

    @property
    def pin(self) -> Any:
        """The gpiozero pin driving the relay (a MockPin in tests: read ``.state`` and ``.states``)."""
        return self._pin

    @property
    def is_unlocked(self) -> bool:
        """True while the turnstile is unlocked (during an unlock pulse or after release_for_shutdown)."""
        if self._relay.closed:
            return self._released
        return self._released or bool(self._relay.value)

    def unlock(self, seconds: float | None = None) -> None:
        """Unlock for ``seconds`` (default unlock_seconds) and relock in the background; non-blocking."""
        duration = self.unlock_seconds if seconds is None else seconds
        with self._lock:
            if self._released or self._relay.closed:
                return
            self._relay.blink(on_time=duration, off_time=0, n=1, background=True)
        log.info("turnstile unlocked seconds=%.2f fail_mode=%s", duration, self.fail_mode)

    def lock(self) -> None:
        """Cancel any unlock and return to the locked (rest) state."""
        with self._lock:
            if self._relay.closed:
                return
            self._released = False
            self._relay.off()

    def release_for_shutdown(self) -> None:
        """De-energise the relay (pin LOW) in both modes: what a power loss would do.

        For ``secure`` wiring that leaves the turnstile locked, for ``safe`` wiring released.
        """
        with self._lock:
            if self._relay.closed:
                return
            if self.fail_mode == "secure":
                self._relay.off()  # pin LOW
            else:
                self._relay.on()  # active_high=False: pin LOW
                self._released = True
        log.info("turnstile relay de-energised fail_mode=%s", self.fail_mode)

    def close(self) -> None:
        """Release the GPIO pin (after release_for_shutdown on a clean stop)."""
        with self._lock:
            self._relay.close()


class Indicator:
    """Green and red LEDs for the guard and the attendee; every pattern is non-blocking."""

    def __init__(self, green_pin: int | str, red_pin: int | str, pin_factory: Any = None) -> None:
        self.green = LED(green_pin, pin_factory=pin_factory)
        self.red = LED(red_pin, pin_factory=pin_factory)

    def allowed(self, seconds: float = 2.0) -> None:
        """Steady green for ``seconds``."""
        self.red.off()
        self.green.blink(on_time=seconds, off_time=0, n=1, background=True)

    def refused(self, seconds: float = 2.0) -> None:
        """Steady red for ``seconds``."""
        self.green.off()
        self.red.blink(on_time=seconds, off_time=0, n=1, background=True)

    def error(self, flashes: int = 5, period: float = 0.2) -> None:
        """Fast red flashing (``flashes`` times, ``period`` seconds on and off): an internal error."""
        self.green.off()
        self.red.blink(on_time=period, off_time=period, n=flashes, background=True)

    def off(self) -> None:
        """Both LEDs off."""
        self.green.off()
        self.red.off()

    def close(self) -> None:
        """Release both pins."""
        self.green.close()
        self.red.close()
