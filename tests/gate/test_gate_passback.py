"""Anti-passback: the meeting's entry policy in ``decide()`` (pure, over a real cache), the consumed table
(ordering, idempotence, restarts) and the gate recording and fanning out passages."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from gate.app import Gate
from gate.config import GateConfig
from gate.decision import decide
from gate.scanners import ScanEvent
from gate.store import GateStore
from protocols.codes import SignedClaims, compact_hash, encode_signed
from protocols.payloads import CheckIn, Direction, Outcome, decode
from protocols.reasons import Reason
from tests.gate.gate_helpers import NOW, SITE, FakeTransport, IdleScanner, World, build_world

T1, T2, T3 = NOW + timedelta(minutes=1), NOW + timedelta(minutes=2), NOW + timedelta(minutes=3)


def world_with_policy(policy: str) -> World:
    world = build_world()
    meetings = [m.model_copy(update={"entry_policy": policy}) for m in world.snapshot.meetings]
    world.snapshot = world.snapshot.model_copy(update={"meetings": meetings})
    return world


@pytest.fixture
def cache_for(tmp_path: Path) -> Iterator[Callable[[str], tuple[GateStore, World]]]:
    caches: list[GateStore] = []

    def make(policy: str) -> tuple[GateStore, World]:
        world = world_with_policy(policy)
        cache = GateStore(tmp_path / f"cache-{len(caches)}")
        cache.load_snapshot(world.snapshot, NOW)
        caches.append(cache)
        return cache, world

    yield make
    for cache in caches:
        cache.close()


def passage(cache: GateStore, code: str, direction: Direction, at: object, checkin_id: str | None = None) -> bool:
    return cache.record_passage(compact_hash(code), checkin_id or str(uuid.uuid4()), at,  # type: ignore[arg-type]
                                direction, "g2")


def test_single_entry_refuses_a_second_entry_even_after_going_out(cache_for: Callable) -> None:
    cache, world = cache_for("single")
    code = world.codes[1]
    assert decide(code, cache, NOW, SITE).allowed
    passage(cache, code, Direction.IN, T1)
    second = decide(code, cache, T2, SITE)
    assert (second.allowed, second.reason) == (False, Reason.ALREADY_INSIDE)
    assert second.name == "Nguyễn Văn 1"  # the guard sees whose code it was
    passage(cache, code, Direction.OUT, T2)
    assert decide(code, cache, T3, SITE).reason is Reason.ALREADY_INSIDE
    assert decide(world.codes[2], cache, T3, SITE).allowed  # other delegates unaffected


def test_reentry_allows_entering_again_after_going_out(cache_for: Callable) -> None:
    cache, world = cache_for("reentry")
    code = world.codes[1]
    passage(cache, code, Direction.IN, T1)
    assert decide(code, cache, T1, SITE).reason is Reason.ALREADY_INSIDE
    passage(cache, code, Direction.OUT, T2)
    assert decide(code, cache, T2, SITE).allowed
    passage(cache, code, Direction.IN, T3)
    assert decide(code, cache, T3, SITE).reason is Reason.ALREADY_INSIDE


def test_unlimited_never_refuses_for_passback(cache_for: Callable) -> None:
    cache, world = cache_for("unlimited")
    code = world.codes[1]
    for minute in range(3):
        passage(cache, code, Direction.IN, NOW + timedelta(minutes=minute))
        assert decide(code, cache, NOW, SITE).allowed


def test_an_out_gate_lets_people_out_whatever_the_policy(cache_for: Callable) -> None:
    cache, world = cache_for("single")
    passage(cache, world.codes[1], Direction.IN, T1)
    assert decide(world.codes[1], cache, T2, SITE, Direction.OUT).allowed


def test_signed_codes_are_tracked_by_delegate_not_by_text(cache_for: Callable) -> None:
    cache, world = cache_for("single")

    def code(hours: float) -> str:  # two different texts for the same delegate (re-issued code)
        return encode_signed(SignedClaims(key_id=7, meeting_id=2, attendee_id=7999,
                                          valid_from=NOW - timedelta(hours=hours),
                                          valid_until=NOW + timedelta(hours=3)), world.signing_key)  # type: ignore[arg-type]

    first = decide(code(1), cache, NOW, SITE)
    assert first.allowed and first.credential == "signed:7:2:7999"
    cache.record_passage(first.credential, "c1", T1, Direction.IN, "g1")  # type: ignore[arg-type]
    assert decide(code(2), cache, T2, SITE).reason is Reason.ALREADY_INSIDE


def test_a_late_old_out_passage_does_not_let_anyone_back_in(cache_for: Callable) -> None:
    cache, world = cache_for("reentry")
    code = world.codes[1]
    passage(cache, code, Direction.IN, T2)
    assert not passage(cache, code, Direction.OUT, T1)  # older than what is recorded: no change
    assert decide(code, cache, T3, SITE).reason is Reason.ALREADY_INSIDE


def test_the_same_checkin_recorded_twice_changes_nothing(cache_for: Callable) -> None:
    cache, world = cache_for("reentry")
    code = world.codes[1]
    assert passage(cache, code, Direction.IN, T1, checkin_id="same")
    assert not passage(cache, code, Direction.IN, T1, checkin_id="same")
    assert cache.is_inside(compact_hash(code))


# ----- the gate


@pytest.fixture
def gates(make_config: Callable[..., GateConfig], tmp_path: Path) -> Iterator[Callable[..., Gate]]:
    started: list[Gate] = []

    def make(world: World, gate_id: str = "g1", direction: str = "in", data: str = "g1",
             transport: FakeTransport | None = None, seed: bool = True,
             clock: Callable[[], datetime] = lambda: NOW) -> Gate:
        config = make_config(gate={"id": gate_id, "direction": direction, "data_dir": str(tmp_path / data)})
        if seed:
            cache = GateStore(config.gate.data_dir)
            cache.load_snapshot(world.snapshot, NOW)
            cache.close()
        gate = Gate(config, pin_factory=MockFactory(), scanner=IdleScanner(),
                    transport=transport or FakeTransport(), clock=clock, delivery_poll_s=0.05,
                    flush_timeout=0.1, resync_backoff_s=30)
        started.append(gate)
        gate.start()
        return gate

    yield make
    for gate in started:
        gate.stop()


def scan(text: str) -> ScanEvent:
    return ScanEvent(text, Reason.OK, "test", time.monotonic())


def test_gate_refuses_a_code_used_here_before_and_after_a_restart(gates: Callable[..., Gate]) -> None:
    world = world_with_policy("single")
    gate = gates(world)
    first, _ = gate.handle_scan(scan(world.codes[1]))
    second, _ = gate.handle_scan(scan(world.codes[1]))
    assert first.allowed
    assert second.reason is Reason.ALREADY_INSIDE
    gate.stop()
    restarted = gates(world, seed=False)
    again, _ = restarted.handle_scan(scan(world.codes[1]))
    assert again.reason is Reason.ALREADY_INSIDE
    assert restarted.handle_scan(scan(world.codes[2]))[0].allowed


def test_gate_fans_out_entered_passages_and_applies_the_siblings(gates: Callable[..., Gate]) -> None:
    world = world_with_policy("reentry")
    transport = FakeTransport()
    gate = gates(world, transport=transport)
    decision, checkin = gate.handle_scan(scan(world.codes[1]))
    assert decision.allowed and checkin is not None
    published = [decode(CheckIn, raw) for raw in transport.site_published]
    assert [(c.id, c.outcome, c.credential) for c in published] == [
        (checkin.id, Outcome.ENTERED, compact_hash(world.codes[1]))]
    gate.handle_scan(scan(world.codes[9001]))  # refused (revoked): nothing consumed, nothing fanned out
    assert len(transport.site_published) == 1

    # A sibling gate of the site let delegate 2 in, then an out gate let delegate 1 out.
    sibling = CheckIn(id=uuid.uuid4(), gate_id="g2", site_id=SITE, direction=Direction.IN, scanned_at=T1,
                      allowed=True, reason=Reason.OK, outcome=Outcome.ENTERED, meeting_id=1, delegate_id=2,
                      credential=compact_hash(world.codes[2]), completed_at=T1)
    transport.on_site_checkin(sibling)
    exit_ = sibling.model_copy(update={"id": uuid.uuid4(), "gate_id": "out1", "direction": Direction.OUT,
                                       "delegate_id": 1, "credential": compact_hash(world.codes[1])})
    transport.on_site_checkin(exit_)
    assert gate.handle_scan(scan(world.codes[2]))[0].reason is Reason.ALREADY_INSIDE
    assert gate.handle_scan(scan(world.codes[1]))[0].allowed

    # A refused or not-passed check-in of a sibling consumes nothing.
    not_passed = sibling.model_copy(update={"id": uuid.uuid4(), "outcome": Outcome.NOT_PASSED,
                                            "credential": compact_hash(world.codes[3])})
    transport.on_site_checkin(not_passed)
    assert gate.handle_scan(scan(world.codes[3]))[0].allowed


def world_over(start: object, end: object) -> World:
    """The world with meeting 1 (policy ``single``) from ``start`` to ``end``, its delegates' codes valid throughout."""
    world = build_world()
    meetings = [m.model_copy(update={"starts_at": start, "ends_at": end}) if m.id == 1 else m
                for m in world.snapshot.meetings]
    delegates = [d.model_copy(update={"valid_from": start - timedelta(hours=2),  # type: ignore[operator]
                                      "valid_until": end + timedelta(minutes=30)})  # type: ignore[operator]
                 if d.meeting_id == 1 and d.id < 9000 else d for d in world.snapshot.delegates]
    world.snapshot = world.snapshot.model_copy(update={"meetings": meetings, "delegates": delegates})
    return world


