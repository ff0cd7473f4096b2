"""The administration API's request and response models (validated by spectree, they make the document)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field, RootModel
from pydantic.json_schema import SkipJsonSchema


class AuditQuery(BaseModel):
    """Filter the audit log by actor, action and day (Vietnam time)."""

    actor: str | SkipJsonSchema[None] = Field(default=None, max_length=200)
    action: str | SkipJsonSchema[None] = Field(default=None, max_length=200)
    day: date | SkipJsonSchema[None] = Field(default=None, description="YYYY-MM-DD")


class AuditEntry(BaseModel):
    """One audited change."""

    id: int
    at: str = Field(json_schema_extra={"format": "date-time"})
    actor: str
    action: str
    target: str
    details: dict[str, Any]


class AuditLog(RootModel[list[AuditEntry]]):
    """Audit entries, newest first."""
