"""Remote gate commands: issue one to a gate over MQTT, wait for the gate's answer, record the answer.

Actions (``protocols.payloads.Command``): ``open`` (one manual turnstile cycle, recorded by the gate as a manual
check-in naming the issuer, and the admitted walk-in's meeting/delegate when given), ``lockdown`` (every scan
refused), ``release`` (turnstile held open like the emergency input), ``resume`` (back to normal) and
``resync`` (the gate fetches a fresh snapshot).

:func:`issue` stores a :class:`central.GateCommand` row (``status=CommandState.SENT``) and an audit entry in one
transaction, then publishes the command at QoS 1. Central's ingest worker hands each ``CommandResult`` to
:func:`record_result`, which sets ``ok`` / ``failed``. :func:`wait` polls the row until it is answered or
the timeout passes, then marks it ``timeout`` (only if still unanswered; a later answer still lands). The
gate refuses a command older than its max age (default 30 s), so a command queued for an offline gate is
never executed long after the fact. Each command carries the gate's clock offset central last measured from its
heartbeats (``gate_clock_offset_s``), which the gate uses to judge the age until it has measured its own.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from central.core.audit import audit
from central.core.db import database, write_transaction
from central.core.errors import InvalidInputError, NotFoundError, ServiceError
from central.core.states import CommandState
from central.desk import walkins
from central.gates.models import Gate, GateCommand
from central.gates.names import gate_label
from central.meetings.models import Meeting
from central.messaging.publish import CommandPublisher, PublishError, get_publisher
from central.registration.models import Delegate
from protocols import payloads, topics
from protocols.payloads import COMMAND_ACTIONS, Command, CommandResult
from protocols.reasons import Reason, describe

log = logging.getLogger(__name__)

ACTIONS: tuple[str, ...] = COMMAND_ACTIONS
DEFAULT_TIMEOUT_S: float = 10.0
POLL_S = 0.05
COMMAND_QOS = 1
STATUSES = tuple(CommandState)

ACTION_TEXT: dict[str, tuple[str, str]] = {
    "open": ("Mở cổng một lần", "Open once"),
    "lockdown": ("Khóa cổng", "Lock down"),
    "release": ("Mở tự do (khẩn cấp)", "Release (emergency)"),
    "resume": ("Trở lại bình thường", "Back to normal"),
    "resync": ("Đồng bộ lại dữ liệu", "Resync"),
}
"""(Vietnamese, English) label of each action, for pages."""



def _now() -> datetime:
    return datetime.now(UTC)


def _as_uuid(command_id: UUID | str) -> UUID:
    if isinstance(command_id, UUID):
        return command_id
    try:
        return UUID(str(command_id))
    except ValueError:
        raise NotFoundError(Reason.MALFORMED, "Mã lệnh không hợp lệ") from None


def issue(
    gate_id: str,
    action: str,
    actor: str,
    *,
    note: str = "",
    meeting_id: int | None = None,
    delegate_id: int | None = None,
    publisher: CommandPublisher | None = None,
    now: datetime | None = None,
    valid_at: datetime | None = None,
) -> GateCommand:
    """Send ``action`` to gate ``gate_id`` on behalf of ``actor`` (a username); return the stored command.

    Raises :class:`NotFoundError` (``unknown_gate``) for a gate central does not know, :class:`ServiceError`
    (``unknown_action``) for an action not in :data:`ACTIONS`, :class:`InvalidInputError` for a bad note or a
    meeting/delegate that does not exist or does not match, and :class:`ServiceError` (``not_connected``) when
    the message cannot be handed to the broker (the row is then kept with status ``failed``).
    ``publisher`` defaults to :func:`central.messaging.publish.get_publisher` of the current Flask app. ``now``
    (aware) is the issue time the gate checks against its max age: the real time unless given.

    An ``open`` for a walk-in's one-day code (``delegate_id``) follows :func:`central.desk.walkins.check_remote_open`
    at ``valid_at`` (the app's clock; ``now`` unless given): once per admission, within the code's validity, else
    :class:`central.desk.walkins.WalkinRefusedError` (409) with its ``problem`` and reason, and nothing is sent.
    """
    if not isinstance(action, str) or action not in ACTIONS:
        raise ServiceError(Reason.UNKNOWN_ACTION, f"Lệnh không hợp lệ: {str(action)[:32]!r}")
    gate = Gate.get_or_none(Gate.gate_id == gate_id) if isinstance(gate_id, str) else None
    if gate is None:
        raise NotFoundError(Reason.UNKNOWN_GATE)
    actor = (actor or "").strip()
    if not actor:
        raise InvalidInputError({"actor": "Thiếu người ra lệnh"})
    note = (note or "").strip()
    errors: dict[str, str] = {}
    if len(note) > 200:
        errors["note"] = "Ghi chú tối đa 200 ký tự"
    if (meeting_id is not None or delegate_id is not None) and action != "open":
        errors["action"] = "Chỉ lệnh mở cổng mới gắn với cuộc họp hoặc đại biểu"
    if delegate_id is not None:
        delegate = Delegate.get_or_none(Delegate.id == delegate_id)
        if delegate is None:
            errors["delegate_id"] = "Không có đại biểu này"
        elif meeting_id is None:
            meeting_id = delegate.meeting_id
        elif delegate.meeting_id != meeting_id:
            errors["delegate_id"] = "Đại biểu không thuộc cuộc họp này"
    if meeting_id is not None and not Meeting.select().where(Meeting.id == meeting_id).exists():
        errors["meeting_id"] = "Không có cuộc họp này"
    if errors:
        raise InvalidInputError(errors)

    issued_at = now or _now()
    command = Command(id=uuid.uuid4(), gate_id=gate.gate_id, action=action, issued_by=actor, issued_at=issued_at,
                      note=note or None, meeting_id=meeting_id, delegate_id=delegate_id,
                      gate_clock_offset_s=gate.clock_offset_s if gate.measures_clock else None)
    with write_transaction():
        if action == "open" and delegate_id is not None:
            walkins.check_remote_open(delegate_id, valid_at or issued_at)
        row = GateCommand.create(
            command_id=command.id, gate=gate, action=action, note=note, meeting_id=meeting_id,
            delegate_id=delegate_id, issued_by=actor[:64], issued_at=issued_at, status=CommandState.SENT,
        )
        audit(actor, f"gate.command.{action}", f"gate:{gate.gate_id}",
              {"command_id": str(command.id), "note": note, "meeting_id": meeting_id, "delegate_id": delegate_id},
              now=issued_at)
    # Published after the commit: the answer can arrive at once, and record_result must find the row.
    try:
        (publisher or get_publisher()).publish(topics.gate_commands(gate.gate_id), payloads.encode(command),
                                               COMMAND_QOS)
    except (PublishError, OSError, ValueError) as exc:
        log.error("gate command not published command_id=%s gate_id=%s action=%s: %s", command.id,
                  gate.gate_id, action, exc)
        _finish(command.id, CommandState.FAILED, Reason.NOT_CONNECTED.value, _now(), only_if_sent=True)
        raise ServiceError(Reason.NOT_CONNECTED) from None
    log.info("gate command sent command_id=%s gate_id=%s action=%s actor=%s", command.id, gate.gate_id, action,
             actor)
    return row


def get(command_id: UUID | str) -> GateCommand:
    """The stored command, or :class:`NotFoundError`."""
    row = GateCommand.get_or_none(GateCommand.command_id == _as_uuid(command_id))
    if row is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không có lệnh này")
    return row


def wait(command_id: UUID | str, timeout: float = DEFAULT_TIMEOUT_S) -> GateCommand:
    """Poll until the gate answered ``command_id`` or ``timeout`` seconds passed; return the row.

    On expiry the row becomes ``timeout`` (reason ``command_timeout``) unless an answer landed meanwhile; a
    later answer still turns it into ``ok`` / ``failed``.
    """
    key = _as_uuid(command_id)
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        row = get(key)
        if row.status != CommandState.SENT:
            return row
        if time.monotonic() >= deadline:
            break
        time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0.0)))
    if _finish(key, CommandState.TIMEOUT, Reason.COMMAND_TIMEOUT.value, _now(), only_if_sent=True):
        log.warning("gate command timed out command_id=%s after %.1fs", key, timeout)
    return get(key)


def _finish(command_id: UUID, status: CommandState, reason: str | None, now: datetime, *, only_if_sent: bool) -> bool:
    answered_at = now if status != CommandState.TIMEOUT else None
    query = GateCommand.update(status=status, reason=reason, answered_at=answered_at)
    condition = GateCommand.command_id == command_id
    if only_if_sent:
        condition &= GateCommand.status == CommandState.SENT
    return bool(query.where(condition).execute())


def record_result(result: CommandResult, now: datetime | None = None) -> GateCommand | None:
    """Store a gate's answer; returns the updated command, or None when dropped.

    An unknown command id, or an answer from a gate other than the one the command was sent to, is logged and
    dropped. A repeated answer to an answered command changes nothing; an answer after ``timeout`` still sets
    ``ok`` / ``failed``. When the answer carries the gate's mode, the gate's ``mode`` is updated too.
    """
    row = GateCommand.get_or_none(GateCommand.command_id == result.command_id)
    if row is None:
        log.warning("command result dropped: unknown command_id=%s gate_id=%s", result.command_id, result.gate_id)
        return None
    gate = Gate.get_or_none(Gate.id == row.gate_id)
    if gate is None or gate.gate_id != result.gate_id:
        log.warning("command result dropped: command_id=%s was sent to another gate, answered by gate_id=%s",
                    result.command_id, result.gate_id)
        return None
    when = now or _now()
    if row.status in CommandState.ANSWERED:
        log.info("repeated command result ignored command_id=%s", result.command_id)
        return row
    status = CommandState.OK if result.ok else CommandState.FAILED
    reason = result.reason if result.reason else (None if result.ok else Reason.INTERNAL_ERROR.value)
    with database.atomic():
        GateCommand.update(status=status, reason=reason, answered_at=when).where(
            (GateCommand.id == row.id) & (GateCommand.status.in_(list(CommandState.AWAITING)))
        ).execute()
        if result.mode is not None:
            Gate.update(mode=result.mode).where(Gate.id == gate.id).execute()
    log.info("command result stored command_id=%s gate_id=%s status=%s reason=%s late=%s", result.command_id,
             result.gate_id, status, reason, row.status == CommandState.TIMEOUT)
    return GateCommand.get_by_id(row.id)


def recent(gate_id: str | None = None, limit: int = 50) -> list[GateCommand]:
    """The newest commands, of one gate or of all, newest first (at most ``limit``, capped at 500)."""
    query = (GateCommand.select(GateCommand, Gate).join(Gate)
             .order_by(GateCommand.issued_at.desc(), GateCommand.id.desc()))
    if gate_id is not None:
        query = query.where(Gate.gate_id == gate_id)
    return list(query.limit(max(1, min(int(limit), 500))))


def command_to_dict(row: GateCommand) -> dict[str, Any]:
    """JSON form of a command for pages and the API, with Vietnamese and English labels."""
    reason = row.reason
    return {
        "command_id": str(row.command_id),
        "gate_id": row.gate.gate_id,
        "gate_name": gate_label(row.gate),
        "action": row.action,
        "action_vi": ACTION_TEXT.get(row.action, (row.action, row.action))[0],
        "action_en": ACTION_TEXT.get(row.action, (row.action, row.action))[1],
        "note": row.note,
        "meeting_id": row.meeting_id,
        "delegate_id": row.delegate_id,
        "issued_by": row.issued_by,
        "issued_at": row.issued_at.isoformat(),
        "status": row.status,
        "waiting": row.status == CommandState.SENT,  # no answer and not timed out: the page keeps polling
        "status_vi": CommandState(row.status).text("vi"),
        "status_en": CommandState(row.status).text("en"),
        "reason": reason,
        "reason_vi": describe(reason) if reason else None,
        "reason_en": describe(reason, "en") if reason else None,
        "answered_at": row.answered_at.isoformat() if row.answered_at else None,
    }
