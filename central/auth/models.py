"""The table of staff users (argon2 password hashes, a role, optionally an organisation).
"""

from __future__ import annotations

import peewee

from central.core.models import BaseModel, UTCDateTimeField
from central.invitations.models import Organisation


class User(BaseModel):
    """A staff account; ``role`` is one of :data:`central.auth.roles.ROLES`; password stored as argon2 hash."""

    username = peewee.CharField(max_length=64, unique=True)
    full_name = peewee.CharField(max_length=120, default="")
    email = peewee.CharField(max_length=254, null=True)
    role = peewee.CharField(max_length=16)
    organisation = peewee.ForeignKeyField(Organisation, null=True, backref="users", on_delete="SET NULL")
    organisation_id: peewee.IntegerField[int | None]  # the key column peewee adds
    password_hash = peewee.CharField(max_length=255)
    active = peewee.BooleanField(default=True)
    created_at = UTCDateTimeField()
    last_login_at = UTCDateTimeField(null=True)