def test_single_entry_admits_once_per_day_of_a_three_day_meeting(tmp_path: Path) -> None:
    # NOW is 15:00 in Hanoi; the meeting runs from 08:00 (day 1) to 17:00 two days later.
    start, end = NOW - timedelta(hours=7), NOW + timedelta(days=2, hours=2)
    world = world_over(start, end)
    cache = GateStore(tmp_path / "cache")
    cache.load_snapshot(world.snapshot, NOW)
    code = world.codes[1]
    try:
        assert decide(code, cache, NOW, SITE).allowed
        passage(cache, code, Direction.IN, NOW)
        passage(cache, code, Direction.OUT, NOW + timedelta(hours=2))
        night = NOW + timedelta(hours=12)  # 03:00 in Hanoi: still day 1
        assert decide(code, cache, night, SITE).reason is Reason.ALREADY_INSIDE
        day2 = NOW + timedelta(hours=16, minutes=45)  # 07:45 in Hanoi, day 2, before the start time
        assert decide(code, cache, day2, SITE).allowed
        passage(cache, code, Direction.IN, day2)
        passage(cache, code, Direction.OUT, day2 + timedelta(hours=3))
        assert decide(code, cache, day2 + timedelta(hours=5), SITE).reason is Reason.ALREADY_INSIDE
        day3 = NOW + timedelta(days=2)
        assert decide(code, cache, day3, SITE).allowed
    finally:
        cache.close()


