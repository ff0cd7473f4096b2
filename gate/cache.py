"""The gate's local cache (plain ``sqlite3``): meetings, delegates, signing keys, sync state and the outbox.

The gate decides from this cache alone, so it keeps working while central is unreachable. Compact codes are
stored ONLY as hashes. Check-ins are written to the outbox with ``synchronous=FULL`` before the turnstile
opens, and stay there until central acknowledges them.

The scan path is a handful of fixed SQL statements (``sqlite3`` keeps them prepared in its statement cache),
meetings and trusted keys are held in memory, and nothing here imports an ORM: a gate process loads neither
peewee nor, through it, psycopg.

A snapshot is loaded without holding it in memory: its entries (a :class:`Snapshot`, or any
:class:`SnapshotSource` such as the stream :func:`gate.sync.fetch_snapshot` returns) are written in batches
into a scratch SQLite file beside the cache while scans go on (:meth:`GateCache.stage_snapshot`), then swapped
into the cache in one short transaction (:meth:`GateCache.swap_in`). A source that fails half-way (a bad entry,
a cut connection) leaves the cache as it was.

Each :class:`GateCache` owns its own connection (nothing global), so tests can run several gates in one
process. One SQLite connection is shared by the gate's threads behind a lock.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocols.codes import Scheme, public_key_from_text
from protocols.payloads import (
    Change,
    CheckIn,
    DelegateEntry,
    DelegateRevoke,
    DelegateUpsert,
    Direction,
    KeyAdd,
    KeyEntry,
    KeyRevoke,
    MeetingEntry,
    MeetingUpsert,
    Snapshot,
)

log = logging.getLogger(__name__)

DB_FILENAME = "gate-cache.sqlite3"
STAGING_SUFFIX = ".snapshot-staging"
STALE_STAGING_S = 3600.0
BATCH_SIZE = 5000
BUSY_TIMEOUT_MS = 5000
PRAGMAS = {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": BUSY_TIMEOUT_MS}

# The schema (the same tables, columns and index names as the peewee models of earlier versions, so an existing
# cache file opens unchanged).
SCHEMA = (
    'CREATE TABLE IF NOT EXISTS "meetings" ("id" INTEGER NOT NULL PRIMARY KEY, "title" TEXT NOT NULL, '
    '"scheme" TEXT NOT NULL, "starts_at" REAL NOT NULL, "ends_at" REAL NOT NULL, "site_id" TEXT NOT NULL, '
    '"venue" TEXT NOT NULL, "status" TEXT NOT NULL, "entry_policy" TEXT NOT NULL)',
    'CREATE TABLE IF NOT EXISTS "delegates" ("id" INTEGER NOT NULL PRIMARY KEY, "meeting_id" INTEGER NOT NULL, '
    '"delegate_id" INTEGER NOT NULL, "name" TEXT NOT NULL, "organisation" TEXT NOT NULL, '
    '"position" TEXT NOT NULL, "code_hash" TEXT, "valid_from" REAL NOT NULL, "valid_until" REAL NOT NULL, '
    '"revoked" INTEGER NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "delegate_code_hash" ON "delegates" ("code_hash")',
    'CREATE UNIQUE INDEX IF NOT EXISTS "delegate_meeting_id_delegate_id" ON "delegates" '
    '("meeting_id", "delegate_id")',
    'CREATE TABLE IF NOT EXISTS "signing_keys" ("key_id" INTEGER NOT NULL PRIMARY KEY, '
    '"public_key" TEXT NOT NULL, "revoked" INTEGER NOT NULL)',
    'CREATE TABLE IF NOT EXISTS "meta" ("key" TEXT NOT NULL PRIMARY KEY, "value" TEXT NOT NULL)',
    'CREATE TABLE IF NOT EXISTS "outbox" ("checkin_id" TEXT NOT NULL PRIMARY KEY, "payload" BLOB NOT NULL, '
    '"created_at" REAL NOT NULL, "last_sent_at" REAL, "attempts" INTEGER NOT NULL DEFAULT 0, '
    '"delivered_at" REAL, "awaiting_outcome" INTEGER NOT NULL DEFAULT 0)',
    'CREATE INDEX IF NOT EXISTS "outbox_created_at" ON "outbox" ("created_at")',
    'CREATE INDEX IF NOT EXISTS "outbox_delivered_at" ON "outbox" ("delivered_at")',
    'CREATE TABLE IF NOT EXISTS "consumed" ("credential" TEXT NOT NULL PRIMARY KEY, "checkin_id" TEXT NOT NULL, '
    '"at" REAL NOT NULL, "entered" INTEGER NOT NULL DEFAULT 1, "inside" INTEGER NOT NULL DEFAULT 1, '
    '"gate_id" TEXT)',
)

MEETING_COLUMNS = ("id", "title", "scheme", "starts_at", "ends_at", "site_id", "venue", "status", "entry_policy")
DELEGATE_COLUMNS = ("meeting_id", "delegate_id", "name", "organisation", "position", "code_hash", "valid_from",
                    "valid_until", "revoked")
KEY_COLUMNS = ("key_id", "public_key", "revoked")
OUTBOX_COLUMNS = ("checkin_id", "payload", "created_at", "last_sent_at", "attempts", "delivered_at",
                  "awaiting_outcome")


_SELECT_DELEGATE = f"SELECT {', '.join(DELEGATE_COLUMNS)} FROM delegates"
SQL_DELEGATE_BY_HASH = f"{_SELECT_DELEGATE} WHERE code_hash = ? LIMIT 1"
SQL_DELEGATE_BY_ID = f"{_SELECT_DELEGATE} WHERE meeting_id = ? AND delegate_id = ?"
SQL_PASSAGE = "SELECT checkin_id, at, entered, inside FROM consumed WHERE credential = ?"
SQL_INSERT_OUTBOX = "INSERT INTO outbox (checkin_id, payload, created_at, attempts, awaiting_outcome) " \
                    "VALUES (?, ?, ?, 0, ?)"
SQL_SELECT_OUTBOX = f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox"
SQL_UPSERT_DELEGATE = "INSERT OR REPLACE INTO delegates ({}) VALUES ({})".format(
    ", ".join(DELEGATE_COLUMNS), ", ".join("?" * len(DELEGATE_COLUMNS)))
SQL_UPSERT_MEETING = "INSERT OR REPLACE INTO meetings ({}) VALUES ({})".format(
    ", ".join(MEETING_COLUMNS), ", ".join("?" * len(MEETING_COLUMNS)))
SQL_UPSERT_KEY = "INSERT OR REPLACE INTO signing_keys (key_id, public_key, revoked) VALUES (?, ?, ?)"
SQL_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
SQL_GET_META = "SELECT value FROM meta WHERE key = ?"


class CacheView(Protocol):
    """The read-only view of the cache that ``decide()`` sees."""

    def lookup_code_hash(self, code_hash: str) -> DelegateEntry | None:
        """The delegate holding the compact code with this hash, or None."""

    def delegate(self, meeting_id: int, delegate_id: int) -> DelegateEntry | None:
        """A delegate of a meeting, or None."""

    def meeting(self, meeting_id: int) -> MeetingEntry | None:
        """A meeting, or None."""

    def public_keys(self) -> dict[int, Ed25519PublicKey]:
        """The trusted (not revoked) signing keys by key id."""

    def has_entered(self, credential: str) -> bool:
        """True when a passage in with this credential was recorded (here or at another gate of the site)."""

    def is_inside(self, credential: str) -> bool:
        """True when the holder's last recorded passage with this credential was in (not followed by out)."""


