"""Central's commands at the gate, on MockFactory pins: open once, lockdown, release, resume, resync.

Each test asserts what the turnstile relay did (levels and times, from MockPin.states), what was recorded in
the outbox, and the CommandResult the gate published: stale, repeated and misaddressed commands included.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from gate.app import Gate
from gate.config import GateConfig
from gate.store import GateStore
from gate.sync import SyncError, SyncFailure
from protocols.payloads import Command, CommandResult, GateStatus, Heartbeat, Outcome, decode, encode
from protocols.reasons import Reason
from tests.gate.gate_helpers import NOW, FakeTransport, IdleScanner, World, outlast_an_unlock, pulse_lengths
from tests.gate.test_gate_cycle import checkins, compress, scan, turn, wait_until
from tests.gate.test_status_page import browser, expect, page  # noqa: F401 - Chromium fixtures

RELAY, GREEN, RED, SENSOR, MANUAL, EMERGENCY = 17, 27, 22, 5, 6, 13
UNLOCK = 0.4


class CommandTransport(FakeTransport):
    """FakeTransport that also records command results and status re-publications."""

    @property
    def results(self) -> list[CommandResult]:
        return [decode(CommandResult, payload) for payload in self.command_results]

    def status(self) -> GateStatus:
        assert self.status_fields is not None
        return GateStatus(gate_id="g1", state="online", since=NOW, **self.status_fields())


def command(action: str, *, age_s: float = 1.0, gate_id: str = "g1", **extra: Any) -> Command:
    return Command(id=uuid.uuid4(), gate_id=gate_id, action=action, issued_by="bao-ve-an",
                   issued_at=NOW - timedelta(seconds=age_s), **extra)


@pytest.fixture
def make_gate(world: World, make_config: Callable[..., GateConfig]) -> Iterator[Callable[..., Gate]]:
    gates: list[Gate] = []

    def make(*, fail_mode: str = "secure", sensor: bool = False, factory: MockFactory | None = None,
             fetch: Callable[..., Any] | None = None, seed: bool = True, status_page: bool = False) -> Gate:
        pins: dict[str, Any] = {"relay": RELAY, "green_led": GREEN, "red_led": RED, "manual_button": MANUAL,
                                "emergency": EMERGENCY}
        if sensor:
            pins["passage_sensor"] = SENSOR
        config = make_config(gate={"fail_mode": fail_mode}, pins=pins,
                             turnstile={"unlock_seconds": UNLOCK, "sensor_debounce_ms": 50},
                             commands={"max_age_seconds": 30},
                             status={"enabled": status_page, "port": 0})
        if seed:
            cache = GateStore(config.gate.data_dir)
            cache.load_snapshot(world.snapshot, NOW)
            cache.close()
        kwargs: dict[str, Any] = {"fetch": fetch} if fetch is not None else {}
        gate = Gate(config, pin_factory=factory or MockFactory(), scanner=IdleScanner(),
                    transport=CommandTransport(), clock=lambda: NOW, delivery_poll_s=0.05, flush_timeout=0.1,
                    resync_backoff_s=30, resync_min_interval_s=30, **kwargs)
        gates.append(gate)
        gate.start()
        return gate

    yield make
    for gate in gates:
        gate.stop()


def send(gate: Gate, cmd: Command | bytes) -> CommandResult | None:
    assert gate.commands is not None
    return gate.commands.handle(cmd if isinstance(cmd, bytes) else encode(cmd))


def results(gate: Gate) -> list[CommandResult]:
    transport = gate.transport
    assert isinstance(transport, CommandTransport)
    return transport.results


def relay_pin(gate: Gate) -> Any:
    return gate.pin_factory.pin(RELAY)


# ----- open


def test_open_pulses_the_relay_once_and_records_a_manual_check_in_naming_the_operator(
    make_gate: Callable[..., Gate], monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = make_gate()
    pulses = pulse_lengths(monkeypatch, gate.turnstile._relay)
    cmd = command("open", meeting_id=1, delegate_id=2, note="khách vãng lai")
    result = send(gate, cmd)
    assert result is not None and result.ok and result.reason is None and result.mode == "normal"
    assert results(gate) == [result]
    relay = relay_pin(gate)
    assert relay.state, "secure wiring, active-high module: unlocked = energised = HIGH"
    wait_until(lambda: not relay.state, timeout=2)
    assert compress(relay) == [False, True, False]
    assert pulses == [UNLOCK], "one pulse of the unlock's length, relocked by its timer"
    (checkin,) = checkins(gate)
    assert (checkin.allowed, checkin.reason, checkin.manual, checkin.outcome) == (
        True, Reason.MANUAL_OPEN, True, Outcome.ENTERED)
    assert (checkin.operator, checkin.command_id, checkin.meeting_id, checkin.delegate_id) == (
        "bao-ve-an", cmd.id, 1, 2)
    assert result.checkin_id == checkin.id
    assert gate.recent[0].manual and gate.recent[0].name == "Nguyễn Văn 2"


def test_open_with_a_passage_sensor_is_one_cycle_ended_by_the_turn(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate(sensor=True)
    result = send(gate, command("open"))
    assert result is not None and result.ok
    relay = relay_pin(gate)
    assert relay.state
    turn(gate.pin_factory)
    assert not relay.state, "the turn relocks at once"
    (checkin,) = wait_until(lambda: [c for c in checkins(gate) if c.outcome is not Outcome.UNKNOWN])
    assert checkin.outcome is Outcome.ENTERED and checkin.operator == "bao-ve-an" and checkin.manual


# ----- freshness, duplicates, addressing


@pytest.mark.parametrize("age_s", [31.0, 3600.0, -31.0])
def test_stale_or_future_commands_are_refused_and_never_open(make_gate: Callable[..., Gate], age_s: float) -> None:
    gate = make_gate()
    result = send(gate, command("open", age_s=age_s))
    assert result is not None and not result.ok and result.reason == Reason.STALE_COMMAND.value
    assert compress(relay_pin(gate)) == [False], "the relay never moved"
    assert checkins(gate) == []


def test_a_command_within_the_max_age_executes(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate()
    result = send(gate, command("open", age_s=29.0))
    assert result is not None and result.ok
    assert len(checkins(gate)) == 1


def test_a_repeated_command_is_answered_from_the_log_not_executed_twice_even_after_restart(
    make_gate: Callable[..., Gate],
) -> None:
    gate = make_gate()
    cmd = command("open")
    first = send(gate, cmd)
    wait_until(lambda: not relay_pin(gate).state, timeout=2)
    again = send(gate, cmd)
    assert first is not None and again == first
    assert len(checkins(gate)) == 1
    assert compress(relay_pin(gate)) == [False, True, False], "one pulse only"
    gate.stop()
    restarted = make_gate(seed=False)
    third = send(restarted, cmd)
    assert third == first
    assert len(checkins(restarted)) == 1
    assert compress(relay_pin(restarted)) == [False]
    stale = command("open", age_s=60)
    refused = send(restarted, stale)
    assert refused is not None and send(restarted, stale) == refused, "a refusal is repeated, too"


def test_commands_for_another_gate_or_unreadable_ones_are_not_executed(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate()
    wrong = send(gate, command("open", gate_id="g2"))
    assert wrong is not None and not wrong.ok and wrong.reason == Reason.WRONG_GATE.value
    assert send(gate, b"{not json") is None
    assert send(gate, b'{"v": 1, "action": "open"}') is None, "no id: nothing to answer"
    bad_version = json.loads(encode(command("open")))
    bad_version["v"] = 2
    answered = send(gate, json.dumps(bad_version).encode())
    assert answered is not None and not answered.ok and answered.reason == Reason.UNSUPPORTED_VERSION.value
    unknown_action = json.loads(encode(command("open")))
    unknown_action["action"] = "explode"
    answered = send(gate, json.dumps(unknown_action).encode())
    assert answered is not None and not answered.ok and answered.reason == Reason.MALFORMED.value
    assert compress(relay_pin(gate)) == [False]
    assert checkins(gate) == []
    assert len(results(gate)) == 3


def test_commands_arrive_through_the_transport_on_the_worker_thread(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate()
    transport = gate.transport
    assert isinstance(transport, CommandTransport) and transport.on_command is not None
    cmd = command("open")
    transport.on_command(encode(cmd))
    assert gate.commands is not None
    result = gate.commands.wait_result(cmd.id, timeout=3)
    assert result is not None and result.ok
    wait_until(lambda: len(checkins(gate)) == 1)


# ----- lockdown


@pytest.mark.parametrize("fail_mode, locked_level", [("secure", False), ("safe", True)])
def test_lockdown_refuses_every_scan_holds_the_relay_locked_and_survives_a_restart(
    make_gate: Callable[..., Gate], world: World, fail_mode: str, locked_level: bool,
) -> None:
    gate = make_gate(fail_mode=fail_mode)
    relay = relay_pin(gate)
    assert bool(relay.state) == locked_level
    mark = len(relay.states)
    result = send(gate, command("lockdown"))
    assert result is not None and result.ok and result.mode == "lockdown"
    assert gate.transport.status_published == 1  # type: ignore[union-attr]
    decision, _ = gate.handle_scan(scan(world.codes[1]))
    assert not decision.allowed and decision.reason is Reason.LOCKED_DOWN
    refused_open = send(gate, command("open"))
    assert refused_open is not None and not refused_open.ok and refused_open.reason == Reason.LOCKED_DOWN.value
    pin = gate.pin_factory.pin(MANUAL)
    pin.drive_low()
    pin.drive_high()
    assert len(relay.states) == mark, "neither the scan, the remote open nor the button moved the relay"
    assert [c.reason for c in checkins(gate)] == [Reason.LOCKED_DOWN]
    heartbeat: Heartbeat = gate._heartbeat()
    assert heartbeat.mode == "lockdown" and heartbeat.fail_mode == fail_mode and not heartbeat.emergency
    assert gate.status_view().mode == "lockdown" and gate.status_view().turnstile_state == "lockdown"

    gate.stop()
    restarted = make_gate(fail_mode=fail_mode, seed=False)
    assert restarted.mode == "lockdown"
    decision, _ = restarted.handle_scan(scan(world.codes[2]))
    assert decision.reason is Reason.LOCKED_DOWN
    assert compress(relay_pin(restarted))[-1] == locked_level and len(relay_pin(restarted).states) <= 2

    resumed = send(restarted, command("resume"))
    assert resumed is not None and resumed.ok and resumed.mode == "normal"
    decision, _ = restarted.handle_scan(scan(world.codes[2]))
    assert decision.allowed
    assert bool(relay_pin(restarted).state) != locked_level


def test_the_emergency_input_overrides_a_lockdown(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate()
    send(gate, command("lockdown"))
    relay, emergency = relay_pin(gate), gate.pin_factory.pin(EMERGENCY)
    emergency.drive_low()
    assert relay.state, "life safety: the emergency input releases a locked-down gate"
    assert gate._heartbeat().emergency and gate.mode == "lockdown"
    emergency.drive_high()
    assert not relay.state
    assert gate.mode == "lockdown"


# ----- release and resume


def test_release_holds_the_turnstile_open_and_records_scans_until_resume(
    make_gate: Callable[..., Gate], world: World,
) -> None:
    gate = make_gate()
    relay = relay_pin(gate)
    result = send(gate, command("release"))
    assert result is not None and result.ok and result.mode == "release"
    assert relay.state
    outlast_an_unlock(gate.pin_factory.pin(GREEN))
    assert relay.state, "held, not a timed unlock"
    decision, checkin = gate.handle_scan(scan(world.codes[1]))
    assert decision.allowed and checkin is not None and checkin.outcome is Outcome.ENTERED
    decision, _ = gate.handle_scan(scan("0000-0000-0000"))
    assert not decision.allowed
    assert relay.state and compress(relay) == [False, True]
    view = gate.status_view()
    assert view.turnstile_state == "released" and not view.emergency and view.mode == "release"

    emergency = gate.pin_factory.pin(EMERGENCY)
    emergency.drive_low()
    emergency.drive_high()
    assert relay.state, "the emergency input going back to rest does not end a commanded release"

    resumed = send(gate, command("resume"))
    assert resumed is not None and resumed.ok and resumed.mode == "normal"
    assert not relay.state
    assert compress(relay) == [False, True, False]


def test_release_survives_a_restart(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate()
    send(gate, command("release"))
    gate.stop()
    restarted = make_gate(seed=False)
    assert restarted.mode == "release" and relay_pin(restarted).state


def test_lockdown_ends_a_release(make_gate: Callable[..., Gate], world: World) -> None:
    gate = make_gate()
    send(gate, command("release"))
    assert relay_pin(gate).state
    send(gate, command("lockdown"))
    assert not relay_pin(gate).state and gate.mode == "lockdown"
    decision, _ = gate.handle_scan(scan(world.codes[1]))
    assert decision.reason is Reason.LOCKED_DOWN


# ----- resync


def test_resync_fetches_a_snapshot_and_answers_when_done(make_gate: Callable[..., Gate], world: World) -> None:
    calls: list[str] = []
    fail = {"now": False}

    def fetch(url: str, gate_id: str, token: str | None, timeout: float) -> Any:
        calls.append(gate_id)
        if fail["now"]:
            raise SyncError(SyncFailure.UNREACHABLE, "central down")
        return world.snapshot.model_copy(update={"seq": 50 + len(calls)})

    gate = make_gate(fetch=fetch)
    assert gate.commands is not None
    before = len(calls)
    cmd = command("resync")
    assert send(gate, cmd) is None, "answered later, when the fetch is over"
    result = gate.commands.wait_result(cmd.id, timeout=5)
    assert result is not None and result.ok and len(calls) == before + 1
    assert gate.cache is not None and gate.cache.seq == 50 + len(calls), "the fresh snapshot was loaded"
    fail["now"] = True
    failing = command("resync")
    send(gate, failing)
    result = gate.commands.wait_result(failing.id, timeout=5)
    assert result is not None and not result.ok and result.reason == Reason.SYNC_FAILED.value


def test_status_carries_mode_and_fail_mode(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate(fail_mode="safe")
    transport = gate.transport
    assert isinstance(transport, CommandTransport)
    assert transport.status().mode == "normal" and transport.status().fail_mode == "safe"
    send(gate, command("release"))
    assert transport.status().mode == "release" and not transport.status().emergency
    from gate.status.model import to_json

    assert to_json(gate.status_view(), NOW)["gate"]["mode"] == "release"


@pytest.mark.parametrize("value", [0, -1, 7200, "soon"])
def test_the_max_age_is_validated(make_config: Callable[..., GateConfig], value: Any) -> None:
    from gate.config import ConfigError

    with pytest.raises((ConfigError, ValueError)) as error:
        make_config(commands={"max_age_seconds": value})
    assert "max_age_seconds" in str(error.value)
    assert make_config().commands.max_age_seconds == 30.0



def test_the_guards_page_shows_lockdown_and_release_live(make_gate: Callable[..., Gate],
                                                         request: pytest.FixtureRequest) -> None:
    tab = request.getfixturevalue("page")  # real Chromium (fixture of test_status_page)
    gate = make_gate(status_page=True)
    assert gate.status_server is not None
    tab.goto(gate.status_server.url)
    tab.wait_for_function("() => window.vaoraStatus.streamUp === true", timeout=3000)
    expect(tab.locator("#mode-lockdown")).to_be_hidden()
    send(gate, command("lockdown"))
    banner = tab.locator("#mode-lockdown")
    expect(banner).to_be_visible(timeout=3000)
    expect(banner).to_contain_text("PHONG TỎA")
    expect(tab.locator("#turnstile")).to_contain_text("Phong tỏa")
    send(gate, command("release"))
    expect(tab.locator("#mode-release")).to_be_visible(timeout=3000)
    expect(banner).to_be_hidden()
    expect(tab.locator("#turnstile")).to_contain_text("Mở tự do")
    expect(tab.locator("#emergency")).to_be_hidden()
    send(gate, command("resume"))
    expect(tab.locator("#mode-release")).to_be_hidden(timeout=3000)
    expect(tab.locator("#turnstile")).to_contain_text("Đang khóa")
