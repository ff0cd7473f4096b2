"""Check-ins per second with one and with two ``vaora-central ingest`` processes sharing ``$share/vaora-ingest/...``.

Each run: a fresh database (SQLite file or PostgreSQL), a private Mosquitto with the shipped persistence settings,
N ingest processes exactly as ``vaora-central-ingest@.service`` runs them (default share group, a client id per
process), then simulated gates (``spawn`` processes, one paho client each, from ``ingest_rate.py``) publish
pre-encoded check-ins at QoS 1 as fast as the broker takes them. The rate is check-ins committed per second from
the first publish to the last commit; every check-in must be stored exactly once. Worker counts alternate within
one invocation (1, 2, 1, 2, ...) so the machine's noise falls on both alike; the report gives each run and the
ratio of the medians (two workers / one).

    python benchmarks/ingest_workers.py [--checkins 20000] [--gates 10] [--runs 2] [--database sqlite|postgres]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ingest_rate import drop_database, fresh_database, prepare_database, start_publishers, wait_stored
from central.core.db import database
from central.gates.models import CheckIn
from protocols import topics

REPO = Path(__file__).resolve().parents[1]


def run(kind: str, workers: int, total: int, gates: int) -> dict[str, float | int | str]:
    """One measured run with ``workers`` ingest processes; returns the figures."""
    from benchmarks._gate_fixture import shipped_broker

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        url = fresh_database(kind, directory)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            gate_ids = prepare_database(url, gates)
            broker = shipped_broker(directory / "broker", "max_inflight_messages 1000", max_queued_messages=total * 2)
            since = broker.log_position()
            env = {key: value for key, value in os.environ.items() if not key.startswith("VAORA_")}
            env.update({"PYTHONPATH": str(REPO), "VAORA_DATABASE_URL": url, "VAORA_MQTT_HOST": "127.0.0.1",
                        "VAORA_MQTT_PORT": str(broker.port), "VAORA_DATA_DIR": str(directory / "data"),
                        "VAORA_SIGNING_KEY_FILE": str(directory / "signing-key.pem")})
            for number in range(workers):
                name = f"bench-ingest-{number}"
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "central.cli", "--log-level", "WARNING", "ingest"],
                    env={**env, "VAORA_MQTT_CLIENT_ID": name}, cwd=REPO, stdout=subprocess.DEVNULL,
                    stderr=(directory / f"{name}.log").open("ab")))
            for number in range(workers):
                broker.wait_subscribed(f"bench-ingest-{number}",
                                       topics.shared("vaora-ingest", topics.ALL_GATE_CHECKINS), since=since,
                                       timeout=120)
            per_gate = total // gates
            procs, _, started = start_publishers(broker.port, gate_ids, per_gate)
            expected = per_gate * gates
            stored, elapsed = wait_stored(expected, started)
            for proc in procs:
                proc.join(60)
            with database.connection_context():
                distinct = CheckIn.select(CheckIn.checkin_id).distinct().count()
            broker.stop()
            return {"db": kind, "workers": workers, "checkins": expected, "stored": stored, "distinct": distinct,
                    "seconds": elapsed, "rate": stored / elapsed}
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
            database.close()
            drop_database(url)


def main() -> None:
    """Parse options, run 1 and 2 workers alternately, print a Markdown block."""
    from benchmarks._gate_fixture import header

    parser = argparse.ArgumentParser()
    parser.add_argument("--checkins", type=int, default=20000)
    parser.add_argument("--gates", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2, help="runs per worker count")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    results = [run(args.database, workers, args.checkins, args.gates)
               for _ in range(args.runs) for workers in (1, 2)]
    print("\n".join(header("Ingest with one and two worker processes", None)))
    print()
    print("| database | ingest processes | check-ins | stored | distinct | seconds | check-ins/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['db']} | {r['workers']} | {r['checkins']} | {r['stored']} | {r['distinct']} | "
              f"{r['seconds']:.2f} | {r['rate']:.0f} |")
    medians = {n: statistics.median(float(r["rate"]) for r in results if r["workers"] == n) for n in (1, 2)}
    print()
    print(f"median check-ins/s: one process {medians[1]:.0f}, two {medians[2]:.0f}; "
          f"ratio two / one {medians[2] / medians[1]:.2f}")


if __name__ == "__main__":
    main()
