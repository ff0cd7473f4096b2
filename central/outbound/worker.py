"""The mail worker: claims due jobs, builds and sends them over one reused SMTP connection, records results.

Run it in a thread of the web app (:func:`central.outbound.jobs.init_app` does) or on its own with
``python -m central.outbound`` (:func:`run_worker`). Several workers may run at once, in threads or
processes; a job is sent by the worker whose claim succeeded.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import smtplib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage

from central.core.db import database, open_database
from central.outbound import queue
from central.outbound.mail import MailSender
from central.outbound.models import KIND_DELEGATE_CODE, KIND_MESSAGE, MailJob
from central.registration.models import Delegate
from protocols.logs import mask_email

log = logging.getLogger(__name__)

PERMANENT_SMTP_CODES = range(500, 600)
STALE_AFTER = timedelta(minutes=10)
DELEGATE_MAIL_SENT = "sent"
DELEGATE_MAIL_FAILED = "failed"


@dataclass
class PooledSmtpSender:
    """An SMTP sender that keeps its connection open between mails (call :meth:`close` when idle).

    A connection the server dropped while idle is noticed at the next mail and reopened once; any other
    failure closes the connection and is raised, so the job is retried later.
    """

    host: str
    port: int = 25
    timeout: float = 10.0
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    _smtp: smtplib.SMTP | None = field(default=None, repr=False)

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if smtp.sock is not None:
            # smtplib writes each command and the message in small pieces; without this, Nagle's algorithm
            # and the server's delayed ACK stall every mail on a reused connection by ~40 ms per command.
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.starttls:
            smtp.starttls()
        if self.username:
            smtp.login(self.username, self.password or "")
        return smtp

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message``; raises ``OSError`` or ``smtplib.SMTPException`` on failure."""
        for attempt in (1, 2):
            if self._smtp is None:
                self._smtp = self._connect()
            try:
                self._smtp.send_message(message)
                return
            except smtplib.SMTPServerDisconnected:
                self._smtp = None
                if attempt == 2:
                    raise
            except (OSError, smtplib.SMTPException):
                self.close()
                raise

    def close(self) -> None:
        """Close the connection (QUIT), ignoring errors."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()


def _is_permanent(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code in PERMANENT_SMTP_CODES for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code in PERMANENT_SMTP_CODES
    return False


class _SkipJobError(Exception):
    """The job must not be sent (its subject went away); the message says why."""


@dataclass
class MailWorker:
    """Sends due jobs with ``sender``; ``clock`` returns aware UTC now; ``mail_from`` signs built mails."""

    sender: MailSender
    mail_from: str
    clock: Callable[[], datetime]
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    )
    batch_size: int = 20
    poll_interval: float = 0.5
    sent_count: int = 0

    def build(self, job: MailJob, now: datetime) -> EmailMessage:
        """Return the e-mail of ``job`` (raises ``_SkipJobError`` when it must not go out any more)."""
        if job.kind == KIND_MESSAGE:
            raw = bytes(job.message or b"")
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            return parsed
        if job.kind == KIND_DELEGATE_CODE:
            from central.outbound.tickets.mail import build_delegate_mail

            delegate = Delegate.get_or_none(Delegate.id == job.ref_id)
            if delegate is None:
                raise _SkipJobError("delegate deleted")
            if delegate.revoked_at is not None:
                raise _SkipJobError("delegate revoked")
            return build_delegate_mail(delegate, mail_from=self.mail_from, now=now)
        raise _SkipJobError(f"unknown kind {job.kind!r}")

    def _record_delegate(self, job: MailJob, status: str | None, error: str | None) -> None:
        if job.kind != KIND_DELEGATE_CODE:
            return
        values: dict[str, object] = {"mail_error": error}
        if status is not None:
            values["mail_status"] = status
        Delegate.update(**values).where(Delegate.id == job.ref_id).execute()

    def handle(self, job: MailJob) -> str:
        """Build and send one claimed job and record the outcome; returns the job's new status."""
        now = self.clock()
        try:
            message = self.build(job, now)
        except _SkipJobError as skip:
            queue.mark_cancelled(job, self.worker_id, str(skip))
            log.info("mail job cancelled job=%s why=%s", job.id, skip)
            return "cancelled"
        except Exception as exc:  # a bug building one mail must not stop the others
            log.exception("mail job could not be built job=%s", job.id)
            return self._failed(job, f"build: {type(exc).__name__}: {exc}", permanent=True)
        try:
            self.sender.send(message)
        except (OSError, smtplib.SMTPException) as exc:
            return self._failed(job, f"{type(exc).__name__}: {exc}", permanent=_is_permanent(exc))
        queue.mark_sent(job, self.worker_id, self.clock())
        self._record_delegate(job, DELEGATE_MAIL_SENT, None)
        self.sent_count += 1
        log.info("mail sent job=%s to=%s attempt=%d", job.id, mask_email(job.recipient), job.attempts)
        return "sent"

    def _failed(self, job: MailJob, error: str, *, permanent: bool) -> str:
        status = queue.mark_failed(job, self.worker_id, self.clock(), error, permanent=permanent)
        self._record_delegate(job, DELEGATE_MAIL_FAILED if status == "failed" else None, error)
        log.warning(
            "mail attempt failed job=%s attempt=%d/%d status=%s error=%s",
            job.id,
            job.attempts,
            job.max_attempts,
            status,
            error,
        )
        return status

    def run_once(self) -> int:
        """Send every job that is due now (in claimed batches); returns how many were handled.

        Needs an open database connection in the calling thread.
        """
        handled = 0
        queue.requeue_stale(self.clock(), STALE_AFTER)
        while True:
            jobs = queue.claim_due(self.clock(), self.worker_id, self.batch_size)
            if not jobs:
                return handled
            for job in jobs:
                self.handle(job)
                handled += 1

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set: run due jobs, close the SMTP connection when idle, then wait."""
        log.info("mail worker started id=%s", self.worker_id)
        own_database = database.obj
        while not stop.is_set():
            if database.obj is not own_database:
                # The process re-opened the database elsewhere (another app in this process): this worker's
                # app is gone, and its jobs are not in that database.
                log.warning("mail worker stops: the database was re-opened id=%s", self.worker_id)
                break
            try:
                database.connect(reuse_if_open=True)
                handled = self.run_once()
            except Exception:
                log.exception("mail worker cycle failed; retrying")
                handled = 0
                time.sleep(self.poll_interval)
            finally:
                if not database.is_closed():
                    database.close()
            if handled == 0:
                close = getattr(self.sender, "close", None)
                if callable(close):
                    close()
                queue.wakeup.wait(self.poll_interval)
                queue.wakeup.clear()
        close = getattr(self.sender, "close", None)
        if callable(close):
            close()
        log.info("mail worker stopped id=%s sent=%d", self.worker_id, self.sent_count)


def run_worker(
    stop_event: threading.Event,
    *,
    sender: MailSender | None = None,
    clock: Callable[[], datetime] | None = None,
    poll_interval: float = 0.5,
) -> MailWorker:
    """Run a mail worker in this thread until ``stop_event`` is set, configured from ``VAORA_*``.

    Opens the database and creates the tables; ``sender`` defaults to a pooled SMTP sender at
    ``VAORA_SMTP_HOST:VAORA_SMTP_PORT``. Returns the worker (its ``sent_count``) when stopped.
    """
    from central.config import CentralConfig
    from central.core.context import utc_now
    from central.schema import create_tables

    config = CentralConfig.from_env()
    open_database(config.database_url)
    create_tables()
    worker = MailWorker(
        sender=sender or PooledSmtpSender(config.smtp_host, config.smtp_port),
        mail_from=config.mail_from,
        clock=clock or utc_now,
        poll_interval=poll_interval,
    )
    worker.run(stop_event)
    return worker
