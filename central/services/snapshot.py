"""The snapshot a gate loads over HTTP: its site's current meetings, their delegates and the trusted keys.

Served as one JSON document (:class:`protocols.payloads.Snapshot`), or, when the gate asks for
``application/x-ndjson``, as a line stream (:func:`protocols.payloads.encode_snapshot_stream`) that the gate
validates and stores entry by entry without holding the whole snapshot in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from central import models
from central.core.changes import last_seq
from central.core.keys import trusted_keys
from central.services.delegates import delegate_entry
from central.services.meetings import meeting_entry
from protocols import payloads


def build_snapshot(gate: models.Gate, now: datetime) -> payloads.Snapshot:
    """Return the snapshot for ``gate`` as of the latest change.

    Meetings of the gate's site that are not over (``ends_at`` after ``now``), their delegates (compact
    codes only as hashes, revoked ones flagged) and every signing key. Built in one transaction so
    ``seq`` matches the content.
    """
    with models.database.atomic():
        seq = last_seq()
        meetings = list(
            models.Meeting.select()
            .where((models.Meeting.site_id == gate.site_id) & (models.Meeting.ends_at > now))
            .order_by(models.Meeting.starts_at, models.Meeting.id)
        )
        meeting_ids = [m.id for m in meetings]
        delegates = []
        if meeting_ids:
            delegates = list(
                models.Delegate.select(models.Delegate, models.Invitation, models.Organisation)
                .join(models.Invitation)
                .join(models.Organisation)
                .where(models.Delegate.meeting.in_(meeting_ids))
                .order_by(models.Delegate.id)
            )
        keys = trusted_keys()
    return payloads.Snapshot(
        seq=seq,
        generated_at=now,
        meetings=[meeting_entry(m) for m in meetings],
        delegates=[delegate_entry(d) for d in delegates],
        keys=keys,
    )


def stream_snapshot(gate: models.Gate, now: datetime) -> Iterator[bytes]:
    """The snapshot of ``gate`` as NDJSON lines; built (and its seq fixed) before the first line is yielded."""
    return payloads.encode_snapshot_stream(build_snapshot(gate, now))
