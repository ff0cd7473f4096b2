"""The base of every central model and the tables every feature shares: signing keys, the change log, the audit log.

The same models run on SQLite and PostgreSQL; datetimes are stored as UTC (:class:`UTCDateTimeField`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import peewee

from central.core.db import database


class UTCDateTimeField(peewee.DateTimeField):
    """A datetime column stored as naive UTC and read back as an aware UTC datetime.

    Aware values are converted to UTC before storage; naive values are refused so local time never
    sneaks into the database.
    """

    def db_value(self, value: datetime | None) -> datetime | None:
        """Convert an aware datetime to naive UTC for storage."""
        if value is None:
            return None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"{self.name}: naive datetime refused, pass an aware one")
            return value.astimezone(UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value: object) -> datetime | None:
        """Read a stored value back as an aware UTC datetime."""
        parsed = super().python_value(value)
        if isinstance(parsed, datetime):
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        return parsed


class BaseModel(peewee.Model):
    """Base of every central model, bound to :data:`central.core.db.database`."""

    id: peewee.AutoField[int]  # the key peewee adds (declared for the type checker: peewee reads no annotations)

    class Meta:
        database = database
        legacy_table_names = False


class SigningKey(BaseModel):
    """An Ed25519 public key central signs codes with; only one is active (signing) at a time.

    ``short_public_key``: the secp256k1 public key derived from the same private key, for version 2 (short)
    signed codes; null until central has loaded the private key (migration m0009).
    """

    key_id = peewee.IntegerField(unique=True)
    public_key = peewee.CharField(max_length=64, unique=True)
    short_public_key = peewee.CharField(max_length=64, null=True)
    active = peewee.BooleanField(default=True)
    revoked_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField()


class Change(BaseModel):
    """One entry of the change stream gates follow; ``body`` is a protocols change body as JSON."""

    seq = peewee.AutoField()
    at = UTCDateTimeField()
    kind = peewee.CharField(max_length=32)
    body = peewee.TextField()


ALL_SITES = "*"
"""The site of a change for every site (signing keys; changes stored before per-site streams, migration m0012)."""


class ChangeSite(BaseModel):
    """A site whose gates get a change (:func:`central.core.changes.change_sites`): one row per change and site,
    or one with :data:`ALL_SITES`. A change with no row goes to no site's stream."""

    seq = peewee.IntegerField()
    site_id = peewee.CharField(max_length=32)

    class Meta:
        table_name = "change_site"
        primary_key = peewee.CompositeKey("seq", "site_id")
        indexes = ((("site_id", "seq"), False),)


class AuditEntry(BaseModel):
    """One line of the audit log (nhật ký): who did what to which thing, and when."""

    at = UTCDateTimeField(index=True)
    actor = peewee.CharField(max_length=64, index=True)
    action = peewee.CharField(max_length=64, index=True)
    target = peewee.CharField(max_length=128, default="")
    details = peewee.TextField(default="{}")


class WorkerBeat(BaseModel):
    """The last sign of life of a long-running worker (``ingest``, ``deliver-<host>:<pid>``): ``/healthz`` and
    ``/metrics`` read it."""

    name = peewee.CharField(max_length=64, unique=True)
    beat_at = peewee.DateTimeField()
    detail = peewee.CharField(max_length=200, default="")
