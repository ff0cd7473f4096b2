"""The change log gates follow after their snapshot: every registration, meeting and key change appends one.

Publishing the stream over MQTT is a later step; :data:`listeners` is its seam: each callable registered
there is called with the new :class:`protocols.payloads.Change` after it has been stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime

import peewee
from pydantic import TypeAdapter

from central.core.models import Change
from protocols import payloads

log = logging.getLogger(__name__)

listeners: list[Callable[[payloads.Change], None]] = []
"""Called with each stored change (e.g. a future MQTT publisher). Exceptions are logged, never raised."""

_BODY = TypeAdapter(payloads.ChangeBody)


def append_change(body: payloads.ChangeBody, now: datetime) -> payloads.Change:
    """Store ``body`` as the next change and return it with its sequence number.

    Call inside the transaction that made the change, so the change exists exactly when the data does.
    """
    row = Change.create(at=now, kind=body.kind, body=body.model_dump_json())
    change = payloads.Change(seq=row.seq, at=now, body=body)
    for listener in listeners:
        try:
            listener(change)
        except Exception:
            log.exception("change listener failed seq=%s", change.seq)
    return change


def last_seq() -> int:
    """Return the sequence number of the latest change (0 when there is none)."""
    return Change.select(peewee.fn.MAX(Change.seq)).scalar() or 0


def changes_since(seq: int, limit: int = 1000) -> list[payloads.Change]:
    """Return the stored changes after ``seq``, oldest first."""
    rows = (
        Change.select()
        .where(Change.seq > seq)
        .order_by(Change.seq)
        .limit(limit)
    )
    return [
        payloads.Change(seq=row.seq, at=row.at, body=_BODY.validate_python(json.loads(row.body)))
        for row in rows
    ]
