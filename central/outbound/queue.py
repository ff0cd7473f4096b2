"""The outbound queue's storage: enqueue, claim (at most one worker per job), record the outcome, progress.

A claim is ``UPDATE mail_job SET status=SENDING ... WHERE id=? AND status=QUEUED``: whichever worker's
update changes the row owns the job, on SQLite (one writer at a time) and PostgreSQL (the second update
re-reads the row after the first commits and no longer matches). An outcome is written only by the worker
that holds the claim. The table keeps its first name, ``mail_job``, though it carries SMS too.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from central.core.db import tuples
from central.core.states import JobState
from central.outbound.models import MailJob

MAX_ERROR_LENGTH = 500

wakeup = threading.Event()
"""Set after each enqueue so an in-process worker starts at once instead of at its next poll."""


def new_batch() -> str:
    """Return a fresh batch id (groups the jobs of one "Gửi Mail" press)."""
    return uuid.uuid4().hex


def enqueue(
    kind: str,
    *,
    recipient: str,
    now: datetime,
    max_attempts: int,
    ref_id: int | None = None,
    message: bytes | None = None,
    group_key: str | None = None,
    batch: str | None = None,
) -> MailJob:
    """Queue one job of ``kind``, due at once (call inside the transaction that makes its subject)."""
    job = MailJob.create(
        kind=kind,
        ref_id=ref_id,
        message=message,
        recipient=recipient[:254],
        group_key=group_key,
        batch=batch,
        next_attempt_at=now,
        max_attempts=max_attempts,
        created_at=now,
    )
    wakeup.set()
    return job


def cancel_queued(kind: str, ref_id: int, why: str) -> int:
    """Cancel the jobs of ``kind`` for subject ``ref_id`` that have not been claimed yet; returns how many."""
    return (
        MailJob.update(status=JobState.CANCELLED, last_error=why[:MAX_ERROR_LENGTH])
        .where((MailJob.kind == kind) & (MailJob.ref_id == ref_id) & (MailJob.status == JobState.QUEUED))
        .execute()
    )


def claim_due(
    now: datetime,
    worker_id: str,
    limit: int = 10,
    *,
    kinds: Collection[str] | None = None,
    ref_ids: Collection[int] | None = None,
) -> list[MailJob]:
    """Claim up to ``limit`` due jobs (of ``kinds`` and subjects ``ref_ids`` when given); each returned job
    belongs to this worker alone."""
    query = MailJob.select(MailJob.id).where(
        (MailJob.status == JobState.QUEUED) & (MailJob.next_attempt_at <= now)
    )
    if kinds is not None:
        query = query.where(MailJob.kind.in_(list(kinds)))
    if ref_ids is not None:
        query = query.where(MailJob.ref_id.in_(list(ref_ids)))
    candidates = [row.id for row in query.order_by(MailJob.next_attempt_at, MailJob.id).limit(limit)]
    claimed: list[int] = []
    for job_id in candidates:
        changed = (
            MailJob.update(
                status=JobState.SENDING, attempts=MailJob.attempts + 1, claimed_at=now, claimed_by=worker_id
            )
            .where((MailJob.id == job_id) & (MailJob.status == JobState.QUEUED))
            .execute()
        )
        if changed == 1:
            claimed.append(job_id)
    if not claimed:
        return []
    return list(MailJob.select().where(MailJob.id.in_(claimed)).order_by(MailJob.id))


def _finish(job: MailJob, worker_id: str, **values: object) -> bool:
    changed = (
        MailJob.update(**values)
        .where(
            (MailJob.id == job.id) & (MailJob.status == JobState.SENDING) & (MailJob.claimed_by == worker_id)
        )
        .execute()
    )
    return changed == 1


def mark_sent(job: MailJob, worker_id: str, now: datetime) -> bool:
    """Record a delivered job; False when the claim was lost meanwhile (e.g. requeued as stale)."""
    return _finish(job, worker_id, status=JobState.SENT, sent_at=now, last_error=None)


def mark_cancelled(job: MailJob, worker_id: str, why: str) -> bool:
    """Record a job that must not be sent any more (its subject went away)."""
    return _finish(job, worker_id, status=JobState.CANCELLED, last_error=why[:MAX_ERROR_LENGTH])


def mark_failed(
    job: MailJob, worker_id: str, now: datetime, error: str, *, delay: timedelta, permanent: bool = False
) -> tuple[JobState, datetime | None]:
    """Record a failed try: back to queued, due ``delay`` from now, or failed for good after the last try.

    Returns the job's new state and the time of its next try (None when failed for good).
    """
    final = permanent or job.attempts >= job.max_attempts
    state = JobState.FAILED if final else JobState.QUEUED
    next_at = None if final else now + delay
    _finish(
        job,
        worker_id,
        status=state,
        last_error=error[:MAX_ERROR_LENGTH],
        next_attempt_at=now if next_at is None else next_at,
    )
    return state, next_at


def requeue_stale(now: datetime, older_than: timedelta) -> int:
    """Put jobs left in ``sending`` by a crashed worker back in the queue; returns how many."""
    return (
        MailJob.update(status=JobState.QUEUED, claimed_by=None)
        .where((MailJob.status == JobState.SENDING) & (MailJob.claimed_at < now - older_than))
        .execute()
    )


@dataclass(frozen=True)
class Progress:
    """How far one batch got."""

    batch: str | None
    total: int
    sent: int
    failed: int
    pending: int

    @property
    def done(self) -> bool:
        """True when nothing of the batch is waiting any more."""
        return self.pending == 0

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form."""
        return {
            "batch": self.batch,
            "total": self.total,
            "sent": self.sent,
            "failed": self.failed,
            "pending": self.pending,
            "done": self.done,
        }


def batch_progress(group_key: str) -> Progress:
    """Return the progress of the latest batch queued under ``group_key`` (cancelled jobs not counted)."""
    latest = (
        MailJob.select(MailJob.batch)
        .where((MailJob.group_key == group_key) & MailJob.batch.is_null(False))
        .order_by(MailJob.id.desc())
        .limit(1)
        .scalar()
    )
    if latest is None:
        return Progress(batch=None, total=0, sent=0, failed=0, pending=0)
    counts: dict[str, int] = dict(
        tuples(
            MailJob.select(MailJob.status, peewee.fn.COUNT(MailJob.id))
            .where((MailJob.batch == latest) & (MailJob.status != JobState.CANCELLED))
            .group_by(MailJob.status)
        )
    )
    sent, failed = counts.get(JobState.SENT, 0), counts.get(JobState.FAILED, 0)
    pending = sum(counts.get(state, 0) for state in JobState.PENDING)
    return Progress(batch=latest, total=sent + failed + pending, sent=sent, failed=failed, pending=pending)
