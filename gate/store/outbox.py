"""The outbox: check-ins recorded before the turnstile acts, kept until central acknowledges them.

A row is written (committed, ``synchronous=FULL``) before any relay action. With a passage sensor it is held
back (``awaiting_outcome``) until the turnstile cycle reports what happened. Delivered rows are kept for
``[outbox] keep_delivered_hours`` (for the guard and for diagnosis) and then pruned by the service loop
(:meth:`Outbox.prune_delivered`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from protocols.payloads import CheckIn

from .connection import Database
from .passages import consume
from .rows import moment, optional_moment, timestamp

OUTBOX_COLUMNS = ("checkin_id", "payload", "created_at", "last_sent_at", "attempts", "delivered_at",
                  "awaiting_outcome")
SQL_INSERT_OUTBOX = "INSERT INTO outbox (checkin_id, payload, created_at, attempts, awaiting_outcome) " \
                    "VALUES (?, ?, ?, 0, ?)"
SQL_SELECT_OUTBOX = f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox"


@dataclass(frozen=True)
class OutboxRow:
    """One check-in waiting for (or having received) central's acknowledgement."""

    checkin_id: str
    payload: bytes
    created_at: datetime
    last_sent_at: datetime | None
    attempts: int
    delivered_at: datetime | None
    awaiting_outcome: bool = False


def _outbox_row(row: tuple[Any, ...]) -> OutboxRow:
    checkin_id, payload, created_at, last_sent_at, attempts, delivered_at, awaiting = row
    return OutboxRow(
        checkin_id=checkin_id, payload=bytes(payload), created_at=moment(created_at),
        last_sent_at=optional_moment(last_sent_at), attempts=attempts, delivered_at=optional_moment(delivered_at),
        awaiting_outcome=bool(awaiting),
    )


class Outbox:
    """Check-ins on their way to central."""

    _db: Database

    def add_checkin(self, checkin: CheckIn, payload: bytes, now: datetime, awaiting_outcome: bool = False,
                    consumed: bool = False) -> None:
        """Record a check-in durably (committed with synchronous=FULL) before the turnstile acts on it.

        ``awaiting_outcome``: the turnstile cycle has yet to say whether the person passed; the row is not
        delivered until :meth:`complete_checkin`. ``consumed``: the passage is already known (no sensor) and
        its credential is recorded as used in the same transaction.
        """
        with self._db.transaction() as conn:
            conn.execute(SQL_INSERT_OUTBOX, (str(checkin.id), payload, timestamp(now), int(awaiting_outcome)))
            if consumed and checkin.credential:
                consume(conn, checkin, now)

    def complete_checkin(self, checkin: CheckIn, payload: bytes, now: datetime, consumed: bool) -> bool:
        """Store the final version of a check-in whose outcome is now known and release it for delivery.

        ``consumed``: the person passed; the credential is recorded as used (same transaction). Returns False
        when the row is unknown or was already completed (then nothing changes).
        """
        with self._db.transaction() as conn:
            updated = conn.execute(
                "UPDATE outbox SET payload = ?, awaiting_outcome = 0 WHERE checkin_id = ? AND awaiting_outcome = 1",
                (payload, str(checkin.id)),
            ).rowcount
            if updated and consumed and checkin.credential:
                consume(conn, checkin, now)
        return bool(updated)

    def awaiting_rows(self) -> list[OutboxRow]:
        """Rows whose outcome was never recorded (the gate stopped or died during their cycle)."""
        rows = self._db.fetch_all(f"{SQL_SELECT_OUTBOX} WHERE awaiting_outcome = 1 ORDER BY created_at")
        return [_outbox_row(r) for r in rows]

    def outbox_due(self, now: datetime, resend_after_s: float, limit: int = 100) -> list[OutboxRow]:
        """Undelivered rows never sent, or last sent at least ``resend_after_s`` ago, oldest first."""
        rows = self._db.fetch_all(
            f"{SQL_SELECT_OUTBOX} WHERE delivered_at IS NULL AND awaiting_outcome = 0 "
            "AND (last_sent_at IS NULL OR last_sent_at <= ?) ORDER BY created_at LIMIT ?",
            (timestamp(now) - resend_after_s, limit),
        )
        return [_outbox_row(r) for r in rows]

    def mark_sent(self, checkin_id: str, now: datetime) -> None:
        """Note one more publish attempt of a check-in."""
        self._db.execute("UPDATE outbox SET last_sent_at = ?, attempts = attempts + 1 WHERE checkin_id = ?",
                         (timestamp(now), checkin_id))

    def mark_delivered(self, checkin_id: str, now: datetime) -> bool | None:
        """Mark a check-in acknowledged by central.

        Returns True when it was pending, False when it was already delivered, None when the id is unknown.
        """
        with self._db.transaction() as conn:
            row = conn.execute("SELECT delivered_at FROM outbox WHERE checkin_id = ?", (checkin_id,)).fetchone()
            if row is None:
                return None
            if row[0] is not None:
                return False
            conn.execute("UPDATE outbox SET delivered_at = ? WHERE checkin_id = ?", (timestamp(now), checkin_id))
            return True

    def prune_delivered(self, before: datetime) -> int:
        """Delete rows central acknowledged before ``before``; undelivered rows are never touched. Returns how
        many were deleted."""
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                                (timestamp(before),)).rowcount

    def outbox_row(self, checkin_id: str) -> OutboxRow | None:
        """One outbox row by check-in id, or None."""
        row = self._db.fetch_one(f"{SQL_SELECT_OUTBOX} WHERE checkin_id = ?", (checkin_id,))
        return None if row is None else _outbox_row(row)

    def outbox_rows(self) -> Iterator[OutboxRow]:
        """Every outbox row, oldest first."""
        return iter([_outbox_row(r) for r in self._db.fetch_all(f"{SQL_SELECT_OUTBOX} ORDER BY created_at")])

    def outbox_pending(self) -> int:
        """How many check-ins still wait for central's acknowledgement."""
        row = self._db.fetch_one("SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
        return int(row[0]) if row is not None else 0
