"""Attendance per meeting: who was expected, who entered, when and through which gate."""

from __future__ import annotations

from typing import Any

from central import models


def meeting_attendance(meeting: models.Meeting) -> dict[str, Any]:
    """Return ``expected``, ``present`` and ``attendees`` for a meeting.

    Expected: delegates not revoked. Present: distinct delegates with an allowed check-in whose outcome is
    ``entered`` in direction ``in``. Each attendee carries name, organisation, position, ``present``,
    ``first_entry_at`` and the ``gate_id`` of that first entry.
    """
    delegates = list(
        models.Delegate.select(models.Delegate, models.Invitation, models.Organisation)
        .join(models.Invitation)
        .join(models.Organisation)
        .where(models.Delegate.meeting == meeting)
        .order_by(models.Organisation.name, models.Delegate.name, models.Delegate.id)
    )
    entries = (
        models.CheckIn.select(models.CheckIn.delegate, models.CheckIn.scanned_at, models.Gate.gate_id)
        .join(models.Gate)
        .where(
            (models.CheckIn.meeting == meeting)
            & models.CheckIn.delegate.is_null(False)
            & (models.CheckIn.allowed == True)  # noqa: E712 - peewee expression
            & (models.CheckIn.outcome == "entered")
            & (models.CheckIn.direction == "in")
        )
        .order_by(models.CheckIn.scanned_at, models.CheckIn.id)
        .tuples()
    )
    first_entry: dict[int, tuple[Any, str]] = {}
    for delegate_id, scanned_at, gate_id in entries:
        first_entry.setdefault(delegate_id, (scanned_at, gate_id))

    attendees = []
    for delegate in delegates:
        entry = first_entry.get(delegate.id)
        attendees.append(
            {
                "delegate_id": delegate.id,
                "name": delegate.name,
                "organisation": delegate.invitation.organisation.name,
                "position": delegate.position,
                "revoked": delegate.revoked_at is not None,
                "present": entry is not None,
                "first_entry_at": entry[0].isoformat() if entry else None,
                "gate_id": entry[1] if entry else None,
            }
        )
    return {
        "meeting_id": meeting.id,
        "expected": sum(1 for d in delegates if d.revoked_at is None),
        "present": len(first_entry),
        "attendees": attendees,
    }
