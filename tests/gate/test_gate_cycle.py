"""The turnstile cycle on MockFactory pins: every transition, with the relay's levels and times asserted.

MockPin.states records (seconds since the previous change, level); ``timeline`` turns that into
(level, seconds held) pairs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from gate.app import Gate
from gate.config import GateConfig
from gate.scanners import ScanEvent
from gate.store import GateStore
from gate.turnstile import PinClaimError
from protocols.payloads import CheckIn, Outcome, decode
from protocols.reasons import Reason
from tests.conftest import wait_until
from tests.gate.gate_helpers import NOW, FakeTransport, IdleScanner, World, outlast_an_unlock, pulse_lengths

RELAY, GREEN, RED, BUZZER, SENSOR, MANUAL, EMERGENCY = 17, 27, 22, 23, 5, 6, 13
UNLOCK = 0.4


def timeline(pin: Any) -> list[tuple[bool, float | None]]:
    """(level, seconds held) for every state of a MockPin; the current state's time is None."""
    states = pin.states
    return [(bool(s.state), states[i + 1].timestamp if i + 1 < len(states) else None)
            for i, s in enumerate(states)]


def compress(pin: Any) -> list[bool]:
    out: list[bool] = []
    for state in pin.states:
        if not out or out[-1] != bool(state.state):
            out.append(bool(state.state))
    return out


def scan(text: str | None, reason: Reason = Reason.OK) -> ScanEvent:
    return ScanEvent(text, reason, "test", time.monotonic())


def turn(factory: MockFactory) -> None:
    """One turn of the arm: the rotation contact closes (pin LOW, pull-up) and opens again."""
    pin = factory.pin(SENSOR)
    pin.drive_low()
    pin.drive_high()


def press(factory: MockFactory, pin_number: int) -> None:
    pin = factory.pin(pin_number)
    pin.drive_low()
    pin.drive_high()


def checkins(gate: Gate) -> list[CheckIn]:
    """Every outbox row, oldest first, decoded (what will be or was delivered)."""
    assert gate.cache is not None
    return [decode(CheckIn, row.payload) for row in gate.cache.outbox_rows()]


@pytest.fixture
def gate_with_sensor(world: World, make_config: Callable[..., GateConfig]) -> Iterator[Callable[..., Gate]]:
    gates: list[Gate] = []

    def make(fail_mode: str = "secure", sensor: bool = True, relay_active_high: bool = True,
             factory: MockFactory | None = None, transport: FakeTransport | None = None,
             start: bool = True) -> Gate:
        pins: dict[str, Any] = {"relay": RELAY, "green_led": GREEN, "red_led": RED, "buzzer": BUZZER,
                                "manual_button": MANUAL, "emergency": EMERGENCY,
                                "relay_active_high": relay_active_high}
        if sensor:
            pins["passage_sensor"] = SENSOR
        config = make_config(gate={"fail_mode": fail_mode}, pins=pins,
                             turnstile={"unlock_seconds": UNLOCK, "sensor_debounce_ms": 50})
        seed = GateStore(config.gate.data_dir)
        seed.load_snapshot(world.snapshot, NOW)
        seed.close()
        gate = Gate(config, pin_factory=factory or MockFactory(), scanner=IdleScanner(),
                    transport=transport or FakeTransport(), clock=lambda: NOW, delivery_poll_s=0.05,
                    flush_timeout=0.1)
        gates.append(gate)
        if start:
            gate.start()
        return gate

    yield make
    for gate in gates:
        gate.stop()


def test_passage_confirmed_by_sensor_relocks_at_once_and_records_entered(
    gate_with_sensor: Callable[..., Gate], world: World,
) -> None:
    transport = FakeTransport()
    gate = gate_with_sensor(transport=transport)
    factory = gate.pin_factory
    relay = factory.pin(RELAY)
    assert gate.cycle.state == "locked" and not relay.state

    decision, written = gate.handle_scan(scan(world.codes[1]))
    assert decision.allowed and written is not None
    assert written.outcome is Outcome.UNKNOWN, "written before the relay opens, outcome not known yet"
    assert gate.cycle.state == "unlocked" and relay.state
    assert gate.cache.outbox_row(str(written.id)).awaiting_outcome  # type: ignore[union-attr]
    assert gate.delivery is not None and gate.delivery.send_due() == 0
    assert transport.published == [], "not delivered before its outcome is known"
    assert not gate.is_consumed(written.credential)  # type: ignore[arg-type]

    turn(factory)
    assert gate.cycle.state == "locked" and not relay.state, "relocked on the first turn"
    assert compress(relay) == [False, True, False]

    final = wait_until(lambda: [decode(CheckIn, p) for p in transport.published])
    assert [(c.id, c.outcome, c.allowed, c.reason) for c in final] == [
        (written.id, Outcome.ENTERED, True, Reason.OK)]
    assert final[0].completed_at == NOW
    assert gate.is_consumed(written.credential)  # type: ignore[arg-type]
    assert gate.recent[0].outcome == "entered"
    assert not gate.turnstile.is_unlocked, "the pulse was cancelled"
    assert compress(relay) == [False, True, False], "no second pulse after the timer"


