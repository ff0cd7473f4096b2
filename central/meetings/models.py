"""The tables of meetings: the meeting, the venues it uses (remote links) and its documents.
"""

from __future__ import annotations

from typing import Any

import peewee

from central.core.models import BaseModel, UTCDateTimeField
from central.core.states import (
    MeetingState,
)


class Meeting(BaseModel):
    """A meeting at one site, with the code scheme and entry policy its gates apply."""

    checkins: peewee.ModelSelect[Any]  # backref
    delegates: peewee.ModelSelect[Any]  # backref
    documents: peewee.ModelSelect[Any]  # backref
    invitations: peewee.ModelSelect[Any]  # backref
    remote_links: peewee.ModelSelect[Any]  # backref
    walkins: peewee.ModelSelect[Any]  # backref
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


class Venue(BaseModel):
    """A main hall ("hội trường") or a remote point ("điểm cầu"); main halls belong to a gate site."""

    meeting_links: peewee.ModelSelect[Any]  # backref
    name = peewee.CharField(max_length=200, unique=True)
    kind = peewee.CharField(max_length=8, default="main")  # "main" or "remote"
    site_id = peewee.CharField(max_length=32, default="")
    address = peewee.CharField(max_length=300, default="")


class MeetingVenue(BaseModel):
    """A remote point ("điểm cầu") linked to a meeting."""

    meeting = peewee.ForeignKeyField(Meeting, backref="remote_links", on_delete="CASCADE")
    meeting_id: peewee.IntegerField[int]  # the key column peewee adds
    venue = peewee.ForeignKeyField(Venue, backref="meeting_links", on_delete="CASCADE")
    venue_id: peewee.IntegerField[int]  # the key column peewee adds

    class Meta:
        indexes = ((("meeting", "venue"), True),)


class MeetingDocument(BaseModel):
    """A document attached to a meeting (tài liệu họp), stored under the data directory."""

    meeting = peewee.ForeignKeyField(Meeting, backref="documents", on_delete="CASCADE")
    meeting_id: peewee.IntegerField[int]  # the key column peewee adds
    filename = peewee.CharField(max_length=200)
    kind = peewee.CharField(max_length=8)  # pdf, docx, xlsx
    size = peewee.IntegerField()
    sha256 = peewee.CharField(max_length=64)
    stored_name = peewee.CharField(max_length=100, unique=True)
    uploaded_by = peewee.CharField(max_length=64)
    uploaded_at = UTCDateTimeField()
