"""The outbound job engine: one queue for every e-mail and SMS central sends, one claim, one retry policy per kind.

A *kind* says how to send one job (:class:`JobKind`): its ``perform`` builds and sends it with the
:class:`Senders`, and raises :class:`JobCancelledError` when the job must not go out any more or :class:`JobFailedError`
when the try failed (``permanent`` when trying again cannot help). Its optional ``record`` mirrors each outcome
on the job's subject (a delegate's mail status, an invitation's delivery row). Kinds register themselves with
:func:`register`; the feature that owns the subject owns the kind (``central.invitations.deliveries``).

:class:`OutboundWorker` claims due jobs (``central.outbound.queue``: at most one worker per job, in threads
or processes), performs them and records the outcome. It runs in a thread of the web app, in
``python -m central.outbound`` / ``vaora-central deliver``, or inline for the jobs of one request
(:meth:`OutboundWorker.run_once` with ``kinds`` and ``ref_ids``).
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from central.core.db import database
from central.core.states import JobState
from central.outbound import queue
from central.outbound.mail import MailSender
from central.outbound.models import MailJob
from central.outbound.sms import SmsSender
from protocols.logs import mask_email

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=10)
"""A job left ``sending`` this long belonged to a worker that died; it goes back to the queue."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often a kind is tried: ``max_attempts`` tries, waiting ``base``, 2×``base``, 4×``base`` ... at most
    ``cap`` between them."""

    base: timedelta
    cap: timedelta
    max_attempts: int

    def delay(self, attempts: int) -> timedelta:
        """Return the wait before the next try after ``attempts`` failed ones."""
        return min(self.base * (2 ** max(attempts - 1, 0)), self.cap)


@dataclass
class Senders:
    """What sending needs: the mail and SMS senders, the From address and the PDF font (for letters)."""

    mail: MailSender
    mail_from: str
    sms: SmsSender | None = None
    pdf_font: Path | None = None

    def close(self) -> None:
        """Close the mail sender's idle connection, if it keeps one."""
        close = getattr(self.mail, "close", None)
        if callable(close):
            close()


class JobCancelledError(Exception):
    """The job must not be sent any more (its subject went away); the message says why."""


class JobFailedError(Exception):
    """This try failed; ``permanent`` when another try cannot help (e.g. a refused recipient)."""

    def __init__(self, error: str, *, permanent: bool = False) -> None:
        super().__init__(error)
        self.permanent = permanent


@dataclass(frozen=True)
class Outcome:
    """What one try of a job came to: its new state, the error (if any) and the time of its next try."""

    state: JobState
    attempts: int
    at: datetime
    error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class JobKind:
    """One kind of outbound job: how to send it, how often to try, and what to record on its subject."""

    name: str
    policy: RetryPolicy
    perform: Callable[[MailJob, Senders, datetime], None]
    record: Callable[[MailJob, Outcome], None] | None = None
    recipient_mask: Callable[[str], str] = mask_email


_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    """Make ``kind`` known to every worker of this process (a kind registered twice must be the same)."""
    known = _KINDS.setdefault(kind.name, kind)
    if known is not kind and known != kind:
        raise ValueError(f"job kind {kind.name!r} is registered twice")
    return kind


def kind_named(name: str) -> JobKind | None:
    """Return the registered kind called ``name``."""
    return _KINDS.get(name)


def masked(kind: JobKind | None, recipient: str) -> str:
    """Return ``recipient`` masked for a log line (a phone or an address)."""
    if kind is None:
        return mask_email(recipient)
    return kind.recipient_mask(recipient)


PERMANENT_SMTP_CODES = range(500, 600)


