"""The tables of invitations: invited organisations, numbered invitations and their SMS/e-mail deliveries.
"""

from __future__ import annotations

from typing import Any

import peewee

from central.core.models import BaseModel, UTCDateTimeField
from central.core.states import DeliveryState, InvitationState
from central.meetings.models import Meeting


class Organisation(BaseModel):
    """An invited organisation ("đơn vị")."""

    invitations: peewee.ModelSelect[Any]  # backref
    users: peewee.ModelSelect[Any]  # backref
    name = peewee.CharField(max_length=200, unique=True)
    email = peewee.CharField(max_length=254, null=True)
    phone = peewee.CharField(max_length=20, null=True)
    leader_name = peewee.CharField(max_length=120, default="")
    leader_email = peewee.CharField(max_length=254, null=True)
    leader_phone = peewee.CharField(max_length=20, null=True)
    office_email = peewee.CharField(max_length=254, null=True)
    office_phone = peewee.CharField(max_length=20, null=True)


class Invitation(BaseModel):
    """An invitation of one organisation to one meeting: a draft until approved, then numbered; its secret
    opens registration."""

    delegates: peewee.ModelSelect[Any]  # backref
    deliveries: peewee.ModelSelect[Any]  # backref
    walkins: peewee.ModelSelect[Any]  # backref
    meeting = peewee.ForeignKeyField(Meeting, backref="invitations", on_delete="CASCADE")
    meeting_id: peewee.IntegerField[int]  # the key column peewee adds
    organisation = peewee.ForeignKeyField(Organisation, backref="invitations")
    organisation_id: peewee.IntegerField[int]  # the key column peewee adds
    number = peewee.CharField(max_length=64, index=True, null=True)  # given on approval
    year = peewee.IntegerField(null=True)
    seq = peewee.IntegerField(null=True)
    secret_hash = peewee.CharField(max_length=64, null=True)
    short_hash = peewee.CharField(max_length=64, null=True, unique=True)  # the SMS link's token (m0010)
    created_at = UTCDateTimeField()
    # The official flow: draft -> (returned -> draft) -> approved (numbered) -> sent.
    status = peewee.CharField(max_length=16, default=InvitationState.DRAFT, index=True)
    delegate_limit = peewee.IntegerField(null=True)
    comment = peewee.TextField(default="")
    drafted_by = peewee.CharField(max_length=64, default="")
    approved_by = peewee.CharField(max_length=64, default="")
    approved_at = UTCDateTimeField(null=True)
    returned_by = peewee.CharField(max_length=64, default="")  # the leader who last returned it (with ``comment``)
    returned_at = UTCDateTimeField(null=True)

    class Meta:
        # The register restarts every year, so "1/TM-UBND" recurs: a number is unique within its year.
        indexes = ((("year", "seq"), True), (("year", "number"), True))


class Delivery(BaseModel):
    """One channel (e-mail or SMS) of sending one invitation; retried with backoff until sent or given up.

    ``link`` holds the registration link (with its secret) only while the row still has to be sent.
    """

    invitation = peewee.ForeignKeyField(Invitation, backref="deliveries", on_delete="CASCADE")
    invitation_id: peewee.IntegerField[int]  # the key column peewee adds
    channel = peewee.CharField(max_length=8)  # "email" or "sms"
    recipient = peewee.CharField(max_length=254)
    status = peewee.CharField(max_length=16, default=DeliveryState.QUEUED, index=True)
    attempts = peewee.IntegerField(default=0)
    last_error = peewee.TextField(null=True)
    next_attempt_at = UTCDateTimeField(null=True, index=True)
    sent_at = UTCDateTimeField(null=True)
    link = peewee.TextField(null=True)
    created_at = UTCDateTimeField()

    class Meta:
        indexes = ((("invitation", "channel", "recipient"), True),)
