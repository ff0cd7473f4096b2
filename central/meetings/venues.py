"""Venues: main halls (with the gate site that guards them) and remote points ("điểm cầu"), and where a meeting is.

A meeting is held at its main hall (``Meeting.site_id``, the hall's gate site) and at each of its remote points
(:class:`MeetingVenue`); a remote point with a ``site_id`` has gates of its own. :func:`meeting_sites` is the one
answer to "which gates admit this meeting's delegates": the snapshot, the change stream and the dashboard ask it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import peewee

from central.core import validation as v
from central.core.audit import audit
from central.core.db import database, tuples
from central.core.errors import DuplicateError, InvalidInputError, NotFoundError
from central.core.states import MeetingState
from central.meetings.models import Meeting, MeetingVenue, Venue
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
        old_site = venue.site_id
        affected = _meetings_of_venue(venue, now) if clean.get("site_id", old_site) != old_site else []
        sites_before = {meeting.id: set(meeting_sites(meeting)) for meeting in affected}
        for key, value in clean.items():
            setattr(venue, key, value)
        if venue.kind == "main" and not venue.site_id:
            raise InvalidInputError({"site_id": "Hội trường chính phải có mã khu vực cổng"})
        venue.save()
        if affected:
            _move_meetings(venue, affected, sites_before, now)
        audit(actor, "venue.update", f"venue:{venue.id}", clean, now=now)
    return venue


def _meetings_of_venue(venue: Venue, now: datetime) -> list[Meeting]:
    """The meetings held in ``venue`` (main hall or remote point) that are not over, and not cancelled or held."""
    remote = MeetingVenue.select(MeetingVenue.meeting).where(MeetingVenue.venue == venue)
    return list(Meeting.select().where(((Meeting.main_venue == venue.id) | Meeting.id.in_(remote))
                                       & (Meeting.ends_at > now)
                                       & Meeting.status.not_in([state.value for state in MeetingState.FINAL]))
                .order_by(Meeting.id))


def _move_meetings(venue: Venue, meetings: list[Meeting], sites_before: dict[int, set[str]], now: datetime) -> None:
    """A venue's gate site changed: its meetings not yet over are held at the new site. Those in it as their main
    hall take the hall's new site; each goes to its gates at once (its old sites and its new ones), instead of at
    its next edit."""
    from central.meetings.services import publish_meeting  # services imports this module

    for meeting in meetings:
        if meeting.main_venue == venue.id and venue.kind == "main":
            meeting.site_id = venue.site_id
            meeting.updated_at = now
            meeting.save()
        publish_meeting(meeting, now, sites_before[meeting.id])


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


# --- where a meeting is held ---------------------------------------------------------------------------------


def meeting_venues(meeting: Meeting) -> list[Venue]:
    """The meeting's main hall (first, when set) and its remote points (by name)."""
    found: list[Venue] = []
    if meeting.main_venue:
        main = Venue.get_or_none(Venue.id == meeting.main_venue)
        if main is not None:
            found.append(main)
    found.extend(
        Venue.select().join(MeetingVenue).where(MeetingVenue.meeting == meeting)
        .order_by(Venue.name)
    )
    return found


def main_venue_name(meeting: Meeting) -> str:
    """The meeting's main hall (or its venue text when it has none): where a manual mark is counted."""
    venues = meeting_venues(meeting)
    return venues[0].name if venues and venues[0].kind == "main" else meeting.venue


def venue_of_site(meeting: Meeting) -> dict[str, str]:
    """Map each gate site of the meeting to the name of its venue there (the meeting's own site is the main hall).

    A check-in from a gate at site S counts at the meeting's venue at S. Two remote points at one site count at
    the first by name.
    """
    venues = meeting_venues(meeting)
    main_name = venues[0].name if venues and venues[0].kind == "main" else meeting.venue
    mapping = {meeting.site_id: main_name}
    for venue in venues:
        if venue.site_id:
            mapping.setdefault(venue.site_id, venue.name)
    return mapping


def meeting_sites(meeting: Meeting) -> list[str]:
    """The gate sites that admit the meeting's delegates: its main hall's site first, then its remote points'."""
    return sites_of_meetings([meeting]).get(meeting.id, [meeting.site_id])


def sites_of_meetings(meetings: Iterable[Meeting]) -> dict[int, list[str]]:
    """:func:`meeting_sites` of several meetings in one query (for the snapshot), by meeting id."""
    found = {meeting.id: [meeting.site_id] for meeting in meetings}
    if not found:
        return found
    ids = list(found)
    for start in range(0, len(ids), 400):
        rows = tuples(MeetingVenue.select(MeetingVenue.meeting, Venue.site_id).join(Venue)
                      .where(MeetingVenue.meeting.in_(ids[start:start + 400]) & (Venue.site_id != ""))
                      .order_by(MeetingVenue.meeting, Venue.name))
        for meeting_id, site_id in rows:
            if site_id not in found[meeting_id]:
                found[meeting_id].append(site_id)
    return found


def meetings_at_site(site_id: str) -> peewee.ColumnBase:
    """A condition on :class:`Meeting`: the meeting has a venue at gate site ``site_id`` (main hall or remote)."""
    remote = (MeetingVenue.select(MeetingVenue.meeting).join(Venue).where(Venue.site_id == site_id))
    return (Meeting.site_id == site_id) | Meeting.id.in_(remote)
