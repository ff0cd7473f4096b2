"""The gate database's schema as a versioned list of migration steps, tracked in ``PRAGMA user_version``.

Version 0 is a file made before versioning: the tables of today's layout may already be there (the steps use
``IF NOT EXISTS`` and add only missing columns), so an existing gate database upgrades in place. Each step
runs in its own ``BEGIN IMMEDIATE`` transaction together with its new ``user_version``. A file whose
``user_version`` is newer than this code knows (written by a later release) is refused with
:class:`SchemaTooNewError` rather than misread.

Every change to the schema ships as a new step appended to :data:`MIGRATIONS`; steps are never edited.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer gate release than this one."""


@dataclass(frozen=True)
class Migration:
    """One schema step: applied to a database at ``version - 1`` it leaves it at ``version``."""

    version: int
    description: str
    apply: Callable[[sqlite3.Connection], None]


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}


def _add_missing_columns(conn: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    present = _columns(conn, table)
    for column, ddl in columns.items():
        if column not in present:
            conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {ddl}')


def _reference_outbox_passages(conn: sqlite3.Connection) -> None:
    """Meetings, delegates, signing keys, meta, outbox and the passage table (the layout of the unversioned
    cache, whose names match the peewee models of earlier releases), plus columns added to it over time."""
    for ddl in (
        'CREATE TABLE IF NOT EXISTS "meetings" ("id" INTEGER NOT NULL PRIMARY KEY, "title" TEXT NOT NULL, '
        '"scheme" TEXT NOT NULL, "starts_at" REAL NOT NULL, "ends_at" REAL NOT NULL, "site_id" TEXT NOT NULL, '
        '"venue" TEXT NOT NULL, "status" TEXT NOT NULL, "entry_policy" TEXT NOT NULL)',
        'CREATE TABLE IF NOT EXISTS "delegates" ("id" INTEGER NOT NULL PRIMARY KEY, '
        '"meeting_id" INTEGER NOT NULL, "delegate_id" INTEGER NOT NULL, "name" TEXT NOT NULL, '
        '"organisation" TEXT NOT NULL, "position" TEXT NOT NULL, "code_hash" TEXT, "valid_from" REAL NOT NULL, '
        '"valid_until" REAL NOT NULL, "revoked" INTEGER NOT NULL)',
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
        'CREATE TABLE IF NOT EXISTS "consumed" ("credential" TEXT NOT NULL PRIMARY KEY, '
        '"checkin_id" TEXT NOT NULL, "at" REAL NOT NULL, "entered" INTEGER NOT NULL DEFAULT 1, '
        '"inside" INTEGER NOT NULL DEFAULT 1, "gate_id" TEXT)',
    ):
        conn.execute(ddl)
    _add_missing_columns(conn, "outbox", {"awaiting_outcome": "INTEGER NOT NULL DEFAULT 0"})
    _add_missing_columns(conn, "consumed", {"entered": "INTEGER NOT NULL DEFAULT 1",
                                            "inside": "INTEGER NOT NULL DEFAULT 1", "gate_id": "TEXT"})


def _command_log(conn: sqlite3.Connection) -> None:
    """Central's commands seen (de-duplication, answers) and the persisted gate mode."""
    conn.execute(
        'CREATE TABLE IF NOT EXISTS "command_log" ("command_id" TEXT PRIMARY KEY, "action" TEXT NOT NULL, '
        '"issued_by" TEXT NOT NULL, "issued_at" REAL NOT NULL, "received_at" REAL NOT NULL, "ok" INTEGER, '
        '"reason" TEXT, "result" BLOB)'
    )
    conn.execute('CREATE INDEX IF NOT EXISTS "command_log_received" ON "command_log" ("received_at")')
    conn.execute('CREATE TABLE IF NOT EXISTS "command_state" ("key" TEXT PRIMARY KEY, "value" TEXT NOT NULL)')


def _entry_times(conn: sqlite3.Connection) -> None:
    """The time of a credential's latest entry (``consumed.entered_at``), so ``single`` admits once per meeting
    day. A passage recorded before this step gets the time of its latest passage (the entry was at or before it)."""
    _add_missing_columns(conn, "consumed", {"entered_at": "REAL"})
    conn.execute('UPDATE "consumed" SET "entered_at" = "at" WHERE "entered" = 1 AND "entered_at" IS NULL')


def _short_keys(conn: sqlite3.Connection) -> None:
    """Each signing key's short (secp256k1) public key, for version 2 signed codes (null: none yet)."""
    _add_missing_columns(conn, "signing_keys", {"short_key": "TEXT"})


def _meeting_sites(conn: sqlite3.Connection) -> None:
    """Every gate site of a meeting (``meetings.sites``: its main hall's and its remote points', space-separated),
    so a gate at a remote point ("điểm cầu") admits the meeting's delegates. A meeting cached before this step
    keeps NULL, read as its ``site_id`` alone, as the gate decided before; the next snapshot or change fills it."""
    _add_missing_columns(conn, "meetings", {"sites": "TEXT"})


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "reference data, outbox and passages", _reference_outbox_passages),
    Migration(2, "command log and gate mode", _command_log),
    Migration(3, "time of each credential's latest entry", _entry_times),
    Migration(4, "short public keys of signing keys", _short_keys),
    Migration(5, "every gate site of a meeting", _meeting_sites),
)
LATEST_VERSION = MIGRATIONS[-1].version


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database (0 for a file made before versioning)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply the steps after the database's ``user_version``, each in its own transaction; return the version.

    Raises :class:`SchemaTooNewError` when the database is newer than the last known step.
    """
    current = user_version(conn)
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise SchemaTooNewError(
            f"gate database schema version {current} is newer than this gate software knows ({latest}); "
            "install a release that knows it, or move the file away to start from an empty cache")
    for step in migrations:
        if step.version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            step.apply(conn)
            conn.execute(f"PRAGMA user_version = {int(step.version)}")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        current = step.version
    return current
