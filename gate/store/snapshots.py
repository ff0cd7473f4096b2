"""Snapshots: central's full reference data, staged beside the database and swapped in at once.

A snapshot is loaded without holding it in memory: its entries (a :class:`protocols.payloads.Snapshot`, or any
:class:`SnapshotSource` such as the stream :func:`gate.sync.fetch_snapshot` returns) are written in batches
into a scratch SQLite file beside the database while scans go on (:meth:`SnapshotStaging.stage_snapshot`),
then swapped in in one short transaction (:meth:`SnapshotStaging.swap_in`). A source that fails half-way (a
bad entry, a cut connection) leaves the reference data as it was.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from protocols.payloads import DelegateEntry, KeyEntry, MeetingEntry, Snapshot

from .reference import ReferenceData, set_meta
from .rows import DELEGATE_COLUMNS, KEY_COLUMNS, MEETING_COLUMNS, delegate_row, meeting_row

log = logging.getLogger(__name__)

STAGING_SUFFIX = ".snapshot-staging"
STALE_STAGING_S = 3600.0
BATCH_SIZE = 5000

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


@dataclass
class StagedSnapshot:
    """A snapshot written to its scratch file by :meth:`SnapshotStaging.stage_snapshot`, not swapped in yet."""

    seq: int
    generated_at: datetime
    path: Path
    meetings: int = 0
    delegates: int = 0
    keys: int = 0


def _snapshot_entries(snapshot: Snapshot | SnapshotSource) -> Iterable[SnapshotItem]:
    if isinstance(snapshot, Snapshot):
        return itertools.chain(snapshot.meetings, snapshot.delegates, snapshot.keys)
    return snapshot.entries()


def _placeholders(columns: tuple[str, ...]) -> str:
    return ", ".join("?" * len(columns))


class SnapshotStaging(ReferenceData):
    """Reference data that can be replaced whole by a snapshot."""

    def remove_stale_staging(self) -> None:
        """Remove scratch files left by a gate that stopped while staging (a fresh one may be another
        instance's)."""
        for stale in self.staging_files():
            with suppress(FileNotFoundError):
                if time.time() - stale.stat().st_mtime > STALE_STAGING_S:
                    stale.unlink()

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
        path = self._db.path
        staged = StagedSnapshot(seq=snapshot.seq, generated_at=snapshot.generated_at,
                                path=path.with_name(f"{path.name}{STAGING_SUFFIX}-{uuid.uuid4().hex}"))
        staging = sqlite3.connect(str(staged.path), isolation_level=None)
        try:
            _write_staging(staging, staged, _snapshot_entries(snapshot))
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
        db = self._db
        try:
            with db.lock:
                db.conn.execute("ATTACH DATABASE ? AS staging", (str(staged.path),))
                try:
                    with db.transaction() as conn:
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
                        conn.execute("INSERT OR REPLACE INTO main.signing_keys (key_id, public_key, revoked, "
                                     "short_key) SELECT key_id, public_key, revoked, short_key "
                                     "FROM staging.signing_keys ORDER BY rowid")
                        set_meta(conn, "seq", str(staged.seq))
                        set_meta(conn, "synced_at", now.isoformat())
                        set_meta(conn, "generated_at", staged.generated_at.isoformat())
                finally:
                    db.conn.execute("DETACH DATABASE staging")
                self.reload()
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
        path = self._db.path
        return sorted(path.parent.glob(f"{path.name}{STAGING_SUFFIX}-*"))


def _write_staging(staging: sqlite3.Connection, staged: StagedSnapshot, entries: Iterable[SnapshotItem]) -> None:
    """Write ``entries`` into the scratch database ``staging`` and count them in ``staged``."""
    meetings: list[tuple[Any, ...]] = []
    delegates: list[tuple[Any, ...]] = []
    keys: list[tuple[Any, ...]] = []
    staging.execute("PRAGMA journal_mode = OFF")
    staging.execute("PRAGMA synchronous = OFF")
    staging.execute(f"CREATE TABLE meetings ({', '.join(MEETING_COLUMNS)})")
    staging.execute(f"CREATE TABLE delegates ({', '.join(DELEGATE_COLUMNS)})")
    # Unique here already: a delegate id repeated within a meeting keeps the last entry of the stream.
    staging.execute("CREATE UNIQUE INDEX delegates_id ON delegates (meeting_id, delegate_id)")
    staging.execute(f"CREATE TABLE signing_keys ({', '.join(KEY_COLUMNS)})")
    insert_delegates = f"INSERT OR REPLACE INTO delegates VALUES ({_placeholders(DELEGATE_COLUMNS)})"
    staging.execute("BEGIN")
    for entry in entries:
        if isinstance(entry, DelegateEntry):
            delegates.append(delegate_row(entry))
            if len(delegates) >= BATCH_SIZE:
                staging.executemany(insert_delegates, delegates)
                staged.delegates += len(delegates)
                delegates.clear()
        elif isinstance(entry, MeetingEntry):
            meetings.append(meeting_row(entry))
        elif isinstance(entry, KeyEntry):
            keys.append((entry.key_id, entry.public_key, int(entry.revoked), entry.short_key))
        else:
            raise TypeError(f"not a snapshot entry: {type(entry).__name__}")
    staging.executemany(insert_delegates, delegates)
    staged.delegates += len(delegates)
    staging.executemany(f"INSERT INTO meetings VALUES ({_placeholders(MEETING_COLUMNS)})", meetings)
    staging.executemany(f"INSERT INTO signing_keys VALUES ({_placeholders(KEY_COLUMNS)})", keys)
    staged.meetings, staged.keys = len(meetings), len(keys)
    staging.execute("COMMIT")
