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
    seat: int = Field(description="The delegate whose seat this one fills: the last of its chain of replacements "
                                  "(a replaced delegate and their replacement count once in present)")
    conflicts: list[str] = Field(description="The reasons central flagged on this delegate's entries "
                                             "(revoked_code, replaced_code, second_entry, wrong_site)")


class Conflict(BaseModel):
    """An entry central stored but flagged, with why."""

    id: int
    reason: str = Field(description="revoked_code, replaced_code, second_entry or wrong_site")
    reason_vi: str
    reason_en: str
    meeting_id: int | None
    delegate_id: int | None
    name: str
    organisation: str
    checkin_id: int
    gate_id: str | None
    manual: bool
    at: str = Field(json_schema_extra={"format": "date-time"})
    other_gate_id: str | None = Field(description="second_entry: the gate of the day's first entry")
    other_at: str | None = Field(description="second_entry: the time of the day's first entry")
    replaced_by: str | None = Field(description="replaced_code: who replaced the delegate")
    detected_at: str = Field(json_schema_extra={"format": "date-time"})


class AttendanceDay(BaseModel):
    """One meeting day (04:00 to 04:00 Vietnam time, counted from the meeting's start; see protocols.meeting_days)."""

    day: int = Field(description="1 for the day the meeting starts")
    date: str = Field(description="The local date the day begins", json_schema_extra={"format": "date"})
    present: int = Field(description="Distinct delegates who entered that day")


class Attendance(BaseModel):
    """Who was expected at a meeting and who entered."""

    meeting_id: int
    expected: int = Field(description="Delegates not revoked")
    present: int = Field(description="Distinct seats whose delegates entered: a delegate once, a replaced delegate "
                                     "and their replacement once")
    days: list[AttendanceDay] = Field(description="The meeting days, with who entered on each")
    conflicts: list[Conflict] = Field(description="Entries central flagged, newest first")
    attendees: list[Attendee]
