"""Reference data: the meetings, delegates and signing keys the gate decides from, and central's change stream.

The scan path is a handful of fixed SQL statements (``sqlite3`` keeps them prepared in its statement cache);
meetings and trusted keys are held in memory and reloaded when a change or a snapshot touches them. Compact
codes are stored ONLY as hashes. :class:`CacheView` is the read-only face ``decide()`` sees.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from coincurve import PublicKey as ShortPublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocols.codes import public_key_from_text, short_public_key_from_text
from protocols.payloads import (
    Change,
    DelegateEntry,
    DelegateRevoke,
    DelegateUpsert,
    KeyAdd,
    KeyEntry,
    KeyRevoke,
    MeetingEntry,
    MeetingUpsert,
)

from .connection import Database
from .rows import (
    DELEGATE_COLUMNS,
    MEETING_COLUMNS,
    SQL_UPSERT_DELEGATE,
    SQL_UPSERT_KEY,
    SQL_UPSERT_MEETING,
    delegate_entry,
    delegate_row,
    meeting_entry,
    meeting_row,
    timestamp,
)

log = logging.getLogger(__name__)

_SELECT_DELEGATE = f"SELECT {', '.join(DELEGATE_COLUMNS)} FROM delegates"
SQL_DELEGATE_BY_HASH = f"{_SELECT_DELEGATE} WHERE code_hash = ? LIMIT 1"
SQL_DELEGATE_BY_ID = f"{_SELECT_DELEGATE} WHERE meeting_id = ? AND delegate_id = ?"
SQL_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
SQL_GET_META = "SELECT value FROM meta WHERE key = ?"


class CacheView(Protocol):
    """The read-only view of the gate's data that ``decide()`` sees."""

    def lookup_code_hash(self, code_hash: str) -> DelegateEntry | None:
        """The delegate holding the compact code with this hash, or None."""

    def delegate(self, meeting_id: int, delegate_id: int) -> DelegateEntry | None:
        """A delegate of a meeting, or None."""

    def meeting(self, meeting_id: int) -> MeetingEntry | None:
        """A meeting, or None."""

    def public_keys(self) -> dict[int, Ed25519PublicKey]:
        """The trusted (not revoked) signing keys by key id."""

    def short_public_keys(self) -> dict[int, ShortPublicKey]:
        """The trusted (not revoked) short keys (version 2 signed codes) by key id."""

    def has_entered(self, credential: str) -> bool:
        """True when a passage in with this credential was recorded (here or at another gate of the site)."""

    def last_entry_at(self, credential: str) -> datetime | None:
        """When the latest passage in with this credential was made (here or at another gate of the site), or None."""

    def is_inside(self, credential: str) -> bool:
        """True when the holder's last recorded passage with this credential was in (not followed by out)."""


