"""The command store: central's command ids with their answers, and the gate's persisted mode.

It lives in the gate's database file, on its own connection of the same policy (WAL, ``synchronous=FULL``),
so that an id is on disk before the command acts.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from uuid import UUID

from protocols.payloads import Command, CommandResult

from .connection import Database


class CommandStore:
    """Command ids with their answers, and the gate's mode, in tables of the gate's database at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = Database(self.path)

    def claim(self, command: Command, now: datetime) -> tuple[bool, bytes | None]:
        """Record ``command`` as received. Returns (True, None) the first time; (False, stored result or None
        when a previous execution never finished) for an id seen before."""
        try:
            self._db.execute(
                "INSERT INTO command_log (command_id, action, issued_by, issued_at, received_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (str(command.id), command.action, command.issued_by, command.issued_at.timestamp(),
                 now.timestamp()),
            )
            return True, None
        except sqlite3.IntegrityError:
            row = self._db.fetch_one("SELECT result FROM command_log WHERE command_id = ?", (str(command.id),))
            return False, (bytes(row[0]) if row and row[0] is not None else None)

    def finish(self, result: CommandResult, payload: bytes) -> None:
        """Store the answer to a claimed command."""
        self._db.execute("UPDATE command_log SET ok = ?, reason = ?, result = ? WHERE command_id = ?",
                         (int(result.ok), result.reason, payload, str(result.command_id)))

    def seen(self, command_id: UUID | str) -> bool:
        """True when this command id was received before."""
        return self._db.fetch_one("SELECT 1 FROM command_log WHERE command_id = ?", (str(command_id),)) is not None

    def get_state(self, key: str) -> str | None:
        """A persisted state value (e.g. ``mode``), or None."""
        row = self._db.fetch_one("SELECT value FROM command_state WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        """Persist a state value."""
        self._db.execute("INSERT OR REPLACE INTO command_state (key, value) VALUES (?, ?)", (key, value))

    def prune(self, before: datetime) -> int:
        """Forget commands received before ``before`` (far older than any max age); returns how many."""
        return self._db.execute("DELETE FROM command_log WHERE received_at < ?", (before.timestamp(),))

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
