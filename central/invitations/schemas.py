"""The invitations API's request and response models (validated by spectree, they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, RootModel
from pydantic.json_schema import SkipJsonSchema

from central.api.schemas import Email, Id, Phone, text
from central.core.states import DeliveryState, InvitationState

DelegateLimit = Field(default=None, ge=1, le=500, description="At most this many delegates (1 to 500)")
OrganisationName: Any = text(200, required=True)
LeaderName: Any = text(120, required=False)


class _OrganisationContacts(BaseModel):
    """An organisation's leader and contacts, all optional."""

    leader_name: LeaderName | None = None
    email: Email = None
    phone: Phone = None
    leader_email: Email = None
    leader_phone: Phone = None
    office_email: Email = None
    office_phone: Phone = None


class OrganisationCreate(_OrganisationContacts):
    """A new invited organisation; its ``name`` is unique (a second one answers 409)."""

    name: OrganisationName


class OrganisationUpdate(_OrganisationContacts):
    """The fields of an organisation to change (only those sent)."""

    name: OrganisationName | SkipJsonSchema[None] = None


class Organisation(BaseModel):
    """An invited organisation and its contacts."""

    id: int
    name: str
    email: str | None
    phone: str | None = Field(description="International form, +84...")
    leader_name: str
    leader_email: str | None
    leader_phone: str | None
    office_email: str | None
    office_phone: str | None


class OrganisationList(RootModel[list[Organisation]]):
    """Organisations."""


class InvitationCreate(BaseModel):
    """A draft invitation of one organisation to one meeting (not over); no number and no secret until an
    approver approves it. An organisation already invited answers 409."""

    meeting_id: Id
    organisation_id: Id
    delegate_limit: int | None = DelegateLimit
    issuing_body_id: Id | None = Field(default=None, description="The issuing body whose letterhead and symbol "
                                       "the giấy mời carries; none: the default body")


class InvitationDrafts(BaseModel):
    """One draft per organisation; an organisation already invited to the meeting answers 409."""

    meeting_id: Id
    organisation_ids: list[Id] = Field(min_length=1, max_length=1000)
    delegate_limit: int | None = DelegateLimit
    issuing_body_id: Id | None = Field(default=None, description="The issuing body whose letterhead and symbol "
                                       "the giấy mời carries; none: the default body")


class InvitationReturn(BaseModel):
    """Why the draft goes back to the organiser."""

    comment: text(1000, required=True)  # type: ignore[valid-type]


class InvitationResubmit(BaseModel):
    """Submit again (a draft: save), with the limit (absent or null: none) and optionally another organisation."""

    delegate_limit: int | None = DelegateLimit
    organisation_id: int | None = Field(None, ge=1, description="another organisation, not yet invited to the meeting")


class InvitationQuery(BaseModel):
    """Filter invitations by state and meeting."""

    status: InvitationState | SkipJsonSchema[None] = None
    meeting_id: Id | SkipJsonSchema[None] = None


class Delivery(BaseModel):
    """One channel of sending an invitation."""

    id: int
    channel: str = Field(description="email or sms")
    recipient: str = Field(description="Masked")
    status: DeliveryState
    attempts: int
    last_error: str | None
    next_attempt_at: str | None = Field(json_schema_extra={"format": "date-time"})
    sent_at: str | None = Field(json_schema_extra={"format": "date-time"})


class Invitation(BaseModel):
    """An invitation; ``number`` (e.g. 125/GM-UBND), ``year`` and ``seq`` once approved."""

    id: int
    number: str | None
    year: int | None
    seq: int | None
    meeting_id: int
    organisation_id: int
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    status: InvitationState
    delegate_limit: int | None
    comment: str
    drafted_by: str
    approved_by: str
    approved_at: str | None = Field(json_schema_extra={"format": "date-time"})
    returned_by: str = ""
    returned_at: str | None = Field(None, json_schema_extra={"format": "date-time"})
    issuing_body_id: int | None = None
    deliveries: list[Delivery] | SkipJsonSchema[None] = None


class InvitationList(RootModel[list[Invitation]]):
    """Invitations."""
