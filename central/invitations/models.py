"""The tables of invitations: invited organisations, the bodies that issue giấy mời, numbered invitations and
their SMS/e-mail deliveries, and the office's protocol order of positions.
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
    # Protocol order ("thứ tự lễ tân"): a lower rank is seated and listed first; none comes after every rank.
    protocol_rank = peewee.IntegerField(null=True)


class IssuingBody(BaseModel):
    """A body that issues giấy mời (Decree 30/2020's letterhead): its name under its parent body's, the symbols
    of its numbers (``12/GM-UBND``), the place of the date line, the signer and the extra "Nơi nhận" lines."""

    parent_name = peewee.CharField(max_length=200, default="")  # "UBND TỈNH QUẢNG NGÃI"
    name = peewee.CharField(max_length=200, unique=True)  # "VĂN PHÒNG"
    doc_symbol = peewee.CharField(max_length=16, default="GM")  # the kind of document: GM = giấy mời
    body_symbol = peewee.CharField(max_length=32, default="UBND")  # the issuing body's abbreviation
    place = peewee.CharField(max_length=100, default="")  # "Quảng Ngãi" in "Quảng Ngãi, ngày 07 tháng 12 ..."
    signing_authority = peewee.CharField(max_length=120, default="")  # "TL. CHỦ TỊCH", "KT. CHÁNH VĂN PHÒNG"
    signer_position = peewee.CharField(max_length=120, default="")  # "CHÁNH VĂN PHÒNG"
    signer_name = peewee.CharField(max_length=120, default="")
    invitations: peewee.ModelSelect[Any]  # backref
    recipients = peewee.TextField(default="")  # extra "Nơi nhận" lines, one per line
    is_default = peewee.BooleanField(default=False)
    created_at = UTCDateTimeField()


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
    # Which issuing body's letterhead and symbol the giấy mời carries; none means the default body.
    issuing_body = peewee.ForeignKeyField(IssuingBody, null=True, backref="invitations", on_delete="SET NULL")
    issuing_body_id: peewee.IntegerField[int | None]  # the key column peewee adds

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


class ProtocolSetting(BaseModel):
    """The office's protocol order of positions ("Chủ tịch" before "Phó Chủ tịch" ...), one per line; one row."""

    position_order = peewee.TextField(default="")
    updated_at = UTCDateTimeField()
