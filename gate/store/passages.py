"""Passages: the anti-passback table of credentials used at this gate or at another gate of the site."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from protocols.payloads import CheckIn, Direction

from .connection import Database
from .rows import optional_moment, timestamp

SQL_PASSAGE = "SELECT checkin_id, at, entered, inside, entered_at FROM consumed WHERE credential = ?"
SQL_PASSAGE_MEETINGS = ("SELECT c.credential, c.at, d.meeting_id FROM consumed c "
                        "LEFT JOIN delegates d ON d.code_hash = c.credential")
"""Each passage with the meeting of its compact code (None for a signed code or a code the cache no longer has)."""


def signed_credential_meeting(credential: str) -> int | None:
    """The meeting id in a signed code's credential (``signed:<key>:<meeting>:<attendee>``, as
    :func:`gate.decision.decide` makes it), or None for any other credential."""
    parts = credential.split(":")
    if len(parts) == 4 and parts[0] == "signed" and parts[2].isdigit():
        return int(parts[2])
    return None


def record_passage(conn: sqlite3.Connection, credential: str, checkin_id: str, at: datetime,
                   direction: Direction, gate_id: str | None) -> bool:
    """Record one passage inside the caller's transaction (see :meth:`Passages.record_passage`)."""
    row = conn.execute(SQL_PASSAGE, (credential,)).fetchone()
    entering = direction is Direction.IN
    at_s = timestamp(at)
    if row is None:
        conn.execute("INSERT INTO consumed (credential, checkin_id, at, entered, inside, gate_id, entered_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (credential, checkin_id, at_s, int(entering), int(entering), gate_id,
                      at_s if entering else None))
        return True
    known_id, known_at, entered, _inside, entered_at = row
    if known_id == checkin_id:
        return False
    latest_entry = max(entered_at, at_s) if entering and entered_at is not None else (
        at_s if entering else entered_at)
    if at_s < known_at:
        if entering and latest_entry != entered_at:
            conn.execute("UPDATE consumed SET entered = 1, entered_at = ? WHERE credential = ?",
                         (latest_entry, credential))
            return True
        return False
    conn.execute("UPDATE consumed SET checkin_id = ?, at = ?, entered = ?, inside = ?, gate_id = ?, entered_at = ? "
                 "WHERE credential = ?",
                 (checkin_id, at_s, int(bool(entered) or entering), int(entering), gate_id, latest_entry,
                  credential))
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

    def last_entry_at(self, credential: str) -> datetime | None:
        """When the latest passage in with this credential was made (here or at another gate of the site), or None."""
        row = self._passage(credential)
        return optional_moment(row[4]) if row is not None else None

    def is_inside(self, credential: str) -> bool:
        """True when the latest recorded passage with this credential was in."""
        row = self._passage(credential)
        return row is not None and bool(row[3])

    def prune_consumed(self, before: datetime) -> int:
        """Forget the passages of meetings that ended before ``before``.

        A passage whose meeting the cache holds (through the compact code's delegate, or the meeting id of a signed
        credential) is deleted once that meeting ended before ``before`` (its codes, walk-ins' one-day codes too,
        expire with it, so anti-passback no longer needs it); a passage whose meeting the cache no longer knows,
        once it is older than ``before``. Returns how many were deleted.
        """
        cutoff = timestamp(before)
        with self._db.transaction() as conn:
            ends = {meeting_id: ends_at for meeting_id, ends_at in conn.execute("SELECT id, ends_at FROM meetings")}
            doomed: set[str] = set()
            for credential, at, meeting_id in conn.execute(SQL_PASSAGE_MEETINGS).fetchall():
                if meeting_id is None:
                    meeting_id = signed_credential_meeting(credential)
                ended = ends.get(meeting_id, at) if meeting_id is not None else at
                if at < cutoff and ended < cutoff:
                    doomed.add(credential)
            conn.executemany("DELETE FROM consumed WHERE credential = ?", [(c,) for c in sorted(doomed)])
            return len(doomed)

    def passages(self) -> int:
        """How many credentials have a recorded passage."""
        row = self._db.fetch_one("SELECT count(*) FROM consumed")
        return int(row[0]) if row is not None else 0

    def is_consumed(self, credential: str) -> bool:
        """True when a passage in with this credential was recorded (same as :meth:`has_entered`)."""
        return self.has_entered(credential)
