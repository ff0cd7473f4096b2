"""The gate's local cache (peewee on SQLite): meetings, delegates, signing keys, sync state and the outbox.

The gate decides from this cache alone, so it keeps working while central is unreachable. Compact codes are
stored ONLY as hashes. Check-ins are written to the outbox with ``synchronous=FULL`` before the turnstile
opens, and stay there until central acknowledges them.

Each :class:`GateCache` owns its own peewee database and model classes (nothing global), so tests can run
several gates in one process. One SQLite connection is shared by the gate's threads behind a lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import peewee
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
BATCH_SIZE = 1000
PRAGMAS = {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 5000}


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


class ChangeResult(StrEnum):
    """What :meth:`GateCache.apply_change` did with one change of the stream."""

    APPLIED = "applied"  # seq == cache.seq + 1: applied, cache.seq advanced
    REPEATED = "repeated"  # seq <= cache.seq: already in the cache, ignored
    GAP = "gap"  # seq > cache.seq + 1: changes are missing, nothing applied; a snapshot is needed


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


def _make_models(db: peewee.Database) -> dict[str, type[peewee.Model]]:
    class Base(peewee.Model):
        class Meta:
            database = db

    class Meeting(Base):
        id = peewee.IntegerField(primary_key=True)
        title = peewee.TextField()
        scheme = peewee.TextField()
        starts_at = peewee.FloatField()
        ends_at = peewee.FloatField()
        site_id = peewee.TextField()
        venue = peewee.TextField()
        status = peewee.TextField()
        entry_policy = peewee.TextField()

        class Meta:
            table_name = "meetings"

    class Delegate(Base):
        meeting_id = peewee.IntegerField()
        delegate_id = peewee.IntegerField()
        name = peewee.TextField()
        organisation = peewee.TextField()
        position = peewee.TextField()
        code_hash = peewee.TextField(null=True, index=True)
        valid_from = peewee.FloatField()
        valid_until = peewee.FloatField()
        revoked = peewee.BooleanField(default=False)

        class Meta:
            table_name = "delegates"
            indexes = ((("meeting_id", "delegate_id"), True),)

    class SigningKey(Base):
        key_id = peewee.IntegerField(primary_key=True)
        public_key = peewee.TextField()
        revoked = peewee.BooleanField(default=False)

        class Meta:
            table_name = "signing_keys"

    class Meta(Base):
        key = peewee.TextField(primary_key=True)
        value = peewee.TextField()

        class Meta:
            table_name = "meta"

    class Outbox(Base):
        checkin_id = peewee.TextField(primary_key=True)
        payload = peewee.BlobField()
        created_at = peewee.FloatField(index=True)
        last_sent_at = peewee.FloatField(null=True)
        attempts = peewee.IntegerField(default=0)
        delivered_at = peewee.FloatField(null=True, index=True)
        # True while the turnstile cycle of this check-in runs: its outcome is not known yet, so it is held
        # back from delivery (central stores a check-in once per id; it must get the final version).
        awaiting_outcome = peewee.BooleanField(default=False)

        class Meta:
            table_name = "outbox"

    class Consumed(Base):
        # Anti-passback state per credential: the latest recorded passage (at this gate or, through the site
        # fan-out, at another gate of the site). ``entered``: a passage in was recorded at least once.
        # ``inside``: the latest passage was in (an out passage clears it).
        credential = peewee.TextField(primary_key=True)
        checkin_id = peewee.TextField()
        at = peewee.FloatField()
        entered = peewee.BooleanField(default=True)
        inside = peewee.BooleanField(default=True)
        gate_id = peewee.TextField(null=True)

        class Meta:
            table_name = "consumed"

    return {"meeting": Meeting, "delegate": Delegate, "key": SigningKey, "meta": Meta, "outbox": Outbox,
            "consumed": Consumed}


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
        self.db = peewee.SqliteDatabase(
            str(path), pragmas=PRAGMAS, thread_safe=False, check_same_thread=False
        )
        models = _make_models(self.db)
        self._Meeting = models["meeting"]
        self._Delegate = models["delegate"]
        self._Key = models["key"]
        self._Meta = models["meta"]
        self._Outbox = models["outbox"]
        self._Consumed = models["consumed"]
        with self._lock:
            self.db.connect()
            self.db.create_tables(list(models.values()))
            self._migrate()
        self._keys: dict[int, Ed25519PublicKey] = {}
        self._load_keys()

    # ----- lifecycle

    def _migrate(self) -> None:
        """Add columns introduced after a cache file was created (SQLite ALTER TABLE ADD COLUMN)."""
        columns = {c.name for c in self.db.get_columns("outbox")}
        if "awaiting_outcome" not in columns:
            self.db.execute_sql("ALTER TABLE outbox ADD COLUMN awaiting_outcome INTEGER NOT NULL DEFAULT 0")
        consumed = {c.name for c in self.db.get_columns("consumed")}
        for column, ddl in (("entered", "INTEGER NOT NULL DEFAULT 1"), ("inside", "INTEGER NOT NULL DEFAULT 1"),
                            ("gate_id", "TEXT")):
            if column not in consumed:
                self.db.execute_sql(f"ALTER TABLE consumed ADD COLUMN {column} {ddl}")

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            if not self.db.is_closed():
                self.db.close()

    def pragma(self, name: str) -> Any:
        """Read a SQLite pragma (for checks and tests)."""
        with self._lock:
            return self.db.execute_sql(f"PRAGMA {name}").fetchone()[0]

    # ----- snapshot

    def load_snapshot(self, snapshot: Snapshot, now: datetime) -> None:
        """Replace all cached meetings, delegates and keys with ``snapshot`` in one transaction.

        Readers see either the old data or the new, never a mix. Bulk inserts in batches keep 100,000
        delegates within a few seconds.
        """
        meeting_fields = [getattr(self._Meeting, n) for n in (
            "id", "title", "scheme", "starts_at", "ends_at", "site_id", "venue", "status", "entry_policy")]
        meeting_rows = [
            (m.id, m.title, m.scheme.value, _ts(m.starts_at), _ts(m.ends_at), m.site_id, m.venue, m.status,
             m.entry_policy)
            for m in snapshot.meetings
        ]
        delegate_fields = [getattr(self._Delegate, n) for n in (
            "meeting_id", "delegate_id", "name", "organisation", "position", "code_hash", "valid_from",
            "valid_until", "revoked")]
        delegate_rows = [
            (d.meeting_id, d.id, d.name, d.organisation, d.position, d.code_hash, _ts(d.valid_from),
             _ts(d.valid_until), d.revoked)
            for d in snapshot.delegates
        ]
        key_rows = [(k.key_id, k.public_key, k.revoked) for k in snapshot.keys]
        with self._lock, self.db.atomic():
            self._Delegate.delete().execute()
            self._Meeting.delete().execute()
            self._Key.delete().execute()
            for batch in peewee.chunked(meeting_rows, BATCH_SIZE):
                self._Meeting.insert_many(batch, fields=meeting_fields).execute()
            # Delegates are the bulk (100,000 and more): executemany in batches skips peewee's per-row query
            # building. Delegate ids are unique per meeting; a duplicate in a snapshot keeps the last entry.
            columns = ", ".join(f.column_name for f in delegate_fields)
            placeholders = ", ".join("?" for _ in delegate_fields)
            insert = f"INSERT OR REPLACE INTO delegates ({columns}) VALUES ({placeholders})"
            cursor = self.db.cursor()
            for batch in peewee.chunked(delegate_rows, BATCH_SIZE * 10):
                cursor.executemany(insert, batch)
            for batch in peewee.chunked(key_rows, BATCH_SIZE):
                self._Key.insert_many(
                    batch, fields=[self._Key.key_id, self._Key.public_key, self._Key.revoked]
                ).on_conflict_replace().execute()
            self._set_meta("seq", str(snapshot.seq))
            self._set_meta("synced_at", now.isoformat())
            self._set_meta("generated_at", snapshot.generated_at.isoformat())
        self._load_keys()
        log.info("snapshot loaded seq=%d meetings=%d delegates=%d keys=%d", snapshot.seq,
                 len(meeting_rows), len(delegate_rows), len(key_rows))

    def apply_change(self, change: Change, now: datetime) -> ChangeResult:
        """Apply one change of central's stream if it is the next one (``seq == cache.seq + 1``).

        In one transaction: the change, the new ``seq`` and ``synced_at = now``. A repeated change
        (``seq <= cache.seq``) and a change after a gap (``seq > cache.seq + 1``) change nothing.
        """
        body = change.body
        with self._lock:
            with self.db.atomic():
                current = self._seq_locked()
                if change.seq <= current:
                    return ChangeResult.REPEATED
                if change.seq > current + 1:
                    return ChangeResult.GAP
                self._apply_body(body)
                self._set_meta("seq", str(change.seq))
                self._set_meta("synced_at", now.isoformat())
            if isinstance(body, KeyAdd | KeyRevoke):
                self._load_keys()
        return ChangeResult.APPLIED

    def _apply_body(self, body: object) -> None:
        """Write one change body (inside the caller's transaction)."""
        if isinstance(body, DelegateUpsert):
            d = body.delegate
            self._Delegate.insert(
                meeting_id=d.meeting_id, delegate_id=d.id, name=d.name, organisation=d.organisation,
                position=d.position, code_hash=d.code_hash, valid_from=_ts(d.valid_from),
                valid_until=_ts(d.valid_until), revoked=d.revoked,
            ).on_conflict_replace().execute()
        elif isinstance(body, DelegateRevoke):
            delegate = self._Delegate
            updated = delegate.update(revoked=True).where(
                (delegate.meeting_id == body.meeting_id) & (delegate.delegate_id == body.delegate_id)
            ).execute()
            if not updated:
                # A delegate never seen here (registered after the last sync, e.g. with a signed code):
                # remember the revocation so a signed code of theirs is refused too.
                delegate.insert(meeting_id=body.meeting_id, delegate_id=body.delegate_id, name="",
                                organisation="", position="", code_hash=None, valid_from=0.0, valid_until=0.0,
                                revoked=True).execute()
        elif isinstance(body, MeetingUpsert):
            m = body.meeting
            self._Meeting.insert(
                id=m.id, title=m.title, scheme=m.scheme.value, starts_at=_ts(m.starts_at), ends_at=_ts(m.ends_at),
                site_id=m.site_id, venue=m.venue, status=m.status, entry_policy=m.entry_policy,
            ).on_conflict_replace().execute()
        elif isinstance(body, KeyAdd):
            self._Key.insert(key_id=body.key.key_id, public_key=body.key.public_key,
                             revoked=body.key.revoked).on_conflict_replace().execute()
        elif isinstance(body, KeyRevoke):
            updated = self._Key.update(revoked=True).where(self._Key.key_id == body.key_id).execute()
            if not updated:
                self._Key.insert(key_id=body.key_id, public_key="", revoked=True).execute()
        else:  # pragma: no cover - the payload model admits only the kinds above
            raise TypeError(f"unknown change body {type(body).__name__}")

    def _seq_locked(self) -> int:
        row = self._Meta.get_or_none(self._Meta.key == "seq")
        return int(row.value) if row is not None else 0

    def _set_meta(self, key: str, value: str) -> None:
        self._Meta.insert(key=key, value=value).on_conflict_replace().execute()

    def _get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._Meta.get_or_none(self._Meta.key == key)
        return None if row is None else row.value

    def _load_keys(self) -> None:
        keys: dict[int, Ed25519PublicKey] = {}
        with self._lock:
            rows = list(self._Key.select().where(self._Key.revoked == False))  # noqa: E712 - peewee expression
        for row in rows:
            try:
                keys[row.key_id] = public_key_from_text(row.public_key)
            except Exception:
                log.warning("signing key key_id=%d is not a valid Ed25519 public key; ignored", row.key_id)
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

    def _delegate_entry(self, row: Any) -> DelegateEntry:
        return DelegateEntry(
            id=row.delegate_id, meeting_id=row.meeting_id, name=row.name, organisation=row.organisation,
            position=row.position, code_hash=row.code_hash, valid_from=_dt(row.valid_from),
            valid_until=_dt(row.valid_until), revoked=bool(row.revoked),
        )

    def lookup_code_hash(self, code_hash: str) -> DelegateEntry | None:
        """The delegate holding the compact code with this hash, or None."""
        with self._lock:
            row = self._Delegate.get_or_none(self._Delegate.code_hash == code_hash)
        return None if row is None else self._delegate_entry(row)

    def delegate(self, meeting_id: int, delegate_id: int) -> DelegateEntry | None:
        """A delegate of a meeting, or None."""
        with self._lock:
            row = self._Delegate.get_or_none(
                (self._Delegate.meeting_id == meeting_id) & (self._Delegate.delegate_id == delegate_id)
            )
        return None if row is None else self._delegate_entry(row)

    def meeting(self, meeting_id: int) -> MeetingEntry | None:
        """A meeting, or None."""
        with self._lock:
            row = self._Meeting.get_or_none(self._Meeting.id == meeting_id)
        if row is None:
            return None
        return MeetingEntry(
            id=row.id, title=row.title, scheme=Scheme(row.scheme), starts_at=_dt(row.starts_at),
            ends_at=_dt(row.ends_at), site_id=row.site_id, venue=row.venue, status=row.status,
            entry_policy=row.entry_policy,
        )

    def public_keys(self) -> dict[int, Ed25519PublicKey]:
        """The trusted (not revoked) signing keys by key id, held in memory."""
        return self._keys

    def keys(self) -> list[KeyEntry]:
        """All cached key entries, revoked ones included."""
        with self._lock:
            return [KeyEntry(key_id=r.key_id, public_key=r.public_key, revoked=bool(r.revoked))
                    for r in self._Key.select()]

    def delegate_count(self) -> int:
        """How many delegates are cached."""
        with self._lock:
            return self._Delegate.select().count()

    # ----- outbox

    def add_checkin(self, checkin: CheckIn, payload: bytes, now: datetime, awaiting_outcome: bool = False,
                    consumed: bool = False) -> None:
        """Record a check-in durably (committed with synchronous=FULL) before the turnstile acts on it.

        ``awaiting_outcome``: the turnstile cycle has yet to say whether the person passed; the row is not
        delivered until :meth:`complete_checkin`. ``consumed``: the passage is already known (no sensor) and
        its credential is recorded as used in the same transaction.
        """
        with self._lock, self.db.atomic():
            self._Outbox.insert(checkin_id=str(checkin.id), payload=payload, created_at=_ts(now),
                                awaiting_outcome=awaiting_outcome).execute()
            if consumed and checkin.credential:
                self._consume(checkin, now)

    def complete_checkin(self, checkin: CheckIn, payload: bytes, now: datetime, consumed: bool) -> bool:
        """Store the final version of a check-in whose outcome is now known and release it for delivery.

        ``consumed``: the person passed; the credential is recorded as used (same transaction). Returns False
        when the row is unknown or was already completed (then nothing changes).
        """
        out = self._Outbox
        with self._lock, self.db.atomic():
            updated = out.update(payload=payload, awaiting_outcome=False).where(
                (out.checkin_id == str(checkin.id)) & (out.awaiting_outcome == True)  # noqa: E712
            ).execute()
            if updated and consumed and checkin.credential:
                self._consume(checkin, now)
        return bool(updated)

    def awaiting_rows(self) -> list[OutboxRow]:
        """Rows whose outcome was never recorded (the gate stopped or died during their cycle)."""
        out = self._Outbox
        with self._lock:
            rows = list(out.select().where(out.awaiting_outcome == True).order_by(out.created_at))  # noqa: E712
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
        with self._lock, self.db.atomic():
            return self._record_passage_locked(credential, checkin_id, at, direction, gate_id)

    def _record_passage_locked(self, credential: str, checkin_id: str, at: datetime, direction: Direction,
                               gate_id: str | None) -> bool:
        table = self._Consumed
        row = table.get_or_none(table.credential == credential)
        entering = direction is Direction.IN
        if row is None:
            table.insert(credential=credential, checkin_id=checkin_id, at=_ts(at), entered=entering,
                         inside=entering, gate_id=gate_id).execute()
            return True
        if row.checkin_id == checkin_id:
            return False
        if _ts(at) < row.at:
            if entering and not row.entered:
                table.update(entered=True).where(table.credential == credential).execute()
                return True
            return False
        table.update(checkin_id=checkin_id, at=_ts(at), entered=bool(row.entered) or entering, inside=entering,
                     gate_id=gate_id).where(table.credential == credential).execute()
        return True

    def has_entered(self, credential: str) -> bool:
        """True when a passage in with this credential was recorded (here or at another gate of the site)."""
        with self._lock:
            return self._Consumed.select().where(
                (self._Consumed.credential == credential) & (self._Consumed.entered == True)  # noqa: E712
            ).exists()

    def is_inside(self, credential: str) -> bool:
        """True when the latest recorded passage with this credential was in."""
        with self._lock:
            return self._Consumed.select().where(
                (self._Consumed.credential == credential) & (self._Consumed.inside == True)  # noqa: E712
            ).exists()

    def is_consumed(self, credential: str) -> bool:
        """True when a passage in with this credential was recorded (same as :meth:`has_entered`)."""
        return self.has_entered(credential)

    def outbox_due(self, now: datetime, resend_after_s: float, limit: int = 100) -> list[OutboxRow]:
        """Undelivered rows never sent, or last sent at least ``resend_after_s`` ago, oldest first."""
        cutoff = _ts(now) - resend_after_s
        out = self._Outbox
        with self._lock:
            rows = list(
                out.select()
                .where(out.delivered_at.is_null() & (out.awaiting_outcome == False)  # noqa: E712
                       & (out.last_sent_at.is_null() | (out.last_sent_at <= cutoff)))
                .order_by(out.created_at)
                .limit(limit)
            )
        return [self._outbox_row(r) for r in rows]

    def mark_sent(self, checkin_id: str, now: datetime) -> None:
        """Note one more publish attempt of a check-in."""
        out = self._Outbox
        with self._lock:
            out.update(last_sent_at=_ts(now), attempts=out.attempts + 1).where(
                out.checkin_id == checkin_id).execute()

    def mark_delivered(self, checkin_id: str, now: datetime) -> bool | None:
        """Mark a check-in acknowledged by central.

        Returns True when it was pending, False when it was already delivered, None when the id is unknown.
        """
        out = self._Outbox
        with self._lock, self.db.atomic():
            row = out.get_or_none(out.checkin_id == checkin_id)
            if row is None:
                return None
            if row.delivered_at is not None:
                return False
            out.update(delivered_at=_ts(now)).where(out.checkin_id == checkin_id).execute()
            return True

    def outbox_row(self, checkin_id: str) -> OutboxRow | None:
        """One outbox row by check-in id, or None."""
        with self._lock:
            row = self._Outbox.get_or_none(self._Outbox.checkin_id == checkin_id)
        return None if row is None else self._outbox_row(row)

    def outbox_rows(self) -> Iterator[OutboxRow]:
        """Every outbox row, oldest first."""
        with self._lock:
            rows = list(self._Outbox.select().order_by(self._Outbox.created_at))
        return iter([self._outbox_row(r) for r in rows])

    def outbox_pending(self) -> int:
        """How many check-ins still wait for central's acknowledgement."""
        with self._lock:
            return self._Outbox.select().where(self._Outbox.delivered_at.is_null()).count()

    @staticmethod
    def _outbox_row(row: Any) -> OutboxRow:
        return OutboxRow(
            checkin_id=row.checkin_id, payload=bytes(row.payload), created_at=_dt(row.created_at),
            last_sent_at=_dt(row.last_sent_at), attempts=row.attempts, delivered_at=_dt(row.delivered_at),
            awaiting_outcome=bool(row.awaiting_outcome),
        )
