"""A gate back from a network outage applies what it missed within 2 s of its link returning.

Real parts: Mosquitto, central's change feed over its change log (SQLite), an in-process gate with its real MQTT
transport and cache; the gate's link to the broker runs through a relay the test cuts and restores
(:mod:`tests.e2e.relay`). While the link is down, central revokes a code; the broker keeps the revocation in the
gate's persistent session. paho's default back-off (doubling up to 30 s) would leave the gate offline for seconds
after the link came back; the gate retries about every second instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from central.messaging.changefeed import ChangeFeed
from devtools.broker import LocalBroker
from gate.app import Gate
from gate.config import parse_config
from gate.store import GateStore
from gate.transport import RECONNECT_FAST_S, RECONNECT_JITTER, MqttTransport
from protocols.payloads import Change, ChangeBody, DelegateRevoke, MeetingUpsert
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until
from tests.gate.gate_helpers import IdleScanner, config_dict

from .conftest import NOW, Fetch, scan_event, world_at_seq0
from .relay import Relay

pytestmark = [pytest.mark.timeout(scaled(120)), pytest.mark.slow]

OUTAGE_S = 8.0
"""Long enough that paho's doubling back-off (1, 2, 4, 8 s ...) would be waiting seconds when the link returns."""


@pytest.fixture
def relay(broker: LocalBroker) -> Iterator[Relay]:
    link = Relay(broker.host, broker.port)
    link.start()
    yield link
    link.close()


def test_revocation_missed_during_an_outage_is_applied_within_two_seconds_of_the_link_returning(
    tmp_path: Path, relay: Relay, feed: ChangeFeed, change_log: Callable[[ChangeBody], Change],
) -> None:
    world = world_at_seq0()
    config = parse_config(config_dict(
        tmp_path, gate={"id": "g1", "data_dir": str(tmp_path / "g1")},
        mqtt={"host": "127.0.0.1", "port": relay.port, "heartbeat_seconds": 0.2}))
    seed = GateStore(config.gate.data_dir)
    seed.load_snapshot(world.snapshot, NOW)
    seed.close()
    gate = Gate(config, pin_factory=MockFactory(), scanner=IdleScanner(), fetch=Fetch(world.snapshot),
                delivery_poll_s=0.05, flush_timeout=0.2, resync_backoff_s=0.1, resync_max_backoff_s=0.5,
                resync_min_interval_s=0.1)
    gate.start()
    try:
        transport = gate.transport
        assert isinstance(transport, MqttTransport) and transport.wait_subscribed(scaled(10))
        wait_until(lambda: not gate.refresher.pending)
        warm = change_log(MeetingUpsert(meeting=world.snapshot.meetings[0]))
        wait_until(lambda: gate.cache is not None and gate.cache.seq >= warm.seq)
        assert gate.handle_scan(scan_event(world.codes[2]))[0].allowed

        relay.cut()
        wait_until(lambda: not transport.is_connected)
        revoke = change_log(DelegateRevoke(meeting_id=1, delegate_id=1))
        wait_until(lambda: feed.published_seq >= revoke.seq)  # the broker holds it in the gate's session
        time.sleep(OUTAGE_S)  # the outage itself
        assert gate.cache is not None and gate.cache.seq < revoke.seq
        assert transport.reconnect_delays[1] <= RECONNECT_FAST_S[1] * (1 + RECONNECT_JITTER)

        relay.restore()
        returned = time.monotonic()
        wait_until(lambda: gate.cache is not None and gate.cache.seq >= revoke.seq, 2.0,
                   message=lambda: f"revocation not applied {time.monotonic() - returned:.1f}s after the link "
                                   f"returned (connected={transport.is_connected})")
        print(f"revocation applied {time.monotonic() - returned:.2f}s after the link returned")
        assert gate.handle_scan(scan_event(world.codes[1]))[0].reason is Reason.REVOKED
    finally:
        gate.stop()
