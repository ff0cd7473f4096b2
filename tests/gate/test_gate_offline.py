"""A gate with central unreachable: what it admits and refuses, what its status says about being out of
sync, how it keeps retrying the snapshot and catches up; and its heartbeat."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from gate.app import Gate
from gate.config import ConfigError, GateConfig
from gate.scanners import ScanEvent
from gate.status.model import to_json
from gate.store import GateStore
from gate.sync import SyncError, SyncFailure
from protocols.codes import SignedClaims, compact_hash, encode_signed, generate_compact, generate_signing_key
from protocols.payloads import Change, DelegateEntry, DelegateRevoke, Heartbeat, Snapshot, decode
from protocols.reasons import Reason
from tests.conftest import wait_until
from tests.gate.gate_helpers import NOW, FakeTransport, IdleScanner, World

LAST_CHANGE = NOW + timedelta(minutes=10)  # when the gate last heard from central
LATER = NOW + timedelta(minutes=40)  # the gate's clock during the test


class Central:
    """An injectable ``fetch``: unreachable until ``serve(snapshot)``; counts calls."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, url: str, gate_id: str, token: str | None, timeout: float) -> Snapshot:
        with self.lock:
            self.calls += 1
            if self.snapshot is None:
                raise SyncError(SyncFailure.UNREACHABLE, "connection refused")
            return self.snapshot


def scan(text: str) -> ScanEvent:
    return ScanEvent(text, Reason.OK, "test", time.monotonic())


def signed(world: World, attendee_id: int, key: Any = None, key_id: int = 7, from_h: float = -1,
           until_h: float = 3) -> str:
    claims = SignedClaims(key_id=key_id, meeting_id=2, attendee_id=attendee_id,
                          valid_from=NOW + timedelta(hours=from_h), valid_until=NOW + timedelta(hours=until_h))
    return encode_signed(claims, key or world.signing_key)


@pytest.fixture
def offline_gate(world: World, make_config: Callable[..., GateConfig],
                 tmp_path: Path) -> Iterator[tuple[Gate, Central, FakeTransport]]:
    config = make_config(mqtt={"heartbeat_seconds": 0.05})
    cache = GateStore(config.gate.data_dir)  # what the gate had when central went away
    cache.load_snapshot(world.snapshot, NOW)
    cache.apply_change(Change(seq=43, at=LAST_CHANGE, body=DelegateRevoke(meeting_id=1, delegate_id=3)),
                       LAST_CHANGE)
    cache.close()
    central = Central()
    transport = FakeTransport(connected=True)  # the broker is up; central's HTTP API is not
    gate = Gate(config, pin_factory=MockFactory(), scanner=IdleScanner(), transport=transport,
                clock=lambda: LATER, fetch=central, delivery_poll_s=0.05, flush_timeout=0.1,
                resync_backoff_s=0.05, resync_max_backoff_s=0.2, resync_min_interval_s=0.0)
    gate.start()
    yield gate, central, transport
    gate.stop()


def test_offline_gate_admits_signed_newcomers_and_refuses_what_it_cannot_check(
    offline_gate: tuple[Gate, Central, FakeTransport], world: World,
) -> None:
    gate, _, _ = offline_gate
    expected = {
        signed(world, 7999): Reason.OK,  # registered after the last sync: the signature vouches
        generate_compact(): Reason.UNKNOWN_CODE,  # a compact code issued after the last sync
        world.codes[9001]: Reason.REVOKED,  # revoked in the snapshot
        world.codes[3]: Reason.REVOKED,  # revoked by the last change before central went away
        signed(world, 7002): Reason.REVOKED,
        signed(world, 7001, key=generate_signing_key()): Reason.BAD_SIGNATURE,  # forged
        signed(world, 7001, key_id=9): Reason.UNKNOWN_KEY,
        signed(world, 7001, from_h=-5, until_h=-0.1): Reason.EXPIRED,
        signed(world, 7001, from_h=2, until_h=3): Reason.NOT_YET_VALID,
        world.codes[9006]: Reason.EXPIRED,
        world.codes[9005]: Reason.NOT_YET_VALID,
    }
    text = signed(world, 7001)
    expected[text[:-6] + ("A" if text[-6] != "A" else "B") + text[-5:]] = Reason.BAD_SIGNATURE  # altered
    got = {code: gate.handle_scan(scan(code))[0].reason for code in expected}
    assert got == expected


