"""Bad input on the wire, sent with ``mosquitto_pub`` or a raw paho client through a real Mosquitto.

Against central's ingest running as its own process (``vaora-central ingest``) and against a running gate
(real MQTT transport, real SQLite cache): malformed JSON, a wrong payload version and a 1 MB payload on every
topic each side reads, an ack for an unknown check-in id, and a snapshot request with a bad token. Each is
logged with its reason and dropped; the process keeps serving the next good message and nothing already
stored is lost.

Covered elsewhere, and not repeated here: malformed JSON on the check-in topic (tests/central/test_ingest.py),
malformed and 1 MB payloads on the change topic and a change stream out of order, repeated or with a gap
(tests/e2e/test_offline.py), a snapshot refused with 401 by central (tests/central/test_snapshot.py).
"""

from __future__ import annotations

import logging
import queue
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import requests
from gpiozero.pins.mock import MockFactory

from central.core.db import database, open_database
from central.gates.models import CheckIn as CheckInRow
from central.gates.models import Gate as GateRow
from devtools.broker import LocalBroker
from gate.app import Gate
from gate.config import parse_config
from gate.decision import decide
from gate.store import GateStore
from protocols import topics
from protocols.payloads import Ack, CheckIn, Direction, Heartbeat, Outcome, decode_acks, encode
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until
from tests.e2e.conftest import NOW, Central, Fetch, scan_event, world_at_seq0
from tests.gate.gate_helpers import IdleScanner, World, config_dict

pytestmark = pytest.mark.timeout(scaled(120))

TIMEOUT = 10.0
"""Ceiling (unscaled: ``wait_until`` scales it, the other waits here pass ``scaled(TIMEOUT)``)."""
ONE_MB = 1024 * 1024


def bad_payloads(tmp_path: Path) -> dict[str, list[str]]:
    """``mosquitto_pub`` message arguments: malformed JSON, version 2, and a 1 MB payload (from a file)."""
    big = tmp_path / "one-mb.json"
    big.write_bytes(b'{"v": 1, "pad": "' + b"x" * ONE_MB + b'"}')
    return {
        "malformed": ["-m", "{not json"],
        "unsupported_version": ["-m", '{"v": 2, "gate_id": "g1"}'],
        "too_long": ["-f", str(big)],
    }


def mosquitto_pub(broker: LocalBroker, topic: str, message: list[str]) -> None:
    subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", topic, *message],
                   check=True, timeout=scaled(TIMEOUT))


