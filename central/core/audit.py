"""The audit log (nhật ký): every state change records who did what to which thing, and when.

Services call :func:`audit` inside the transaction that made the change, so the log holds exactly the
changes that happened. Details are JSON; personal data in them must already be masked by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from central.core.models import AuditEntry

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
MAX_PAGE = 200


def audit(actor: str, action: str, target: str, details: Mapping[str, Any] | None = None, *,
          now: datetime) -> AuditEntry:
    """Append one audit entry: ``actor`` (username or ``api-token``), ``action`` (e.g. ``meeting.create``),
    ``target`` (e.g. ``meeting:12``) and JSON-able ``details``."""
    return AuditEntry.create(
        at=now,
        actor=actor[:64],
        action=action[:64],
        target=target[:128],
        details=json.dumps(dict(details or {}), ensure_ascii=False, default=str, sort_keys=True),
    )


def search(
    *, actor: str | None = None, action: str | None = None, day: date | None = None, limit: int = MAX_PAGE
) -> list[AuditEntry]:
    """Return the newest entries matching every given filter (``day`` is a Vietnam-time calendar day)."""
    query = AuditEntry.select().order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    if day is not None:
        start = datetime.combine(day, time(0), tzinfo=LOCAL_TZ)
        query = query.where(
            (AuditEntry.at >= start) & (AuditEntry.at < start + timedelta(days=1))
        )
    return list(query.limit(max(1, min(limit, MAX_PAGE))))


def known_actions() -> list[str]:
    """Return every action that appears in the log, sorted (for the filter's choices)."""
    rows = AuditEntry.select(AuditEntry.action).distinct()
    return sorted(row.action for row in rows)


def entry_to_dict(entry: AuditEntry) -> dict[str, Any]:
    """Return the JSON form of an entry."""
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": json.loads(entry.details or "{}"),
    }
