"""Central's ingest rate: check-ins from simulated gates through Mosquitto into SQLite (and PostgreSQL).

Publishers (separate processes, one paho client per simulated gate) send pre-encoded check-ins at QoS 1 as fast
as the broker takes them; central's IngestWorker stores them and acknowledges each on the gate's ack topic.
The rate is the number of check-ins stored per second from the first publish to the last row committed,
and the run checks that every check-in is stored exactly once and acknowledged.

``--mode live`` (default): publishers and ingest run at once, sharing the CPU. ``--mode drain``: the ingest's
persistent session is subscribed but offline while the publishers fill the broker's queue for it (their own
rate is reported: the load generator alone), then the ingest starts and drains the queue: its own rate,
without the load generator competing for the cores.

    python benchmarks/ingest_rate.py [--checkins 30000] [--gates 10] [--database sqlite|postgres|both]
                                     [--mode live|drain]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._affinity import pin_gate_process
from central.core.db import database, open_database
from central.gates.models import CheckIn, Gate
from central.messaging.ingest import IngestWorker
from central.migrations import migrate
from devtools.broker import LocalBroker
from protocols import payloads, topics

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def checkin_payload(gate_id: str) -> bytes:
    """One realistic check-in as a gate would publish it."""
    return payloads.encode(
        payloads.CheckIn(
            id=uuid.uuid4(), gate_id=gate_id, site_id="hq", direction="in", scanned_at=datetime.now(UTC),
            allowed=True, reason="ok", outcome="entered", meeting_id=None, delegate_id=None, scheme="compact",
            credential=uuid.uuid4().hex * 2,
        )
    )


def publisher(port: int, gate_id: str, count: int, ready, go, done) -> None:
    """A simulated gate: publish ``count`` check-ins at QoS 1, then wait for every broker PUBACK (on the gates'
    core when the benchmark splits the cores, :func:`benchmarks._affinity.split_cores`)."""
    pin_gate_process()
    messages = [checkin_payload(gate_id) for _ in range(count)]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{gate_id}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    ready.release()
    go.wait()
    infos = [client.publish(topics.gate_checkins(gate_id), message, qos=1) for message in messages]
    for info in infos:
        info.wait_for_publish(120)
    done.release()
    client.loop_stop()
    client.disconnect()


def prepare_database(url: str, gates: int) -> list[str]:
    """Open ``url``, build central's schema and register ``gates`` gates; return their ids."""
    open_database(url)
    migrate()
    gate_ids = [f"bench-{i}" for i in range(gates)]
    with database.connection_context():
        for gate_id in gate_ids:
            Gate.create(gate_id=gate_id, name=gate_id, site_id="hq", direction="in", token_hash="x")
    return gate_ids


def start_publishers(port: int, gate_ids: list[str], per_gate: int) -> tuple[list, object, float]:
    """Start one :func:`publisher` process per gate, wait until all are connected, then let them go together.
    Returns the processes, the semaphore each releases when done, and the ``perf_counter`` of the start."""
    ctx = multiprocessing.get_context("spawn")
    ready, done, go = ctx.Semaphore(0), ctx.Semaphore(0), ctx.Event()
    procs = [ctx.Process(target=publisher, args=(port, g, per_gate, ready, go, done)) for g in gate_ids]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.acquire()
    started = time.perf_counter()
    go.set()
    return procs, done, started


def wait_stored(expected: int, started: float, limit_s: float = 600) -> tuple[int, float]:
    """Wait until ``expected`` check-ins are stored (at most ``limit_s``); return how many and the seconds since
    ``started``."""
    stored = 0
    with database.connection_context():
        while time.perf_counter() - started < limit_s:
            stored = CheckIn.select().count()
            if stored >= expected:
                break
            time.sleep(0.05)
    return stored, time.perf_counter() - started


def fresh_database(kind: str, directory: Path) -> str:
    """Create an empty database and return its URL."""
    if kind == "sqlite":
        return f"sqlite:///{directory / 'central.db'}"
    import psycopg

    name = f"vaora_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_database(url: str) -> None:
    """Drop a PostgreSQL database made by :func:`fresh_database`."""
    if url.startswith("postgresql://"):
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(kind: str, total: int, gates: int, mode: str = "live") -> dict:
    """One measured run on one database; returns the figures."""
    from benchmarks._gate_fixture import shipped_broker  # (kept off the import block central's renames touch)

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        url = fresh_database(kind, directory)
        try:
            gate_ids = prepare_database(url, gates)
            broker: LocalBroker = shipped_broker(directory / "broker", "",
                                                 max_queued_messages=total * 2)
            acks = 0
            acks_lock = threading.Lock()

            def on_ack(_c, _u, message) -> None:  # an Ack or an AckBatch: count the check-ins acknowledged
                nonlocal acks
                with acks_lock:
                    acks += message.payload.count(b'"checkin_id"')

            listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-ack-listener")
            listener.on_message = on_ack
            listener.connect("127.0.0.1", broker.port)
            listener.subscribe(f"{topics.ROOT}/gates/+/acks", qos=0)
            listener.loop_start()
            worker = IngestWorker("127.0.0.1", broker.port)
            worker.start()
            worker.connected.wait(10)
            publish_rate = None
            if mode == "drain":
                time.sleep(0.5)  # the subscriptions are in the persistent session
                worker.stop()
            per_gate = total // gates
            procs, done, started = start_publishers(broker.port, gate_ids, per_gate)
            if mode == "drain":
                for _ in procs:
                    done.acquire()
                publish_rate = per_gate * gates / (time.perf_counter() - started)
                worker = IngestWorker("127.0.0.1", broker.port)
                started = time.perf_counter()
                worker.start()
            expected = per_gate * gates
            stored, elapsed = wait_stored(expected, started)
            deadline = time.monotonic() + 30
            while acks < expected and time.monotonic() < deadline:
                time.sleep(0.05)
            for proc in procs:
                proc.join(60)
            with database.connection_context():
                distinct = CheckIn.select(CheckIn.checkin_id).distinct().count()
            worker.stop()
            listener.loop_stop()
            listener.disconnect()
            broker.stop()
            database.close()
            return {"db": kind, "mode": mode, "publish_rate": publish_rate,
                    "checkins": expected, "stored": stored, "distinct": distinct, "acks": acks,
                    "seconds": elapsed, "rate": stored / elapsed}
        finally:
            drop_database(url)


def main() -> None:
    """Parse options, run, print a Markdown block."""
    from benchmarks._gate_fixture import header
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkins", type=int, default=30000)
    parser.add_argument("--gates", type=int, default=10)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--mode", choices=["live", "drain"], default="live")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    results = [run(kind, args.checkins, args.gates, args.mode) for kind in kinds]
    print("\n".join(header("Central ingest rate", None)))
    print()
    print("| database | mode | check-ins | stored | distinct | acks | seconds | check-ins/s | publishers alone/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        alone = f"{r['publish_rate']:.0f}" if r["publish_rate"] else "-"
        print(f"| {r['db']} | {r['mode']} | {r['checkins']} | {r['stored']} | {r['distinct']} | {r['acks']} | "
              f"{r['seconds']:.2f} | {r['rate']:.0f} | {alone} |")


if __name__ == "__main__":
    main()
