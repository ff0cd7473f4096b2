"""The ingest's own CPU per check-in, without MQTT: decode, store, acknowledge, in one process.

``IngestWorker.handle_batch`` is run on ``--checkins`` pre-encoded check-ins (``ingest_rate.checkin_payload``, 10
gates) in batches of ``--batch`` (the worker's default batch size), on a fresh SQLite file or PostgreSQL database
each run, with an MQTT client that only counts the ack messages it is given. The figure is the process's CPU time
per check-in (``time.process_time``: the database's own work is in it for SQLite), with, for PostgreSQL, the CPU of
the server's backend serving the run (``/proc``), the median of ``--runs`` runs, and the wall time beside it. What
it leaves out is what the end-to-end benchmarks (``ingest_rate.py``, ``sites_scale.py``) add: paho's receive of
each message and the competition for the cores.

    python benchmarks/ingest_store_cpu.py [--checkins 20000] [--batch 500] [--runs 3] [--database sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._cputime import cpu_by_pid, cpu_used, postgres_backends
from benchmarks.ingest_rate import checkin_payload, drop_database, fresh_database, prepare_database
from central.core.db import database
from central.gates.models import CheckIn
from central.messaging.ingest import IngestWorker
from protocols import topics


class CountingClient:
    """Stands in for the MQTT client: counts the ack messages the worker publishes."""

    def __init__(self) -> None:
        self.published = 0

    def publish(self, _topic: str, _payload: bytes, qos: int = 0) -> None:
        """Count one message."""
        self.published += 1


def run(kind: str, total: int, batch: int) -> dict[str, float | int | str]:
    """One run on a fresh database; returns CPU and wall microseconds per check-in and what was stored."""
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database(kind, Path(tmp))
        try:
            gate_ids = prepare_database(url, 10)
            senders = [gate_ids[n % len(gate_ids)] for n in range(total)]
            messages = [(topics.gate_checkins(gate_id), checkin_payload(gate_id)) for gate_id in senders]
            worker = IngestWorker("127.0.0.1", 1)  # never connected: only its handling is used
            client = CountingClient()
            database.connect(reuse_if_open=True)
            backends = postgres_backends(url.rsplit("/", 1)[1]) if kind == "postgres" else []
            server = cpu_by_pid(backends)
            cpu, wall = time.process_time(), time.perf_counter()
            for start in range(0, total, batch):
                worker.handle_batch(client, messages[start:start + batch])  # type: ignore[arg-type]
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            server_cpu = cpu_used(server, cpu_by_pid(backends))
            stored = CheckIn.select().count()
            database.close()
            return {"db": kind, "checkins": total, "stored": stored, "acks": client.published,
                    "cpu_us": cpu * 1e6 / total, "wall_us": wall * 1e6 / total,
                    "server_cpu_us": server_cpu * 1e6 / total if backends else float("nan")}
        finally:
            database.close()
            drop_database(url)


def main() -> None:
    """Parse options, run, print a Markdown block."""
    from benchmarks._gate_fixture import header

    parser = argparse.ArgumentParser()
    parser.add_argument("--checkins", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    print("\n".join(header("The ingest's own CPU per check-in", None)))
    print()
    print("| database | check-ins per run | runs | stored (each run) | ack messages | CPU µs per check-in, median "
          "(runs) | PostgreSQL backend CPU µs per check-in, median | wall µs per check-in, median |")
    print("| --- | ---: | ---: | --- | ---: | --- | ---: | ---: |")
    for kind in kinds:
        rows = [run(kind, args.checkins, args.batch) for _ in range(args.runs)]
        cpu = [float(row["cpu_us"]) for row in rows]
        print(f"| {kind} | {args.checkins} | {args.runs} | {', '.join(str(row['stored']) for row in rows)} | "
              f"{rows[0]['acks']} | {statistics.median(cpu):.1f} ({', '.join(f'{c:.1f}' for c in cpu)}) | "
              f"{statistics.median(float(row['server_cpu_us']) for row in rows):.1f} | "
              f"{statistics.median(float(row['wall_us']) for row in rows):.1f} |")


if __name__ == "__main__":
    main()
