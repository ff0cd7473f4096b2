"""Check-in ingest: store each gate check-in once (by its UUID) and answer with an Ack; gate liveness."""

from __future__ import annotations

import logging
from datetime import datetime

from central import models
from protocols import payloads
from protocols.reasons import Reason

log = logging.getLogger(__name__)

REJECT_GATE_MISMATCH = Reason.GATE_MISMATCH.value
REJECT_UNKNOWN_GATE = Reason.UNKNOWN_GATE.value


def store_checkin(payload: payloads.CheckIn, topic_gate_id: str | None, now: datetime) -> payloads.Ack:
    """Store ``payload`` once and return the Ack for the gate.

    The gate id in the topic must equal ``payload.gate_id`` and name a registered gate, else the Ack is
    ``rejected`` with a reason. A check-in id seen before is ``duplicate`` and changes nothing. Meeting and
    delegate ids unknown to central are kept as null (the credential is still stored).
    """
    if topic_gate_id != payload.gate_id:
        log.warning("checkin rejected: topic gate %s != payload gate %s", topic_gate_id, payload.gate_id)
        return _ack(payload, "rejected", REJECT_GATE_MISMATCH)
    with models.database.atomic():
        gate = models.Gate.get_or_none(models.Gate.gate_id == payload.gate_id)
        if gate is None:
            log.warning("checkin rejected: unknown gate %s", payload.gate_id)
            return _ack(payload, "rejected", REJECT_UNKNOWN_GATE)
        meeting_id = payload.meeting_id
        if meeting_id is not None and models.Meeting.get_or_none(models.Meeting.id == meeting_id) is None:
            log.warning("checkin %s names unknown meeting %s", payload.id, meeting_id)
            meeting_id = None
        delegate_id = payload.delegate_id
        if delegate_id is not None and not (
            models.Delegate.select().where(models.Delegate.id == delegate_id).exists()
        ):
            log.warning("checkin %s names unknown delegate %s", payload.id, delegate_id)
            delegate_id = None
        inserted = (
            models.CheckIn.insert(
                checkin_id=payload.id,
                gate=gate,
                meeting=meeting_id,
                delegate=delegate_id,
                allowed=payload.allowed,
                reason=payload.reason.value,
                outcome=payload.outcome.value,
                direction=payload.direction.value,
                scheme=payload.scheme.value if payload.scheme else None,
                scanned_at=payload.scanned_at,
                completed_at=payload.completed_at,
                received_at=now,
                manual=payload.manual,
                credential=payload.credential,
            )
            .on_conflict_ignore()
            .as_rowcount()
            .execute()
        )
        models.Gate.update(last_seen_at=now).where(models.Gate.id == gate.id).execute()
    status = "stored" if inserted else "duplicate"
    log.info("checkin %s gate=%s status=%s reason=%s", payload.id, payload.gate_id, status, payload.reason)
    return _ack(payload, status, None)


def _ack(payload: payloads.CheckIn, status: str, reason: str | None) -> payloads.Ack:
    return payloads.Ack(checkin_id=payload.id, gate_id=payload.gate_id, status=status, reason=reason)


def record_heartbeat(payload: payloads.Heartbeat, topic_gate_id: str | None, now: datetime) -> Reason:
    """Update the gate's liveness, cache sequence and version from a heartbeat; returns OK or why not."""
    if topic_gate_id != payload.gate_id:
        return Reason.MALFORMED
    updated = (
        models.Gate.update(
            last_seen_at=now,
            cache_seq=payload.cache_seq,
            outbox_pending=payload.outbox_pending,
            software_version=payload.software_version,
            emergency=payload.emergency,
            state="online",
        )
        .where(models.Gate.gate_id == payload.gate_id)
        .execute()
    )
    return Reason.OK if updated else Reason.UNKNOWN_CODE


def record_status(payload: payloads.GateStatus, topic_gate_id: str | None, now: datetime) -> Reason:
    """Update the gate's online/offline state from its (retained) status message."""
    if topic_gate_id != payload.gate_id:
        return Reason.MALFORMED
    values = {"state": payload.state, "emergency": payload.emergency}
    if payload.software_version:
        values["software_version"] = payload.software_version
    if payload.state == "online":
        values["last_seen_at"] = now
    updated = models.Gate.update(**values).where(models.Gate.gate_id == payload.gate_id).execute()
    return Reason.OK if updated else Reason.UNKNOWN_CODE
