"""The gates API's request and response models (validated by spectree, they make the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from central.api.schemas import SiteId, text


class GateCreate(BaseModel):
    """A new gate; its ``gate_id`` is unique (a second one answers 409)."""

    gate_id: SiteId
    site_id: SiteId
    name: text(200, required=False) | None = None  # type: ignore[valid-type]
    direction: Literal["in", "out"] | None = None


class GateCreated(BaseModel):
    """A registered gate and its token (shown only here; stored hashed)."""

    gate_id: str
    name: str
    site_id: str
    direction: Literal["in", "out"]
    state: str
    last_seen_at: str | None = Field(json_schema_extra={"format": "date-time"})
    cache_seq: int | None
    software_version: str | None
    token: str = Field(description="Shown only here; stored hashed")
