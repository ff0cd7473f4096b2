"""Turnstile relay and indicator LEDs on gpiozero MockFactory pins: levels, timing, fail modes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from gate.turnstile import Indicator, Turnstile
from tests.conftest import wait_until
from tests.gate.gate_helpers import pulse_lengths


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pins = MockFactory()
    yield pins
    pins.reset()


def levels(pin: object) -> list[bool]:
    """The sequence of distinct levels a MockPin went through."""
    out: list[bool] = []
    for state in pin.states:  # type: ignore[attr-defined]
        if not out or out[-1] != bool(state.state):
            out.append(bool(state.state))
    return out


def high_durations(pin: object, level: bool) -> list[float]:
    """Durations of each completed period the pin spent at ``level``."""
    states = pin.states  # type: ignore[attr-defined]
    return [b.timestamp - a.timestamp for a, b in itertools.pairwise(states)
            if bool(a.state) is level and bool(b.state) is not level]


def test_secure_rests_low_and_unlock_pulses_high(factory: MockFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    turnstile = Turnstile(17, "secure", 0.3, pin_factory=factory)
    pin = factory.pin(17)
    pulses = pulse_lengths(monkeypatch, turnstile._relay)
    assert pin.state is False or pin.state == 0
    turnstile.unlock()
    assert pin.state and turnstile.is_unlocked, "unlock() returns at once, while its pulse still runs"
    wait_until(lambda: not pin.state)
    assert not pin.state and not turnstile.is_unlocked
    assert levels(pin) == [False, True, False]
    assert pulses == [0.3], "one pulse of the configured length, ended by its timer"
    turnstile.close()


def test_safe_rests_high_and_unlock_pulses_low(factory: MockFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    turnstile = Turnstile(17, "safe", 0.25, pin_factory=factory)
    pin = factory.pin(17)
    pulses = pulse_lengths(monkeypatch, turnstile._relay)
    assert pin.state, "safe wiring holds the lock energised at rest"
    turnstile.unlock()
    assert not pin.state
    wait_until(lambda: pin.state)
    assert pin.state
    assert levels(pin)[-3:] == [True, False, True]
    # The MockPin starts LOW for an instant before the device drives it HIGH; the unlock is the last LOW period,
    # one pulse of the configured length (the relay is active-low in safe wiring).
    assert pulses == [0.25]
    turnstile.close()


@pytest.mark.parametrize("mode", ["safe", "secure"])
def test_release_for_shutdown_de_energises_in_both_modes(factory: MockFactory, mode: str) -> None:
    turnstile = Turnstile(17, mode, 5.0, pin_factory=factory)  # type: ignore[arg-type]
    pin = factory.pin(17)
    turnstile.unlock()  # even in the middle of an unlock
    turnstile.release_for_shutdown()
    assert not pin.state
    assert turnstile.is_unlocked, "released: stays de-energised, the unlock's relock is cancelled"
    turnstile.close()
    assert not turnstile.pin.state


def test_unlock_can_be_renewed_and_lock_cancels(factory: MockFactory) -> None:
    turnstile = Turnstile(17, "secure", 0.2, pin_factory=factory)
    pin = factory.pin(17)
    turnstile.unlock(seconds=2.0)
    assert pin.state
    turnstile.lock()
    assert not pin.state
    turnstile.close()


def test_bad_fail_mode_is_refused(factory: MockFactory) -> None:
    with pytest.raises(ValueError, match="fail_mode"):
        Turnstile(17, "open", 1.0, pin_factory=factory)  # type: ignore[arg-type]


def test_indicator_patterns_are_distinct_and_non_blocking(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    indicator = Indicator(27, 22, pin_factory=factory)
    green, red = factory.pin(27), factory.pin(22)
    lit = pulse_lengths(monkeypatch, indicator.green)

    indicator.allowed(seconds=0.2)
    assert green.state and not red.state, "returns at once, while the pattern runs"
    wait_until(lambda: not green.state)
    assert levels(green)[-2:] == [True, False] and lit == [0.2], "one green light of 0.2 s, off by itself"

    indicator.refused(seconds=0.2)
    assert red.state and not green.state
    wait_until(lambda: not red.state)

    red.clear_states()
    indicator.error(flashes=3, period=0.05)
    assert red.state, "returns at once, while the flashes run"
    wait_until(lambda: len(high_durations(red, True)) == 3)
    assert len(high_durations(red, True)) == 3, "error flashes red three times"
    assert not green.state
    indicator.close()
