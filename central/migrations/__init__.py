"""Schema migrations: a small versioned runner on ``playhouse.migrate``.

A migration is a module ``central/migrations/mNNNN_<what>.py`` with a function ``up(ctx: MigrationContext)``.
Migrations run in the order of their numbers, each in its own transaction, and each is recorded by name in the
``schema_migration`` table once it committed. :func:`migrate` applies the pending ones; ``vaora-central
migrate`` calls it, ``vaora-central init-db`` is the same on an empty database (the baseline, then the rest).

- The baseline, ``m0001_baseline``, creates the schema of 2026-12-03 from frozen SQL (``sql/``). A database made
  before migrations existed (tables, but no ``schema_migration``) is brought to the baseline in the same step.
- A failing migration rolls back (SQLite and PostgreSQL both run DDL inside a transaction) and raises
  :class:`MigrationError` naming it: the database stays as the last good migration left it.
- Two runners at once are safe: each takes a lock first (SQLite's write lock, a PostgreSQL advisory lock) and
  re-reads what is applied under it.

How to write one: see "Schema migrations" in the README.
"""

from __future__ import annotations

import logging
import pkgutil
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import import_module
from pathlib import Path

import peewee
from playhouse.migrate import PostgresqlMigrator, SchemaMigrator, SqliteMigrator

from central.core.db import database

log = logging.getLogger(__name__)

MIGRATION_TABLE = "schema_migration"
SQL_DIR = Path(__file__).with_name("sql")
_MODULE_NAME = re.compile(r"^m(\d{4})_[a-z0-9_]+$")
_PG_LOCK_KEY = 0x7661_6F72  # "vaor": one advisory lock for every migration runner of this database


class MigrationError(RuntimeError):
    """A migration failed; the database is as the previous migration left it."""

    def __init__(self, name: str, error: str) -> None:
        self.name = name
        self.error = error
        super().__init__(f"migration {name} failed: {error} (rolled back; the database is unchanged by it)")


@dataclass(frozen=True)
class Migration:
    """One schema step: ``name`` is its module name without the leading ``m`` (``0001_baseline``)."""

    name: str
    up: Callable[[MigrationContext], None]


@dataclass
class MigrationContext:
    """What a migration gets: the database, a ``playhouse.migrate`` migrator for it, and helpers."""

    db: peewee.Database
    legacy: bool = False
    """True when the database had central's tables before it had a migration table (made before 2026-12-03)."""
    migrator: SchemaMigrator = field(init=False)

    def __post_init__(self) -> None:
        self.migrator = SqliteMigrator(self.db) if self.engine == "sqlite" else PostgresqlMigrator(self.db)

    @property
    def engine(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if isinstance(self.db, peewee.SqliteDatabase) else "postgresql"

    def execute(self, sql: str) -> None:
        """Run one SQL statement."""
        self.db.execute_sql(sql)

    def sql_file(self, stem: str) -> list[str]:
        """The statements of ``sql/<stem>.<engine>.sql`` (comment lines dropped)."""
        text = (SQL_DIR / f"{stem}.{self.engine}.sql").read_text(encoding="utf-8")
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        return [statement.strip() for statement in body.split(";") if statement.strip()]

    def columns(self, table: str) -> set[str]:
        """The column names ``table`` has now."""
        return {column.name for column in self.db.get_columns(table)}


def discover() -> list[Migration]:
    """Every migration module of this package, in order of its number."""
    found: list[tuple[int, Migration]] = []
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        match = _MODULE_NAME.match(module.name)
        if not match:
            continue
        loaded = import_module(f"{__name__}.{module.name}")
        found.append((int(match.group(1)), Migration(module.name[1:], loaded.up)))
    numbers = [number for number, _ in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"two migrations share a number: {sorted(numbers)}")
    return [migration for _, migration in sorted(found, key=lambda pair: pair[0])]


def _applied(db: peewee.Database) -> list[str]:
    if MIGRATION_TABLE not in db.get_tables():
        return []
    return [row[0] for row in db.execute_sql(f'SELECT "name" FROM "{MIGRATION_TABLE}" ORDER BY "name"').fetchall()]


def applied(db: peewee.Database | None = None) -> list[str]:
    """Names of the migrations recorded in the database, in order."""
    target = db or database.obj
    with target.connection_context():
        return _applied(target)


def pending(db: peewee.Database | None = None) -> list[str]:
    """Names of the migrations the database still needs, in order."""
    done = set(applied(db))
    return [migration.name for migration in discover() if migration.name not in done]


class SchemaOutOfDateError(RuntimeError):
    """The database lacks migrations this code needs; ``vaora-central migrate`` applies them."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(f"the database needs `vaora-central migrate` first (pending: {', '.join(names)})")


def require_current(db: peewee.Database | None = None) -> None:
    """Raise :class:`SchemaOutOfDateError` unless every migration is applied (workers call this at start)."""
    names = pending(db)
    if names:
        raise SchemaOutOfDateError(names)


@contextmanager
def _lock(db: peewee.Database) -> Iterator[None]:
    """A transaction that holds the runner's lock: SQLite's write lock, or a PostgreSQL advisory lock.

    On SQLite, foreign keys are off while it runs (a table rebuild drops the old table, and with them on that
    would delete every row referencing it, in cascade) and checked before it commits, as SQLite prescribes for
    schema changes; the pragma only takes effect outside a transaction.
    """
    if isinstance(db, peewee.SqliteDatabase):
        db.execute_sql("PRAGMA foreign_keys = OFF")
        try:
            with db.atomic(lock_type="IMMEDIATE"):
                yield
                broken = db.execute_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration leaves rows whose references point nowhere: {broken[:5]}")
        finally:
            db.execute_sql("PRAGMA foreign_keys = ON")
        return
    with db.atomic():
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
        yield


def migrate(db: peewee.Database | None = None, *, clock: Callable[[], datetime] | None = None) -> list[str]:
    """Apply every pending migration, each in its own transaction; returns the names applied.

    Raises :class:`MigrationError` for the first that fails (it is rolled back; earlier ones stay applied).
    """
    target = db or database.obj
    now = clock or (lambda: datetime.now(UTC))
    done: list[str] = []
    with target.connection_context():
        for migration in discover():
            with _lock(target):
                tables = set(target.get_tables())
                if migration.name in _applied(target):
                    continue
                legacy = MIGRATION_TABLE not in tables and "meeting" in tables
                target.execute_sql(
                    f'CREATE TABLE IF NOT EXISTS "{MIGRATION_TABLE}" '
                    '("name" VARCHAR(100) NOT NULL PRIMARY KEY, "applied_at" TIMESTAMP NOT NULL)'
                )
                try:  # a failure leaves the lock's transaction by an exception: everything above rolls back
                    migration.up(MigrationContext(target, legacy=legacy))
                except Exception as exc:
                    log.error("migration failed name=%s error=%s", migration.name, exc)
                    raise MigrationError(migration.name, f"{type(exc).__name__}: {exc}") from exc
                target.execute_sql(
                    f'INSERT INTO "{MIGRATION_TABLE}" ("name", "applied_at") VALUES (%s, %s)'.replace(
                        "%s", target.param
                    ),
                    (migration.name, now().replace(tzinfo=None)),
                )
            log.info("migration applied name=%s legacy=%s", migration.name, legacy)
            done.append(migration.name)
    return done
