"""Two processes writing one SQLite file: read-then-write transactions wait instead of failing."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from central.core.db import database, open_database
from central.invitations.models import Organisation
from central.migrations import migrate


def _writer(url: str, prefix: str, count: int, errors) -> None:
    open_database(url)
    for index in range(count):
        try:
            with database.connection_context(), database.atomic():
                name = f"{prefix} {index}"
                if not Organisation.select().where(Organisation.name == name).exists():
                    Organisation.create(name=name)
        except Exception as exc:
            errors.put(repr(exc))


def test_concurrent_read_then_write_transactions_do_not_fail(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'central.db'}"
    open_database(url)
    migrate()
    context = multiprocessing.get_context("fork")  # the writer lives in this test module, not importable by name
    errors = context.Queue()
    writers = [context.Process(target=_writer, args=(url, f"Sở {n}", 150, errors)) for n in range(3)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
    assert [process.exitcode for process in writers] == [0, 0, 0]
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert problems == []
    with database.connection_context():
        assert Organisation.select().count() == 450
