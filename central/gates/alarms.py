"""Gate alarms: a forced door and the emergency input, shown until a guard or organiser acknowledges them.

Ingest raises them (:mod:`central.gates.checkins`): a check-in ``door_forced`` (a turn of the turnstile nobody was
let through) becomes one alarm (unique per check-in, so a redelivery adds none); a gate reporting its emergency
input active (its retained status, published at once when the input changes, or a heartbeat) opens one alarm
until it reports the input released (``cleared_at``). The live hub (:mod:`central.attendance.live`) pushes the
active alarms to the dashboard, the fleet page and the guards' alarm page within its fast poll (0.1 s).

An alarm stays active until acknowledged (:func:`acknowledge`, audited as ``gate.alarm_acknowledge``); it then
leaves the active panel and stays in the history (:func:`recent_alarms`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import peewee

from central.core import validation as v
from central.core.audit import audit
from central.core.db import tuples, write_transaction
from central.core.errors import ConflictError, NotFoundError
from central.core.states import AlarmKind
from central.gates.models import CheckIn, Gate, GateAlarm
from central.gates.names import gate_label
from protocols.reasons import Reason

log = logging.getLogger(__name__)

HISTORY = 50
"""How many alarms the history shows."""
MAX_NOTE = 200


def record_forced_doors(checkin_ids: Iterable[UUID], now: datetime) -> int:
    """Raise one alarm per stored ``door_forced`` check-in among ``checkin_ids``; return how many were new."""
    wanted = list(dict.fromkeys(checkin_ids))
    added = 0
    for start in range(0, len(wanted), 400):
        rows = tuples(CheckIn.select(CheckIn.id, CheckIn.gate, CheckIn.scanned_at)
                      .where(CheckIn.checkin_id.in_(wanted[start:start + 400])
                             & (CheckIn.reason == Reason.DOOR_FORCED.value) & CheckIn.gate.is_null(False)))
        values = [{"gate": gate, "kind": AlarmKind.DOOR_FORCED, "checkin": checkin, "raised_at": at}
                  for checkin, gate, at in rows]
        if values:
            added += GateAlarm.insert_many(values).on_conflict_ignore().as_rowcount().execute() or 0
    if added:
        log.warning("door forced alarms raised count=%d", added)
    return added


def record_emergency(gate_id: str, active: bool, now: datetime) -> GateAlarm | None:
    """Open an emergency alarm for the gate when its input became active, or clear the open one when released.
    Returns the alarm opened or cleared, None when nothing changed (or the gate is unknown)."""
    gate = Gate.get_or_none(Gate.gate_id == gate_id)
    if gate is None:
        return None
    current = (GateAlarm.select().where((GateAlarm.gate == gate) & (GateAlarm.kind == AlarmKind.EMERGENCY)
                                        & GateAlarm.cleared_at.is_null()).order_by(GateAlarm.id.desc()).first())
    if active and current is None:
        log.warning("emergency alarm raised gate=%s", gate_id)
        return GateAlarm.create(gate=gate, kind=AlarmKind.EMERGENCY, raised_at=now)
    if not active and current is not None:
        GateAlarm.update(cleared_at=now).where(GateAlarm.id == current.id).execute()
        log.info("emergency alarm cleared gate=%s alarm=%s", gate_id, current.id)
        current.cleared_at = now
        return current
    return None


def acknowledge(alarm_id: int, data: dict[str, Any], *, actor: str, now: datetime) -> GateAlarm:
    """Acknowledge an active alarm (``data``: optional ``note``, at most 200 characters), audited as
    ``gate.alarm_acknowledge``. ``NotFoundError`` for an unknown alarm, ``ConflictError`` when it was already
    acknowledged (by someone else a moment before)."""
    fields = v.FieldCollector(data)
    note = fields.take("note", v.text, required=False, max_length=MAX_NOTE) or ""
    fields.raise_if_any()
    with write_transaction():
        alarm = GateAlarm.select(GateAlarm, Gate).join(Gate).where(GateAlarm.id == alarm_id).first()
        if alarm is None:
            raise NotFoundError(Reason.UNKNOWN_CODE, "Không có cảnh báo này")
        changed = (GateAlarm.update(acknowledged_at=now, acknowledged_by=actor[:64], note=note)
                   .where((GateAlarm.id == alarm_id) & GateAlarm.acknowledged_at.is_null()).execute())
        if not changed:
            raise ConflictError(Reason.DUPLICATE, "Cảnh báo đã được xác nhận")
        audit(actor, "gate.alarm_acknowledge", f"gate_alarm:{alarm_id}",
              {"gate": alarm.gate.gate_id, "kind": alarm.kind, "note": note}, now=now)
    log.info("alarm acknowledged alarm=%s gate=%s kind=%s actor=%s", alarm_id, alarm.gate.gate_id, alarm.kind, actor)
    alarm.acknowledged_at, alarm.acknowledged_by, alarm.note = now, actor[:64], note
    return alarm


def _query(sites: Iterable[str] | None) -> peewee.ModelSelect[Any]:
    query = GateAlarm.select(GateAlarm, Gate).join(Gate)
    if sites is not None:
        query = query.where(Gate.site_id.in_(list(sites)))
    return query


def active_alarms(sites: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Alarms not yet acknowledged (of gates at ``sites`` when given), newest first."""
    query = _query(sites).where(GateAlarm.acknowledged_at.is_null()).order_by(GateAlarm.raised_at.desc(),
                                                                               GateAlarm.id.desc())
    return [alarm_to_dict(alarm) for alarm in query]


def recent_alarms(sites: Iterable[str] | None = None, limit: int = HISTORY) -> list[dict[str, Any]]:
    """The latest alarms, acknowledged or not (the history), newest first."""
    query = _query(sites).order_by(GateAlarm.raised_at.desc(), GateAlarm.id.desc()).limit(limit)
    return [alarm_to_dict(alarm) for alarm in query]


def active_signature() -> tuple[tuple[int, bool], ...]:
    """What the live hub compares between polls: each active alarm's id and whether it was cleared."""
    rows = tuples(GateAlarm.select(GateAlarm.id, GateAlarm.cleared_at).where(GateAlarm.acknowledged_at.is_null())
                  .order_by(GateAlarm.id))
    return tuple((alarm_id, cleared is not None) for alarm_id, cleared in rows)


def alarm_to_dict(alarm: GateAlarm) -> dict[str, Any]:
    """One alarm as the pages and the live stream show it."""
    kind = AlarmKind(alarm.kind)
    return {
        "id": alarm.id,
        **kind.labelled("kind"),
        "gate_id": alarm.gate.gate_id,
        "gate_name": gate_label(alarm.gate),
        "site_id": alarm.gate.site_id,
        "raised_at": alarm.raised_at.isoformat(),
        "cleared_at": alarm.cleared_at.isoformat() if alarm.cleared_at else None,
        "active": alarm.acknowledged_at is None,
        "acknowledged_at": alarm.acknowledged_at.isoformat() if alarm.acknowledged_at else None,
        "acknowledged_by": alarm.acknowledged_by,
        "note": alarm.note or "",
    }