def test_status_says_out_of_sync_since_the_last_news_from_central(
    offline_gate: tuple[Gate, Central, FakeTransport],
) -> None:
    gate, _, _ = offline_gate
    view = gate.status_view()
    assert view.synced_at == LAST_CHANGE  # the last applied change, not the earlier snapshot
    assert view.sync_pending
    data = to_json(view, now=LATER)["gate"]
    assert data["synced_at_local"] == "15:10:00"  # 08:10 UTC in Vietnam (UTC+7)
    assert data["sync_pending"] is True
    assert data["cache_seq"] == 43


def test_snapshot_is_retried_with_backoff_and_loaded_when_central_returns(
    offline_gate: tuple[Gate, Central, FakeTransport], world: World,
) -> None:
    gate, central, _ = offline_gate
    wait_until(lambda: central.calls >= 4)  # start-up attempt + background retries
    calls = central.calls
    # A negative check (no event marks "did not spin"): a slower machine only makes fewer calls. The backoff
    # schedule itself is checked with an injected pause in test_gate_follow.py.
    time.sleep(0.3)
    assert central.calls - calls <= 3  # backing off (0.05, 0.1, 0.2, 0.2 ...), not spinning
    newcomer = generate_compact()
    entry = DelegateEntry(id=50, meeting_id=1, name="Lê Văn Mới", organisation="Sở Y tế",
                          code_hash=compact_hash(newcomer), valid_from=NOW - timedelta(hours=1),
                          valid_until=NOW + timedelta(hours=3))
    assert gate.handle_scan(scan(newcomer))[0].reason is Reason.UNKNOWN_CODE
    central.snapshot = world.snapshot.model_copy(update={"seq": 60, "delegates": [
        *world.snapshot.delegates, entry]})
    wait_until(lambda: gate.cache is not None and gate.cache.seq == 60)
    decision, _ = gate.handle_scan(scan(newcomer))
    assert decision.allowed and decision.name == "Lê Văn Mới"
    view = gate.status_view()
    assert view.synced_at == LATER
    assert not view.sync_pending
    calls = central.calls
    time.sleep(0.3)  # a negative check: nothing to wait for, and a slower machine makes no more calls
    assert central.calls == calls  # no more fetching once in sync


def test_heartbeat_carries_cache_seq_and_outbox(offline_gate: tuple[Gate, Central, FakeTransport],
                                                world: World) -> None:
    gate, _, transport = offline_gate
    gate.handle_scan(scan(world.codes[1]))
    gate.handle_scan(scan(world.codes[2]))
    transport.connected = False  # nothing acknowledged: the outbox holds 2
    count = len(transport.heartbeats)
    time.sleep(0.2)  # a negative check: nothing to wait for, and a slower machine sends no more heartbeats
    assert len(transport.heartbeats) == count  # skipped while disconnected, not queued
    transport.connected = True
    wait_until(lambda: len(transport.heartbeats) > count)
    beat = decode(Heartbeat, transport.heartbeats[-1])
    assert (beat.gate_id, beat.cache_seq, beat.outbox_pending, beat.emergency) == ("g1", 43, 2, False)
    assert beat.sent_at == LATER
    assert beat.software_version


def test_heartbeat_interval_is_configurable_with_a_default_of_15_seconds(
    make_config: Callable[..., GateConfig],
) -> None:
    assert make_config().mqtt.heartbeat_seconds == 15.0
    assert make_config(mqtt={"heartbeat_seconds": 5}).mqtt.heartbeat_seconds == 5.0
    with pytest.raises(ConfigError) as info:
        make_config(mqtt={"heartbeat_seconds": 0})
    assert "mqtt.heartbeat_seconds" in str(info.value)
