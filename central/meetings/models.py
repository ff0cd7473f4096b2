"""The tables of meetings: the meeting, the venues it uses (remote links), its documents, and the idempotency keys
of the API requests that created meetings.
"""

from __future__ import annotations

from typing import Any

import peewee

from central.clients.models import ApiClient
from central.core import changes
from central.core.models import BaseModel, UTCDateTimeField
from central.core.states import (
    MeetingState,
)


class Meeting(BaseModel):
    """A meeting at one site, with the code scheme and entry policy its gates apply."""

    checkins: peewee.ModelSelect[Any]  # backref
    delegates: peewee.ModelSelect[Any]  # backref
    documents: peewee.ModelSelect[Any]  # backref
    idempotency_records: peewee.ModelSelect[Any]  # backref
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
    registration_approval = peewee.BooleanField(default=False)  # the office approves each registered delegate
    api_client = peewee.ForeignKeyField(ApiClient, null=True, backref="meetings")  # the API client that created it
    api_client_id: peewee.IntegerField[int | None]  # the key column peewee adds
    external_id = peewee.CharField(max_length=100, null=True)  # that client's document id, unique per client

    class Meta:
        indexes = ((("api_client", "external_id"), True),)


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
    shared = peewee.BooleanField(default=False)  # sent to the invited organisations (m0010)


class IdempotencyRecord(BaseModel):
    """A ``POST /meetings`` made with an ``Idempotency-Key``: the caller, the key, what was asked and what was made.

    A retry with the same key and the same body gets the same meeting back; the unique (actor, key) index makes
    two concurrent requests with one key create one meeting.
    """

    actor = peewee.CharField(max_length=64)  # who sent it (``client:<name>``, ``api-token`` or a username)
    key = peewee.CharField(max_length=200)
    fingerprint = peewee.CharField(max_length=64)  # hex SHA-256 of the request body in canonical JSON
    meeting = peewee.ForeignKeyField(Meeting, backref="idempotency_records", on_delete="CASCADE")
    meeting_id: peewee.IntegerField[int]  # the key column peewee adds
    created_at = UTCDateTimeField()

    class Meta:
        indexes = ((("actor", "key"), True),)


def _sites_of_meeting(meeting_id: int) -> list[str] | None:
    """The meeting's gate sites (:func:`central.meetings.venues.meeting_sites`), None for an unknown meeting."""
    from central.meetings.venues import meeting_sites  # venues imports this module

    meeting = Meeting.get_or_none(Meeting.id == meeting_id)
    return None if meeting is None else meeting_sites(meeting)


# The change log (central.core) asks where a delegate's change goes; core imports no feature, so it is told here,
# where every process that stores a meeting or a delegate has loaded it.
changes.register_meeting_sites(_sites_of_meeting)
