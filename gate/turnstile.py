"""Actuators behind small interfaces over gpiozero: the turnstile relay, the guard's LEDs and the buzzer.

Wiring convention (see firmware_config/README.md): a **de-energised** relay is the fail mode's state, which
is also what a power cut leaves. ``secure``: de-energised = locked, so at rest the relay is off and an unlock
energises it. ``safe``: de-energised = released, so at rest the relay is energised (holding the arm locked)
and an unlock de-energises it. With an active-high relay module (the default) energised = pin HIGH; with an
active-low board (``relay_active_high=False``, e.g. the Waveshare RPi Relay Board) energised = pin LOW.

Signal patterns (all non-blocking, timed by gpiozero's background threads):

========== ================================== ===================================
pattern    LEDs                               buzzer
========== ================================== ===================================
allowed    green steady 2 s                   one short beep (0.1 s)
refused    red steady 2 s                     two short beeps (0.1 s on, 0.1 s off)
error      red flashing 5 x (0.2 s on/off)    one long beep (0.8 s)
alarm      red fast flashing 12 x (0.1 s)     12 fast beeps (0.1 s on/off), door forced
emergency  green slow flashing (0.5 s on/off) silent, while the emergency input is active
========== ================================== ===================================

Every device takes ``pin_factory`` (gpiozero MockFactory in tests and simulation).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from gpiozero import LED, Buzzer, DigitalOutputDevice, GPIOPinInUse

log = logging.getLogger(__name__)

FailMode = Literal["safe", "secure"]
T = TypeVar("T")


class PinClaimError(RuntimeError):
    """A GPIO pin that cannot be claimed; ``str()`` names the config key, e.g.
    "pins.relay: GPIO17 is already in use"."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"{key}: {detail}")
        self.key = key
        self.detail = detail


def pin_label(pin: int | str) -> str:
    """"GPIO17" for BCM 17; a pin name as given otherwise."""
    return f"GPIO{pin}" if isinstance(pin, int) else str(pin)


def claim(key: str, pin: int | str, build: Callable[[], T]) -> T:
    """Build a gpiozero device on ``pin``; turn any failure into a :class:`PinClaimError` naming ``key``."""
    try:
        return build()
    except GPIOPinInUse:
        raise PinClaimError(key, f"{pin_label(pin)} is already in use") from None
    except Exception as exc:  # the factory refused the pin (invalid, no permission, no GPIO chip, ...)
        raise PinClaimError(key, f"{pin_label(pin)} cannot be used: {exc}") from exc


class Turnstile:
    """The turnstile lock relay.

    ``unlock()`` returns at once; the relock is timed by gpiozero's background blink thread, so the relay
    closes on time even if the rest of the gate is busy. ``hold_open()`` keeps it unlocked (emergency) until
    ``lock()``. ``is_unlocked`` is True while unlocked.
    """

    def __init__(self, relay_pin: int | str, fail_mode: FailMode, unlock_seconds: float,
                 pin_factory: Any = None, relay_active_high: bool = True) -> None:
        if fail_mode not in ("safe", "secure"):
            raise ValueError(f"fail_mode must be 'safe' or 'secure', not {fail_mode!r}")
        self.fail_mode = fail_mode
        self.unlock_seconds = unlock_seconds
        self.relay_active_high = relay_active_high
        self._lock = threading.Lock()
        # The device is "on" while unlocked. Unlocked = energised for secure, de-energised for safe; energised
        # = pin HIGH for an active-high relay. initial_value=False puts the relay at rest (locked) at once.
        self._relay = claim("pins.relay", relay_pin, lambda: DigitalOutputDevice(
            relay_pin, active_high=((fail_mode == "secure") == relay_active_high), initial_value=False,
            pin_factory=pin_factory,
        ))
        self._pin = self._relay.pin  # kept after close() so tests can read the final level
        self._released = False
        self._held = False

    @property
    def pin(self) -> Any:
        """The gpiozero pin driving the relay (a MockPin in tests: read ``.state`` and ``.states``)."""
        return self._pin

    @property
    def de_energised_level(self) -> bool:
        """The pin level that leaves the relay coil without current (LOW for an active-high module)."""
        return not self.relay_active_high

    @property
    def is_unlocked(self) -> bool:
        """True while the turnstile is unlocked (an unlock pulse, hold_open, or after release_for_shutdown)."""
        if self._relay.closed:
            return self._released
        return self._released or bool(self._relay.value)

    def unlock(self, seconds: float | None = None) -> None:
        """Unlock for ``seconds`` (default unlock_seconds) and relock in the background; non-blocking."""
        duration = self.unlock_seconds if seconds is None else seconds
        with self._lock:
            if self._released or self._held or self._relay.closed:
                return
            self._relay.blink(on_time=duration, off_time=0, n=1, background=True)
        log.info("turnstile unlocked seconds=%.2f fail_mode=%s", duration, self.fail_mode)

    def hold_open(self) -> None:
        """Unlock until ``end_hold()`` or ``lock()`` (the emergency input); cancels a timed unlock, and
        ``unlock()`` changes nothing meanwhile."""
        with self._lock:
            if self._released or self._relay.closed:
                return
            self._held = True
            self._relay.on()
        log.info("turnstile held open fail_mode=%s", self.fail_mode)

    def end_hold(self, unlock_for: float | None = None) -> None:
        """End ``hold_open``: lock now, or stay unlocked ``unlock_for`` more seconds (an unlock still running)."""
        with self._lock:
            if self._released or self._relay.closed:
                return
            self._held = False
            if unlock_for:
                self._relay.blink(on_time=unlock_for, off_time=0, n=1, background=True)
            else:
                self._relay.off()

    def lock(self) -> None:
        """Cancel any unlock or hold and return to the locked (rest) state (not after release_for_shutdown)."""
        with self._lock:
            if self._relay.closed or self._released:
                return
            self._held = False
            self._relay.off()

    def release_for_shutdown(self) -> None:
        """De-energise the relay in both modes: what a power loss would do.

        For ``secure`` wiring that leaves the turnstile locked, for ``safe`` wiring released. Final: later
        ``unlock``/``lock``/``hold_open`` calls change nothing.
        """
        with self._lock:
            if self._relay.closed:
                return
            if self.fail_mode == "secure":
                self._relay.off()  # locked = de-energised
            else:
                self._relay.on()  # unlocked = de-energised
            self._released = True
        log.info("turnstile relay de-energised fail_mode=%s", self.fail_mode)

    def close(self) -> None:
        """Release the GPIO pin (after release_for_shutdown on a clean stop)."""
        with self._lock:
            self._relay.close()


