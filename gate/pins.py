"""The gate's hardware pins: relay, LEDs and buzzer, passage sensor, guard's button and emergency input.

Every pin is claimed through gpiozero with the pin factory passed in (``MockFactory`` in tests and the demo,
gpiozero's default on the Pi). The relay is claimed first, so it goes to its locked rest level at once. A pin
that cannot be claimed raises :class:`gate.turnstile.PinClaimError` naming its config key, after the pins
already claimed were released.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpiozero import Button, DigitalInputDevice

from .config import GateConfig
from .turnstile import Indicator, PinClaimError, Turnstile, claim

log = logging.getLogger(__name__)


def default_pin_factory(simulate: bool) -> Any:
    """The pin factory when none is given: gpiozero's MockFactory when simulating, else gpiozero's default."""
    if simulate:
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    return None


@dataclass
class GatePins:
    """The claimed devices; inputs not wired in the config are None."""

    turnstile: Turnstile
    indicator: Indicator
    sensor: DigitalInputDevice | None = None
    manual_button: Button | None = None
    emergency: Button | None = None
    inputs: list[Any] = field(default_factory=list)

    def close_steps(self) -> list[tuple[str, Callable[[], Any]]]:
        """The shutdown steps releasing every pin, relay first (named for the shutdown log)."""
        steps: list[tuple[str, Callable[[], Any]]] = [("pins", self.turnstile.close), ("leds", self.indicator.close)]
        steps.extend(("inputs", device.close) for device in self.inputs)
        return steps


def claim_pins(config: GateConfig, factory: Any) -> GatePins:
    """Claim every pin of ``config.pins`` on ``factory``; on failure release those already claimed and raise
    :class:`PinClaimError`."""
    pins = config.pins
    built: list[Any] = []
    inputs: list[Any] = []

    def make_input(key: str, pin: int | None, cls: type[Any]) -> Any:
        if pin is None:
            return None
        device = claim(f"pins.{key}", pin, lambda: cls(pin, pull_up=True, pin_factory=factory))
        built.append(device)
        inputs.append(device)
        return device

    try:
        turnstile = Turnstile(pins.relay, config.gate.fail_mode, config.turnstile.unlock_seconds,
                              pin_factory=factory, relay_active_high=pins.relay_active_high)
        built.append(turnstile)
        indicator = Indicator(pins.green_led, pins.red_led, pin_factory=factory, buzzer_pin=pins.buzzer)
        built.append(indicator)
        sensor = make_input("passage_sensor", pins.passage_sensor, DigitalInputDevice)
        manual = make_input("manual_button", pins.manual_button, Button)
        emergency = make_input("emergency", pins.emergency, Button)
    except PinClaimError:
        for device in reversed(built):
            try:
                device.close()
            except Exception:
                log.debug("closing a pin after a failed start-up failed", exc_info=True)
        raise
    return GatePins(turnstile, indicator, sensor=sensor, manual_button=manual, emergency=emergency, inputs=inputs)
