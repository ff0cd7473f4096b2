"""Workers' signs of life: each long-running worker records a beat; health and metrics read how old it is."""

from __future__ import annotations

import logging
from datetime import datetime

from central.core.db import database
from central.core.models import WorkerBeat

log = logging.getLogger(__name__)

INGEST = "ingest"
DELIVER_PREFIX = "deliver"


def record_beat(name: str, now: datetime, detail: str = "") -> None:
    """Record that ``name`` is alive at ``now`` (aware UTC); one row per worker, updated in place."""
    at = now.replace(tzinfo=None)
    (WorkerBeat.insert(name=name[:64], beat_at=at, detail=detail[:200])
     .on_conflict(conflict_target=[WorkerBeat.name], update={WorkerBeat.beat_at: at, WorkerBeat.detail: detail[:200]})
     .execute())


def try_beat(name: str, now: datetime, detail: str = "") -> None:
    """:func:`record_beat` from a worker's loop: on the connection already open (between two jobs) or a short one
    of its own; a database that fails is logged, never raised (the worker goes on; its beat goes stale)."""
    try:
        if database.is_closed():
            with database.connection_context():
                record_beat(name, now, detail)
        else:
            record_beat(name, now, detail)
    except Exception:
        log.exception("could not record the beat of %s", name)


def beat_age(prefix: str, now: datetime) -> float | None:
    """Seconds since the newest beat of a worker whose name starts with ``prefix``; None if none ever beat."""
    newest = (WorkerBeat.select(WorkerBeat.beat_at).where(WorkerBeat.name.startswith(prefix))
              .order_by(WorkerBeat.beat_at.desc()).first())
    if newest is None:
        return None
    return max(0.0, (now.replace(tzinfo=None) - newest.beat_at).total_seconds())
