"""What the web app and workers share: configuration, the clock, the mail sender and the signing key."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.config import CentralConfig
from central.core.keys import ActiveKey, active_key
from central.core.validity import CodeValidity
from central.outbound.mail import MailSender
from central.outbound.sms import GsmModemSender, HttpGatewaySender, LogSender, SmsSender


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


@dataclass
class CentralContext:
    """Dependencies of central's routes, passed in at app creation (tests swap the clock or the sender)."""

    config: CentralConfig
    mail_sender: MailSender
    clock: Callable[[], datetime] = utc_now
    sms_sender: SmsSender = field(default_factory=LogSender)
    _private_keys: dict[int, Ed25519PrivateKey] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def entry_opens_before(self) -> timedelta:
        """How long before a meeting starts its codes become valid."""
        return timedelta(minutes=self.config.entry_opens_before_min)

    @property
    def code_validity(self) -> CodeValidity:
        """The configured margins of every code's validity window around its meeting."""
        return CodeValidity(entry_opens_before=self.entry_opens_before,
                            grace_after_end=timedelta(minutes=self.config.grace_after_end_min))

    def signing_key(self) -> ActiveKey:
        """Return the key to sign with now (the database says which, so a rotation anywhere applies at once);
        on first use ever the key file is loaded (or created) and registered."""
        with self._lock:
            return active_key(self.config.signing_key_file, self.clock(), self._private_keys)


def sms_sender_from_config(config: CentralConfig) -> SmsSender:
    """Return the SMS sender ``VAORA_SMS_BACKEND`` chooses: log (default), modem or http."""
    if config.sms_backend == "modem":
        return GsmModemSender(port=config.sms_modem_port)
    if config.sms_backend == "http":
        return HttpGatewaySender(url=config.sms_http_url)
    return LogSender()
