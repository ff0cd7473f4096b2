"""Central's tables (peewee). The same models run on SQLite and PostgreSQL; datetimes are stored as UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import peewee

from central.core.db import database
from central.core.states import (
    CommandState,
    DelegateMailState,
    GateLinkState,
    InvitationState,
    MeetingState,
    WalkinState,
)


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

    class Meta:
        database = database
        legacy_table_names = False


class Organisation(BaseModel):
    """An invited organisation ("đơn vị")."""

    name = peewee.CharField(max_length=200, unique=True)
    email = peewee.CharField(max_length=254, null=True)
    phone = peewee.CharField(max_length=20, null=True)
    leader_name = peewee.CharField(max_length=120, default="")
    leader_email = peewee.CharField(max_length=254, null=True)
    leader_phone = peewee.CharField(max_length=20, null=True)
    office_email = peewee.CharField(max_length=254, null=True)
    office_phone = peewee.CharField(max_length=20, null=True)


class Meeting(BaseModel):
    """A meeting at one site, with the code scheme and entry policy its gates apply."""

    title = peewee.CharField(max_length=500)
    starts_at = UTCDateTimeField()
    ends_at = UTCDateTimeField()
    venue = peewee.CharField(max_length=200)
    site_id = peewee.CharField(max_length=32, index=True)
    scheme = peewee.CharField(max_length=16, default="compact")
    entry_policy = peewee.CharField(max_length=16, default="single")
    status = peewee.CharField(max_length=16, default=MeetingState.OPEN)
    created_at = UTCDateTimeField()
    agenda = peewee.TextField(default="")
    chair = peewee.CharField(max_length=200, default="")
    registration_deadline = UTCDateTimeField(null=True)
    main_venue = peewee.IntegerField(null=True)  # a Venue id (venues are defined below)
    updated_at = UTCDateTimeField(null=True)
    walkin_policy = peewee.CharField(max_length=16, default="approval")  # "direct" or "approval" (walk-ins)


class Invitation(BaseModel):
    """A numbered invitation of one organisation to one meeting; its secret opens registration."""

    meeting = peewee.ForeignKeyField(Meeting, backref="invitations", on_delete="CASCADE")
    organisation = peewee.ForeignKeyField(Organisation, backref="invitations")
    number = peewee.CharField(max_length=64, index=True, null=True)  # given on approval
    year = peewee.IntegerField(null=True)
    seq = peewee.IntegerField(null=True)
    secret_hash = peewee.CharField(max_length=64, null=True)
    created_at = UTCDateTimeField()
    # The official flow: draft -> (returned -> draft) -> approved (numbered) -> sent.
    status = peewee.CharField(max_length=16, default=InvitationState.APPROVED, index=True)
    delegate_limit = peewee.IntegerField(null=True)
    comment = peewee.TextField(default="")
    drafted_by = peewee.CharField(max_length=64, default="")
    approved_by = peewee.CharField(max_length=64, default="")
    approved_at = UTCDateTimeField(null=True)

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
    mail_status = peewee.CharField(max_length=16, default=DelegateMailState.PENDING)
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
    state = peewee.CharField(max_length=16, default=GateLinkState.UNKNOWN)
    emergency = peewee.BooleanField(default=False)
    outbox_pending = peewee.IntegerField(null=True)
    mode = peewee.CharField(max_length=16, null=True)  # normal | lockdown | release, as the gate last reported
    fail_mode = peewee.CharField(max_length=8, null=True)  # safe | secure, as the gate last reported


class CheckIn(BaseModel):
    """A check-in received from a gate; stored once per ``checkin_id``."""

    checkin_id = peewee.UUIDField(unique=True)
    # Null for a person marked present by hand on the dashboard (no gate involved; see ``note``).
    gate = peewee.ForeignKeyField(Gate, backref="checkins", null=True)
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
    note = peewee.TextField(null=True)  # the reason an organiser gave when marking someone present by hand
    operator = peewee.CharField(max_length=200, null=True)  # who opened the gate remotely (a manual check-in)
    command_id = peewee.UUIDField(null=True, index=True)  # the gate command that caused this check-in


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


class User(BaseModel):
    """A staff account; ``role`` is one of :data:`central.auth.roles.ROLES`; password stored as argon2 hash."""

    username = peewee.CharField(max_length=64, unique=True)
    full_name = peewee.CharField(max_length=120, default="")
    email = peewee.CharField(max_length=254, null=True)
    role = peewee.CharField(max_length=16)
    organisation = peewee.ForeignKeyField(Organisation, null=True, backref="users", on_delete="SET NULL")
    password_hash = peewee.CharField(max_length=255)
    active = peewee.BooleanField(default=True)
    created_at = UTCDateTimeField()
    last_login_at = UTCDateTimeField(null=True)


class Venue(BaseModel):
    """A main hall ("hội trường") or a remote point ("điểm cầu"); main halls belong to a gate site."""

    name = peewee.CharField(max_length=200, unique=True)
    kind = peewee.CharField(max_length=8, default="main")  # "main" or "remote"
    site_id = peewee.CharField(max_length=32, default="")
    address = peewee.CharField(max_length=300, default="")


class MeetingVenue(BaseModel):
    """A remote point ("điểm cầu") linked to a meeting."""

    meeting = peewee.ForeignKeyField(Meeting, backref="remote_links", on_delete="CASCADE")
    venue = peewee.ForeignKeyField(Venue, backref="meeting_links", on_delete="CASCADE")

    class Meta:
        indexes = ((("meeting", "venue"), True),)


class MeetingDocument(BaseModel):
    """A document attached to a meeting (tài liệu họp), stored under the data directory."""

    meeting = peewee.ForeignKeyField(Meeting, backref="documents", on_delete="CASCADE")
    filename = peewee.CharField(max_length=200)
    kind = peewee.CharField(max_length=8)  # pdf, docx, xlsx
    size = peewee.IntegerField()
    sha256 = peewee.CharField(max_length=64)
    stored_name = peewee.CharField(max_length=100, unique=True)
    uploaded_by = peewee.CharField(max_length=64)
    uploaded_at = UTCDateTimeField()


class Delivery(BaseModel):
    """One channel (e-mail or SMS) of sending one invitation; retried with backoff until sent or given up.

    ``link`` holds the registration link (with its secret) only while the row still has to be sent.
    """

    invitation = peewee.ForeignKeyField(Invitation, backref="deliveries", on_delete="CASCADE")
    channel = peewee.CharField(max_length=8)  # "email" or "sms"
    recipient = peewee.CharField(max_length=254)
    status = peewee.CharField(max_length=16, default="queued", index=True)  # queued, sent, failed
    attempts = peewee.IntegerField(default=0)
    last_error = peewee.TextField(null=True)
    next_attempt_at = UTCDateTimeField(null=True, index=True)
    sent_at = UTCDateTimeField(null=True)
    link = peewee.TextField(null=True)
    created_at = UTCDateTimeField()

    class Meta:
        indexes = ((("invitation", "channel", "recipient"), True),)


class AuditEntry(BaseModel):
    """One line of the audit log (nhật ký): who did what to which thing, and when."""

    at = UTCDateTimeField(index=True)
    actor = peewee.CharField(max_length=64, index=True)
    action = peewee.CharField(max_length=64, index=True)
    target = peewee.CharField(max_length=128, default="")
    details = peewee.TextField(default="{}")


ALL_MODELS: list[type[BaseModel]] = [
    Organisation,
    Meeting,
    Invitation,
    Delegate,
    Gate,
    CheckIn,
    SigningKey,
    Change,
    User,
    Venue,
    MeetingVenue,
    MeetingDocument,
    Delivery,
    AuditEntry,
]
"""Every table, in dependency order."""


class Walkin(BaseModel):
    """A visitor without a code registered at the guard desk from their citizen ID card (CCCD).

    The ID number itself is never stored: ``id_hash`` (HMAC-SHA256 with the app secret) lets the desk spot the
    same person twice, ``id_masked`` shows the last four digits. The address is not kept either.
    ``status``: pending -> approved | rejected; approved -> admitted (a one-day code, ``delegate``).
    """

    meeting = peewee.ForeignKeyField(Meeting, backref="walkins", on_delete="CASCADE")
    invitation = peewee.ForeignKeyField(Invitation, backref="walkins", on_delete="CASCADE")
    full_name = peewee.CharField(max_length=120)
    date_of_birth = peewee.DateField()
    sex = peewee.CharField(max_length=8, default="")
    id_hash = peewee.CharField(max_length=64, index=True)
    id_masked = peewee.CharField(max_length=16)
    status = peewee.CharField(max_length=16, default=WalkinState.PENDING, index=True)
    created_by = peewee.CharField(max_length=64)
    created_at = UTCDateTimeField(index=True)
    decided_by = peewee.CharField(max_length=64, default="")
    decided_at = UTCDateTimeField(null=True)
    decision_note = peewee.TextField(default="")
    delegate = peewee.ForeignKeyField(Delegate, backref="walkins", null=True, on_delete="SET NULL")


class GateCommand(BaseModel):
    """A command central sent to one gate (open, lockdown, release, resume, resync) and the gate's answer.

    ``status``: ``sent`` until the gate answers (``ok`` / ``failed`` with ``reason``) or the issuer stops waiting
    (``timeout``; a late answer still sets ``ok`` / ``failed``).
    """

    command_id = peewee.UUIDField(unique=True)
    gate = peewee.ForeignKeyField(Gate, backref="commands", on_delete="CASCADE")
    action = peewee.CharField(max_length=16)
    note = peewee.CharField(max_length=200, default="")
    meeting_id = peewee.IntegerField(null=True)
    delegate_id = peewee.IntegerField(null=True)
    issued_by = peewee.CharField(max_length=64)
    issued_at = UTCDateTimeField(index=True)
    status = peewee.CharField(max_length=16, default=CommandState.SENT, index=True)
    reason = peewee.CharField(max_length=200, null=True)
    answered_at = UTCDateTimeField(null=True)