def test_single_entry_an_overnight_meeting_is_one_day(tmp_path: Path) -> None:
    # 23:00 to 02:50 in Hanoi: crossing midnight does not open a second day.
    start = NOW + timedelta(hours=8)
    end = start + timedelta(hours=3, minutes=50)
    world = world_over(start, end)
    cache = GateStore(tmp_path / "cache")
    cache.load_snapshot(world.snapshot, NOW)
    code = world.codes[1]
    try:
        entered = start + timedelta(minutes=10)
        assert decide(code, cache, entered, SITE).allowed
        passage(cache, code, Direction.IN, entered)
        passage(cache, code, Direction.OUT, entered + timedelta(hours=1))
        after_midnight = start + timedelta(hours=2, minutes=30)  # 01:30 in Hanoi
        assert decide(code, cache, after_midnight, SITE).reason is Reason.ALREADY_INSIDE
    finally:
        cache.close()


def test_a_late_older_entry_of_another_day_does_not_hide_todays(tmp_path: Path) -> None:
    start, end = NOW - timedelta(hours=7), NOW + timedelta(days=2, hours=2)
    world = world_over(start, end)
    cache = GateStore(tmp_path / "cache")
    cache.load_snapshot(world.snapshot, NOW)
    code = world.codes[1]
    day2 = NOW + timedelta(days=1)
    try:
        passage(cache, code, Direction.IN, day2)
        passage(cache, code, Direction.IN, NOW)  # day 1's entry, fanned out late by another gate
        assert cache.last_entry_at(compact_hash(code)) == day2
        assert decide(code, cache, day2 + timedelta(hours=1), SITE).reason is Reason.ALREADY_INSIDE
    finally:
        cache.close()


def test_a_gate_admits_a_three_day_meetings_delegate_once_each_day(gates: Callable[..., Gate]) -> None:
    # The bug of issue 14: day 2 refused with already_inside. NOW is 15:00 in Hanoi on day 1.
    world = world_over(NOW - timedelta(hours=7), NOW + timedelta(days=2, hours=2))
    now = [NOW]
    transport = FakeTransport()
    gate = gates(world, transport=transport, clock=lambda: now[0])
    assert gate.handle_scan(scan(world.codes[1]))[0].allowed
    assert gate.handle_scan(scan(world.codes[1]))[0].reason is Reason.ALREADY_INSIDE
    now[0] = NOW + timedelta(hours=17)  # 08:00 on day 2
    assert gate.handle_scan(scan(world.codes[1]))[0].allowed
    assert gate.handle_scan(scan(world.codes[1]))[0].reason is Reason.ALREADY_INSIDE

    # Day 3: delegate 2 entered at a sibling gate of the site, so this gate refuses them that day.
    now[0] = NOW + timedelta(days=2, hours=-6)
    sibling = CheckIn(id=uuid.uuid4(), gate_id="g2", site_id=SITE, direction=Direction.IN, scanned_at=now[0],
                      allowed=True, reason=Reason.OK, outcome=Outcome.ENTERED, meeting_id=1, delegate_id=2,
                      credential=compact_hash(world.codes[2]), completed_at=now[0])
    transport.on_site_checkin(sibling)
    assert gate.handle_scan(scan(world.codes[2]))[0].reason is Reason.ALREADY_INSIDE
    assert gate.handle_scan(scan(world.codes[1]))[0].allowed
