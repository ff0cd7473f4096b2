"""The tables of staff users (argon2 password hashes, a role, optionally an organisation), their server-side
sessions and their failed logins.
"""

from __future__ import annotations

import peewee

from central.core.models import BaseModel, UTCDateTimeField
from central.invitations.models import Organisation


class User(BaseModel):
    """A staff account; ``role`` is one of :data:`central.auth.roles.ROLES`; password stored as argon2 hash."""

    username = peewee.CharField(max_length=64, unique=True)
    full_name = peewee.CharField(max_length=120, default="")
    position = peewee.CharField(max_length=120, default="")  # chức vụ, shown beside the name
    email = peewee.CharField(max_length=254, null=True)
    role = peewee.CharField(max_length=16)
    organisation = peewee.ForeignKeyField(Organisation, null=True, backref="users", on_delete="SET NULL")
    organisation_id: peewee.IntegerField[int | None]  # the key column peewee adds
    password_hash = peewee.CharField(max_length=255)
    active = peewee.BooleanField(default=True)
    created_at = UTCDateTimeField()
    last_login_at = UTCDateTimeField(null=True)


class LoginFailure(BaseModel):
    """One failed login: the account name tried (lower-cased, whether it exists or not) and the client address.

    Rows are what the login throttle counts (``central.auth.throttle``); shared by every web process through the
    database. The failure that crossed the account's limit carries ``locked_until``: the account is refused until
    then, and each further lockout of the same name lasts twice as long.
    """

    at = UTCDateTimeField()
    username = peewee.CharField(max_length=64)
    address = peewee.CharField(max_length=64)
    locked_until = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("username", "at"), False), (("address", "at"), False), (("at",), False))


class UserSession(BaseModel):
    """A logged-in session, known to the server: the cookie holds a random token, this row only its SHA-256.

    A session is valid while it is not ended, younger than ``VAORA_SESSION_MAX_HOURS`` and seen within
    ``VAORA_SESSION_IDLE_MIN`` (``central.auth.sessions``).
    """

    user = peewee.ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    user_id: peewee.IntegerField[int]  # the key column peewee adds
    token_hash = peewee.CharField(max_length=64, unique=True)
    created_at = UTCDateTimeField()
    seen_at = UTCDateTimeField()
    ended_at = UTCDateTimeField(null=True)
    end_reason = peewee.CharField(max_length=32, null=True)
