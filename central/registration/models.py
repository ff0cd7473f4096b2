"""The table of registered delegates: one row per person, with their code.

Walk-ins admitted at the guard desk get their one-day code as a row here too (``mail_status`` ``desk``), under
the invitation they came with; :func:`registered_by_organisation` tells the organisation's own delegates apart.
"""

from __future__ import annotations

from typing import Any

import peewee

from central.core.models import BaseModel, UTCDateTimeField
from central.core.states import (
    ApprovalState,
    DelegateMailState,
)
from central.invitations.models import Invitation
from central.meetings.models import Meeting


class Delegate(BaseModel):
    """A person an organisation sends; holds the issued code (central is the authority and can resend)."""

    checkins: peewee.ModelSelect[Any]  # backref
    walkins: peewee.ModelSelect[Any]  # backref
    invitation = peewee.ForeignKeyField(Invitation, backref="delegates", on_delete="CASCADE")
    invitation_id: peewee.IntegerField[int]  # the key column peewee adds
    meeting = peewee.ForeignKeyField(Meeting, backref="delegates", on_delete="CASCADE")
    meeting_id: peewee.IntegerField[int]  # the key column peewee adds
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
    # When the meeting asks the office to approve registrations: pending (no code yet) -> approved | refused.
    approval = peewee.CharField(max_length=16, default=ApprovalState.APPROVED, index=True)
    decision_note = peewee.TextField(default="")
    decided_by = peewee.CharField(max_length=64, default="")
    decided_at = UTCDateTimeField(null=True)

    @property
    def is_walkin(self) -> bool:
        """True for a walk-in's one-day code issued at the guard desk (not one of the organisation's delegates)."""
        return bool(self.mail_status == DelegateMailState.DESK)


def registered_by_organisation() -> peewee.Expression:
    """The delegates an organisation registered (page, API, import): not the walk-ins' codes issued at the desk,
    which live in the same table under the invitation they came with but never use its quota."""
    return Delegate.mail_status != DelegateMailState.DESK