SnapshotItem = MeetingEntry | DelegateEntry | KeyEntry


class SnapshotSource(Protocol):
    """A snapshot whose entries are read once, in order, without holding them all (e.g. an HTTP stream).

    ``entries()`` yields validated entries and raises (any exception) when the source turns out bad or
    incomplete; the cache then keeps its previous content.
    """

    @property
    def seq(self) -> int:
        """The change sequence the snapshot reflects."""

    @property
    def generated_at(self) -> datetime:
        """When central generated it."""

    def entries(self) -> Iterable[SnapshotItem]:
        """Every meeting, delegate and key entry."""


class ChangeResult(StrEnum):
    """What :meth:`GateCache.apply_change` did with one change of the stream."""

    APPLIED = "applied"  # seq == cache.seq + 1: applied, cache.seq advanced
    REPEATED = "repeated"  # seq <= cache.seq: already in the cache, ignored
    GAP = "gap"  # seq > cache.seq + 1: changes are missing, nothing applied; a snapshot is needed


@dataclass
class StagedSnapshot:
    """A snapshot written to its scratch file by :meth:`GateCache.stage_snapshot`, not swapped in yet."""

    seq: int
    generated_at: datetime
    path: Path
    meetings: int = 0
    delegates: int = 0
    keys: int = 0


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


