"""Attendance per meeting: who was expected, who entered, when and through which gate.

Besides the summary the exports use (:func:`meeting_attendance`), this module builds the live dashboard's
state (:func:`dashboard_state`: counts per organisation and per venue, arrivals, late arrivals, substitutes,
the arrivals chart's data and the gates), describes new check-ins for the live stream
(:func:`describe_checkins`) and records a person marked present by hand (:func:`mark_present`).

A manual mark is a :class:`central.CheckIn` without a gate (``gate`` null, ``manual`` true, the
organiser's reason in ``note``), so exports and statistics count it like any entry.

"Present" counts seats, not rows or people twice: a delegate's entries count once whatever their number (two gates
that both admitted one code), and a replaced delegate shares the seat of the one who replaced them
(:func:`seats`), so an old code admitted by an offline gate and the new delegate's entry count one present. Both
people appear, each with the conflicts central flagged on their entries (:mod:`central.gates.conflicts`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import peewee

from central.core import validation as v
from central.core.audit import audit
from central.core.changes import changes_of_site_after, last_seq_of_sites
from central.core.db import tuples, write_transaction
from central.core.errors import ConflictError, NotFoundError
from central.core.models import AuditEntry, Change
from central.core.states import ApprovalState, GateLinkState, GateMode
from central.gates import conflicts
from central.gates.clock import is_skewed
from central.gates.models import CheckIn, Gate
from central.gates.names import gate_label
from central.gates.site_links import offline_sites
from central.invitations.models import Invitation, Organisation
from central.meetings.models import Meeting
from central.meetings.venues import main_venue_name as main_venue_name
from central.meetings.venues import meeting_sites as meeting_sites
from central.meetings.venues import meeting_venues as meeting_venues
from central.meetings.venues import venue_of_site as venue_of_site
from central.registration.models import Delegate
from protocols.meeting_days import day_dates, meeting_day
from protocols.reasons import Reason

log = logging.getLogger(__name__)

OFFLINE_AFTER = timedelta(seconds=60)
"""A gate not heard from for this long shows as offline (its heartbeat comes every 15 s by default)."""
RECENT_ARRIVALS = 50
MAX_REASON = 300
MANUAL_GATE_LABEL = "Thủ công"
OTHER_VENUE = "Khác"


def _entry_condition(meeting: Meeting | int) -> peewee.Expression:
    return (
        (CheckIn.meeting == meeting)
        & CheckIn.delegate.is_null(False)
        & (CheckIn.allowed == True)  # noqa: E712 - peewee expression
        & (CheckIn.outcome == "entered")
        & (CheckIn.direction == "in")
    )


def _first_entries(meeting: Meeting) -> dict[int, tuple[datetime, str | None, str | None, bool]]:
    """Map delegate id -> (scanned_at, gate_id, gate site_id, manual) of their first entry."""
    entries = tuples(
        CheckIn.select(CheckIn.delegate, CheckIn.scanned_at, Gate.gate_id, Gate.site_id, CheckIn.manual)
        .join(Gate, peewee.JOIN.LEFT_OUTER)
        .where(_entry_condition(meeting))
        .order_by(CheckIn.scanned_at, CheckIn.id)
    )
    first: dict[int, tuple[datetime, str | None, str | None, bool]] = {}
    for delegate_id, scanned_at, gate_id, site_id, manual in entries:
        first.setdefault(delegate_id, (scanned_at, gate_id, site_id, bool(manual)))
    return first


def _day_entries(meeting: Meeting) -> dict[int, dict[int, datetime]]:
    """Map delegate id -> {meeting day (1-based) -> their first entry that day}, days by
    :func:`protocols.meeting_days.meeting_day` (the rule the gates' ``single`` policy follows)."""
    entries = tuples(
        CheckIn.select(CheckIn.delegate, CheckIn.scanned_at)
        .where(_entry_condition(meeting))
        .order_by(CheckIn.scanned_at, CheckIn.id)
    )
    days: dict[int, dict[int, datetime]] = {}
    for delegate_id, scanned_at in entries:
        day = meeting_day(meeting.starts_at, meeting.ends_at, scanned_at)
        days.setdefault(delegate_id, {}).setdefault(day, scanned_at)
    return days


def _days_summary(meeting: Meeting, by_day: Mapping[int, Mapping[int, datetime]],
                  counted: Iterable[int] | None = None, seat_of: Mapping[int, int] | None = None
                  ) -> list[dict[str, Any]]:
    """One entry per meeting day: ``day`` (1-based), ``date`` (local ISO date it begins) and ``present`` (distinct
    seats (:func:`seats`) whose delegates entered that day; among ``counted`` delegate ids when given)."""
    wanted = set(counted) if counted is not None else None
    summary = []
    for index, day_date in enumerate(day_dates(meeting.starts_at, meeting.ends_at), start=1):
        present = count_present((delegate_id for delegate_id, days in by_day.items()
                                 if index in days and (wanted is None or delegate_id in wanted)), seat_of or {})
        summary.append({"day": index, "date": day_date.isoformat(), "present": present})
    return summary


def _delegates(meeting: Meeting) -> list[Delegate]:
    return list(
        Delegate.select(Delegate, Invitation, Organisation)
        .join(Invitation)
        .join(Organisation)
        # registrations awaiting (or refused by) the office have no code: nobody expects them yet
        .where((Delegate.meeting == meeting) & (Delegate.approval == ApprovalState.APPROVED))
        .order_by(Organisation.name, Delegate.name, Delegate.id)
    )


def meeting_attendance(meeting: Meeting) -> dict[str, Any]:
    """Return ``expected``, ``present`` and ``attendees`` for a meeting.

    Expected: delegates not revoked. Present: distinct delegates with an allowed check-in whose outcome is
    ``entered`` in direction ``in`` (a manual mark counts). Each attendee carries name, organisation,
    position, ``present``, ``first_entry_at``, the ``gate_id`` of that first entry (None when marked by hand),
    ``manual`` and ``day_entries`` (per meeting day, the first entry's time that day or None), its ``seat``
    (:func:`seats`) and ``conflicts`` (the reason codes central flagged on their entries). ``days`` lists the
    meeting days (:func:`protocols.meeting_days.meeting_day`) with how many delegates entered on each. Present
    counts seats (:func:`count_present`).
    """
    delegates = _delegates(meeting)
    first_entry = _first_entries(meeting)
    by_day = _day_entries(meeting)
    seat_of = seats(delegates)
    flagged = conflicts.conflicts_by_delegate(meeting)
    day_numbers = range(1, len(day_dates(meeting.starts_at, meeting.ends_at)) + 1)
    attendees = []
    for delegate in delegates:
        entry = first_entry.get(delegate.id)
        days = by_day.get(delegate.id, {})
        attendees.append(
            {
                "delegate_id": delegate.id,
                "name": delegate.name,
                "organisation": delegate.invitation.organisation.name,
                "position": delegate.position,
                "walkin": delegate.is_walkin,
                "revoked": delegate.revoked_at is not None,
                "present": entry is not None,
                "first_entry_at": entry[0].isoformat() if entry else None,
                "gate_id": entry[1] if entry else None,
                "manual": entry[3] if entry else False,
                "day_entries": [days[day].isoformat() if day in days else None for day in day_numbers],
                "seat": seat_of.get(delegate.id, delegate.id),
                "conflicts": flagged.get(delegate.id, []),
            }
        )
    return {
        "meeting_id": meeting.id,
        "expected": sum(1 for d in delegates if d.revoked_at is None),
        "present": count_present(first_entry, seat_of),
        "days": _days_summary(meeting, by_day, seat_of=seat_of),
        "conflicts": conflicts.meeting_conflicts(meeting),
        "attendees": attendees,
    }


def seats(delegates: Iterable[Delegate]) -> dict[int, int]:
    """Map each delegate id to the seat it fills: the id of the last delegate of its chain of replacements (a
    delegate nobody replaced is its own seat). An old code and its replacement's are one seat in "present"."""
    ids = [d.id for d in delegates]
    replaced_by = replacements(ids)
    found: dict[int, int] = {}
    for delegate_id in ids:
        seat, hops = delegate_id, 0
        while seat in replaced_by and hops < len(ids):  # hops: a corrupt cycle cannot loop forever
            seat, hops = replaced_by[seat], hops + 1
        found[delegate_id] = seat
    return found


def _seat_arrivals(first: Mapping[int, tuple[datetime, Any, Any, Any]], seat_of: Mapping[int, int]
                   ) -> dict[int, datetime]:
    """Map seat -> its first arrival (the earliest first entry of its delegates)."""
    arrivals: dict[int, datetime] = {}
    for delegate_id, entry in first.items():
        seat = seat_of.get(delegate_id, delegate_id)
        if seat not in arrivals or entry[0] < arrivals[seat]:
            arrivals[seat] = entry[0]
    return arrivals


def count_present(entered: Iterable[int], seat_of: Mapping[int, int]) -> int:
    """How many seats the delegates ``entered`` (ids) fill: each delegate once, a replaced one with their
    replacement (:func:`seats`)."""
    return len({seat_of.get(delegate_id, delegate_id) for delegate_id in entered})


# --- venues ------------------------------------------------------------------------------------------------


# The meeting's venues and gate sites (meeting_venues, venue_of_site, main_venue_name, meeting_sites) live in
# central.meetings.venues, which the snapshot asks too; they are re-exported above, where the dashboard and its
# helpers have always imported them.


# --- gates -------------------------------------------------------------------------------------------------


def current_change_seq() -> int:
    """The latest sequence of the whole change log (every site's changes)."""
    return Change.select(peewee.fn.MAX(Change.seq)).scalar() or 0


def current_change_seqs(site_ids: Iterable[str]) -> dict[str, int]:
    """The latest change of each site's stream: a gate of the site whose cache_seq is lower is behind (its site
    gets only its own changes, so comparing with :func:`current_change_seq` would call every gate behind)."""
    return last_seq_of_sites(site_ids)


def gate_state(gate: Gate, now: datetime, current_seq: int, *, site_offline: bool = False) -> dict[str, Any]:
    """Describe a gate for the dashboard and the fleet page: online/offline, cache current/behind (against
    ``current_seq``, the latest change of the gate's site, :func:`current_change_seqs`; ``behind_by`` counts the
    site's changes it lacks), mode, and its clock offset (``clock_skewed`` beyond
    :data:`central.gates.clock.MAX_SKEW_S`, ``clock_suspect`` when absurd). ``site_offline``: the gate's site
    broker has lost its bridge to the core (:mod:`central.gates.site_links`), so what central knows of the gate is
    its last known state and it is never shown online."""
    seen = gate.last_seen_at
    online = (gate.state == GateLinkState.ONLINE and seen is not None and now - seen <= OFFLINE_AFTER
              and not site_offline)
    behind_by: int | None = None
    if gate.cache_seq is None:
        cache = "unknown"
    elif gate.cache_seq >= current_seq:
        cache, behind_by = "current", 0
    else:
        cache, behind_by = "behind", changes_of_site_after(gate.site_id, gate.cache_seq)
    return {
        "gate_id": gate.gate_id,
        "name": gate.name,
        "site_id": gate.site_id,
        "direction": gate.direction,
        "online": online,
        "state": gate.state,
        "last_seen_at": seen.isoformat() if seen else None,
        "cache_seq": gate.cache_seq,
        "current_seq": current_seq,
        "cache": cache,
        "behind_by": behind_by,
        "emergency": bool(gate.emergency),
        "mode": gate.mode or GateMode.NORMAL,
        "fail_mode": gate.fail_mode,
        "software_version": gate.software_version,
        "outbox_pending": gate.outbox_pending,
        "clock_offset_s": round(gate.clock_offset_s, 1) if gate.clock_offset_s is not None else None,
        "clock_skewed": is_skewed(gate.clock_offset_s, gate.clock_reported_offset_s),
        "clock_suspect": bool(gate.clock_suspect),
        "site_offline": site_offline,
    }


def gate_states(now: datetime, sites: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Every gate (or those at ``sites``), by gate id."""
    query = Gate.select().order_by(Gate.gate_id)
    if sites is not None:
        query = query.where(Gate.site_id.in_(list(sites)))
    found = list(query)
    current = current_change_seqs(gate.site_id for gate in found)
    offline = offline_sites()
    return [gate_state(gate, now, current[gate.site_id], site_offline=gate.site_id in offline) for gate in found]


# --- check-ins for the live stream -------------------------------------------------------------------------


def describe_checkins(rows: Iterable[CheckIn]) -> list[dict[str, Any]]:
    """Describe check-ins (selected with their delegate, organisation and gate) as dashboard arrivals."""
    described = []
    for row in rows:
        delegate = row.delegate if row.delegate_id is not None else None
        gate = row.gate if row.gate_id is not None else None
        described.append(
            {
                "checkin_id": row.id,
                "uuid": str(row.checkin_id),
                "meeting_id": row.meeting_id,
                "delegate_id": row.delegate_id,
                "name": delegate.name if delegate else "",
                "organisation": delegate.invitation.organisation.name if delegate else "",
                "gate_id": gate.gate_id if gate else None,
                "gate_name": gate_label(gate),
                "site_id": gate.site_id if gate else None,
                "at": row.scanned_at.isoformat(),
                "manual": bool(row.manual),
                "note": row.note or "",
                "allowed": bool(row.allowed),
                "entry": bool(row.allowed) and row.outcome == "entered" and row.direction == "in",
                "reason": row.reason,
                "clock_suspect": bool(row.clock_suspect),  # the gate's clock was absurd: ``at`` is corrected
            }
        )
    return described


def checkins_after(last_id: int, limit: int = 1000) -> list[CheckIn]:
    """Check-ins stored after row id ``last_id`` (by id), with delegate, organisation and gate joined."""
    return list(
        CheckIn.select(CheckIn, Delegate, Invitation, Organisation, Gate)
        .join(Delegate, peewee.JOIN.LEFT_OUTER)
        .join(Invitation, peewee.JOIN.LEFT_OUTER)
        .join(Organisation, peewee.JOIN.LEFT_OUTER)
        .switch(CheckIn)
        .join(Gate, peewee.JOIN.LEFT_OUTER)
        .where(CheckIn.id > last_id)
        .order_by(CheckIn.id)
        .limit(limit)
    )


def last_checkin_id() -> int:
    """The highest check-in row id (0 when none)."""
    return CheckIn.select(peewee.fn.MAX(CheckIn.id)).scalar() or 0


# --- substitutes -------------------------------------------------------------------------------------------


def replacements(delegate_ids: Iterable[int]) -> dict[int, int]:
    """Map each of ``delegate_ids`` that was replaced to the id of the delegate who replaced them.

    Registration records a replacement as the audit entry ``delegate.replace`` on the old delegate with
    ``replaced_by`` (the new delegate's id) in its details; the old code is revoked.
    """
    targets = [f"delegate:{delegate_id}" for delegate_id in delegate_ids]
    found: dict[int, int] = {}
    for start in range(0, len(targets), 400):
        entries = tuples(AuditEntry.select(AuditEntry.target, AuditEntry.details).where(
            (AuditEntry.action == "delegate.replace") & AuditEntry.target.in_(targets[start:start + 400])
        ))
        for target, details in entries:
            try:
                found[int(target.split(":", 1)[1])] = int(json.loads(details or "{}").get("replaced_by"))
            except (TypeError, ValueError, AttributeError):
                continue
    return found


def substitutes(meeting: Meeting, delegates: list[Delegate] | None = None) -> dict[int, str]:
    """Map the id of each delegate who replaced another to the replaced person's name (:func:`replacements`)."""
    delegates = delegates if delegates is not None else _delegates(meeting)
    names = {d.id: d.name for d in delegates}
    return {new_id: names[old_id] for old_id, new_id in replacements(names).items()}


# --- the dashboard -----------------------------------------------------------------------------------------


def dashboard_state(meeting: Meeting, now: datetime) -> dict[str, Any]:
    """Everything the live dashboard shows, as JSON-able data (the stream then sends what changes)."""
    delegates = _delegates(meeting)
    first = _first_entries(meeting)
    by_day = _day_entries(meeting)
    day_numbers = range(1, len(day_dates(meeting.starts_at, meeting.ends_at)) + 1)
    today = meeting_day(meeting.starts_at, meeting.ends_at, now)
    replaced = substitutes(meeting, delegates)
    seat_of = seats(delegates)
    flagged = conflicts.conflicts_by_delegate(meeting)
    counted_seats: set[int] = set()
    site_venue = venue_of_site(meeting)
    manual_venue = main_venue_name(meeting)
    venues = [venue.name for venue in meeting_venues(meeting)] or [meeting.venue]

    by_org: dict[str, dict[str, int]] = {}
    by_venue: dict[str, int] = {name: 0 for name in venues}
    people = []
    for delegate in delegates:
        org = delegate.invitation.organisation.name
        active = delegate.revoked_at is None
        entry = first.get(delegate.id)
        counts = by_org.setdefault(org, {"expected": 0, "present": 0})
        counts["expected"] += active
        seat = seat_of.get(delegate.id, delegate.id)
        if entry is not None and seat not in counted_seats:  # a seat counts once (see the module docstring)
            counted_seats.add(seat)
            counts["present"] += 1
            venue = manual_venue if entry[3] else site_venue.get(entry[2] or "", OTHER_VENUE)
            by_venue[venue] = by_venue.get(venue, 0) + 1
        people.append(
            {
                "delegate_id": delegate.id,
                "name": delegate.name,
                "organisation": org,
                "position": delegate.position,
                "active": active,
                "present": entry is not None,
                "first_entry_at": entry[0].isoformat() if entry else None,
                "late": entry is not None and entry[0] > meeting.starts_at,
                "manual": entry[3] if entry else False,
                "substitute_for": replaced.get(delegate.id),
                "days_present": [day in by_day.get(delegate.id, {}) for day in day_numbers],
                "present_today": today in by_day.get(delegate.id, {}),  # who may still be marked by hand today
                "seat": seat,
                "shares_seat": seat != delegate.id or delegate.id in replaced,
                "conflicts": flagged.get(delegate.id, []),
            }
        )
    arrivals = describe_checkins(
        CheckIn.select(CheckIn, Delegate, Invitation, Organisation, Gate)
        .join(Delegate)
        .join(Invitation)
        .join(Organisation)
        .switch(CheckIn)
        .join(Gate, peewee.JOIN.LEFT_OUTER)
        .where(_entry_condition(meeting))
        .order_by(CheckIn.id.desc())
        .limit(RECENT_ARRIVALS)
    )
    return {
        "meeting": {
            "id": meeting.id,
            "title": meeting.title,
            "starts_at": meeting.starts_at.isoformat(),
            "ends_at": meeting.ends_at.isoformat(),
            "status": meeting.status,
        },
        "now": now.isoformat(),
        "expected": sum(1 for d in delegates if d.revoked_at is None),
        "present": count_present(first, seat_of),
        "days": _days_summary(meeting, by_day, seat_of=seat_of),
        "today": today,
        "by_organisation": [{"organisation": org, **counts} for org, counts in sorted(by_org.items())],
        "by_venue": [{"venue": name, "present": count} for name, count in by_venue.items()],
        "site_venues": site_venue,
        "manual_venue": manual_venue,
        "people": people,
        "arrivals": arrivals,
        "arrival_times": sorted(at.isoformat() for at in _seat_arrivals(first, seat_of).values()),
        "gates": gate_states(now, meeting_sites(meeting)),
        "conflicts": conflicts.meeting_conflicts(meeting),
    }


# --- marking present by hand -------------------------------------------------------------------------------


def mark_present(meeting: Meeting, data: Mapping[str, Any], *, actor: str, now: datetime) -> CheckIn:
    """Record that a delegate of ``meeting`` is present without passing a gate, with the organiser's reason.

    ``data``: ``delegate_id`` and ``reason`` (required, at most 300 characters). Stored as a manual check-in
    (no gate) and audited as ``attendance.mark_present`` by ``actor``. Refused when the delegate is not one
    of the meeting's (``NotFoundError``), their code was revoked or they are already present on the meeting day
    of ``now`` (``ConflictError``; :func:`protocols.meeting_days.meeting_day`, so day 2 of a 3-day meeting can
    be marked after day 1).
    """
    fields = v.FieldCollector(data)
    delegate_id = fields.take("delegate_id", v.positive_int)
    reason = fields.take("reason", v.text, required=True, max_length=MAX_REASON)
    fields.raise_if_any()
    with write_transaction():
        delegate = Delegate.get_or_none(
            (Delegate.id == delegate_id) & (Delegate.meeting == meeting)
        )
        if delegate is None:
            raise NotFoundError(Reason.UNKNOWN_CODE, "Không có đại biểu này trong cuộc họp")
        if delegate.revoked_at is not None:
            raise ConflictError(Reason.REVOKED, "Mã của đại biểu đã bị thu hồi (đã thay người khác)")
        today = meeting_day(meeting.starts_at, meeting.ends_at, now)
        entered = CheckIn.select(CheckIn.scanned_at).where(_entry_condition(meeting) & (CheckIn.delegate == delegate))
        if any(meeting_day(meeting.starts_at, meeting.ends_at, at) == today for (at,) in tuples(entered)):
            raise ConflictError(Reason.ALREADY_INSIDE, "Đại biểu đã được ghi nhận có mặt")
        checkin = CheckIn.create(
            checkin_id=uuid.uuid4(),
            gate=None,
            meeting=meeting,
            delegate=delegate,
            allowed=True,
            reason=Reason.OK.value,
            outcome="entered",
            direction="in",
            scanned_at=now,
            completed_at=now,
            received_at=now,
            manual=True,
            note=reason,
            operator=actor[:200],
        )
        audit(actor, "attendance.mark_present", f"delegate:{delegate.id}",
              {"meeting": meeting.id, "name": delegate.name, "reason": reason}, now=now)
    log.info("delegate marked present by hand meeting=%s delegate=%s actor=%s", meeting.id, delegate.id, actor)
    return checkin

