"""A gate whose clock is off: the offset estimate from central's acks, and what the gate judges by it.

Every clock is injected: the gate's wall clock (central's time plus the skew), the monotonic clock the samples
are tied to, and central's clock (``NOW``, the time central stamps on its acks and commands). So the expected
offsets are exact, not wall-clock tolerances.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from gate.app import Gate
from gate.clock import MAX_SAMPLE_WIDTH_S, SAMPLE_WINDOW_S, CentralClock
from gate.config import GateConfig
from gate.decision import decide
from gate.store import GateStore
from protocols.payloads import Ack, Command, CommandResult, Heartbeat, decode, encode
from protocols.reasons import Reason
from tests.gate.gate_helpers import NOW, FakeTransport, IdleScanner, World, build_world
from tests.gate.test_gate_cycle import scan

SKEWS = [pytest.param(300.0, id="gate+5min"), pytest.param(-300.0, id="gate-5min")]


class Clocks:
    """The gate's wall clock (``central + skew``) and a monotonic clock, both moved by the test."""

    def __init__(self, skew_s: float) -> None:
        self.central = NOW
        self.skew = timedelta(seconds=skew_s)
        self.mono = 1000.0

    def gate(self) -> datetime:
        return self.central + self.skew

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.central += timedelta(seconds=seconds)
        self.mono += seconds


# ----- the estimator


@pytest.mark.parametrize("skew", SKEWS)
def test_the_estimate_is_the_tightest_lower_bound_and_never_later_than_central(skew: float) -> None:
    clocks = Clocks(skew)
    estimator = CentralClock(clocks.gate, clocks.monotonic)
    assert estimator.offset_s() is None and estimator.now() == clocks.gate(), "no sample: the gate's own clock"

    # A check-in published at gate time G0, answered by central 0.2 s later (sent_at), seen 0.1 s after that.
    gate_time = clocks.gate()
    clocks.advance(0.2)
    sent_at = clocks.central
    clocks.advance(0.1)
    sample = estimator.observe(sent_at, gate_time)
    assert sample is not None
    assert sample.lower_bound_s == pytest.approx(-skew - 0.1) and sample.upper_bound_s == pytest.approx(-skew + 0.2)
    assert estimator.offset_s() == pytest.approx(-skew - 0.1)

    # A faster round trip tightens it; a slower one later does not loosen it.
    gate_time = clocks.gate()
    sent_at = clocks.central
    clocks.advance(0.01)
    estimator.observe(sent_at, gate_time)
    assert estimator.offset_s() == pytest.approx(-skew - 0.01)
    gate_time = clocks.gate()
    clocks.advance(0.5)
    sent_at = clocks.central
    clocks.advance(0.5)
    estimator.observe(sent_at, gate_time)
    offset = estimator.offset_s()
    assert offset == pytest.approx(-skew - 0.01) and offset <= -skew
    assert estimator.now() <= clocks.central, "a lower bound: never ahead of central's clock"
    best = estimator.best_sample()
    assert best is not None and best.width_s == pytest.approx(0.01)


def test_a_wide_round_trip_or_a_missing_time_is_not_used() -> None:
    clocks = Clocks(300.0)
    estimator = CentralClock(clocks.gate, clocks.monotonic)
    resent = clocks.gate()  # a check-in published long ago, acknowledged only now (a resend)
    clocks.advance(MAX_SAMPLE_WIDTH_S + 1)
    assert estimator.observe(clocks.central, resent) is None
    assert estimator.observe(clocks.central, None) is None  # an ack of an older central: no echo
    assert estimator.observe(None, clocks.gate()) is None
    assert estimator.offset_s() is None and estimator.samples_refused == 1


def test_samples_expire_and_a_jump_of_the_gates_clock_does_not_move_centrals_time() -> None:
    clocks = Clocks(300.0)
    estimator = CentralClock(clocks.gate, clocks.monotonic)
    estimator.observe(clocks.central, clocks.gate())
    assert estimator.offset_s() == pytest.approx(-300.0)
    clocks.skew = timedelta(0)  # NTP finally set the gate's clock: central's time as estimated stays right
    assert estimator.offset_s() == pytest.approx(0.0) and estimator.now() == clocks.central
    clocks.advance(SAMPLE_WINDOW_S + 1)
    assert estimator.offset_s() is None, "an old sample no longer counts"


# ----- a skewed gate


