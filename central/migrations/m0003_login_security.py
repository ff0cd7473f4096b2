"""Add ``login_failure`` (what the login throttle counts) and ``user_session`` (server-side sessions)."""

from __future__ import annotations

import peewee

from central.migrations import MigrationContext


class _User(peewee.Model):
    """The existing ``user`` table, only as the target of the sessions' foreign key (not created here)."""

    class Meta:
        table_name = "user"
        legacy_table_names = False


class _LoginFailure(peewee.Model):
    """The table as this migration creates it (frozen here; the model may change later)."""

    at = peewee.DateTimeField()
    username = peewee.CharField(max_length=64)
    address = peewee.CharField(max_length=64)
    locked_until = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "login_failure"
        legacy_table_names = False
        indexes = ((("username", "at"), False), (("address", "at"), False), (("at",), False))


class _UserSession(peewee.Model):
    """The table as this migration creates it (frozen here; the model may change later)."""

    user = peewee.ForeignKeyField(_User, on_delete="CASCADE")
    token_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField()
    seen_at = peewee.DateTimeField()
    ended_at = peewee.DateTimeField(null=True)
    end_reason = peewee.CharField(max_length=32, null=True)

    class Meta:
        table_name = "user_session"
        legacy_table_names = False


def up(ctx: MigrationContext) -> None:
    """Create both tables and their indexes."""
    with ctx.db.bind_ctx([_User, _LoginFailure, _UserSession]):
        ctx.db.create_tables([_LoginFailure, _UserSession])
