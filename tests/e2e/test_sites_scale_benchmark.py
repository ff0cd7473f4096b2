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

ROOT = Path(__file__).resolve().parents[2]


def _require_postgres() -> None:
    try:
        import psycopg

        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=5).close()
    except Exception as error:  # any failure to reach it means: no PostgreSQL here
        message = f"PostgreSQL at 127.0.0.1:5432 unavailable: {error}"
        if os.environ.get("VAORA_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tiny_run_stores_every_checkin_once_and_every_viewer_gets_every_event(tmp_path: Path) -> None:
    _require_postgres()
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/sites_scale.py", "--checkins", "60", "--gates", "2", "--heartbeats", "20",
         "--viewers", "4", "--viewer-processes", "2", "--rate", "10", "--seconds", "1", "--json", str(figures)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=840,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(figures.read_text(encoding="utf-8"))

    assert [path["bridged"] for path in data["paths"]] == [False, True]
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
    assert "| check-in (gate → core) |" in report and "viewers with every event" in report