class Indicator:
    """Green and red LEDs and an optional buzzer; every pattern is non-blocking (see the module table)."""

    def __init__(self, green_pin: int | str, red_pin: int | str, pin_factory: Any = None,
                 buzzer_pin: int | str | None = None) -> None:
        self.buzzer: Buzzer | None = None
        self.green = claim("pins.green_led", green_pin, lambda: LED(green_pin, pin_factory=pin_factory))
        try:
            self.red = claim("pins.red_led", red_pin, lambda: LED(red_pin, pin_factory=pin_factory))
            if buzzer_pin is not None:
                self.buzzer = claim("pins.buzzer", buzzer_pin, lambda: Buzzer(buzzer_pin, pin_factory=pin_factory))
        except Exception:
            self.close()
            raise

    def _beep(self, on_time: float, off_time: float, n: int) -> None:
        if self.buzzer is not None:
            self.buzzer.blink(on_time=on_time, off_time=off_time, n=n, background=True)

    def allowed(self, seconds: float = 2.0) -> None:
        """Steady green for ``seconds``, one short beep."""
        self.red.off()
        self.green.blink(on_time=seconds, off_time=0, n=1, background=True)
        self._beep(0.1, 0.0, 1)

    def refused(self, seconds: float = 2.0) -> None:
        """Steady red for ``seconds``, two short beeps."""
        self.green.off()
        self.red.blink(on_time=seconds, off_time=0, n=1, background=True)
        self._beep(0.1, 0.1, 2)

    def error(self, flashes: int = 5, period: float = 0.2) -> None:
        """Red flashing (``flashes`` times, ``period`` seconds on and off), one long beep: an internal error."""
        self.green.off()
        self.red.blink(on_time=period, off_time=period, n=flashes, background=True)
        self._beep(0.8, 0.0, 1)

    def alarm(self, flashes: int = 12, period: float = 0.1) -> None:
        """Fast red flashing with fast beeps: the turnstile turned without authorisation (door forced)."""
        self.green.off()
        self.red.blink(on_time=period, off_time=period, n=flashes, background=True)
        self._beep(period, period, flashes)

    def emergency(self, period: float = 0.5) -> None:
        """Slow green flashing until the next pattern or ``off()``: free passage, emergency input active."""
        self.red.off()
        if self.buzzer is not None:
            self.buzzer.off()
        self.green.blink(on_time=period, off_time=period, background=True)

    def off(self) -> None:
        """LEDs and buzzer off."""
        self.green.off()
        self.red.off()
        if self.buzzer is not None:
            self.buzzer.off()

    def close(self) -> None:
        """Release the pins."""
        for device in (getattr(self, "green", None), getattr(self, "red", None), getattr(self, "buzzer", None)):
            if device is not None:
                device.close()
