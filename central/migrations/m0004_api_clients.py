"""Add API clients (one token per machine client), a meeting's client and external document id, and the
idempotency keys of meeting creates.

- ``api_client``: name (unique), token hash (unique), public prefix, scopes, who made it and when, last use, revocation.
- ``meeting.api_client_id`` (nullable, indexed) and ``meeting.external_id`` (nullable), unique together: a client
  has at most one meeting per document id (rows without a client or an id never collide: NULLs are distinct).
- ``idempotency_record``: (actor, key) unique, the request's fingerprint and the meeting it made.
"""

from __future__ import annotations

import peewee

from central.migrations import MigrationContext


class _ApiClient(peewee.Model):
    """The table as this migration creates it (frozen here; the model may change later)."""

    id = peewee.AutoField()
    name = peewee.CharField(max_length=48, unique=True)
    prefix = peewee.CharField(max_length=16)
    token_hash = peewee.CharField(max_length=64, unique=True)
    scopes = peewee.CharField(max_length=200)
    created_by = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField()
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "api_client"
        legacy_table_names = False


class _Meeting(peewee.Model):
    """Only what the foreign key below needs of the existing ``meeting`` table (not created here)."""

    class Meta:
        table_name = "meeting"
        legacy_table_names = False


class _IdempotencyRecord(peewee.Model):
    """The table as this migration creates it."""

    actor = peewee.CharField(max_length=64)
    key = peewee.CharField(max_length=200)
    fingerprint = peewee.CharField(max_length=64)
    meeting = peewee.ForeignKeyField(_Meeting, on_delete="CASCADE")
    created_at = peewee.DateTimeField()

    class Meta:
        table_name = "idempotency_record"
        legacy_table_names = False
        indexes = ((("actor", "key"), True),)


def up(ctx: MigrationContext) -> None:
    """Create the two tables, then add the meeting's columns and their unique index."""
    with ctx.db.bind_ctx([_ApiClient, _Meeting, _IdempotencyRecord]):
        ctx.db.create_tables([_ApiClient, _IdempotencyRecord])
        ctx.migrator.add_column(
            "meeting", "api_client_id", peewee.ForeignKeyField(_ApiClient, null=True, field=_ApiClient.id)
        ).run()
        ctx.migrator.add_column("meeting", "external_id", peewee.CharField(max_length=100, null=True)).run()
        ctx.migrator.add_index("meeting", ("api_client_id", "external_id"), unique=True).run()