def _ts(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError("naive datetime; the gate works in aware UTC datetimes")
    return moment.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _aware(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _delegate_row(d: DelegateEntry) -> tuple[Any, ...]:
    return (d.meeting_id, d.id, d.name, d.organisation, d.position, d.code_hash, _ts(d.valid_from),
            _ts(d.valid_until), int(d.revoked))


def _meeting_row(m: MeetingEntry) -> tuple[Any, ...]:
    return (m.id, m.title, m.scheme.value, _ts(m.starts_at), _ts(m.ends_at), m.site_id, m.venue, m.status,
            m.entry_policy)


def _delegate_entry(row: tuple[Any, ...]) -> DelegateEntry:
    # Rows were validated on their way in (snapshot or change): construct without validating again.
    return DelegateEntry.model_construct(
        meeting_id=row[0], id=row[1], name=row[2], organisation=row[3], position=row[4], code_hash=row[5],
        valid_from=_aware(row[6]), valid_until=_aware(row[7]), revoked=bool(row[8]),
    )


def _meeting_entry(row: tuple[Any, ...]) -> MeetingEntry:
    return MeetingEntry.model_construct(
        id=row[0], title=row[1], scheme=Scheme(row[2]), starts_at=_aware(row[3]), ends_at=_aware(row[4]),
        site_id=row[5], venue=row[6], status=row[7], entry_policy=row[8],
    )


def _snapshot_entries(snapshot: Snapshot | SnapshotSource) -> Iterable[SnapshotItem]:
    if isinstance(snapshot, Snapshot):
        return itertools.chain(snapshot.meetings, snapshot.delegates, snapshot.keys)
    return snapshot.entries()


class GateCache:
    """The gate's SQLite cache; implements :class:`CacheView` for ``decide()``.

    ``path`` is the database file, or a directory (``data_dir``) in which ``gate-cache.sqlite3`` is used.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir() or not path.suffix:
            path.mkdir(parents=True, exist_ok=True)
            path = path / DB_FILENAME
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        # isolation_level=None: autocommit; transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self._conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                     check_same_thread=False, cached_statements=64)
        with self._lock:
            for name, value in PRAGMAS.items():
                self._conn.execute(f"PRAGMA {name} = {value}")
            for ddl in SCHEMA:
                self._conn.execute(ddl)
            self._migrate()
        self._keys: dict[int, Ed25519PublicKey] = {}
        self._meetings: dict[int, MeetingEntry] | None = None
        self._load_keys()
        for stale in self.staging_files():
            # Left by a gate that stopped while staging a snapshot (a fresh one may be another instance's).
            with suppress(FileNotFoundError):
                if time.time() - stale.stat().st_mtime > STALE_STAGING_S:
                    stale.unlink()

    # ----- lifecycle

    def _migrate(self) -> None:
        """Add columns introduced after a cache file was created (SQLite ALTER TABLE ADD COLUMN)."""
        columns = self._columns("outbox")
        if "awaiting_outcome" not in columns:
            self._conn.execute("ALTER TABLE outbox ADD COLUMN awaiting_outcome INTEGER NOT NULL DEFAULT 0")
        consumed = self._columns("consumed")
        for column, ddl in (("entered", "INTEGER NOT NULL DEFAULT 1"), ("inside", "INTEGER NOT NULL DEFAULT 1"),
                            ("gate_id", "TEXT")):
            if column not in consumed:
                self._conn.execute(f"ALTER TABLE consumed ADD COLUMN {column} {ddl}")

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self._conn.execute(f'PRAGMA table_info("{table}")')}

    def close(self) -> None:
        """Close the database connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def pragma(self, name: str) -> Any:
        """Read a SQLite pragma (for checks and tests)."""
        with self._lock:
            return self._conn.execute(f"PRAGMA {name}").fetchone()[0]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: committed (synchronous FULL) on success, else rolled back."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (e.g. after a disk I/O error)
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ----- snapshot

    def load_snapshot(self, snapshot: Snapshot | SnapshotSource, now: datetime) -> None:
        """Replace all cached meetings, delegates and keys with the snapshot's: :meth:`stage_snapshot`, then
        :meth:`swap_in`.

        Readers see either the old data or the new, never a mix. When the source raises (a bad entry, a cut
        stream) the exception propagates and the cache is unchanged. A delegate id repeated within a meeting
        keeps the last entry.
        """
        self.swap_in(self.stage_snapshot(snapshot), now)

    def stage_snapshot(self, snapshot: Snapshot | SnapshotSource) -> StagedSnapshot:
        """Read the snapshot's entries into a new scratch SQLite file beside the cache (no journal), in
        batches, without the cache's lock: scans are decided from the cached data meanwhile.

        Returns the staged snapshot for :meth:`swap_in` or :meth:`discard`. When the source raises, the
        scratch file is removed and the exception propagates.
        """
        staged = StagedSnapshot(seq=snapshot.seq, generated_at=snapshot.generated_at,
                                path=self.path.with_name(f"{self.path.name}{STAGING_SUFFIX}-{uuid.uuid4().hex}"))
        staging = sqlite3.connect(str(staged.path), isolation_level=None)
        meetings: list[tuple[Any, ...]] = []
        delegates: list[tuple[Any, ...]] = []
        keys: list[tuple[Any, ...]] = []
        try:
            staging.execute("PRAGMA journal_mode = OFF")
            staging.execute("PRAGMA synchronous = OFF")
            staging.execute(f"CREATE TABLE meetings ({', '.join(MEETING_COLUMNS)})")
            staging.execute(f"CREATE TABLE delegates ({', '.join(DELEGATE_COLUMNS)})")
            # Unique here already: a delegate id repeated within a meeting keeps the last entry of the stream.
            staging.execute("CREATE UNIQUE INDEX delegates_id ON delegates (meeting_id, delegate_id)")
            staging.execute(f"CREATE TABLE signing_keys ({', '.join(KEY_COLUMNS)})")
            insert_delegates = "INSERT OR REPLACE INTO delegates VALUES ({})".format(
                ", ".join("?" * len(DELEGATE_COLUMNS)))
            staging.execute("BEGIN")
            for entry in _snapshot_entries(snapshot):
                if isinstance(entry, DelegateEntry):
                    delegates.append(_delegate_row(entry))
                    if len(delegates) >= BATCH_SIZE:
                        staging.executemany(insert_delegates, delegates)
                        staged.delegates += len(delegates)
                        delegates.clear()
                elif isinstance(entry, MeetingEntry):
                    meetings.append(_meeting_row(entry))
                elif isinstance(entry, KeyEntry):
                    keys.append((entry.key_id, entry.public_key, int(entry.revoked)))
                else:
                    raise TypeError(f"not a snapshot entry: {type(entry).__name__}")
            staging.executemany(insert_delegates, delegates)
            staged.delegates += len(delegates)
            staging.executemany("INSERT INTO meetings VALUES ({})".format(", ".join("?" * len(MEETING_COLUMNS))),
                                meetings)
            staging.executemany("INSERT INTO signing_keys VALUES (?, ?, ?)", keys)
            staged.meetings, staged.keys = len(meetings), len(keys)
            staging.execute("COMMIT")
        except BaseException:
            staging.close()
            self.discard(staged)
            raise
        staging.close()
        return staged

    def swap_in(self, staged: StagedSnapshot, now: datetime) -> None:
        """Replace the cached meetings, delegates and keys with the staged ones in one transaction (the
        cache's lock held: about 0.2 s for 100,000 delegates here), then remove the scratch file."""
        delegate_columns = ", ".join(DELEGATE_COLUMNS)
        meeting_columns = ", ".join(MEETING_COLUMNS)
        try:
            with self._lock:
                self._conn.execute("ATTACH DATABASE ? AS staging", (str(staged.path),))
                try:
                    with self._transaction() as conn:
                        conn.execute("DELETE FROM main.delegates")
                        conn.execute("DELETE FROM main.meetings")
                        conn.execute("DELETE FROM main.signing_keys")
                        # rowid order: of repeated ids the last entry wins, as the stream gave them.
                        conn.execute(f"INSERT OR REPLACE INTO main.meetings ({meeting_columns}) "
                                     f"SELECT {meeting_columns} FROM staging.meetings ORDER BY rowid")
                        # Staged delegates are unique already; in code_hash order the random hashes append to
                        # their index instead of splitting pages all over it (a shorter swap).
                        conn.execute(f"INSERT OR REPLACE INTO main.delegates ({delegate_columns}) "
                                     f"SELECT {delegate_columns} FROM staging.delegates ORDER BY code_hash")
                        conn.execute("INSERT OR REPLACE INTO main.signing_keys (key_id, public_key, revoked) "
                                     "SELECT key_id, public_key, revoked FROM staging.signing_keys ORDER BY rowid")
                        self._set_meta("seq", str(staged.seq))
                        self._set_meta("synced_at", now.isoformat())
                        self._set_meta("generated_at", staged.generated_at.isoformat())
                finally:
                    self._conn.execute("DETACH DATABASE staging")
                self._meetings = None
                self._load_keys()
        finally:
            self.discard(staged)
        log.info("snapshot loaded seq=%d meetings=%d delegates=%d keys=%d", staged.seq, staged.meetings,
                 staged.delegates, staged.keys)

    def discard(self, staged: StagedSnapshot) -> None:
        """Remove a staged snapshot's scratch file (idempotent)."""
        for suffix in ("", "-journal", "-wal", "-shm"):
            with suppress(FileNotFoundError):
                Path(f"{staged.path}{suffix}").unlink()

    def staging_files(self) -> list[Path]:
        """Scratch files of snapshots being staged (or left by a gate that died while staging)."""
        return sorted(self.path.parent.glob(f"{self.path.name}{STAGING_SUFFIX}-*"))

    def apply_change(self, change: Change, now: datetime) -> ChangeResult:
        """Apply one change of central's stream if it is the next one (``seq == cache.seq + 1``).

        In one transaction: the change, the new ``seq`` and ``synced_at = now``. A repeated change
        (``seq <= cache.seq``) and a change after a gap (``seq > cache.seq + 1``) change nothing.
        """
        body = change.body
        with self._lock:
            with self._transaction():
                current = self._seq_locked()
                if change.seq <= current:
                    return ChangeResult.REPEATED
                if change.seq > current + 1:
                    return ChangeResult.GAP
                self._apply_body(body)
                self._set_meta("seq", str(change.seq))
                self._set_meta("synced_at", now.isoformat())
            if isinstance(body, MeetingUpsert):
                self._meetings = None
            if isinstance(body, KeyAdd | KeyRevoke):
                self._load_keys()
        return ChangeResult.APPLIED

    def _apply_body(self, body: object) -> None:
        """Write one change body (inside the caller's transaction)."""
        conn = self._conn
        if isinstance(body, DelegateUpsert):
            conn.execute(SQL_UPSERT_DELEGATE, _delegate_row(body.delegate))
        elif isinstance(body, DelegateRevoke):
            updated = conn.execute("UPDATE delegates SET revoked = 1 WHERE meeting_id = ? AND delegate_id = ?",
                                   (body.meeting_id, body.delegate_id)).rowcount
            if not updated:
                # A delegate never seen here (registered after the last sync, e.g. with a signed code):
                # remember the revocation so a signed code of theirs is refused too.
                conn.execute(SQL_UPSERT_DELEGATE, (body.meeting_id, body.delegate_id, "", "", "", None, 0.0, 0.0, 1))
        elif isinstance(body, MeetingUpsert):
            conn.execute(SQL_UPSERT_MEETING, _meeting_row(body.meeting))
        elif isinstance(body, KeyAdd):
            conn.execute(SQL_UPSERT_KEY, (body.key.key_id, body.key.public_key, int(body.key.revoked)))
        elif isinstance(body, KeyRevoke):
            updated = conn.execute("UPDATE signing_keys SET revoked = 1 WHERE key_id = ?", (body.key_id,)).rowcount
            if not updated:
                conn.execute(SQL_UPSERT_KEY, (body.key_id, "", 1))
        else:  # pragma: no cover - the payload model admits only the kinds above
            raise TypeError(f"unknown change body {type(body).__name__}")

    def _seq_locked(self) -> int:
        row = self._conn.execute(SQL_GET_META, ("seq",)).fetchone()
        return int(row[0]) if row is not None else 0

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute(SQL_SET_META, (key, value))

    def _get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute(SQL_GET_META, (key,)).fetchone()
        return None if row is None else row[0]

    def _load_keys(self) -> None:
        with self._lock:
            rows = self._conn.execute("SELECT key_id, public_key FROM signing_keys WHERE revoked = 0").fetchall()
        keys: dict[int, Ed25519PublicKey] = {}
        for key_id, text in rows:
            try:
                keys[key_id] = public_key_from_text(text)
            except Exception:
                log.warning("signing key key_id=%d is not a valid Ed25519 public key; ignored", key_id)
        self._keys = keys

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

    # ----- CacheView

    def lookup_code_hash(self, code_hash: str) -> DelegateEntry | None:
        """The delegate holding the compact code with this hash, or None."""
        with self._lock:
            row = self._conn.execute(SQL_DELEGATE_BY_HASH, (code_hash,)).fetchone()
        return None if row is None else _delegate_entry(row)

    def delegate(self, meeting_id: int, delegate_id: int) -> DelegateEntry | None:
        """A delegate of a meeting, or None."""
        with self._lock:
            row = self._conn.execute(SQL_DELEGATE_BY_ID, (meeting_id, delegate_id)).fetchone()
        return None if row is None else _delegate_entry(row)

    def meeting(self, meeting_id: int) -> MeetingEntry | None:
        """A meeting, or None (from memory; reloaded after a snapshot or a meeting change)."""
        meetings = self._meetings
        if meetings is None:
            with self._lock:
                rows = self._conn.execute(f"SELECT {', '.join(MEETING_COLUMNS)} FROM meetings").fetchall()
                meetings = {row[0]: _meeting_entry(row) for row in rows}
                self._meetings = meetings
        return meetings.get(meeting_id)

    def public_keys(self) -> dict[int, Ed25519PublicKey]:
        """The trusted (not revoked) signing keys by key id, held in memory."""
        return self._keys

    def keys(self) -> list[KeyEntry]:
        """All cached key entries, revoked ones included."""
        with self._lock:
            rows = self._conn.execute("SELECT key_id, public_key, revoked FROM signing_keys").fetchall()
        return [KeyEntry(key_id=k, public_key=p, revoked=bool(r)) for k, p, r in rows]

    def delegate_count(self) -> int:
        """How many delegates are cached."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM delegates").fetchone()[0])

    # ----- outbox

    def add_checkin(self, checkin: CheckIn, payload: bytes, now: datetime, awaiting_outcome: bool = False,
                    consumed: bool = False) -> None:
        """Record a check-in durably (committed with synchronous=FULL) before the turnstile acts on it.

        ``awaiting_outcome``: the turnstile cycle has yet to say whether the person passed; the row is not
        delivered until :meth:`complete_checkin`. ``consumed``: the passage is already known (no sensor) and
        its credential is recorded as used in the same transaction.
        """
        with self._transaction() as conn:
            conn.execute(SQL_INSERT_OUTBOX, (str(checkin.id), payload, _ts(now), int(awaiting_outcome)))
            if consumed and checkin.credential:
                self._consume(checkin, now)

    def complete_checkin(self, checkin: CheckIn, payload: bytes, now: datetime, consumed: bool) -> bool:
        """Store the final version of a check-in whose outcome is now known and release it for delivery.

        ``consumed``: the person passed; the credential is recorded as used (same transaction). Returns False
        when the row is unknown or was already completed (then nothing changes).
        """
        with self._transaction() as conn:
            updated = conn.execute(
                "UPDATE outbox SET payload = ?, awaiting_outcome = 0 WHERE checkin_id = ? AND awaiting_outcome = 1",
                (payload, str(checkin.id)),
            ).rowcount
            if updated and consumed and checkin.credential:
                self._consume(checkin, now)
        return bool(updated)

    def awaiting_rows(self) -> list[OutboxRow]:
        """Rows whose outcome was never recorded (the gate stopped or died during their cycle)."""
        with self._lock:
            rows = self._conn.execute(
                f"{SQL_SELECT_OUTBOX} WHERE awaiting_outcome = 1 ORDER BY created_at").fetchall()
        return [self._outbox_row(r) for r in rows]

    def _consume(self, checkin: CheckIn, now: datetime) -> bool:
        """Record the passage of ``checkin`` (its outcome is ``entered``) in the anti-passback table."""
        assert checkin.credential is not None
        return self._record_passage_locked(checkin.credential, str(checkin.id), now, checkin.direction,
                                           checkin.gate_id)

    def record_passage(self, credential: str, checkin_id: str, at: datetime, direction: Direction,
                       gate_id: str | None = None) -> bool:
        """Record a passage made with ``credential`` (e.g. reported by another gate of the site).

        Idempotent per check-in id. A passage older than the one already recorded does not undo it (an old
        "out" arriving late does not let someone in again), but an old "in" still counts as entered.
        Returns True when the state changed.
        """
        with self._transaction():
            return self._record_passage_locked(credential, checkin_id, at, direction, gate_id)

    def _record_passage_locked(self, credential: str, checkin_id: str, at: datetime, direction: Direction,
                               gate_id: str | None) -> bool:
        conn = self._conn
        row = conn.execute(SQL_PASSAGE, (credential,)).fetchone()
        entering = direction is Direction.IN
        moment = _ts(at)
        if row is None:
            conn.execute("INSERT INTO consumed (credential, checkin_id, at, entered, inside, gate_id) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (credential, checkin_id, moment, int(entering), int(entering), gate_id))
            return True
        known_id, known_at, entered, _inside = row
        if known_id == checkin_id:
            return False
        if moment < known_at:
            if entering and not entered:
                conn.execute("UPDATE consumed SET entered = 1 WHERE credential = ?", (credential,))
                return True
            return False
        conn.execute("UPDATE consumed SET checkin_id = ?, at = ?, entered = ?, inside = ?, gate_id = ? "
                     "WHERE credential = ?",
                     (checkin_id, moment, int(bool(entered) or entering), int(entering), gate_id, credential))
        return True

    def _passage(self, credential: str) -> tuple[Any, ...] | None:
        with self._lock:
            return self._conn.execute(SQL_PASSAGE, (credential,)).fetchone()  # type: ignore[no-any-return]

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

    def outbox_due(self, now: datetime, resend_after_s: float, limit: int = 100) -> list[OutboxRow]:
        """Undelivered rows never sent, or last sent at least ``resend_after_s`` ago, oldest first."""
        cutoff = _ts(now) - resend_after_s
        with self._lock:
            rows = self._conn.execute(
                f"{SQL_SELECT_OUTBOX} WHERE delivered_at IS NULL AND awaiting_outcome = 0 "
                "AND (last_sent_at IS NULL OR last_sent_at <= ?) ORDER BY created_at LIMIT ?",
                (cutoff, limit),
            ).fetchall()
        return [self._outbox_row(r) for r in rows]

    def mark_sent(self, checkin_id: str, now: datetime) -> None:
        """Note one more publish attempt of a check-in."""
        with self._lock:
            self._conn.execute("UPDATE outbox SET last_sent_at = ?, attempts = attempts + 1 WHERE checkin_id = ?",
                               (_ts(now), checkin_id))

    def mark_delivered(self, checkin_id: str, now: datetime) -> bool | None:
        """Mark a check-in acknowledged by central.

        Returns True when it was pending, False when it was already delivered, None when the id is unknown.
        """
        with self._transaction() as conn:
            row = conn.execute("SELECT delivered_at FROM outbox WHERE checkin_id = ?", (checkin_id,)).fetchone()
            if row is None:
                return None
            if row[0] is not None:
                return False
            conn.execute("UPDATE outbox SET delivered_at = ? WHERE checkin_id = ?", (_ts(now), checkin_id))
            return True

    def outbox_row(self, checkin_id: str) -> OutboxRow | None:
        """One outbox row by check-in id, or None."""
        with self._lock:
            row = self._conn.execute(f"{SQL_SELECT_OUTBOX} WHERE checkin_id = ?", (checkin_id,)).fetchone()
        return None if row is None else self._outbox_row(row)

    def outbox_rows(self) -> Iterator[OutboxRow]:
        """Every outbox row, oldest first."""
        with self._lock:
            rows = self._conn.execute(f"{SQL_SELECT_OUTBOX} ORDER BY created_at").fetchall()
        return iter([self._outbox_row(r) for r in rows])

    def outbox_pending(self) -> int:
        """How many check-ins still wait for central's acknowledgement."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0])

    @staticmethod
    def _outbox_row(row: tuple[Any, ...]) -> OutboxRow:
        checkin_id, payload, created_at, last_sent_at, attempts, delivered_at, awaiting = row
        return OutboxRow(
            checkin_id=checkin_id, payload=bytes(payload), created_at=_aware(created_at),
            last_sent_at=_dt(last_sent_at), attempts=attempts, delivered_at=_dt(delivered_at),
            awaiting_outcome=bool(awaiting),
        )
