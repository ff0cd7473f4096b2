"""The one connection policy of the gate's SQLite file: every store opens its connection here.

Pragmas: WAL journal, ``synchronous=FULL`` (a check-in is on disk before the relay acts), foreign keys, a busy
timeout. Connections run in autocommit; writes go through :meth:`Database.transaction`, which takes the
write lock up front (``BEGIN IMMEDIATE``) so two writers never deadlock half-way. One connection is shared by
the gate's threads behind a re-entrant lock. Opening a database brings its schema up to date
(:func:`gate.store.schema.migrate`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .schema import migrate

BUSY_TIMEOUT_MS = 5000
PRAGMAS: dict[str, str | int] = {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                                 "busy_timeout": BUSY_TIMEOUT_MS}


def open_connection(path: Path) -> sqlite3.Connection:
    """A connection to ``path`` with the gate's pragmas, in autocommit mode, usable from any thread."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False, cached_statements=64)
    for name, value in PRAGMAS.items():
        conn.execute(f"PRAGMA {name} = {value}")
    return conn


class Database:
    """One SQLite file on the gate's connection policy, its schema migrated on open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.conn = open_connection(path)
        try:
            with self.lock:
                migrate(self.conn)
        except BaseException:
            self.conn.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: committed (synchronous FULL) on success, else rolled back."""
        with self.lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (e.g. after a disk I/O error)
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def fetch_one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        with self.lock:
            row: tuple[Any, ...] | None = self.conn.execute(sql, params).fetchone()
        return row

    def fetch_all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Every row of a query."""
        with self.lock:
            return list(self.conn.execute(sql, params).fetchall())

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run one statement in autocommit; returns the rows it changed."""
        with self.lock:
            return self.conn.execute(sql, params).rowcount

    def pragma(self, name: str) -> Any:
        """Read a SQLite pragma (for checks and tests)."""
        row = self.fetch_one(f"PRAGMA {name}")
        return None if row is None else row[0]

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self.lock:
            self.conn.close()