def smtp_failure(exc: OSError | smtplib.SMTPException) -> JobFailedError:
    """Return the failure of an SMTP try: permanent when the server refused with a 5xx code."""
    permanent = False
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        permanent = all(code in PERMANENT_SMTP_CODES for code, _ in exc.recipients.values())
    elif isinstance(exc, smtplib.SMTPResponseException):
        permanent = exc.smtp_code in PERMANENT_SMTP_CODES
    return JobFailedError(f"{type(exc).__name__}: {exc}", permanent=permanent)


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dataclass
class OutboundWorker:
    """Sends due jobs with ``senders``; ``clock`` returns aware UTC now."""

    senders: Senders
    clock: Callable[[], datetime]
    worker_id: str = field(default_factory=_default_worker_id)
    batch_size: int = 20
    poll_interval: float = 0.5
    sent_count: int = 0
    on_cycle: Callable[[], None] | None = None
    """Called after every job and every round of :meth:`run`, so that a long backlog against a slow server
    still shows the worker alive (the delivery unit feeds systemd's watchdog from it)."""

    def handle(self, job: MailJob) -> JobState:
        """Perform one claimed job and record the outcome; returns the job's new state."""
        kind = kind_named(job.kind)
        now = self.clock()
        try:
            if kind is None:
                raise JobCancelledError(f"unknown kind {job.kind!r}")
            kind.perform(job, self.senders, now)
        except JobCancelledError as skip:
            queue.mark_cancelled(job, self.worker_id, str(skip))
            log.info("outbound job cancelled job=%s kind=%s why=%s", job.id, job.kind, skip)
            return self._record(kind, job, Outcome(JobState.CANCELLED, job.attempts, now, str(skip)))
        except JobFailedError as failed:
            return self._failed(kind, job, str(failed), permanent=failed.permanent)
        except Exception as exc:  # a bug in one job must not stop the others; the job records it
            log.exception("outbound job crashed job=%s kind=%s", job.id, job.kind)
            return self._failed(kind, job, f"{type(exc).__name__}: {exc}", permanent=False)
        done = self.clock()
        queue.mark_sent(job, self.worker_id, done)
        self.sent_count += 1
        log.info("outbound job sent job=%s kind=%s to=%s attempt=%d", job.id, job.kind,
                 masked(kind, job.recipient), job.attempts)
        return self._record(kind, job, Outcome(JobState.SENT, job.attempts, done))

    def _failed(self, kind: JobKind | None, job: MailJob, error: str, *, permanent: bool) -> JobState:
        now = self.clock()
        policy = kind.policy if kind is not None else None
        delay = policy.delay(job.attempts) if policy is not None else timedelta(0)
        state, next_at = queue.mark_failed(job, self.worker_id, now, error, delay=delay, permanent=permanent)
        log.warning("outbound try failed job=%s kind=%s attempt=%d/%d state=%s error=%s", job.id, job.kind,
                    job.attempts, job.max_attempts, state, error)
        return self._record(kind, job, Outcome(state, job.attempts, now, error[: queue.MAX_ERROR_LENGTH], next_at))

    @staticmethod
    def _record(kind: JobKind | None, job: MailJob, outcome: Outcome) -> JobState:
        if kind is not None and kind.record is not None:
            kind.record(job, outcome)
        return outcome.state

    def run_once(self, *, kinds: Collection[str] | None = None, ref_ids: Collection[int] | None = None) -> int:
        """Perform every job that is due now (of ``kinds`` and subjects ``ref_ids`` when given); returns how
        many were handled. Needs an open database connection in the calling thread."""
        handled = 0
        queue.requeue_stale(self.clock(), STALE_AFTER)
        while True:
            jobs = queue.claim_due(self.clock(), self.worker_id, self.batch_size, kinds=kinds, ref_ids=ref_ids)
            if not jobs:
                return handled
            for job in jobs:
                self.handle(job)
                handled += 1
                self._alive()

    def _alive(self) -> None:
        if self.on_cycle is not None:
            self.on_cycle()

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set: run due jobs, close the SMTP connection when idle, then wait."""
        log.info("outbound worker started id=%s", self.worker_id)
        own_database = database.obj
        while not stop.is_set():
            if database.obj is not own_database:
                # The process re-opened the database elsewhere (another app in this process): this worker's
                # app is gone, and its jobs are not in that database.
                log.warning("outbound worker stops: the database was re-opened id=%s", self.worker_id)
                break
            try:
                database.connect(reuse_if_open=True)
                handled = self.run_once()
            except Exception:
                log.exception("outbound worker cycle failed; retrying")
                handled = 0
                time.sleep(self.poll_interval)
            finally:
                if not database.is_closed():
                    database.close()
            self._alive()
            if handled == 0:
                self.senders.close()
                queue.wakeup.wait(self.poll_interval)
                queue.wakeup.clear()
        self.senders.close()
        log.info("outbound worker stopped id=%s sent=%d", self.worker_id, self.sent_count)