class RawGate:
    """A raw paho client playing gate ``g1`` towards central: publishes anything, collects its acks."""

    def __init__(self, broker: LocalBroker) -> None:
        self.acks: queue.Queue[Ack] = queue.Queue()
        subscribed: queue.Queue[bool] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"raw-g1-{uuid.uuid4().hex[:6]}")
        self.client.on_message = lambda _c, _u, msg: [self.acks.put(ack) for ack in decode_acks(msg.payload)]
        self.client.on_subscribe = lambda *_args: subscribed.put(True)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(topics.gate_acks("g1"), qos=1)
        subscribed.get(timeout=scaled(TIMEOUT))  # the SUBACK

    def send(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(scaled(TIMEOUT))

    def checkin(self, checkin: CheckIn) -> Ack:
        """Publish a good check-in and wait for central's answer."""
        self.send(topics.gate_checkins("g1"), encode(checkin))
        return self.acks.get(timeout=scaled(TIMEOUT))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def good_checkin() -> CheckIn:
    return CheckIn(id=uuid.uuid4(), gate_id="g1", site_id="hq", direction=Direction.IN, scanned_at=datetime.now(UTC),
                   allowed=True, reason=Reason.OK, outcome=Outcome.ENTERED, credential="signed:1:1:1",
                   completed_at=datetime.now(UTC))


@pytest.fixture
def central_gate(central: Central, broker: LocalBroker) -> Iterator[RawGate]:
    """Gate g1 registered at the running central, and a raw client publishing as it."""
    response = central.api("POST", "/api/v1/gates", json={"gate_id": "g1", "site_id": "hq", "name": "Cổng 1"})
    assert response.status_code == 201, response.text
    raw = RawGate(broker)
    yield raw
    raw.close()


def read_central(central: Central, query: Callable[[], Any]) -> Any:
    """Run ``query`` against central's SQLite database (the file the running processes use)."""
    open_database(f"sqlite:///{central.database_path}")
    try:
        with database.connection_context():
            return query()
    finally:
        if not database.is_closed():
            database.close()


# ----- central's ingest


def test_ingest_drops_bad_payloads_on_every_topic_and_keeps_serving(
    central: Central, broker: LocalBroker, central_gate: RawGate, tmp_path: Path,
) -> None:
    ingest_log = central.database_path.parent / "ingest.log"
    ingest = central.processes[1]
    stored_before = good_checkin()
    assert central_gate.checkin(stored_before).status == "stored"

    sent: list[str] = []
    for name in ("checkins", "heartbeat", "status", "command-results"):
        topic = f"{topics.ROOT}/gates/g1/{name}"
        for reason, message in bad_payloads(tmp_path).items():
            mosquitto_pub(broker, topic, message)
            sent.append(f"ingest dropped bad payload topic={topic} reason={reason}")
    wait_until(lambda: all(line in ingest_log.read_text(errors="replace") for line in sent), timeout=TIMEOUT)
    assert ingest.poll() is None, "the ingest process is still running"
    assert "Traceback" not in ingest_log.read_text(errors="replace")
    assert central_gate.acks.empty(), "a dropped payload is not answered"

    # The next good messages are served, and what was stored before is still there.
    after = good_checkin()
    assert central_gate.checkin(after).status == "stored"
    assert central_gate.checkin(stored_before).status == "duplicate"
    heartbeat = Heartbeat(gate_id="g1", sent_at=datetime.now(UTC), cache_seq=7, outbox_pending=0,
                          software_version="test")
    central_gate.send(topics.gate_heartbeat("g1"), encode(heartbeat))
    wait_until(lambda: read_central(central, lambda: GateRow.get(GateRow.gate_id == "g1").cache_seq) == 7,
               timeout=TIMEOUT, interval=0.05)
    stored = read_central(central, lambda: {str(row.checkin_id) for row in CheckInRow.select()})
    assert stored == {str(stored_before.id), str(after.id)}


# ----- a running gate


@pytest.fixture
def world() -> World:
    return world_at_seq0()


@pytest.fixture
def gate(broker: LocalBroker, tmp_path: Path, world: World) -> Iterator[Gate]:
    """Gate g1 of site hq, seeded with the test world, connected and subscribed; central is unreachable."""
    config = parse_config(config_dict(tmp_path, gate={"id": "g1", "data_dir": str(tmp_path / "g1")},
                                      mqtt={"host": broker.host, "port": broker.port, "resend_seconds": 60}))
    cache = GateStore(config.gate.data_dir)
    cache.load_snapshot(world.snapshot, NOW)
    cache.close()
    running = Gate(config, pin_factory=MockFactory(), scanner=IdleScanner(), fetch=Fetch(None),
                   delivery_poll_s=0.05, flush_timeout=0.2, resync_backoff_s=0.5, resync_max_backoff_s=1.0)
    running.start()
    assert running.transport is not None and running.transport.wait_subscribed(scaled(TIMEOUT))  # type: ignore[attr-defined]
    yield running
    running.stop()


def test_gate_drops_bad_acks_and_an_ack_for_an_unknown_check_in(
    gate: Gate, broker: LocalBroker, world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    assert gate.cache is not None and gate.transport is not None
    decision, checkin = gate.handle_scan(scan_event(world.codes[1]))
    assert decision.allowed and checkin is not None
    wait_until(lambda: gate.cache.outbox_row(str(checkin.id)).attempts >= 1)  # type: ignore[union-attr]

    for reason, message in bad_payloads(tmp_path).items():
        mosquitto_pub(broker, topics.gate_acks("g1"), message)
        wait_until(lambda r=reason: f"bad ack dropped reason={r}" in caplog.text, timeout=TIMEOUT)
    unknown = uuid.uuid4()
    mosquitto_pub(broker, topics.gate_acks("g1"),
                  ["-m", encode(Ack(checkin_id=unknown, gate_id="g1", status="stored")).decode()])
    wait_until(lambda: f"ack for unknown check-in ignored checkin_id={unknown}" in caplog.text, timeout=TIMEOUT)
    assert gate.cache.outbox_pending() == 1, "the real check-in is still waiting for its ack"
    assert gate.cache.outbox_row(str(unknown)) is None

    # The next good ack is applied; the gate still decides and is still connected.
    mosquitto_pub(broker, topics.gate_acks("g1"),
                  ["-m", encode(Ack(checkin_id=checkin.id, gate_id="g1", status="stored")).decode()])
    wait_until(lambda: gate.cache.outbox_pending() == 0, timeout=TIMEOUT)  # type: ignore[union-attr]
    assert gate.handle_scan(scan_event(world.codes[2]))[0].allowed
    assert gate.transport.is_connected


def test_gate_drops_bad_site_checkins_and_versions_on_the_change_topic(
    gate: Gate, broker: LocalBroker, world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    assert gate.cache is not None and gate.transport is not None
    seq = gate.cache.seq
    site_topic = topics.site_checkins("hq")
    for reason, message in bad_payloads(tmp_path).items():
        mosquitto_pub(broker, site_topic, message)
        wait_until(lambda r=reason: f"bad site check-in dropped reason={r}" in caplog.text, timeout=TIMEOUT)
    mosquitto_pub(broker, topics.CHANGES, ["-m", '{"v": 2, "seq": 1, "at": "2025-06-02T08:00:00Z"}'])
    wait_until(lambda: "bad change dropped reason=unsupported_version" in caplog.text, timeout=TIMEOUT)
    assert gate.cache.seq == seq, "nothing applied"
    assert gate.handle_scan(scan_event(world.codes[3]))[0].allowed, "code 3 unused so far"

    # The next good fan-out from a sibling gate is applied: code 2, used at g2, is now refused here.
    used = CheckIn(id=uuid.uuid4(), gate_id="g2", site_id="hq", direction=Direction.IN,
                   scanned_at=datetime.now(UTC), allowed=True, reason=Reason.OK, outcome=Outcome.ENTERED,
                   meeting_id=1, delegate_id=2, credential=_credential(gate, world, 2),
                   completed_at=datetime.now(UTC))
    mosquitto_pub(broker, site_topic, ["-m", encode(used).decode()])
    wait_until(lambda: f"site passage recorded checkin_id={used.id}" in caplog.text, timeout=TIMEOUT)
    decision, _ = gate.handle_scan(scan_event(world.codes[2]))
    assert not decision.allowed and decision.reason is Reason.ALREADY_INSIDE
    assert gate.transport.is_connected


def _credential(gate: Gate, world: World, delegate_id: int) -> str:
    """The credential string the gate records for ``delegate_id``'s compact code (as a sibling gate would)."""
    probe = decide(world.codes[delegate_id], gate.cache, datetime.now(UTC), gate.site_id, Direction.IN)
    assert probe.credential is not None
    return probe.credential


# ----- the snapshot endpoint


def test_snapshot_with_a_bad_token_changes_nothing_at_the_gate(
    central: Central, broker: LocalBroker, tmp_path: Path, world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    """Central answers 401 to a bad token; a running gate using it logs why and keeps its cache and decisions."""
    response = central.api("POST", "/api/v1/gates", json={"gate_id": "g1", "site_id": "hq", "name": "Cổng 1"})
    assert response.status_code == 201
    for header in ({"Authorization": "Bearer not-the-token"}, {}):
        refused = requests.get(f"{central.url}/api/v1/gates/g1/snapshot", headers=header, timeout=scaled(TIMEOUT))
        assert refused.status_code == 401
    caplog.set_level(logging.INFO)
    config = parse_config(config_dict(
        tmp_path, gate={"id": "g1", "data_dir": str(tmp_path / "g1")},
        central={"url": central.url, "token": "not-the-token", "timeout": 5.0},
        mqtt={"host": broker.host, "port": broker.port}))
    cache = GateStore(config.gate.data_dir)
    cache.load_snapshot(world.snapshot, NOW)
    seq, delegates = cache.seq, cache.delegate_count()
    cache.close()
    gate = Gate(config, pin_factory=MockFactory(), scanner=IdleScanner(), resync_backoff_s=60)
    try:
        gate.start()
        assert "snapshot not loaded reason=unauthorised" in caplog.text
        assert gate.cache is not None
        assert (gate.cache.seq, gate.cache.delegate_count()) == (seq, delegates)
        assert gate.handle_scan(scan_event(world.codes[1]))[0].allowed, "still deciding from the cache"
    finally:
        gate.stop()
