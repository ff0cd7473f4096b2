"""The outbound queue in the web app: e-mails and SMS are stored in the database and sent by a worker with retries.

:func:`init_app` switches an app to the queue: its ``mail_sender`` becomes a :class:`QueuedMailSender`
(delegate codes are queued by reference and built when sent; ``send()`` still delivers at once, for callers
that are themselves a job, e.g. the invitation deliveries) and, unless turned off, a worker thread starts that
sends every kind of job (``central.outbound.engine``). :func:`enqueue_message` queues any ready message.

Settings (from the mapping given to ``create_app``, else the environment):

- ``VAORA_MAIL_QUEUE`` (``1``/``0``): use the queue. Default: on when the app is configured from the
  environment (``vaora-central serve``), off when ``create_app`` is given a mapping (tests, embedding),
  which then sends during the request unless it sets ``VAORA_MAIL_QUEUE=1``.
- ``VAORA_MAIL_WORKER`` (``1``/``0``): start the worker thread in the app; default on. Stop it with
  ``app.extensions["vaora_mailqueue"].stop()`` (it also stops by itself when the process's database is
  re-opened elsewhere, e.g. by the next test's app).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from flask import Flask

from central.outbound.engine import OutboundWorker, Senders
from central.outbound.mail import MailSender, SmtpMailSender
from central.outbound.models import MailJob
from central.outbound.queue import batch_progress, new_batch
from central.outbound.worker import PooledSmtpSender, enqueue_delegate_code, enqueue_message, run_worker
from central.registration.models import Delegate

__all__ = [
    "MailJob",
    "MailQueueState",
    "OutboundWorker",
    "PooledSmtpSender",
    "QueuedMailSender",
    "batch_progress",
    "enqueue_delegate_code",
    "enqueue_message",
    "init_app",
    "new_batch",
    "run_worker",
]

log = logging.getLogger(__name__)
EXTENSION = "vaora_mailqueue"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass
class QueuedMailSender:
    """The app's ``MailSender`` with the queue on: delegate codes go to the outbox; ``inner`` sends."""

    inner: MailSender
    clock: Callable[[], datetime]

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` now through ``inner`` (use :func:`enqueue_message` to queue a message)."""
        self.inner.send(message)

    def enqueue_delegate_code(
        self, delegate: Delegate, *, group_key: str | None = None, batch: str | None = None
    ) -> MailJob:
        """Queue ``delegate``'s code e-mail (ticket and calendar entry built when it is sent)."""
        return enqueue_delegate_code(delegate, self.clock(), group_key=group_key, batch=batch)


@dataclass
class MailQueueState:
    """The queue's state in one app: whether it is on, and its worker thread if one runs."""

    enabled: bool
    worker: OutboundWorker | None = None
    thread: threading.Thread | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker thread (if any) and wait for it."""
        self.stop_event.set()
        if self.thread is not None and self.thread.is_alive():
            self.thread.join(timeout)


def _flag(source: Mapping[str, Any], name: str, default: bool) -> bool:
    raw = source.get(name)
    if raw is None:
        return default
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name}: must be 1 or 0, got {raw!r}")


def worker_sender(sender: MailSender) -> MailSender:
    """Return the sender a worker should use: a pooled one for plain SMTP, else ``sender`` itself."""
    if isinstance(sender, SmtpMailSender):
        return PooledSmtpSender(
            sender.host,
            sender.port,
            timeout=sender.timeout,
            starttls=sender.starttls,
            username=sender.username,
            password=sender.password,
        )
    return sender


def init_app(app: Flask, config: Mapping[str, Any] | None = None) -> MailQueueState:
    """Switch ``app``'s mail to the queue (per the settings above) and start its worker thread."""
    source: Mapping[str, Any] = os.environ if config is None else config
    ctx = app.extensions["vaora"]
    enabled = _flag(source, "VAORA_MAIL_QUEUE", default=config is None)
    state = MailQueueState(enabled=enabled)
    app.extensions[EXTENSION] = state
    if not enabled:
        return state
    inner = ctx.mail_sender
    ctx.mail_sender = QueuedMailSender(inner=inner, clock=ctx.clock)
    if _flag(source, "VAORA_MAIL_WORKER", default=True):
        senders = Senders(
            mail=worker_sender(inner), mail_from=ctx.config.mail_from, sms=ctx.sms_sender,
            pdf_font=ctx.config.pdf_font,
        )
        state.worker = OutboundWorker(senders=senders, clock=ctx.clock)
        state.thread = threading.Thread(
            target=state.worker.run, args=(state.stop_event,), name="outbound-worker", daemon=True
        )
        state.thread.start()
        atexit.register(state.stop, 5.0)
    log.info("mail queue on worker=%s", state.thread is not None)
    return state
