"""Conflicts: entries central stores but flags, with a reason (:class:`central.core.states.ConflictReason`).

A gate decides alone, from its cache; offline, or within the few milliseconds a passage takes to reach the other
gates of its site, it can admit what central would not have. Central still stores every check-in (a gate's record
of who passed is a fact), and flags the entry here, at ingest (:func:`central.gates.checkins.store_checkins`):

- ``revoked_code`` / ``replaced_code``: the delegate's code was revoked (or replaced by another delegate's, the
  audit entry ``delegate.replace``) at or before the scan's time;
- ``second_entry``: under the entry policy ``single``, a delegate's entry after their first one of the same meeting
  day (:func:`protocols.meeting_days.meeting_day`); every later entry of that day is flagged, naming the first
  (``other_checkin``), whichever order the gates delivered them in: two gates that both admitted one code within
  milliseconds give one flagged pair;
- ``wrong_site``: an entry at a gate whose site is none of the meeting's venues' sites
  (:func:`central.attendance.services.meeting_sites`).

Recording is idempotent (one row per check-in and reason, a unique index), so a redelivered check-in or a
re-scan (:func:`scan_meeting`, ``vaora-central conflicts --rescan``) adds nothing twice. It never makes ingest lose a
check-in: the caller runs it in a savepoint and logs a failure. The dashboard and the exports read the conflicts
with :func:`meeting_conflicts`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

import peewee

from central.attendance import services as attendance
from central.core.db import tuples
from central.core.states import ConflictReason
from central.gates.models import CheckIn, CheckInConflict, Gate
from central.gates.names import gate_label
from central.invitations.models import Invitation, Organisation
from central.meetings.models import Meeting
from central.registration.models import Delegate
from protocols.meeting_days import meeting_day

log = logging.getLogger(__name__)

SINGLE = "single"
"""The entry policy that admits a credential once per meeting day."""
_CHUNK = 400


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def entry_condition() -> peewee.Expression:
    """An allowed passage in direction ``in`` of a known delegate of a known meeting (what "present" counts)."""
    return (
        CheckIn.meeting.is_null(False)
        & CheckIn.delegate.is_null(False)
        & (CheckIn.allowed == True)  # noqa: E712 - peewee expression
        & (CheckIn.outcome == "entered")
        & (CheckIn.direction == "in")
    )


def record_conflicts(checkin_ids: Iterable[UUID], now: datetime) -> int:
    """Detect and record the conflicts of the stored check-ins ``checkin_ids`` (their UUIDs); return how many rows
    were new. Idempotent. Check-ins that are no entry, or name no meeting or delegate central knows, have none."""
    wanted = list(dict.fromkeys(checkin_ids))
    found: list[dict[str, Any]] = []
    for chunk in _chunks(wanted):
        entries = list(CheckIn.select(CheckIn, Gate).join(Gate, peewee.JOIN.LEFT_OUTER)
                       .where(CheckIn.checkin_id.in_(chunk) & entry_condition()))
        found.extend(_detect(entries, now))
    return _insert(found)


def scan_meeting(meeting: Meeting, now: datetime) -> int:
    """Detect and record the conflicts of every entry of ``meeting`` (after a repair, or for check-ins stored before
    conflicts were recorded); return how many rows were new."""
    entries = list(CheckIn.select(CheckIn, Gate).join(Gate, peewee.JOIN.LEFT_OUTER)
                   .where((CheckIn.meeting == meeting) & entry_condition()))
    return _insert(_detect(entries, now))


def _insert(rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    added = 0
    for chunk in _chunks(rows):
        added += CheckInConflict.insert_many(chunk).on_conflict_ignore().as_rowcount().execute() or 0
    if added:
        log.warning("conflicts flagged count=%d reasons=%s", added, sorted({row["reason"] for row in rows}))
    return added


def _detect(entries: list[CheckIn], now: datetime) -> list[dict[str, Any]]:
    """The conflict rows of ``entries`` (check-ins with their gate joined)."""
    if not entries:
        return []
    meetings = {m.id: m for m in Meeting.select().where(Meeting.id.in_(list({e.meeting_id for e in entries})))}
    delegates = {d.id: d for d in Delegate.select().where(Delegate.id.in_(list({e.delegate_id for e in entries})))}
    revoked = [d.id for d in delegates.values() if d.revoked_at is not None]
    replaced_by = attendance.replacements(revoked) if revoked else {}
    sites = {meeting_id: set(attendance.meeting_sites(meeting)) for meeting_id, meeting in meetings.items()}
    rows: list[dict[str, Any]] = []

    def add(checkin: CheckIn, reason: ConflictReason, **other: int | None) -> None:
        rows.append({"checkin": checkin.id, "reason": reason.value, "meeting": checkin.meeting_id,
                     "delegate": checkin.delegate_id, "other_checkin": other.get("other_checkin"),
                     "other_delegate": other.get("other_delegate"), "detected_at": now})

    for entry in entries:
        if entry.meeting_id is None or entry.delegate_id is None:
            continue
        meeting, delegate = meetings.get(entry.meeting_id), delegates.get(entry.delegate_id)
        if meeting is None or delegate is None:
            continue
        if delegate.revoked_at is not None and delegate.revoked_at <= entry.scanned_at:
            new = replaced_by.get(delegate.id)
            if new is not None:
                add(entry, ConflictReason.REPLACED_CODE, other_delegate=new)
            else:
                add(entry, ConflictReason.REVOKED_CODE)
        gate = entry.gate if entry.gate_id is not None else None
        if gate is not None and gate.site_id not in sites[meeting.id]:
            add(entry, ConflictReason.WRONG_SITE)
    for checkin_id, first_id, meeting_id, delegate_id in _repeated_entries(
            [m for m in meetings.values() if m.entry_policy == SINGLE], set(delegates)):
        rows.append({"checkin": checkin_id, "reason": ConflictReason.SECOND_ENTRY.value, "meeting": meeting_id,
                     "delegate": delegate_id, "other_checkin": first_id, "other_delegate": None, "detected_at": now})
    return rows


def _repeated_entries(meetings: list[Meeting], delegate_ids: set[int]) -> list[tuple[int, int, int, int]]:
    """Every entry of ``delegate_ids`` in ``meetings`` that follows the delegate's first entry of the same meeting
    day, as (its row id, the first entry's row id, meeting id, delegate id). Entries are ordered by time, then by
    row id (two gates' entries a few milliseconds apart keep a stable order)."""
    if not meetings or not delegate_ids:
        return []
    by_id = {meeting.id: meeting for meeting in meetings}
    repeated: list[tuple[int, int, int, int]] = []
    firsts: dict[tuple[int, int, int], int] = {}
    for chunk in _chunks(sorted(delegate_ids)):
        entries = tuples(CheckIn.select(CheckIn.id, CheckIn.meeting, CheckIn.delegate, CheckIn.scanned_at)
                         .where(CheckIn.meeting.in_(list(by_id)) & CheckIn.delegate.in_(chunk) & entry_condition())
                         .order_by(CheckIn.scanned_at, CheckIn.id))
        for checkin_id, meeting_id, delegate_id, scanned_at in entries:
            meeting = by_id[meeting_id]
            day = meeting_day(meeting.starts_at, meeting.ends_at, scanned_at)
            first = firsts.setdefault((meeting_id, delegate_id, day), checkin_id)
            if first != checkin_id:
                repeated.append((checkin_id, first, meeting_id, delegate_id))
    return repeated


# --- reading -------------------------------------------------------------------------------------------------


def meeting_conflicts(meeting: Meeting | int) -> list[dict[str, Any]]:
    """Every conflict of ``meeting``, newest entry first: who (name, organisation), which gate, when, why (the
    reason's code and its Vietnamese and English labels), the entry it repeats (gate and time) or who replaced the
    delegate."""
    other, other_gate, replacement = CheckIn.alias(), Gate.alias(), Delegate.alias()
    query = (
        CheckInConflict.select(CheckInConflict, CheckIn, Gate, Delegate, Invitation, Organisation, other, other_gate,
                               replacement)
        .join(CheckIn, on=(CheckInConflict.checkin == CheckIn.id))
        .join(Gate, peewee.JOIN.LEFT_OUTER, on=(CheckIn.gate == Gate.id))
        .switch(CheckInConflict)
        .join(Delegate, peewee.JOIN.LEFT_OUTER, on=(CheckInConflict.delegate == Delegate.id))
        .join(Invitation, peewee.JOIN.LEFT_OUTER)
        .join(Organisation, peewee.JOIN.LEFT_OUTER)
        .switch(CheckInConflict)
        .join(other, peewee.JOIN.LEFT_OUTER, on=(CheckInConflict.other_checkin == other.id))
        .join(other_gate, peewee.JOIN.LEFT_OUTER, on=(other.gate == other_gate.id))
        .switch(CheckInConflict)
        .join(replacement, peewee.JOIN.LEFT_OUTER, on=(CheckInConflict.other_delegate == replacement.id))
        .where(CheckInConflict.meeting == meeting)
        .order_by(CheckIn.scanned_at.desc(), CheckInConflict.id.desc())
    )
    return [conflict_to_dict(row) for row in query]


def conflict_to_dict(row: CheckInConflict) -> dict[str, Any]:
    """One conflict as the dashboard, the exports and the JSON show it (see :func:`meeting_conflicts`)."""
    checkin = row.checkin
    delegate = row.delegate if row.delegate_id is not None else None
    other = row.other_checkin if row.other_checkin_id is not None else None
    replacement = row.other_delegate if row.other_delegate_id is not None else None
    reason = ConflictReason(row.reason)
    return {
        "id": row.id,
        **reason.labelled("reason"),
        "meeting_id": row.meeting_id,
        "delegate_id": row.delegate_id,
        "name": delegate.name if delegate else "",
        "organisation": delegate.invitation.organisation.name if delegate else "",
        "checkin_id": checkin.id,
        "gate_id": _gate_id(checkin),
        "gate_name": gate_label(checkin.gate if checkin.gate_id is not None else None),
        "manual": bool(checkin.manual),
        "at": checkin.scanned_at.isoformat(),
        "other_gate_id": _gate_id(other) if other is not None else None,
        "other_gate_name": gate_label(other.gate if other is not None and other.gate_id is not None else None),
        "other_at": other.scanned_at.isoformat() if other is not None else None,
        "replaced_by": replacement.name if replacement is not None else None,
        "detected_at": row.detected_at.isoformat(),
    }


def _gate_id(checkin: CheckIn) -> str | None:
    gate = checkin.gate if checkin.gate_id is not None else None
    return gate.gate_id if gate is not None else None


def conflicts_by_delegate(meeting: Meeting | int) -> dict[int, list[str]]:
    """Map delegate id -> the distinct reasons (codes) of their conflicts in ``meeting``, for lists and counts."""
    found: dict[int, list[str]] = {}
    rows = tuples(CheckInConflict.select(CheckInConflict.delegate, CheckInConflict.reason)
                  .where((CheckInConflict.meeting == meeting) & CheckInConflict.delegate.is_null(False))
                  .order_by(CheckInConflict.id))
    for delegate_id, reason in rows:
        reasons = found.setdefault(delegate_id, [])
        if reason not in reasons:
            reasons.append(reason)
    return found


def last_conflict_id() -> int:
    """The highest conflict row id (0 when none): the live stream's cursor."""
    return CheckInConflict.select(peewee.fn.MAX(CheckInConflict.id)).scalar() or 0


def meetings_with_conflicts_after(last_id: int) -> dict[int, int]:
    """Map meeting id -> how many conflicts were stored after row id ``last_id`` (for the live stream)."""
    rows = tuples(CheckInConflict.select(CheckInConflict.meeting, peewee.fn.COUNT(CheckInConflict.id))
                  .where((CheckInConflict.id > last_id) & CheckInConflict.meeting.is_null(False))
                  .group_by(CheckInConflict.meeting))
    return {meeting_id: count for meeting_id, count in rows}
