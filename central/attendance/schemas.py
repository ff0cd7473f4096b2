"""The attendance API's response models (validated by spectree, they make the OpenAPI document)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Attendee(BaseModel):
    """One delegate and whether they came."""

    delegate_id: int
    name: str
    organisation: str
    position: str
    revoked: bool
    present: bool
    first_entry_at: str | None = Field(json_schema_extra={"format": "date-time"})
    gate_id: str | None
    manual: bool


class Attendance(BaseModel):
    """Who was expected at a meeting and who entered."""

    meeting_id: int
    expected: int = Field(description="Delegates not revoked")
    present: int = Field(description="Distinct delegates who entered")
    attendees: list[Attendee]
