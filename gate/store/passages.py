"""Passages: the anti-passback table of credentials used at this gate or at another gate of the site."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from protocols.payloads import CheckIn, Direction

from .connection import Database
from .rows import timestamp

SQL_PASSAGE = "SELECT checkin_id, at, entered, inside FROM consumed WHERE credential = ?"


def record_passage(conn: sqlite3.Connection, credential: str, checkin_id: str, at: datetime,
                   direction: Direction, gate_id: str | None) -> bool:
    """Record one passage inside the caller's transaction (see :meth:`Passages.record_passage`)."""
    row = conn.execute(SQL_PASSAGE, (credential,)).fetchone()
    entering = direction is Direction.IN
    at_s = timestamp(at)
    if row is None:
        conn.execute("INSERT INTO consumed (credential, checkin_id, at, entered, inside, gate_id) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (credential, checkin_id, at_s, int(entering), int(entering), gate_id))
        return True
    known_id, known_at, entered, _inside = row
    if known_id == checkin_id:
        return False
    if at_s < known_at:
        if entering and not entered:
            conn.execute("UPDATE consumed SET entered = 1 WHERE credential = ?", (credential,))
            return True
        return False
    conn.execute("UPDATE consumed SET checkin_id = ?, at = ?, entered = ?, inside = ?, gate_id = ? "
                 "WHERE credential = ?",
                 (checkin_id, at_s, int(bool(entered) or entering), int(entering), gate_id, credential))
    return True


def consume(conn: sqlite3.Connection, checkin: CheckIn, now: datetime) -> bool:
    """Record the passage of ``checkin`` (its outcome is ``entered``) inside the caller's transaction."""
    assert checkin.credential is not None
    return record_passage(conn, checkin.credential, str(checkin.id), now, checkin.direction, checkin.gate_id)


class Passages:
    """Who passed with which credential, for ``decide()``'s anti-passback checks."""

    _db: Database

    def record_passage(self, credential: str, checkin_id: str, at: datetime, direction: Direction,
                       gate_id: str | None = None) -> bool:
        """Record a passage made with ``credential`` (e.g. reported by another gate of the site).

        Idempotent per check-in id. A passage older than the one already recorded does not undo it (an old
        "out" arriving late does not let someone in again), but an old "in" still counts as entered.
        Returns True when the state changed.
        """
        with self._db.transaction() as conn:
            return record_passage(conn, credential, checkin_id, at, direction, gate_id)

    def _passage(self, credential: str) -> tuple[Any, ...] | None:
        return self._db.fetch_one(SQL_PASSAGE, (credential,))

    def has_entered(self, credential: str) -> bool:
        """True when a passage in with this credential was recorded (here or at another gate of the site)."""
        row = self._passage(credential)
        return row is not None and bool(row[2])

    def is_inside(self, credential: str) -> bool:
        """True when the latest recorded passage with this credential was in."""
        row = self._passage(credential)
        return row is not None and bool(row[3])

    def is_consumed(self, credential: str) -> bool:
        """True when a passage in with this credential was recorded (same as :meth:`has_entered`)."""
        return self.has_entered(credential)
