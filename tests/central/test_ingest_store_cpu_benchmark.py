"""``benchmarks/ingest_store_cpu.py`` runs at a tiny size and its figures rest on every check-in stored once.

Not a timing test: the microseconds it prints mean nothing on a loaded CI machine. What is checked is what the
figure divides by: each check-in of the run stored, and acknowledged in one message per gate per batch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_tiny_run_stores_every_checkin_and_acks_each_gate_once_per_batch(kind: str) -> None:
    if kind == "postgres":
        require_postgres()
    result = subprocess.run(
        [sys.executable, "benchmarks/ingest_store_cpu.py", "--checkins", "1200", "--runs", "2", "--database",
         kind], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = [line for line in result.stdout.splitlines() if line.startswith(f"| {kind} |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:5] == ["1200", "2", "1200, 1200", "30"]  # 3 batches (500, 500, 200) x 10 gates
    assert float(cells[5].split()[0]) > 0
    # the server's share: its backend's CPU for PostgreSQL, none to read for SQLite (in the process's own)
    assert cells[6] == "nan" if kind == "sqlite" else float(cells[6]) > 0