@pytest.fixture
def skewed_gate(make_config: Callable[..., GateConfig]) -> Iterator[Callable[..., tuple[Gate, Clocks]]]:
    gates: list[Gate] = []

    def make(skew: float, world: World, decider: Callable[..., Any] = decide) -> tuple[Gate, Clocks]:
        clocks = Clocks(skew)
        config = make_config(commands={"max_age_seconds": 30})
        cache = GateStore(config.gate.data_dir)
        cache.load_snapshot(world.snapshot, NOW)
        cache.close()
        gate = Gate(config, pin_factory=MockFactory(), scanner=IdleScanner(), transport=FakeTransport(),
                    clock=clocks.gate, monotonic=clocks.monotonic, delivery_poll_s=0.05, flush_timeout=0.1,
                    decider=decider, resync_backoff_s=30, resync_min_interval_s=30)
        gates.append(gate)
        gate.start()
        return gate, clocks

    yield make
    for gate in gates:
        gate.stop()


def ack_from_central(gate: Gate, clocks: Clocks) -> None:
    """Central's ack of a check-in the gate sent just now, arriving at once (a round trip of width 0)."""
    assert gate.transport is not None and gate.transport.on_ack is not None
    gate.transport.on_ack(Ack(checkin_id=uuid.uuid4(), gate_id=gate.gate_id, status="stored",
                              sent_at=clocks.central, gate_time=clocks.gate()))


def open_command(clocks: Clocks, age_s: float, hint: float | None = None) -> bytes:
    return encode(Command(id=uuid.uuid4(), gate_id="g1", action="open", issued_by="bao-ve-an",
                          issued_at=clocks.central - timedelta(seconds=age_s), gate_clock_offset_s=hint))


def answer(gate: Gate, raw: bytes) -> CommandResult:
    assert gate.commands is not None
    result = gate.commands.handle(raw)
    assert result is not None
    return result


@pytest.mark.parametrize("skew", SKEWS)
def test_a_skewed_gate_obeys_a_fresh_command_and_refuses_an_old_one(
    skewed_gate: Callable[..., tuple[Gate, Clocks]], world: World, skew: float,
) -> None:
    gate, clocks = skewed_gate(skew, world)
    # Before any sample, by its own clock, a fresh command looks 5 minutes old or 5 minutes ahead: refused.
    assert answer(gate, open_command(clocks, 1)).reason == Reason.STALE_COMMAND.value
    # Central's own measurement (from heartbeats), sent in the command, is used until the gate has one.
    assert answer(gate, open_command(clocks, 1, hint=-skew)).ok
    ack_from_central(gate, clocks)
    assert gate.central_clock.offset_s() == pytest.approx(-skew)
    fresh = answer(gate, open_command(clocks, 1))
    assert fresh.ok and fresh.reason is None
    assert answer(gate, open_command(clocks, 45)).reason == Reason.STALE_COMMAND.value
    assert answer(gate, open_command(clocks, -45)).reason == Reason.STALE_COMMAND.value, "from the future"
    # The gate's own estimate wins over a hint that disagrees with it.
    assert answer(gate, open_command(clocks, 1, hint=0.0)).ok


@pytest.mark.parametrize("skew", SKEWS)
def test_decide_gets_centrals_time_and_the_check_in_and_heartbeat_carry_the_raw_clock_and_the_offset(
    skewed_gate: Callable[..., tuple[Gate, Clocks]], world: World, skew: float,
) -> None:
    seen: list[datetime] = []

    def decider(text: str, cache: Any, now: datetime, *args: Any) -> Any:
        seen.append(now)
        return decide(text, cache, now, *args)

    gate, clocks = skewed_gate(skew, world, decider)
    ack_from_central(gate, clocks)
    decision, checkin = gate.handle_scan(scan(world.codes[1]))
    assert decision.allowed
    assert seen == [clocks.central], "decided at central's time, not the gate's"
    assert checkin is not None and checkin.scanned_at == clocks.gate() and checkin.clock_offset_s == -skew
    assert gate.heartbeat is not None
    assert gate.heartbeat.beat()
    transport = gate.transport
    assert isinstance(transport, FakeTransport)
    beat = decode(Heartbeat, transport.heartbeats[-1])
    assert beat.sent_at == clocks.gate() and beat.clock_offset_s == -skew


@pytest.mark.parametrize("skew", SKEWS)
def test_window_edges_are_judged_by_centrals_clock(
    skewed_gate: Callable[..., tuple[Gate, Clocks]], skew: float,
) -> None:
    # The meeting (and its codes) ends 2 minutes after NOW (gate +5 min) or starts 2 minutes before it (-5 min):
    # by the gate's own clock the code is expired / not yet valid; by central's it is valid.
    edge = NOW - timedelta(hours=3) + timedelta(minutes=2) if skew > 0 else NOW + timedelta(hours=1, minutes=-2)
    world = build_world(now=edge)
    gate, clocks = skewed_gate(skew, world)
    uncorrected, _ = gate.handle_scan(scan(world.codes[1]))
    assert uncorrected.reason == (Reason.EXPIRED if skew > 0 else Reason.NOT_YET_VALID)
    ack_from_central(gate, clocks)
    corrected, _ = gate.handle_scan(scan(world.codes[2]))
    assert corrected.allowed and corrected.reason == Reason.OK
