"""Venues: main halls (with the gate site that guards them) and remote points ("điểm cầu")."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from central.core import validation as v
from central.core.audit import audit
from central.core.db import database
from central.core.errors import DuplicateError, InvalidInputError, NotFoundError
from central.meetings.models import Venue
from protocols.reasons import Reason

KINDS = ("main", "remote")


def _clean(data: Mapping[str, Any], *, partial: bool, current_kind: str | None = None) -> dict[str, Any]:
    fields = v.FieldCollector(data)
    clean: dict[str, Any] = {}
    if not partial or "name" in data:
        clean["name"] = fields.take("name", v.text, required=True, max_length=200)
    if not partial or "kind" in data:
        clean["kind"] = fields.take("kind", v.choice, KINDS, "main")
    if not partial or "address" in data:
        clean["address"] = fields.take("address", v.text, required=False, max_length=300) or ""
    kind = clean.get("kind", current_kind)
    if not partial or "site_id" in data:
        raw = data.get("site_id") or ""
        if kind == "main" or raw:
            clean["site_id"] = fields.take("site_id", v.site_id)
        else:
            clean["site_id"] = ""
    fields.raise_if_any()
    return clean


def create_venue(data: Mapping[str, Any], *, actor: str, now: datetime) -> Venue:
    """Store a venue: ``name`` (unique), ``kind`` (main/remote), ``site_id`` (required for main halls),
    optional ``address``."""
    clean = _clean(data, partial=False)
    with database.atomic():
        if Venue.select().where(Venue.name == clean["name"]).exists():
            raise DuplicateError({"name": "Địa điểm này đã tồn tại"})
        venue = Venue.create(**clean)
        audit(actor, "venue.create", f"venue:{venue.id}", clean, now=now)
    return venue


def update_venue(venue_id: int, data: Mapping[str, Any], *, actor: str, now: datetime) -> Venue:
    """Change the given fields of a venue."""
    venue = get_venue(venue_id)
    clean = _clean(data, partial=True, current_kind=venue.kind)
    with database.atomic():
        if "name" in clean and clean["name"] != venue.name and Venue.select().where(
            Venue.name == clean["name"]
        ).exists():
            raise DuplicateError({"name": "Địa điểm này đã tồn tại"})
        for key, value in clean.items():
            setattr(venue, key, value)
        if venue.kind == "main" and not venue.site_id:
            raise InvalidInputError({"site_id": "Hội trường chính phải có mã khu vực cổng"})
        venue.save()
        audit(actor, "venue.update", f"venue:{venue.id}", clean, now=now)
    return venue


def get_venue(venue_id: int) -> Venue:
    """Return the venue or raise :class:`NotFoundError`."""
    venue = Venue.get_or_none(Venue.id == venue_id)
    if venue is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy địa điểm")
    return venue


def list_venues(kind: str | None = None) -> list[Venue]:
    """Return venues by name, optionally of one kind."""
    query = Venue.select().order_by(Venue.name)
    if kind:
        query = query.where(Venue.kind == kind)
    return list(query)


def venue_to_dict(venue: Venue) -> dict[str, Any]:
    """Return the JSON form of a venue."""
    return {"id": venue.id, "name": venue.name, "kind": venue.kind, "site_id": venue.site_id,
            "address": venue.address}
