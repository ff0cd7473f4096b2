"""Fault injection on real Mosquitto processes: no check-in is lost or stored twice.

Ten in-process gates (simulated pins, their own SQLite outboxes) publish through a private Mosquitto to
central's ingest worker, which stores into SQLite. The broker is SIGKILLed and restarted while they work.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from central import models
from central.db import create_tables, database, open_database
from central.devtools.broker import LocalBroker
from central.ingest import IngestWorker
from gate.app import Gate
from gate.config import parse_config
from gate.scanners import ScanEvent, Scanner
from protocols.codes import generate_compact
from protocols.reasons import Reason

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


class SilentScanner(Scanner):
    """No hardware: the test drives ``Gate.handle_scan`` itself."""

    def start(self, on_scan) -> None:
        self.on_scan = on_scan

    def close(self) -> None:
        pass


def unreachable_central(*_args, **_kwargs):
    raise OSError("central is not part of this test")


@pytest.fixture
def central_db(tmp_path: Path) -> Iterator[None]:
    open_database(f"sqlite:///{tmp_path / 'central.db'}")
    create_tables()
    yield
    database.close()


def make_gates(count: int, broker: LocalBroker, tmp_path: Path) -> list[Gate]:
    gates = []
    with database.connection_context():
        for index in range(count):
            gate_id = f"gate-{index}"
            models.Gate.create(gate_id=gate_id, name=gate_id, site_id="hq", token_hash="x")
            config = parse_config(
                {
                    "gate": {"id": gate_id, "site": "hq", "fail_mode": "secure", "data_dir": str(tmp_path / gate_id)},
                    "central": {"url": "http://127.0.0.1:9", "token": "unused", "timeout": 1},
                    "mqtt": {"host": broker.host, "port": broker.port, "resend_seconds": 1},
                    "scanner": {"type": "stdin"},
                    "pins": {"relay": 17, "green_led": 27, "red_led": 22},
                    "turnstile": {"unlock_seconds": 0.2},
                    "status": {"enabled": False},
                }
            )
            gate = Gate(config, pin_factory=MockFactory(), scanner=SilentScanner(), fetch=unreachable_central,
                        delivery_poll_s=0.2)
            gate.start()
            gates.append(gate)
    return gates


def drive(gates: list[Gate], rate_per_gate: float, stop: threading.Event, sent: list[int]) -> list[threading.Thread]:
    """Each gate scans a code ``rate_per_gate`` times a second until ``stop``."""

    def scan(index: int, gate: Gate) -> None:
        while not stop.wait(1 / rate_per_gate):
            gate.handle_scan(ScanEvent(generate_compact(), Reason.OK, "test", time.monotonic()))
            sent[index] += 1

    threads = [threading.Thread(target=scan, args=(i, g), daemon=True) for i, g in enumerate(gates)]
    for thread in threads:
        thread.start()
    return threads


def wait_delivered(gates: list[Gate], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gate.cache.outbox_pending() == 0 for gate in gates):
            return
        time.sleep(0.2)
    pending = {gate.gate_id: gate.cache.outbox_pending() for gate in gates}
    details = []
    for gate in gates:
        undelivered = [row for row in gate.cache.outbox_rows() if row.delivered_at is None]
        if not undelivered:
            continue
        with database.connection_context():
            stored = models.CheckIn.select().where(
                models.CheckIn.checkin_id.in_([row.checkin_id for row in undelivered])
            ).count()
        details.append(f"{gate.gate_id}: connected={gate.transport.is_connected} undelivered={len(undelivered)} "
                       f"already stored at central={stored} attempts={[row.attempts for row in undelivered][:5]}")
    raise AssertionError(f"undelivered check-ins remain: {pending}\n" + "\n".join(details))


def central_counts() -> tuple[int, int]:
    with database.connection_context():
        rows = models.CheckIn.select().count()
        distinct = models.CheckIn.select(models.CheckIn.checkin_id).distinct().count()
    return rows, distinct


# The persistence settings of systemd/mosquitto/vaora.conf: the broker saves every 5 s, so a SIGKILL loses what
# it took in since; the gates' outboxes re-publish it. (Saving on every change, as LocalBroker does by default
# for its own tests, makes a loaded broker spend its time rewriting its database.)
SHIPPED_PERSISTENCE = "autosave_on_changes false\nautosave_interval 5"


def test_broker_killed_20_times_while_10_gates_publish_50_scans_a_second(tmp_path, central_db):
    broker = LocalBroker(tmp_path / "broker", max_queued_messages=100_000, extra_config=SHIPPED_PERSISTENCE)
    broker.start()
    worker = IngestWorker(broker.host, broker.port)
    worker.start()
    gates = make_gates(10, broker, tmp_path)
    stop = threading.Event()
    sent = [0] * len(gates)
    try:
        threads = drive(gates, 5.0, stop, sent)
        rng = random.Random(20)
        for _ in range(20):
            time.sleep(rng.uniform(0.4, 1.0))
            broker.kill()
            time.sleep(rng.uniform(0.1, 0.5))
            broker.restart()
        stop.set()
        for thread in threads:
            thread.join(5)
        drained_at = time.monotonic()
        wait_delivered(gates, timeout=120)
        print(f"drained in {time.monotonic() - drained_at:.1f} s after the last restart")
        rows, distinct = central_counts()
        assert sum(sent) >= 500, "the gates really were publishing"
        assert rows == distinct == sum(sent), f"sent {sum(sent)}, stored {rows} ({distinct} distinct)"
        for gate in gates:
            assert all(row.delivered_at is not None for row in gate.cache.outbox_rows())
    finally:
        stop.set()
        for gate in gates:
            gate.stop()
        worker.stop()
        broker.stop()


def test_gate_offline_for_10000_scans_then_reconnected(tmp_path, central_db):
    broker = LocalBroker(tmp_path / "broker", max_queued_messages=100_000, extra_config=SHIPPED_PERSISTENCE)
    broker.start()
    worker = IngestWorker(broker.host, broker.port)
    worker.start()
    (gate,) = make_gates(1, broker, tmp_path)
    try:
        broker.stop()  # the gate loses the broker
        for _ in range(10_000):
            gate.handle_scan(ScanEvent(generate_compact(), Reason.OK, "test", time.monotonic()))
        assert gate.cache.outbox_pending() == 10_000
        broker.restart()
        wait_delivered([gate], timeout=300)
        assert central_counts() == (10_000, 10_000)
    finally:
        gate.stop()
        worker.stop()
        broker.stop()
