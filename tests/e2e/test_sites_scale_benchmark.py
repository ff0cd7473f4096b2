"""``benchmarks/sites_scale.py`` (issue 16, point 5) runs end to end at tiny sizes and reports complete figures.

Not a timing test: the rates it prints on a loaded CI machine mean nothing here. What is checked is what the
benchmark's figures rest on: every check-in sent in every raw, ingest and bridged case arrived or was stored
exactly once, the heartbeats were stored, and every dashboard viewer got every event.
PostgreSQL (127.0.0.1:5432) is required, as by the other PostgreSQL tests: skipped without it unless
``VAORA_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tiny_run_stores_every_checkin_once_and_every_viewer_gets_every_event(tmp_path: Path) -> None:
    require_postgres()
    split = ["--split-cores"] if len(os.sched_getaffinity(0)) >= 2 else []
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/sites_scale.py", "--checkins", "60", "--gates", "2", "--heartbeats", "20",
         "--viewers", "4", "--viewer-processes", "2", "--rate", "10", "--seconds", "1", "--json", str(figures),
         *split],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=840,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(figures.read_text(encoding="utf-8"))

    layouts = [(False, False), (False, True)] + ([(True, False), (True, True)] if split else [])
    assert [(path.get("split", False), path["bridged"]) for path in data["paths"]] == layouts
    for path in data["paths"]:
        assert [raw["received"] for raw in path["raws"]] == [60, 60]
        cases = [(row["db"], row["workers"], row["bridged"]) for row in path["ingests"]]
        bridged = int(path["bridged"])
        assert cases == [("sqlite", 1, bridged), ("sqlite", 2, bridged), ("postgres", 1, bridged),
                         ("postgres", 2, bridged)]
        for row in path["ingests"]:
            assert row["stored"] == row["distinct"] == row["checkins"] == 60
            assert {"ingest_cpu_s", "broker_cpu_s", "db_cpu_s"} <= row.keys()
    assert [(beat["db"], beat["heartbeats"]) for beat in data["heartbeats"]] == [("sqlite", 20), ("postgres", 20)]

    dashboard = data["dashboard"]
    assert dashboard["connected"] == 4 and dashboard["stored"] == dashboard["checkins"] == 10
    assert dashboard["complete"] == 4 and dashboard["missing_pairs"] == 0
    assert sum(dashboard["viewers_per_epoch"]) == 4
    assert len(dashboard["connections_per_worker"]) == 2  # VAORA_WEB_WORKERS=2: two gunicorn workers were found

    report = result.stdout
    assert "| gates → core | raw pass-through (before) | 60 | 60 |" in report
    assert "| site → bridge → core | ingest, postgres, 2 workers | 60 | 60 | 60 |" in report
    if split:
        assert "Gates on CPU 0; brokers, raw subscriber, ingest and PostgreSQL on CPU 1" in report
    assert "| check-in (gate → core) |" in report and "viewers with every event" in report


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="splitting cores needs two CPUs")
def test_split_cores_puts_the_gates_on_one_core_the_server_side_on_the_other_and_restores_both() -> None:
    from benchmarks._affinity import GATE_CPUS_ENV, split_cores
    from benchmarks._cputime import postgres_processes

    print_cpus = "import os; print(sorted(os.sched_getaffinity(0)))"
    pin_then_print = f"from benchmarks._affinity import pin_gate_process; pin_gate_process(); {print_cpus}"
    own_before = os.sched_getaffinity(0)
    postgres_before = {pid: os.sched_getaffinity(pid) for pid in postgres_processes()}

    def cpus_of(code: str) -> str:  # the environment as a child started at this point inherits it
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=60, check=True).stdout.strip()

    with split_cores(gate_cpu=0, server_cpu=1):
        assert os.sched_getaffinity(0) == {1}
        assert cpus_of(print_cpus) == "[1]"  # a broker or ingest the benchmark starts runs on the server's core
        assert cpus_of(pin_then_print) == "[0]"  # a simulated gate moves itself to the gates' core
        if postgres_before and os.geteuid() == 0:
            import psycopg

            with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=5) as conn:
                backend = conn.execute("SELECT pg_backend_pid()").fetchone()
                assert backend is not None and os.sched_getaffinity(backend[0]) == {1}  # forked from the postmaster

    assert os.sched_getaffinity(0) == own_before
    assert GATE_CPUS_ENV not in os.environ
    assert cpus_of(pin_then_print) == str(sorted(own_before))  # outside the block a gate stays where it was
    for pid, cpus in postgres_before.items():
        try:
            assert os.sched_getaffinity(pid) == cpus
        except ProcessLookupError:
            continue  # a backend that ended meanwhile
