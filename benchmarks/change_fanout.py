"""One change at central to 20 subscribed gates: latency from the commit at central to applied in each cache.

Central: a SQLite database and the real :class:`central.messaging.changefeed.ChangeFeed` (default poll) publishing
the change log on a private Mosquitto, on the stream of the gates' site (``vaora/v1/sites/<site>/changes``; the
meetings are stored at central at that site). Each change replaces a delegate's code (a ``DelegateUpsert``), stored
the way central's services store one: ``append_change`` inside the write transaction.

Gates: 20 of them, each with its own paho client (the real :class:`gate.transport.MqttTransport`, persistent
session), its own SQLite cache (:class:`gate.store.GateStore`, seeded with the snapshot of seq 0) and its own
:class:`gate.follow.ChangeFollower`, wired as ``gate.app.Gate`` wires them. They share this one process (and its
GIL), which is harsher than 20 separate Raspberry Pis. The time is taken in the paho thread right after the
follower applied the change (the cache's seq reached it).

    .venv/bin/python benchmarks/change_fanout.py [--gates 20] [--changes 60] [--interval 0.2]

``--interval``: mean seconds between two changes (each waits until every gate applied the previous one).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt

from benchmarks._gate_fixture import build_world, header, median, percentile
from central.core.changes import append_change
from central.core.db import database, open_database
from central.messaging.changefeed import ChangeFeed
from central.migrations import migrate
from devtools.broker import LocalBroker
from gate.follow import ChangeFollower
from gate.store import GateStore
from gate.transport import MqttTransport
from protocols import topics
from protocols.codes import compact_hash, generate_compact
from protocols.payloads import Change, DelegateUpsert, decode

TARGET_P99_MS = 500.0


class Arrivals:
    """perf_counter stamps: ``applied[gate][seq]`` and ``published[seq]`` (a plain subscriber's receipt)."""

    def __init__(self, gates: int) -> None:
        self.lock = threading.Lock()
        self.applied: list[dict[int, float]] = [{} for _ in range(gates)]
        self.published: dict[int, float] = {}

    def count(self, seq: int) -> int:
        with self.lock:
            return sum(seq in stamps for stamps in self.applied)


def follow(index: int, gate_dir: Path, broker: LocalBroker, snapshot, arrivals: Arrivals) -> MqttTransport:
    """One gate's change path: transport -> follower -> cache; stamps each applied seq."""
    cache = GateStore(gate_dir)
    cache.load_snapshot(snapshot, datetime.now(UTC))
    follower = ChangeFollower(cache, lambda: None)
    transport = MqttTransport(f"fan-{index}", broker.host, broker.port, site_id=snapshot.meetings[0].site_id)

    def on_change(raw: bytes) -> None:
        follower.handle_payload(raw)
        stamp = time.perf_counter()
        seq = cache.seq
        with arrivals.lock:
            arrivals.applied[index].setdefault(seq, stamp)

    transport.on_change = on_change
    transport.start()
    return transport


def store_meetings(snapshot) -> None:
    """Store the snapshot's meetings at central, so their delegates' changes go to their site's stream."""
    from central.meetings.models import Meeting

    with database.connection_context():
        for entry in snapshot.meetings:
            Meeting.create(id=entry.id, title=entry.title, starts_at=entry.starts_at, ends_at=entry.ends_at,
                           venue=entry.venue, site_id=entry.site_id, scheme=entry.scheme.value, status=entry.status,
                           entry_policy=entry.entry_policy, created_at=datetime.now(UTC))


def main(argv: Sequence[str] | None = None) -> None:
    """Run and print a Markdown block for BENCHMARKS.md."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--gates", type=int, default=20)
    parser.add_argument("--changes", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between two changes")
    args = parser.parse_args(argv)
    world = build_world(1000)
    snapshot = world.snapshot.model_copy(update={"seq": 0})
    compact = [d for d in snapshot.delegates if d.code_hash is not None]
    from benchmarks._gate_fixture import shipped_broker  # (kept off the import block central's renames touch)

    lines = header("One change at central to subscribed gates", argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        open_database(f"sqlite:///{directory / 'central.db'}")
        migrate()
        store_meetings(snapshot)
        broker = shipped_broker(directory / "broker")
        arrivals = Arrivals(args.gates)
        listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fanout-listener")

        def on_published(_c, _u, message: mqtt.MQTTMessage) -> None:
            stamp = time.perf_counter()
            arrivals.published.setdefault(decode(Change, message.payload).seq, stamp)

        listener.on_message = on_published
        listener.connect(broker.host, broker.port)
        listener.subscribe(topics.site_changes(snapshot.meetings[0].site_id), qos=1)
        listener.loop_start()
        transports = [follow(i, directory / f"gate-{i}", broker, snapshot, arrivals) for i in range(args.gates)]
        feed = ChangeFeed(broker.host, broker.port)
        committed: dict[int, float] = {}
        rng = random.Random(5)
        try:
            for transport in transports:
                if not transport.wait_subscribed(30):
                    raise RuntimeError("a gate did not subscribe")
            feed.start()
            for number in range(args.changes):
                old = compact[number % len(compact)]
                body = DelegateUpsert(delegate=old.model_copy(update={"code_hash": compact_hash(generate_compact())}))
                with database.connection_context(), database.atomic():
                    change = append_change(body, datetime.now(UTC))
                committed[change.seq] = time.perf_counter()
                deadline = time.monotonic() + 10
                while arrivals.count(change.seq) < args.gates and time.monotonic() < deadline:
                    time.sleep(0.001)
                time.sleep(rng.uniform(0.5, 1.5) * args.interval)  # no phase lock with the feed's poll
        finally:
            feed.stop()
            for transport in transports:
                transport.stop()
            listener.loop_stop()
            listener.disconnect()
            broker.stop()
            database.close()
    latencies = [(stamps[seq] - at) * 1000 for seq, at in committed.items() for stamps in arrivals.applied
                 if seq in stamps]
    to_broker = [(arrivals.published[seq] - at) * 1000 for seq, at in committed.items() if seq in arrivals.published]
    expected = len(committed) * args.gates
    p99 = percentile(latencies, 99)
    lines += [
        f"- {args.gates} gates (each: `MqttTransport` + `ChangeFollower` + SQLite `GateStore` seeded with 1,000 "
        f"delegates), all in one process; central: SQLite + `ChangeFeed` (poll every 0.1 s); private Mosquitto",
        f"- {len(committed)} changes (`DelegateUpsert`: a delegate's code replaced), one every {args.interval} s "
        "on average (uniform 0.5-1.5x, so the commits fall at random points of the feed's poll); "
        "timed from the commit at central to the change applied in each gate's cache",
        "",
        "| measured | samples | p50 ms | p99 ms | max ms | target | verdict |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
        f"| commit -> applied in a gate's cache | {len(latencies)}/{expected} | {median(latencies):.1f} | "
        f"{p99:.1f} | {max(latencies):.1f} | p99 ≤ {TARGET_P99_MS:.0f} ms | "
        f"{'pass' if p99 <= TARGET_P99_MS and len(latencies) == expected else '**fail**'} |",
        f"| commit -> received by a plain subscriber | {len(to_broker)} | {median(to_broker):.1f} | "
        f"{percentile(to_broker, 99):.1f} | {max(to_broker):.1f} | - | - |",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
