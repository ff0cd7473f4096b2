"""The table of walk-ins registered at the guard desk.
"""

from __future__ import annotations

import peewee

from central.core.models import BaseModel, UTCDateTimeField
from central.core.states import (
    WalkinState,
)
from central.invitations.models import Invitation
from central.meetings.models import Meeting
from central.registration.models import Delegate


class Walkin(BaseModel):
    """A visitor without a code registered at the guard desk from their citizen ID card (CCCD).

    The ID number itself is never stored: ``id_hash`` (HMAC-SHA256 with the app secret) lets the desk spot the
    same person twice, ``id_masked`` shows the last four digits. The address is not kept either.
    ``status``: pending -> approved | rejected; approved -> admitted (a one-day code, ``delegate``).
    """

    meeting = peewee.ForeignKeyField(Meeting, backref="walkins", on_delete="CASCADE")
    meeting_id: peewee.IntegerField[int]  # the key column peewee adds
    invitation = peewee.ForeignKeyField(Invitation, backref="walkins", on_delete="CASCADE")
    invitation_id: peewee.IntegerField[int]  # the key column peewee adds
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
    delegate_id: peewee.IntegerField[int | None]  # the key column peewee adds
