"""The registration API's request and response models (validated by spectree, they make the OpenAPI document)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from central.api.schemas import Phone, RequiredEmail, text
from central.core.states import ApprovalState, DelegateMailState


class DelegateCreate(BaseModel):
    """A delegate of the invited organisation; one e-mail once per invitation (a second answers 409)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Nguyễn Văn An", "position": "Phó Giám đốc", "email": "an.nguyen@example.vn", "phone": "0912345678",
    }]})

    name: text(120, required=True)  # type: ignore[valid-type]
    position: text(120, required=False) | None = None  # type: ignore[valid-type]
    email: RequiredEmail
    phone: Phone = None


class InvitationSecret(BaseModel):
    """The secret from the invitation's link."""

    secret: str | SkipJsonSchema[None] = Field(default=None, alias="X-Invitation-Secret", max_length=200)


class Delegate(BaseModel):
    """A registered delegate (never the code)."""

    id: int
    meeting_id: int
    invitation_number: str
    name: str
    position: str
    email: str
    phone: str | None
    valid_from: str = Field(json_schema_extra={"format": "date-time"})
    valid_until: str = Field(json_schema_extra={"format": "date-time"})
    revoked: bool
    mail_status: DelegateMailState
    mail_error: str | None
    approval: ApprovalState = Field(description="pending: the office has yet to approve it (no code, no e-mail)")
    decision_note: str = Field("", description="the office's reason when it refused the registration")


