"""Database handle: one peewee proxy, opened from a URL (SQLite by default, PostgreSQL supported)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, cast

import peewee
from playhouse.db_url import connect

database = peewee.DatabaseProxy()
"""The proxy every model binds to; :func:`open_database` points it at a real database."""

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": 5000,
}

log = logging.getLogger(__name__)


def open_database(url: str, *, pool_size: int = 8) -> peewee.Database:
    """Open the database at ``url``, point :data:`database` at it and return it.

    ``postgresql+pool://`` keeps up to ``pool_size`` connections per process open and hands them to requests
    (peewee's ``PooledPostgresqlDatabase``: closing a connection returns it to the pool; one idle for 5 minutes
    is closed); ``postgresql://`` opens one per request.

    For SQLite the parent directory is created and WAL, ``synchronous=normal``, foreign keys and a
    5 s busy timeout are set on every connection, and transactions begin IMMEDIATE. Connections are per
    thread (peewee's default).
    """
    if url.startswith("sqlite:"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Every transaction takes the write lock up front (BEGIN IMMEDIATE): a deferred transaction that read
        # first and then writes fails at once with "database is locked" when another process (the ingest
        # worker, the change feed) committed in between; an immediate one waits for the busy timeout instead.
        db = connect(url, pragmas=SQLITE_PRAGMAS, lock_type="IMMEDIATE")
    elif "+pool" in url.split("://", 1)[0]:
        db = connect(url, max_connections=pool_size, stale_timeout=300, timeout=10)
    else:
        db = connect(url)
    database.initialize(db)
    log.info("database opened engine=%s", type(db).__name__)
    return db


def write_transaction() -> peewee._atomic:
    """Return a transaction context for a read-then-write; on SQLite it takes the write lock up front.

    ``BEGIN IMMEDIATE`` makes a second writer wait (busy timeout) instead of failing when it upgrades
    its read lock; PostgreSQL uses a plain transaction and relies on unique constraints. Nested calls
    become savepoints.
    """
    if isinstance(database.obj, peewee.SqliteDatabase):
        return database.atomic(lock_type="IMMEDIATE")
    return database.atomic()


def tuples(query: peewee.ModelSelect[Any]) -> Iterator[tuple[Any, ...]]:
    """Run ``query`` and yield its rows as plain tuples (``query.tuples()``, typed as tuples: peewee's
    stubs type the rows of a model query as model instances whatever the row type)."""
    yield from cast("Iterator[tuple[Any, ...]]", iter(query.tuples()))


_STATEMENTS: dict[tuple[type[peewee.Database], Hashable], str] = {}


def statement(key: Hashable, build: Callable[[], peewee.Query | str]) -> str:
    """The SQL text of the query ``build`` returns (or the text itself), for the open database's dialect, built
    once per key.

    For a hot path that runs the same statement with other values (the ingest's lookups and insert): peewee
    renders a query node by node, which for a lookup of 400 ids cost more than running it. ``key`` must name
    everything the text depends on besides the dialect (the model, the columns, the number of values); the
    values themselves are passed to the cursor, never rendered into the text."""
    cache_key = (type(database.obj), key)
    text = _STATEMENTS.get(cache_key)
    if text is None:
        built = build()
        text = built if isinstance(built, str) else built.sql()[0]
        _STATEMENTS[cache_key] = text
    return text
