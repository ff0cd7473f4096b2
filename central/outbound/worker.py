"""The e-mail kinds of the outbound queue, the pooled SMTP sender, and the worker process.

Two kinds are central's own: ``message`` (a ready e-mail stored as bytes) and ``delegate_code`` (a
delegate's code e-mail with ticket and calendar entry, built when it is sent, so a replaced delegate's mail
never leaves). Features register their own kinds (``central.invitations.deliveries``: an invitation's
e-mail and SMS). Run the worker in a thread of the web app (:func:`central.outbound.jobs.init_app` does) or
on its own with ``python -m central.outbound`` or ``vaora-central deliver`` (:func:`run_worker`). Several
workers may run at once, in threads or processes; a job is sent by the worker whose claim succeeded.
"""

from __future__ import annotations

import email
import email.policy
import logging
import smtplib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP

from central.core.db import open_database, write_transaction
from central.core.states import DelegateMailState, JobState
from central.outbound import queue
from central.outbound.engine import (
    JobCancelledError,
    JobKind,
    OutboundWorker,
    Outcome,
    RetryPolicy,
    Senders,
    register,
    smtp_failure,
)
from central.outbound.mail import MailSender, dated
from central.outbound.models import MailJob
from central.registration.models import Delegate
from protocols.logs import mask_email

log = logging.getLogger(__name__)

MAIL_RETRY = RetryPolicy(base=timedelta(seconds=5), cap=timedelta(hours=1), max_attempts=8)
"""E-mail is tried 8 times over about 10 minutes: 5 s, 10 s, 20 s ... between tries."""


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
                self._smtp.send_message(dated(message))
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


def send_mail(senders: Senders, message: EmailMessage) -> None:
    """Send ``message`` with the mail sender, as one try of a job (``JobFailedError`` when it did not go)."""
    try:
        senders.mail.send(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise smtp_failure(exc) from exc


def _send_message(job: MailJob, senders: Senders, now: datetime) -> None:
    parsed = email.message_from_bytes(bytes(job.message or b""), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    send_mail(senders, parsed)


def _send_delegate_code(job: MailJob, senders: Senders, now: datetime) -> None:
    from central.outbound.tickets.mail import build_delegate_mail

    delegate = Delegate.get_or_none(Delegate.id == job.ref_id)
    if delegate is None:
        raise JobCancelledError("delegate deleted")
    if delegate.revoked_at is not None:
        raise JobCancelledError("delegate revoked")
    send_mail(senders, build_delegate_mail(delegate, mail_from=senders.mail_from, now=now))


def _record_delegate_code(job: MailJob, outcome: Outcome) -> None:
    values: dict[str, object] = {"mail_error": outcome.error}
    if outcome.state == JobState.SENT:
        values["mail_status"] = DelegateMailState.SENT
    elif outcome.state == JobState.FAILED:
        values["mail_status"] = DelegateMailState.FAILED
    elif outcome.state == JobState.CANCELLED:
        return
    Delegate.update(**values).where(Delegate.id == job.ref_id).execute()


MESSAGE = register(JobKind("message", MAIL_RETRY, _send_message))
"""A ready e-mail stored as bytes (anything sent through the queueing sender)."""
DELEGATE_CODE = register(JobKind("delegate_code", MAIL_RETRY, _send_delegate_code, _record_delegate_code))
"""A delegate's code e-mail with ticket and calendar entry, built when it is sent (``ref_id`` = delegate)."""


def enqueue_message(
    message: EmailMessage, now: datetime, *, group_key: str | None = None, batch: str | None = None
) -> MailJob:
    """Queue a ready e-mail; it is stored as bytes and sent as is."""
    recipient = str(message.get("To", ""))
    job = queue.enqueue(
        MESSAGE.name, recipient=recipient, now=now, max_attempts=MAIL_RETRY.max_attempts,
        message=message.as_bytes(policy=SMTP), group_key=group_key, batch=batch,
    )
    log.info("mail queued job=%s kind=message to=%s", job.id, mask_email(recipient))
    return job


def cancel_delegate_code(delegate_id: int, why: str) -> int:
    """Cancel the delegate's code e-mail if it has not left yet; returns how many jobs were cancelled."""
    return queue.cancel_queued(DELEGATE_CODE.name, delegate_id, why)


def enqueue_delegate_code(
    delegate: Delegate, now: datetime, *, group_key: str | None = None, batch: str | None = None
) -> MailJob:
    """Queue a delegate's code e-mail (built when sent) and mark the delegate's mail as queued.

    An earlier job for the same delegate that has not left yet is cancelled, so one press never mails
    a person twice.
    """
    with write_transaction():
        cancel_delegate_code(delegate.id, "superseded")
        job = queue.enqueue(
            DELEGATE_CODE.name, recipient=delegate.email, now=now, max_attempts=MAIL_RETRY.max_attempts,
            ref_id=delegate.id, group_key=group_key, batch=batch,
        )
        Delegate.update(mail_status=DelegateMailState.QUEUED, mail_error=None).where(
            Delegate.id == delegate.id
        ).execute()
    delegate.mail_status = DelegateMailState.QUEUED
    delegate.mail_error = None
    log.info("mail queued job=%s kind=delegate_code delegate=%s", job.id, delegate.id)
    return job


def run_worker(
    stop_event: threading.Event,
    *,
    sender: MailSender | None = None,
    clock: Callable[[], datetime] | None = None,
    poll_interval: float = 0.5,
) -> OutboundWorker:
    """Run an outbound worker in this thread until ``stop_event`` is set, configured from ``VAORA_*``.

    Opens the database (which must be migrated: :func:`central.migrations.require_current`); ``sender``
    defaults to a pooled SMTP sender at ``VAORA_SMTP_HOST:VAORA_SMTP_PORT``, SMS go through
    ``VAORA_SMS_BACKEND``. Every feature's job kinds are loaded first.
    Returns the worker (its ``sent_count``) when stopped.
    """
    from central.config import CentralConfig
    from central.core.context import sms_sender_from_config, utc_now
    from central.features import load_job_kinds
    from central.migrations import require_current

    load_job_kinds()
    config = CentralConfig.from_env()
    open_database(config.database_url)
    require_current()
    worker = OutboundWorker(
        senders=Senders(
            mail=sender or PooledSmtpSender(config.smtp_host, config.smtp_port),
            mail_from=config.mail_from,
            sms=sms_sender_from_config(config),
            pdf_font=config.pdf_font,
        ),
        clock=clock or utc_now,
        poll_interval=poll_interval,
    )
    worker.run(stop_event)
    return worker