class ChangeResult(StrEnum):
    """What :meth:`ReferenceData.apply_change` did with one change of the stream."""

    APPLIED = "applied"  # seq == cache.seq + 1: applied, cache.seq advanced
    REPEATED = "repeated"  # seq <= cache.seq: already in the cache, ignored
    GAP = "gap"  # seq > cache.seq + 1: changes are missing, nothing applied; a snapshot is needed


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Write one sync-state value (inside the caller's transaction)."""
    conn.execute(SQL_SET_META, (key, value))


class ReferenceData:
    """Meetings, delegates, keys and the sync state (``seq``, ``synced_at``) on ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._keys: dict[int, Ed25519PublicKey] = {}
        self._short_keys: dict[int, ShortPublicKey] = {}
        self._meetings: dict[int, MeetingEntry] | None = None
        self.reload()

    def reload(self) -> None:
        """Drop the in-memory meetings and reload the trusted keys (after the tables were replaced)."""
        self._meetings = None
        self._load_keys()

    # ----- sync state

    def _get_meta(self, key: str) -> str | None:
        row = self._db.fetch_one(SQL_GET_META, (key,))
        return None if row is None else str(row[0])

    @property
    def seq(self) -> int:
        """The change sequence of the cached data (0 before the first snapshot)."""
        value = self._get_meta("seq")
        return int(value) if value is not None else 0

    @property
    def synced_at(self) -> datetime | None:
        """When the cache last got news from central (a snapshot loaded or a change applied), or None."""
        value = self._get_meta("synced_at")
        return datetime.fromisoformat(value) if value is not None else None

    # ----- changes

    def apply_change(self, change: Change, now: datetime, site_id: str | None = None) -> ChangeResult:
        """Apply one change of central's stream if it is the next one for this gate.

        On the site's stream (``change.prev`` set) the next one is any change with ``prev <= cache.seq < seq``; on
        the legacy global stream (no ``prev``) it is ``seq == cache.seq + 1``. In one transaction: the change, the
        new ``seq`` and ``synced_at = now``. A repeated change (``seq <= cache.seq``) and a change after a gap
        (``prev > cache.seq``, or ``seq > cache.seq + 1`` without ``prev``) change nothing.

        With ``site_id`` (the gate's site), a meeting upsert that no longer names that site (a remote point removed,
        a hall moved) deletes the meeting and its delegates, names and code hashes, as a new snapshot would.
        """
        body = change.body
        with self._db.lock:
            with self._db.transaction() as conn:
                row = conn.execute(SQL_GET_META, ("seq",)).fetchone()
                current = int(row[0]) if row is not None else 0
                if change.seq <= current:
                    return ChangeResult.REPEATED
                follows = change.prev if change.prev is not None else change.seq - 1  # the change it comes after
                if follows > current:
                    return ChangeResult.GAP
                _apply_body(conn, body)
                if isinstance(body, MeetingUpsert) and site_id is not None and site_id not in body.meeting.gate_sites:
                    conn.execute("DELETE FROM delegates WHERE meeting_id = ?", (body.meeting.id,))
                    conn.execute("DELETE FROM meetings WHERE id = ?", (body.meeting.id,))
                set_meta(conn, "seq", str(change.seq))
                set_meta(conn, "synced_at", now.isoformat())
            if isinstance(body, MeetingUpsert):
                self._meetings = None
            if isinstance(body, KeyAdd | KeyRevoke):
                self._load_keys()
        return ChangeResult.APPLIED

    def prune_ended_meetings(self, before: datetime) -> int:
        """Delete the meetings that ended before ``before`` and their delegates (names, positions, code hashes),
        as a new snapshot, which holds only meetings not yet over, would. Returns how many meetings went."""
        cutoff = timestamp(before)
        with self._db.lock:
            with self._db.transaction() as conn:
                conn.execute("DELETE FROM delegates WHERE meeting_id IN (SELECT id FROM meetings WHERE ends_at < ?)",
                             (cutoff,))
                deleted = int(conn.execute("DELETE FROM meetings WHERE ends_at < ?", (cutoff,)).rowcount)
            if deleted:
                self._meetings = None
        return deleted

    # ----- CacheView

    def lookup_code_hash(self, code_hash: str) -> DelegateEntry | None:
        """The delegate holding the compact code with this hash, or None."""
        row = self._db.fetch_one(SQL_DELEGATE_BY_HASH, (code_hash,))
        return None if row is None else delegate_entry(row)

    def delegate(self, meeting_id: int, delegate_id: int) -> DelegateEntry | None:
        """A delegate of a meeting, or None."""
        row = self._db.fetch_one(SQL_DELEGATE_BY_ID, (meeting_id, delegate_id))
        return None if row is None else delegate_entry(row)

    def meeting(self, meeting_id: int) -> MeetingEntry | None:
        """A meeting, or None (from memory; reloaded after a snapshot or a meeting change)."""
        meetings = self._meetings
        if meetings is None:
            with self._db.lock:
                rows = self._db.fetch_all(f"SELECT {', '.join(MEETING_COLUMNS)} FROM meetings")
                meetings = {row[0]: meeting_entry(row) for row in rows}
                self._meetings = meetings
        return meetings.get(meeting_id)

    def public_keys(self) -> dict[int, Ed25519PublicKey]:
        """The trusted (not revoked) signing keys by key id, held in memory."""
        return self._keys

    def short_public_keys(self) -> dict[int, ShortPublicKey]:
        """The trusted (not revoked) short keys of version 2 signed codes by key id, held in memory."""
        return self._short_keys

    def keys(self) -> list[KeyEntry]:
        """All cached key entries, revoked ones included."""
        rows = self._db.fetch_all("SELECT key_id, public_key, revoked, short_key FROM signing_keys")
        return [KeyEntry(key_id=k, public_key=p, revoked=bool(r), short_key=sk) for k, p, r, sk in rows]

    def delegate_count(self) -> int:
        """How many delegates are cached."""
        row = self._db.fetch_one("SELECT count(*) FROM delegates")
        return int(row[0]) if row is not None else 0

    def _load_keys(self) -> None:
        rows = self._db.fetch_all("SELECT key_id, public_key, short_key FROM signing_keys WHERE revoked = 0")
        keys: dict[int, Ed25519PublicKey] = {}
        short_keys: dict[int, ShortPublicKey] = {}
        for key_id, text, short_text in rows:
            try:
                keys[key_id] = public_key_from_text(text)
            except Exception:
                log.warning("signing key key_id=%d is not a valid Ed25519 public key; ignored", key_id)
            if short_text:
                try:
                    short_keys[key_id] = short_public_key_from_text(short_text)
                except ValueError:
                    log.warning("signing key key_id=%d has an invalid short public key; ignored", key_id)
        self._keys, self._short_keys = keys, short_keys


def _apply_body(conn: sqlite3.Connection, body: object) -> None:
    """Write one change body (inside the caller's transaction)."""
    if isinstance(body, DelegateUpsert):
        conn.execute(SQL_UPSERT_DELEGATE, delegate_row(body.delegate))
    elif isinstance(body, DelegateRevoke):
        updated = conn.execute("UPDATE delegates SET revoked = 1 WHERE meeting_id = ? AND delegate_id = ?",
                               (body.meeting_id, body.delegate_id)).rowcount
        if not updated:
            # A delegate never seen here (registered after the last sync, e.g. with a signed code):
            # remember the revocation so a signed code of theirs is refused too.
            conn.execute(SQL_UPSERT_DELEGATE, (body.meeting_id, body.delegate_id, "", "", "", None, 0.0, 0.0, 1))
    elif isinstance(body, MeetingUpsert):
        conn.execute(SQL_UPSERT_MEETING, meeting_row(body.meeting))
    elif isinstance(body, KeyAdd):
        conn.execute(SQL_UPSERT_KEY, (body.key.key_id, body.key.public_key, int(body.key.revoked), body.key.short_key))
    elif isinstance(body, KeyRevoke):
        updated = conn.execute("UPDATE signing_keys SET revoked = 1 WHERE key_id = ?", (body.key_id,)).rowcount
        if not updated:
            conn.execute(SQL_UPSERT_KEY, (body.key_id, "", 1, None))
    else:  # pragma: no cover - the payload model admits only the kinds above
        raise TypeError(f"unknown change body {type(body).__name__}")
