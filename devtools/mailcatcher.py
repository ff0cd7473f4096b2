"""An SMTP server that keeps every mail it receives, for tests and the demo (aiosmtpd underneath).

Each received message is parsed into an ``email.message.EmailMessage`` (``policy=email.policy.default``, so
RFC 2047 headers such as a Vietnamese subject come back as text) and gets two extra headers from the SMTP
envelope, as aiosmtpd's own ``Message`` handler does: ``X-MailFrom`` and ``X-RcptTo`` (comma-separated).

With ``maildir=`` every message is also written to a Maildir on disk (``new/``), where it outlives the process;
``devtools.mailview`` serves that Maildir as web pages (the demo's "hộp thư").

Its timeouts (start-up, ``wait_for``) are stretched by ``VAORA_TEST_TIMEOUT_SCALE``
(:func:`devtools.timeouts.scaled`): callers pass the unscaled ceiling.
"""

from __future__ import annotations

import email
import email.policy
import logging
import mailbox
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from devtools.ports import PortOwner, ensure_bindable
from devtools.timeouts import scaled

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 20.0
"""The (unscaled) ceiling for the SMTP server thread to start accepting connections."""


def _mask_address(address: str) -> str:
    from protocols.logs import mask_email  # imported late: devtools must load while protocols evolves

    return mask_email(address)


def summarise(message: EmailMessage, number: int) -> str:
    """One line about a received mail, with addresses masked: ``mail #1 to=l***@x.vn subject='...'``."""
    recipients = [part.strip() for part in str(message.get("X-RcptTo", "")).split(",") if part.strip()]
    masked = ",".join(_mask_address(address) for address in recipients)
    attachments = sum(1 for _ in message.iter_attachments())
    subject = str(message.get("Subject", ""))
    return f"mail #{number} to={masked} subject={subject!r} attachments={attachments}"


class _Handler:
    """aiosmtpd handler: parse DATA and hand the message to the catcher."""

    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        message["X-MailFrom"] = envelope.mail_from or ""
        message["X-RcptTo"] = ", ".join(envelope.rcpt_tos)
        self._catcher._receive(message)
        return "250 Message accepted for delivery"


class MailCatcher(PortOwner):
    """Runs an SMTP server on ``host`` and a free port (or ``port``) and keeps what it receives.

    ``echo=True`` prints a one-line summary of each mail to stdout; a callable receives the line instead.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        echo: bool | Callable[[str], None] = False,
        maildir: Path | None = None,
    ) -> None:
        super().__init__(host, port)
        self._echo = echo
        self._maildir = mailbox.Maildir(str(maildir), create=True) if maildir is not None else None
        self._messages: list[EmailMessage] = []
        self._condition = threading.Condition()
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._controller is not None

    @property
    def messages(self) -> list[EmailMessage]:
        """A copy of the messages received so far, oldest first."""
        with self._condition:
            return list(self._messages)

    def start(self) -> MailCatcher:
        """Start the server in its own thread; returns once it accepts connections."""
        if self._controller is not None:
            return self
        def launch(port: int) -> None:
            ensure_bindable(self._host, port)  # aiosmtpd would notice a taken port only after its ready_timeout
            controller = Controller(_Handler(self), hostname=self._host, port=port, enable_SMTPUTF8=True,
                                    ready_timeout=scaled(READY_TIMEOUT_S))
            controller.start()  # an OSError here: the port was taken between free_port() and the bind
            self._controller = controller

        self._bind_with_retries(launch, lambda error: isinstance(error, OSError))
        logger.info("mail catcher started port=%s", self._port)
        return self

    def stop(self) -> None:
        """Stop the server; the received messages stay available."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def clear(self) -> None:
        """Forget every received message."""
        with self._condition:
            self._messages.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        """Wait until at least ``count`` messages arrived and return them all (a copy).

        Raises ``TimeoutError`` naming what did arrive when fewer came within ``timeout`` seconds.
        """
        deadline = time.monotonic() + scaled(timeout)
        with self._condition:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    subjects = [str(message.get("Subject", "")) for message in self._messages]
                    raise TimeoutError(
                        f"expected {count} mail(s) within {scaled(timeout):.1f}s, got {len(self._messages)}: {subjects}"
                    )
                self._condition.wait(remaining)
            return list(self._messages)

    @property
    def maildir(self) -> Path | None:
        """Where the messages are also written (a Maildir), if anywhere."""
        return Path(self._maildir._path) if self._maildir is not None else None

    def _receive(self, message: EmailMessage) -> None:
        if self._maildir is not None:
            self._maildir.add(message.as_bytes())
        with self._condition:
            self._messages.append(message)
            number = len(self._messages)
            self._condition.notify_all()
        if self._echo:
            line = summarise(message, number)
            if callable(self._echo):
                self._echo(line)
            else:
                print(line, flush=True)

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
