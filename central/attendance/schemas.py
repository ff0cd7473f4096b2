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
    day_entries: list[str | None] = Field(description="Per meeting day (day 1 first), the first entry that day or null")


class AttendanceDay(BaseModel):
    """One meeting day (04:00 to 04:00 Vietnam time, counted from the meeting's start; see protocols.meeting_days)."""

    day: int = Field(description="1 for the day the meeting starts")
    date: str = Field(description="The local date the day begins", json_schema_extra={"format": "date"})
    present: int = Field(description="Distinct delegates who entered that day")


class Attendance(BaseModel):
    """Who was expected at a meeting and who entered."""

    meeting_id: int
    expected: int = Field(description="Delegates not revoked")
    present: int = Field(description="Distinct delegates who entered")
    days: list[AttendanceDay] = Field(description="The meeting days, with who entered on each")
    attendees: list[Attendee]
