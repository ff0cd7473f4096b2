"""Short plain-text notices by e-mail (a revoked code, a returned invitation): built here, queued when the mail
queue is on (retried like every e-mail), else sent at once. A failure is logged and never undoes what the notice
tells of."""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from central.outbound.mail import MailSender
from protocols.logs import mask_email

log = logging.getLogger(__name__)


def build_notice(*, sender: str, to: str, subject: str, text: str, now: datetime) -> EmailMessage:
    """Return a plain-text Vietnamese notice with its ``Date`` and ``Message-ID``."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    message.set_content(text)
    return message


def send_notice(message: EmailMessage, now: datetime, *, mail_sender: MailSender) -> bool:
    """Queue ``message`` (mail queue on) or send it now; True when it was queued or sent, False when it failed."""
    from central.outbound.worker import enqueue_message

    try:
        if callable(getattr(mail_sender, "enqueue_delegate_code", None)):
            enqueue_message(message, now)
        else:
            mail_sender.send(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("notice mail failed to=%s error=%s", mask_email(str(message["To"])), type(exc).__name__)
        return False
    return True
