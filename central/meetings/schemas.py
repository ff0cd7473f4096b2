"""The meetings API's request and response models (validated by spectree, they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictBool
from pydantic.json_schema import SkipJsonSchema

from central.api.schemas import AwareDatetime, Id, SiteId, text
from central.core.states import MeetingState

Scheme = Literal["compact", "signed"]
EntryPolicy = Literal["single", "reentry", "unlimited"]
VenueKind = Literal["main", "remote"]
Title: Any = text(500, required=True)
Agenda: Any = text(5000, required=False, multiline=True)
Chair: Any = text(200, required=False)
VenueName: Any = text(200, required=True)
Address: Any = text(300, required=False)
OverrideReason: Any = text(300, required=False)
OVERRIDE_DESCRIPTION = ("A leader's reason for booking a meeting with remote points later than the configured "
                        "working days ahead; honoured only from a leader's (approver's) or administrator's session, "
                        "and audited")


class MeetingCreate(BaseModel):
    """A new meeting: either ``main_venue_id`` (a main hall) or ``venue`` and ``site_id``; ``ends_at`` after
    ``starts_at``; ``registration_deadline`` not after ``starts_at``; remote points by id."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "title": "Họp giao ban tháng 3", "starts_at": "2030-03-10T08:00:00+07:00",
        "ends_at": "2030-03-10T11:00:00+07:00", "venue": "Phòng họp số 1", "site_id": "hq", "scheme": "compact",
    }]})

    title: Title
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    main_venue_id: Id | None = None
    venue: VenueName | SkipJsonSchema[None] = None
    site_id: SiteId | SkipJsonSchema[None] = None
    agenda: Agenda | None = None
    chair: Chair | None = None
    registration_deadline: AwareDatetime | None = None
    registration_approval: bool | None = Field(
        default=None, description="true: each delegate an organisation registers waits for the office's approval "
                                  "before their code is issued and mailed (default false)")
    remote_venue_ids: list[Id] | None = Field(default=None, max_length=1000)
    scheme: Scheme | None = None
    entry_policy: EntryPolicy | None = None
    status: MeetingState | None = None
    booking_override_reason: OverrideReason | None = Field(default=None, description=OVERRIDE_DESCRIPTION)
    external_id: text(100, required=False) | None = Field(  # type: ignore[valid-type]
        default=None, description="The API client's own id of the meeting (its document system's); one meeting "
                                  "per id and client (a second answers 409 with the meeting_id); only with a "
                                  "client's own token")


class IdempotencyKey(BaseModel):
    """A create sent again with the same key returns the same meeting (``Idempotent-Replayed: true``); the
    key with another body answers 422."""

    key: str | SkipJsonSchema[None] = Field(default=None, alias="Idempotency-Key", min_length=1, max_length=200,
                                            pattern=r"^[!-~]+$", description="1 to 200 printable ASCII, no space")


class MeetingUpdate(BaseModel):
    """The fields to change (only those sent); the same rules as :class:`MeetingCreate`. The scheme of a
    meeting with delegates does not change."""

    title: Title | SkipJsonSchema[None] = None
    starts_at: AwareDatetime | SkipJsonSchema[None] = None
    ends_at: AwareDatetime | SkipJsonSchema[None] = None
    main_venue_id: Id | None = None
    venue: VenueName | SkipJsonSchema[None] = None
    site_id: SiteId | SkipJsonSchema[None] = None
    agenda: Agenda | None = None
    chair: Chair | None = None
    registration_deadline: AwareDatetime | None = None
    registration_approval: bool | SkipJsonSchema[None] = None
    remote_venue_ids: list[Id] | None = Field(default=None, max_length=1000)
    scheme: Scheme | SkipJsonSchema[None] = None
    entry_policy: EntryPolicy | SkipJsonSchema[None] = None
    booking_override_reason: OverrideReason | None = Field(default=None, description=OVERRIDE_DESCRIPTION)


class MeetingStatusChange(BaseModel):
    """The state to move to (draft → open/cancelled, open → closed/cancelled/draft, closed → open/held/
    cancelled); cancelling revokes every code."""

    status: MeetingState


class MeetingQuery(BaseModel):
    """Filter meetings by state."""

    status: MeetingState | SkipJsonSchema[None] = None


class Meeting(BaseModel):
    """A meeting."""

    id: int
    title: str
    starts_at: str = Field(json_schema_extra={"format": "date-time"})
    ends_at: str = Field(json_schema_extra={"format": "date-time"})
    venue: str
    site_id: str
    scheme: Scheme
    entry_policy: EntryPolicy
    status: MeetingState
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    agenda: str
    chair: str
    registration_deadline: str | None = Field(json_schema_extra={"format": "date-time"})
    registration_approval: bool = False
    main_venue_id: int | None
    remote_venue_ids: list[int]
    sites: list[str] = Field(description="The gate sites whose gates admit its delegates: the main hall's, then "
                                         "its remote points'")


class MeetingList(RootModel[list[Meeting]]):
    """Meetings."""


class Document(BaseModel):
    """A document attached to a meeting."""

    id: int
    meeting_id: int
    filename: str
    kind: Literal["pdf", "docx", "xlsx"]
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: str = Field(json_schema_extra={"format": "date-time"})
    shared: bool = Field(description="linked from the invitation e-mail and listed on the registration page")


class DocumentShare(BaseModel):
    """Share a document with the meeting's invited organisations, or stop sharing it."""

    model_config = ConfigDict(extra="forbid")

    shared: StrictBool


class DocumentList(RootModel[list[Document]]):
    """A meeting's documents."""


class VenueCreate(BaseModel):
    """A new venue: ``name`` unique; a main hall needs the ``site_id`` of the gates that guard it."""

    name: VenueName
    kind: VenueKind | None = None
    site_id: SiteId | None = None
    address: Address | None = None


class VenueUpdate(BaseModel):
    """The fields of a venue to change (only those sent)."""

    name: VenueName | SkipJsonSchema[None] = None
    kind: VenueKind | SkipJsonSchema[None] = None
    site_id: SiteId | None = None
    address: Address | None = None


class VenueQuery(BaseModel):
    """Filter venues by kind."""

    kind: VenueKind | SkipJsonSchema[None] = None


class Venue(BaseModel):
    """A main hall or a remote point."""

    id: int
    name: str
    kind: VenueKind
    site_id: str
    address: str


class VenueList(RootModel[list[Venue]]):
    """Venues."""
