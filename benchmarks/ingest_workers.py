"""Check-ins per second with one and with two ``vaora-central ingest`` processes sharing ``$share/vaora-ingest/...``.

Each run: a fresh database (SQLite file or PostgreSQL), a private Mosquitto with the shipped persistence settings
and the generated ACL (``bridge_cost.mqtt_path``; ``--bridged``: the gates publish to a site broker bridged to
it), N ingest processes exactly as ``vaora-central-ingest@.service`` runs them (default share group, a client id
per process), then simulated gates (``spawn`` processes, one paho client each, from ``ingest_rate.py``) publish
pre-encoded check-ins at QoS 1 as fast as the broker takes them. The rate is check-ins committed per second from
the first publish to the last commit; every check-in must be stored exactly once. Worker counts alternate within
one invocation (1, 2, 1, 2, ...) so the machine's noise falls on both alike; the report gives each run and the
ratio of the medians (two workers / one).

    python benchmarks/ingest_workers.py [--checkins 20000] [--gates 10] [--runs 2] [--database sqlite|postgres]
                                     [--bridged]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ingest_rate import drop_database, fresh_database, prepare_database, start_publishers, wait_stored
from central.core.db import database
from central.gates.models import CheckIn
from devtools.processes import stop_processes
from protocols import topics

if TYPE_CHECKING:
    from devtools.broker import LocalBroker

REPO = Path(__file__).resolve().parents[1]
INGEST_STOP_S = 30
"""Seconds an ingest process has to end on SIGTERM before it is killed."""


def start_ingest(workers: int, url: str, broker: LocalBroker, directory: Path) -> list[subprocess.Popen[bytes]]:
    """``workers`` ``vaora-central ingest`` processes on ``url`` and ``broker``, as the systemd unit runs them (one
    client id each, the default share group); returns once each has subscribed. The caller terminates them."""
    since = broker.log_position()
    env = {key: value for key, value in os.environ.items() if not key.startswith("VAORA_")}
    env.update({"PYTHONPATH": str(REPO), "VAORA_DATABASE_URL": url, "VAORA_MQTT_HOST": "127.0.0.1",
                "VAORA_MQTT_PORT": str(broker.port), "VAORA_DATA_DIR": str(directory / "data"),
                "VAORA_SIGNING_KEY_FILE": str(directory / "signing-key.pem")})
    processes: list[subprocess.Popen[bytes]] = []
    for number in range(workers):
        name = f"bench-ingest-{number}"
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "central.cli", "--log-level", "WARNING", "ingest"],
            env={**env, "VAORA_MQTT_CLIENT_ID": name}, cwd=REPO, stdout=subprocess.DEVNULL,
            stderr=(directory / f"{name}.log").open("ab")))
    for number in range(workers):
        broker.wait_subscribed(f"bench-ingest-{number}", topics.shared("vaora-ingest", topics.ALL_GATE_CHECKINS),
                               since=since, timeout=120)
    return processes


def run(kind: str, workers: int, total: int, gates: int, bridged: bool = False) -> dict[str, float | int | str]:
    """One measured run with ``workers`` ingest processes, the gates publishing to the core or (``bridged``) to a
    site broker bridged to it (``bridge_cost.mqtt_path``); returns the figures, with the CPU seconds used from the
    first publish to the last commit by the ingest processes, the Mosquitto processes and (PostgreSQL) the
    database's backends serving them."""
    from benchmarks._cputime import cpu_by_pid, cpu_used, postgres_backends
    from benchmarks.bridge_cost import mqtt_path

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        url = fresh_database(kind, directory)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            gate_ids = prepare_database(url, gates)
            with mqtt_path(directory, bridged, gate_ids, total) as (core, publish_to):
                processes = start_ingest(workers, url, core, directory)
                brokers = [pid for pid in {core.pid, publish_to.pid} if pid is not None]
                ingest = [process.pid for process in processes]
                with database.connection_context():  # wait_stored reuses this connection: its backend is known
                    own = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0] if kind == "postgres" else 0

                    def backends() -> list[int]:
                        return postgres_backends(url.rsplit("/", 1)[1], exclude=[own]) if kind == "postgres" else []

                    before = [cpu_by_pid(ingest), cpu_by_pid(brokers), cpu_by_pid(backends())]
                    per_gate = total // gates
                    procs, _, started = start_publishers(publish_to.port, gate_ids, per_gate)
                    expected = per_gate * gates
                    stored, elapsed = wait_stored(expected, started)
                    after = [cpu_by_pid(ingest), cpu_by_pid(brokers), cpu_by_pid(backends())]
                for proc in procs:
                    proc.join(60)
                with database.connection_context():
                    distinct = CheckIn.select(CheckIn.checkin_id).distinct().count()
                stop_processes(processes, timeout=INGEST_STOP_S)
            ingest_cpu, broker_cpu, db_cpu = (cpu_used(b, a) for b, a in zip(before, after, strict=True))
            return {"db": kind, "workers": workers, "bridged": int(bridged), "checkins": expected, "stored": stored,
                    "distinct": distinct, "seconds": elapsed, "rate": stored / elapsed,
                    "ingest_cpu_s": ingest_cpu, "broker_cpu_s": broker_cpu, "db_cpu_s": db_cpu}
        finally:
            stop_processes(processes, timeout=INGEST_STOP_S)
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
    parser.add_argument("--bridged", action="store_true", help="gates publish to a site broker bridged to the core")
    args = parser.parse_args()
    results = [run(args.database, workers, args.checkins, args.gates, args.bridged)
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
