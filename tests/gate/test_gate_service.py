"""The service loop's housekeeping: delivered outbox rows are pruned after their retention, by an injected clock."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from gate.app import Gate
from gate.config import GateConfig
from gate.scanners import ScanEvent
from gate.service import OutboxRetention, is_healthy
from gate.store import GateStore
from protocols.payloads import Ack, CheckIn, Direction, Outcome, encode
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until
from tests.gate.gate_helpers import NOW, FakeTransport, IdleScanner, World


class Clock:
    """An aware UTC clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def delivered_checkin(store: GateStore, at: datetime) -> str:
    checkin = CheckIn(id=uuid.uuid4(), gate_id="g1", site_id="hq", direction=Direction.IN, scanned_at=at,
                      allowed=True, reason=Reason.OK, outcome=Outcome.ENTERED)
    store.add_checkin(checkin, encode(checkin), at)
    store.mark_delivered(str(checkin.id), at)
    return str(checkin.id)


def test_retention_prunes_delivered_rows_once_they_are_older_than_kept(tmp_path: Path) -> None:
    store = GateStore(tmp_path)
    clock = Clock(NOW)
    retention = OutboxRetention(store, keep=timedelta(hours=24), clock=clock, every=timedelta(hours=1))
    old = delivered_checkin(store, NOW)
    assert retention.tick() == 0, "delivered just now: kept"
    clock.advance(timedelta(hours=23))
    assert retention.tick() == 0
    clock.advance(timedelta(hours=2))
    assert retention.tick() == 1 and store.outbox_row(old) is None
    fresh = delivered_checkin(store, clock.now - timedelta(hours=30))
    clock.advance(timedelta(minutes=30))
    assert retention.tick() == 0, "not due again within the hour"
    clock.advance(timedelta(minutes=30))
    assert retention.tick() == 1 and store.outbox_row(fresh) is None
    store.close()


def test_the_service_loop_prunes_what_central_acknowledged(make_config: Callable[..., GateConfig],
                                                          world: World) -> None:
    wall = Clock(NOW)
    transport = FakeTransport()
    config = make_config(outbox={"keep_delivered_hours": 2})
    seed = GateStore(config.gate.data_dir)
    seed.load_snapshot(world.snapshot, NOW)
    seed.close()
    gate = Gate(config, pin_factory=MockFactory(), scanner=IdleScanner(), transport=transport,
                clock=lambda: NOW, wall_clock=wall, flush_timeout=0.1, delivery_poll_s=0.05)
    stop = threading.Event()
    runner = threading.Thread(target=gate.run, args=(stop,), daemon=True)
    runner.start()
    try:
        wait_until(lambda: gate.scanner is not None and gate.retention is not None)
        _, checkin = gate.handle_scan(ScanEvent(world.codes[1], Reason.OK, "test", time.monotonic()))
        assert checkin is not None
        wait_until(lambda: transport.published)
        assert transport.on_ack is not None
        transport.on_ack(Ack(checkin_id=checkin.id, gate_id="g1", status="stored"))
        assert gate.cache is not None
        wait_until(lambda: gate.cache.outbox_row(str(checkin.id)).delivered_at)  # type: ignore[union-attr]
        wall.advance(timedelta(hours=3))  # past the retention, and past the hour between two prunings
        wait_until(lambda: gate.cache.outbox_row(str(checkin.id)) is None, message="delivered row not pruned")
    finally:
        stop.set()
        runner.join(scaled(10))
    assert not runner.is_alive()


def test_health_is_judged_against_the_time_given() -> None:
    assert is_healthy(None, 5.0, None, now=100.0)
    assert is_healthy(96.0, 5.0, None, now=100.0), "busy for 4 s: still making progress"
    assert not is_healthy(94.0, 5.0, None, now=100.0), "busy for 6 s: stalled"
