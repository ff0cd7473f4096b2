"""Two processes writing one SQLite file: read-then-write transactions wait instead of failing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from central.core.db import database, open_database
from central.invitations.models import Organisation
from central.migrations import migrate

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from central.core.db import database, open_database
from central.invitations.models import Organisation

url, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
open_database(url)
failures = 0
for index in range(count):
    try:
        with database.connection_context(), database.atomic():
            name = f"{prefix} {index}"
            if not Organisation.select().where(Organisation.name == name).exists():
                Organisation.create(name=name)
    except Exception as exc:
        failures += 1
        print(repr(exc), flush=True)
sys.exit(1 if failures else 0)
"""
"""A writer in a fresh interpreter: a forked copy of the test process could inherit a lock held by one of its
threads at the moment of the fork (another test's poller inside peewee's connect), and hang on it."""


def test_concurrent_read_then_write_transactions_do_not_fail(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'central.db'}"
    open_database(url)
    migrate()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, url, f"Sở {n}", "150"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for n in range(3)]
    outputs = [writer.communicate(timeout=120)[0] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0, 0], outputs
    with database.connection_context():
        assert Organisation.select().count() == 450
