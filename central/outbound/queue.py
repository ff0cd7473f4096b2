"""Outbox operations: enqueue, claim (at most one worker per job), record the outcome, report progress.

A claim is ``UPDATE mail_job SET status='sending' ... WHERE id=? AND status='queued'``: whichever worker's
update changes the row owns the job, on SQLite (one writer at a time) and PostgreSQL (the second update
re-reads the row after the first commits and no longer matches). Retries back off exponentially.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP

import peewee

from central.core.db import write_transaction
from central.outbound.models import (
    CANCELLED,
    FAILED,
    KIND_DELEGATE_CODE,
    KIND_MESSAGE,
    QUEUED,
    SENDING,
    SENT,
    MailJob,
)
from central.registration.models import Delegate
from protocols.logs import mask_email

log = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_MAX = timedelta(hours=1)
DEFAULT_MAX_ATTEMPTS = 8
MAX_ERROR_LENGTH = 500
DELEGATE_MAIL_QUEUED = "queued"

wakeup = threading.Event()
"""Set after each enqueue so an in-process worker starts at once instead of at its next poll."""


def backoff(attempts: int) -> timedelta:
    """Return the wait before the next try after ``attempts`` failed ones: 5 s, 10 s, 20 s ... at most 1 h."""
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


def new_batch() -> str:
    """Return a fresh batch id (groups the mails of one "Gửi Mail" press)."""
    return uuid.uuid4().hex


def enqueue_message(
    message: EmailMessage, now: datetime, *, group_key: str | None = None, batch: str | None = None
) -> MailJob:
    """Queue a ready e-mail; it is stored as bytes and sent as is."""
    recipient = str(message.get("To", ""))
    job = MailJob.create(
        kind=KIND_MESSAGE,
        message=message.as_bytes(policy=SMTP),
        recipient=recipient[:254],
        group_key=group_key,
        batch=batch,
        next_attempt_at=now,
        max_attempts=DEFAULT_MAX_ATTEMPTS,
        created_at=now,
    )
    wakeup.set()
    log.info("mail queued job=%s kind=message to=%s", job.id, mask_email(recipient))
    return job


def enqueue_delegate_code(
    delegate: Delegate, now: datetime, *, group_key: str | None = None, batch: str | None = None
) -> MailJob:
    """Queue a delegate's code e-mail (built when sent) and mark the delegate's mail as queued.

    An earlier job for the same delegate that has not left yet is cancelled, so one press never mails
    a person twice.
    """
    with write_transaction():
        MailJob.update(status=CANCELLED, last_error="superseded").where(
            (MailJob.kind == KIND_DELEGATE_CODE)
            & (MailJob.ref_id == delegate.id)
            & (MailJob.status == QUEUED)
        ).execute()
        job = MailJob.create(
            kind=KIND_DELEGATE_CODE,
            ref_id=delegate.id,
            recipient=delegate.email,
            group_key=group_key,
            batch=batch,
            next_attempt_at=now,
            max_attempts=DEFAULT_MAX_ATTEMPTS,
            created_at=now,
        )
        Delegate.update(mail_status=DELEGATE_MAIL_QUEUED, mail_error=None).where(
            Delegate.id == delegate.id
        ).execute()
    delegate.mail_status = DELEGATE_MAIL_QUEUED
    delegate.mail_error = None
    wakeup.set()
    log.info("mail queued job=%s kind=delegate_code delegate=%s", job.id, delegate.id)
    return job


def claim_due(now: datetime, worker_id: str, limit: int = 10) -> list[MailJob]:
    """Claim up to ``limit`` jobs that are due; each returned job belongs to this worker alone."""
    candidates = [
        row.id
        for row in MailJob.select(MailJob.id)
        .where((MailJob.status == QUEUED) & (MailJob.next_attempt_at <= now))
        .order_by(MailJob.next_attempt_at, MailJob.id)
        .limit(limit)
    ]
    claimed: list[int] = []
    for job_id in candidates:
        changed = (
            MailJob.update(
                status=SENDING, attempts=MailJob.attempts + 1, claimed_at=now, claimed_by=worker_id
            )
            .where((MailJob.id == job_id) & (MailJob.status == QUEUED))
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
        .where((MailJob.id == job.id) & (MailJob.status == SENDING) & (MailJob.claimed_by == worker_id))
        .execute()
    )
    return changed == 1


def mark_sent(job: MailJob, worker_id: str, now: datetime) -> bool:
    """Record a delivered job; False when the claim was lost meanwhile (e.g. requeued as stale)."""
    return _finish(job, worker_id, status=SENT, sent_at=now, last_error=None)


def mark_cancelled(job: MailJob, worker_id: str, why: str) -> bool:
    """Record a job that must not be sent any more (its subject went away)."""
    return _finish(job, worker_id, status=CANCELLED, last_error=why[:MAX_ERROR_LENGTH])


def mark_failed(job: MailJob, worker_id: str, now: datetime, error: str, *, permanent: bool = False) -> str:
    """Record a failed attempt: back to queued with a later ``next_attempt_at``, or failed for good.

    Returns the job's new status.
    """
    final = permanent or job.attempts >= job.max_attempts
    status = FAILED if final else QUEUED
    _finish(
        job,
        worker_id,
        status=status,
        last_error=error[:MAX_ERROR_LENGTH],
        next_attempt_at=now if final else now + backoff(job.attempts),
    )
    return status


def requeue_stale(now: datetime, older_than: timedelta) -> int:
    """Put jobs left in ``sending`` by a crashed worker back in the queue; returns how many."""
    return (
        MailJob.update(status=QUEUED, claimed_by=None)
        .where((MailJob.status == SENDING) & (MailJob.claimed_at < now - older_than))
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
    counts = dict(
        MailJob.select(MailJob.status, peewee.fn.COUNT(MailJob.id))
        .where((MailJob.batch == latest) & (MailJob.status != CANCELLED))
        .group_by(MailJob.status)
        .tuples()
    )
    sent, failed = counts.get(SENT, 0), counts.get(FAILED, 0)
    pending = counts.get(QUEUED, 0) + counts.get(SENDING, 0)
    return Progress(batch=latest, total=sent + failed + pending, sent=sent, failed=failed, pending=pending)
