"""Central's tables (peewee). The same models run on SQLite and PostgreSQL; datetimes are stored as UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import peewee

from central.db import database


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
    """Base of every central model, bound to :data:`central.db.database`."""

    class Meta:
        database = database
        legacy_table_names = False


class Organisation(BaseModel):
    """An invited organisation ("đơn vị")."""

    name = peewee.CharField(max_length=200, unique=True)
    email = peewee.CharField(max_length=254, null=True)
    phone = peewee.CharField(max_length=20, null=True)


class Meeting(BaseModel):
    """A meeting at one site, with the code scheme and entry policy its gates apply."""

    title = peewee.CharField(max_length=500)
    starts_at = UTCDateTimeField()
    ends_at = UTCDateTimeField()
    venue = peewee.CharField(max_length=200)
    site_id = peewee.CharField(max_length=32, index=True)
    scheme = peewee.CharField(max_length=16, default="compact")
    entry_policy = peewee.CharField(max_length=16, default="single")
    status = peewee.CharField(max_length=16, default="open")
    created_at = UTCDateTimeField()


class Invitation(BaseModel):
    """A numbered invitation of one organisation to one meeting; its secret opens registration."""

    meeting = peewee.ForeignKeyField(Meeting, backref="invitations", on_delete="CASCADE")
    organisation = peewee.ForeignKeyField(Organisation, backref="invitations")
    number = peewee.CharField(max_length=64, index=True)
    year = peewee.IntegerField()
    seq = peewee.IntegerField()
    secret_hash = peewee.CharField(max_length=64)
    created_at = UTCDateTimeField()

    class Meta:
        # The register restarts every year, so "1/TM-UBND" recurs: a number is unique within its year.
        indexes = ((("year", "seq"), True), (("year", "number"), True))


class Delegate(BaseModel):
    """A person an organisation sends; holds the issued code (central is the authority and can resend)."""

    invitation = peewee.ForeignKeyField(Invitation, backref="delegates", on_delete="CASCADE")
    meeting = peewee.ForeignKeyField(Meeting, backref="delegates", on_delete="CASCADE")
    name = peewee.CharField(max_length=120)
    position = peewee.CharField(max_length=120, default="")
    email = peewee.CharField(max_length=254)
    phone = peewee.CharField(max_length=20, null=True)
    code = peewee.TextField()
    code_hash = peewee.CharField(max_length=64, null=True, index=True)
    credential = peewee.CharField(max_length=128, unique=True)
    valid_from = UTCDateTimeField()
    valid_until = UTCDateTimeField()
    revoked_at = UTCDateTimeField(null=True)
    mail_status = peewee.CharField(max_length=16, default="pending")
    mail_error = peewee.TextField(null=True)
    created_at = UTCDateTimeField()


class Gate(BaseModel):
    """A registered gate unit; its token (shown once) is stored only as a hash."""

    gate_id = peewee.CharField(max_length=32, unique=True)
    name = peewee.CharField(max_length=200, default="")
    site_id = peewee.CharField(max_length=32, index=True)
    direction = peewee.CharField(max_length=8, default="in")
    token_hash = peewee.CharField(max_length=64)
    last_seen_at = UTCDateTimeField(null=True)
    cache_seq = peewee.IntegerField(null=True)
    software_version = peewee.CharField(max_length=200, null=True)
    state = peewee.CharField(max_length=16, default="unknown")
    emergency = peewee.BooleanField(default=False)
    outbox_pending = peewee.IntegerField(null=True)


class CheckIn(BaseModel):
    """A check-in received from a gate; stored once per ``checkin_id``."""

    checkin_id = peewee.UUIDField(unique=True)
    gate = peewee.ForeignKeyField(Gate, backref="checkins")
    meeting = peewee.ForeignKeyField(Meeting, backref="checkins", null=True, on_delete="SET NULL")
    delegate = peewee.ForeignKeyField(Delegate, backref="checkins", null=True, on_delete="SET NULL")
    allowed = peewee.BooleanField()
    reason = peewee.CharField(max_length=32)
    outcome = peewee.CharField(max_length=16)
    direction = peewee.CharField(max_length=8)
    scheme = peewee.CharField(max_length=16, null=True)
    scanned_at = UTCDateTimeField(index=True)
    completed_at = UTCDateTimeField(null=True)
    received_at = UTCDateTimeField()
    manual = peewee.BooleanField(default=False)
    credential = peewee.CharField(max_length=128, null=True, index=True)


class SigningKey(BaseModel):
    """An Ed25519 public key central signs codes with; only one is active (signing) at a time."""

    key_id = peewee.IntegerField(unique=True)
    public_key = peewee.CharField(max_length=64, unique=True)
    active = peewee.BooleanField(default=True)
    revoked_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField()


class Change(BaseModel):
    """One entry of the change stream gates follow; ``body`` is a protocols change body as JSON."""

    seq = peewee.AutoField()
    at = UTCDateTimeField()
    kind = peewee.CharField(max_length=32)
    body = peewee.TextField()


ALL_MODELS: list[type[BaseModel]] = [
    Organisation,
    Meeting,
    Invitation,
    Delegate,
    Gate,
    CheckIn,
    SigningKey,
    Change,
]
"""Every table, in dependency order."""
