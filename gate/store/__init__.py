"""The gate's local store (plain ``sqlite3``): reference data, outbox, passages and the command store.

The gate decides from this store alone, so it keeps working while central is unreachable. Nothing here imports
an ORM: a gate process loads neither peewee nor, through it, psycopg.

- :mod:`.connection`: the one connection policy (pragmas, ``BEGIN IMMEDIATE`` transactions);
- :mod:`.schema`: the schema as ``PRAGMA user_version`` migrations;
- :mod:`.reference` / :mod:`.snapshots`: meetings, delegates, keys, revocations, changes and snapshot staging;
- :mod:`.outbox`, :mod:`.passages`, :mod:`.commands`.

Each :class:`GateStore` owns its own connection (nothing global), so tests can run several gates in one process.
"""

from __future__ import annotations

from pathlib import Path

from .commands import CommandStore
from .connection import Database
from .outbox import Outbox, OutboxRow
from .passages import Passages
from .reference import CacheView, ChangeResult
from .schema import LATEST_VERSION, SchemaTooNewError
from .snapshots import SnapshotSource, SnapshotStaging, StagedSnapshot

DB_FILENAME = "gate-cache.sqlite3"

__all__ = [
    "DB_FILENAME",
    "LATEST_VERSION",
    "CacheView",
    "ChangeResult",
    "CommandStore",
    "GateStore",
    "OutboxRow",
    "SchemaTooNewError",
    "SnapshotSource",
    "StagedSnapshot",
]


def database_path(path: str | Path) -> Path:
    """The database file for ``path``: the file itself, or ``gate-cache.sqlite3`` in a directory (created)."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path.mkdir(parents=True, exist_ok=True)
        return path / DB_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


class GateStore(SnapshotStaging, Outbox, Passages):
    """The gate's SQLite store; implements :class:`CacheView` for ``decide()``.

    ``path`` is the database file, or a directory (``data_dir``) in which ``gate-cache.sqlite3`` is used.
    Raises :class:`SchemaTooNewError` for a file written by a newer release.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = database_path(path)
        super().__init__(Database(self.path))
        self.remove_stale_staging()

    def close(self) -> None:
        """Close the database connection (idempotent)."""
        self._db.close()

    def pragma(self, name: str) -> object:
        """Read a SQLite pragma (for checks and tests)."""
        return self._db.pragma(name)