def test_no_passage_times_out_as_not_passed_and_does_not_consume(
    gate_with_sensor: Callable[..., Gate], world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = gate_with_sensor(fail_mode="safe")
    pulses = pulse_lengths(monkeypatch, gate.turnstile._relay)
    relay = gate.pin_factory.pin(RELAY)
    assert relay.state, "safe wiring: energised (HIGH) at rest"
    _, written = gate.handle_scan(scan(world.codes[2]))
    assert written is not None and not relay.state
    wait_until(lambda: gate.cycle.state == "locked", timeout=UNLOCK + 1)
    assert relay.state
    assert [level for level, _ in timeline(relay)][-2:] == [False, True]
    assert pulses == [UNLOCK], "one pulse of the unlock's length, relocked by its timer"
    (checkin,) = wait_until(lambda: [c for c in checkins(gate) if c.outcome is not Outcome.UNKNOWN])
    assert checkin.outcome is Outcome.NOT_PASSED and checkin.allowed
    assert not gate.is_consumed(written.credential)  # type: ignore[arg-type]
    assert gate.recent[0].outcome == "not_passed"


def test_turn_while_locked_is_door_forced_with_alarm(gate_with_sensor: Callable[..., Gate]) -> None:
    gate = gate_with_sensor()
    factory = gate.pin_factory
    red, buzzer, relay = factory.pin(RED), factory.pin(BUZZER), factory.pin(RELAY)
    turn(factory)
    (forced,) = checkins(gate)
    assert (forced.allowed, forced.reason, forced.outcome, forced.credential) == (
        False, Reason.DOOR_FORCED, Outcome.ENTERED, None)
    assert compress(relay) == [False], "the relay never moved"
    wait_until(lambda: len([1 for level, held in timeline(buzzer) if level and held]) >= 12)
    beeps = [held for level, held in timeline(buzzer) if level and held is not None]
    assert len(beeps) == 12, "twelve beeps, each ended before the next began"
    # The red light blinks with the buzzer on its own pin: its twelfth blink may end just after the twelfth beep.
    wait_until(lambda: len([1 for level, held in timeline(red) if level and held is not None]) >= 12)
    assert gate.recent[0].reason is Reason.DOOR_FORCED


def test_second_turn_in_one_unlock_is_tailgating(gate_with_sensor: Callable[..., Gate], world: World) -> None:
    gate = gate_with_sensor()
    factory = gate.pin_factory
    _, _written = gate.handle_scan(scan(world.codes[1]))
    turn(factory)
    time.sleep(0.08)  # past the sensor's debounce: a lower bound only, so a slow machine just waits longer
    turn(factory)
    rows = wait_until(lambda: [c for c in checkins(gate) if c.outcome is not Outcome.UNKNOWN]
                      if len(checkins(gate)) == 2 else None)
    assert [(c.reason, c.outcome) for c in rows] == [(Reason.OK, Outcome.ENTERED),
                                                     (Reason.DOOR_FORCED, Outcome.ENTERED)]
    assert gate.cycle.forced == 1 and gate.cycle.turns == 2


def test_sensor_bounce_counts_one_turn(gate_with_sensor: Callable[..., Gate], world: World) -> None:
    gate = gate_with_sensor()
    gate.handle_scan(scan(world.codes[1]))
    for _ in range(5):  # contact bounce within 50 ms
        turn(gate.pin_factory)
    assert gate.cycle.turns == 1 and gate.cycle.forced == 0
    assert [c.reason for c in checkins(gate)] == [Reason.OK]


def test_new_authorisation_supersedes_a_pending_one(gate_with_sensor: Callable[..., Gate], world: World) -> None:
    gate = gate_with_sensor()
    _, first = gate.handle_scan(scan(world.codes[1]))
    _, second = gate.handle_scan(scan(world.codes[2]))
    turn(gate.pin_factory)
    outcomes = {c.id: c.outcome for c in checkins(gate)}
    assert outcomes == {first.id: Outcome.NOT_PASSED, second.id: Outcome.ENTERED}  # type: ignore[union-attr]


def test_refused_scan_shows_red_and_two_beeps_relay_untouched(
    gate_with_sensor: Callable[..., Gate], world: World,
) -> None:
    gate = gate_with_sensor()
    factory = gate.pin_factory
    decision, written = gate.handle_scan(scan(world.codes[9001]))
    assert not decision.allowed and written is not None and written.outcome is Outcome.REFUSED
    assert factory.pin(RED).state and not factory.pin(GREEN).state
    wait_until(lambda: len([1 for level, held in timeline(factory.pin(BUZZER)) if level and held]) == 2)
    assert compress(factory.pin(RELAY)) == [False]
    assert gate.cycle.state == "locked"


def test_manual_button_opens_once_and_is_recorded(gate_with_sensor: Callable[..., Gate]) -> None:
    gate = gate_with_sensor()
    factory = gate.pin_factory
    relay = factory.pin(RELAY)
    press(factory, MANUAL)
    assert relay.state and gate.cycle.state == "unlocked"
    turn(factory)
    assert not relay.state
    (manual,) = checkins(gate)
    assert (manual.manual, manual.allowed, manual.reason, manual.outcome, manual.credential) == (
        True, True, Reason.MANUAL_OPEN, Outcome.ENTERED, None)
    assert gate.recent[0].manual
    assert compress(relay) == [False, True, False]


def test_manual_button_without_sensor_pulses_and_counts_entered(
    gate_with_sensor: Callable[..., Gate], monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = gate_with_sensor(sensor=False)
    pulses = pulse_lengths(monkeypatch, gate.turnstile._relay)
    relay = gate.pin_factory.pin(RELAY)
    press(gate.pin_factory, MANUAL)
    (manual,) = checkins(gate)
    assert manual.manual and manual.outcome is Outcome.ENTERED
    wait_until(lambda: not relay.state, timeout=UNLOCK + 1)
    assert compress(relay)[-2:] == [True, False] and pulses == [UNLOCK], "one pulse, relocked by its timer"


@pytest.mark.parametrize(("mode", "released_level"), [("secure", True), ("safe", False)])
def test_emergency_holds_the_turnstile_open_while_active(
    gate_with_sensor: Callable[..., Gate], world: World, mode: str, released_level: bool,
) -> None:
    gate = gate_with_sensor(fail_mode=mode)
    factory = gate.pin_factory
    relay, emergency = factory.pin(RELAY), factory.pin(EMERGENCY)
    rest = relay.state
    emergency.drive_low()
    assert gate.cycle.state == "emergency" and gate.cycle.emergency
    assert bool(relay.state) is released_level
    held_from = len(relay.states)
    outlast_an_unlock(factory.pin(GREEN))
    assert bool(relay.state) is released_level, "held open, not a timed pulse"

    # Scans are decided and recorded; allowed ones count as entered without relay action.
    decision, written = gate.handle_scan(scan(world.codes[3]))
    assert decision.allowed and written is not None and written.outcome is Outcome.ENTERED
    refused, _ = gate.handle_scan(scan(world.codes[9001]))
    assert not refused.allowed
    turn(factory)  # people leaving: not an alarm
    assert gate.cycle.forced == 0
    press(factory, MANUAL)  # nothing to open
    assert [c.manual for c in checkins(gate)] == [False, False]
    assert len(relay.states) == held_from, "the relay is not written while the input holds it open"

    emergency.drive_high()
    assert gate.cycle.state == "locked" and relay.state == rest
    # Open exactly while the input was active: released when it went active, back at rest when it went
    # inactive, and no change in between (checked by order, not by a stopwatch).
    assert len(relay.states) == held_from + 1
    assert compress(relay)[-3:] == [rest, released_level, rest]


def test_emergency_during_an_unlock_keeps_the_pending_passage(
    gate_with_sensor: Callable[..., Gate], world: World,
) -> None:
    gate = gate_with_sensor()
    factory = gate.pin_factory
    relay = factory.pin(RELAY)
    _, written = gate.handle_scan(scan(world.codes[1]))
    factory.pin(EMERGENCY).drive_low()
    turn(factory)  # the pending person passes
    factory.pin(EMERGENCY).drive_high()
    assert not relay.state
    assert {c.id: c.outcome for c in checkins(gate)} == {written.id: Outcome.ENTERED}  # type: ignore[union-attr]


def test_emergency_input_active_at_start_releases_at_once(gate_with_sensor: Callable[..., Gate]) -> None:
    gate = gate_with_sensor(fail_mode="safe", start=False)
    factory = gate.pin_factory
    assert factory.pin(RELAY).state, "at rest before start"
    factory.pin(EMERGENCY).drive_low()  # the input is already active when the gate starts
    gate.start()
    assert gate.cycle.state == "emergency" and not factory.pin(RELAY).state


@pytest.mark.parametrize(("mode", "rest", "unlocked", "de_energised"), [
    ("secure", True, False, True),   # active-low board: energised = LOW; secure rests de-energised (HIGH)
    ("safe", False, True, True),     # safe rests energised (LOW), unlock de-energises (HIGH)
])
def test_active_low_relay_board_levels(
    gate_with_sensor: Callable[..., Gate], world: World, mode: str, rest: bool, unlocked: bool,
    de_energised: bool,
) -> None:
    gate = gate_with_sensor(fail_mode=mode, relay_active_high=False, sensor=False)
    relay = gate.pin_factory.pin(RELAY)
    assert bool(relay.state) is rest
    gate.handle_scan(scan(world.codes[1]))
    assert bool(relay.state) is unlocked
    wait_until(lambda: bool(relay.state) is rest, timeout=UNLOCK + 1)
    gate.stop()
    assert bool(relay.state) is de_energised


def test_interrupted_cycle_is_finalised_unknown_and_delivered_on_start(
    world: World, make_config: Callable[..., GateConfig],
) -> None:
    config = make_config(pins={"passage_sensor": SENSOR}, turnstile={"unlock_seconds": 5.0})
    seed = GateStore(config.gate.data_dir)
    seed.load_snapshot(world.snapshot, NOW)
    seed.close()
    first = Gate(config, pin_factory=MockFactory(), scanner=IdleScanner(), transport=FakeTransport(False),
                 clock=lambda: NOW)
    first.start()
    _, written = first.handle_scan(scan(world.codes[1]))
    assert written is not None
    # The process dies mid-cycle: nothing of the gate runs any more; only the database file remains.
    first.cycle.on_outcome = None
    first.cache.close()  # type: ignore[union-attr]

    transport = FakeTransport()
    second = Gate(config, pin_factory=MockFactory(), scanner=IdleScanner(), transport=transport,
                  clock=lambda: NOW, delivery_poll_s=0.05)
    second.start()
    try:
        published = wait_until(lambda: [decode(CheckIn, p) for p in transport.published])
        assert [(c.id, c.outcome, c.completed_at) for c in published] == [(written.id, Outcome.UNKNOWN, None)]
        assert not second.is_consumed(written.credential)  # type: ignore[arg-type]
    finally:
        second.stop()
        first.turnstile.close()


def test_stop_during_an_unlock_records_unknown(gate_with_sensor: Callable[..., Gate], world: World) -> None:
    gate = gate_with_sensor()
    _, written = gate.handle_scan(scan(world.codes[1]))
    cache = gate.cache
    assert cache is not None
    probe_dir = gate.config.gate.data_dir
    gate.stop()
    probe = GateStore(probe_dir)
    try:
        row = probe.outbox_row(str(written.id))  # type: ignore[union-attr]
        assert row is not None and not row.awaiting_outcome
        assert decode(CheckIn, row.payload).outcome is Outcome.UNKNOWN
    finally:
        probe.close()


@pytest.mark.parametrize(("key", "pin"), [("relay", RELAY), ("red_led", RED), ("passage_sensor", SENSOR)])
def test_pin_already_in_use_stops_start_up_naming_the_key(
    make_config: Callable[..., GateConfig], key: str, pin: int,
) -> None:
    factory = MockFactory()
    squatter = LED(pin, pin_factory=factory)
    config = make_config(pins={"passage_sensor": SENSOR})
    with pytest.raises(PinClaimError) as info:
        Gate(config, pin_factory=factory)
    assert str(info.value) == f"pins.{key}: GPIO{pin} is already in use"
    squatter.close()
    # Everything claimed before the failure was released: a second attempt succeeds.
    gate = Gate(config, pin_factory=factory)
    gate.stop()
