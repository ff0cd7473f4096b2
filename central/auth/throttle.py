"""The login throttle: per account and per client address, counted in the database so every web process shares it.

- **Account.** ``VAORA_LOGIN_MAX_FAILURES`` wrong passwords for one name within ``VAORA_LOGIN_WINDOW_MIN`` lock
  the name (existing or not, so the answer tells nothing about which names exist) for :data:`FIRST_LOCKOUT`; each
  further failure while the count stays over the limit locks it again for twice as long as the previous lockout
  of the last :data:`MEMORY` (1, 2, 4, 8 ... minutes, at most :data:`MAX_LOCKOUT`). A successful login clears the
  name's record.
- **Address.** ``VAORA_LOGIN_ADDRESS_MAX_FAILURES`` failures from one client address within the window refuse
  that address until the oldest of them leaves the window. A success does not clear it (one valid account must
  not reset an attacker's count).
- A refused attempt checks no password: :func:`refusal` runs before any argon2 work, and the right password
  during a lockout is refused like a wrong one.

Times come from the caller (``now=``, the app's clock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from central.auth.models import LoginFailure
from central.core.db import write_transaction

if TYPE_CHECKING:
    from central.config import CentralConfig

FIRST_LOCKOUT = timedelta(minutes=1)
"""How long the first lockout of a name lasts; each following one (within :data:`MEMORY`) lasts twice as long."""
MAX_LOCKOUT = timedelta(hours=24)
MEMORY = timedelta(hours=24)
"""How long failures are kept: lockouts within it make the next one longer."""

ACCOUNT = "account_locked"
ADDRESS = "address_limited"


@dataclass(frozen=True)
class LoginLimits:
    """The throttle's settings (``VAORA_LOGIN_*``)."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    address_max_failures: int = 30

    @classmethod
    def from_config(cls, config: CentralConfig) -> LoginLimits:
        """Return the limits central's configuration sets."""
        return cls(max_failures=config.login_max_failures, window=timedelta(minutes=config.login_window_min),
                   address_max_failures=config.login_address_max_failures)


@dataclass(frozen=True)
class Refusal:
    """Logins are refused until ``until``: ``reason`` is :data:`ACCOUNT` or :data:`ADDRESS`."""

    reason: str
    until: datetime

    def retry_after(self, now: datetime) -> int:
        """Whole seconds to wait (at least 1), for a ``Retry-After`` header."""
        return max(1, math.ceil((self.until - now).total_seconds()))


def account_key(username: object) -> str:
    """The name a login attempt is counted under: trimmed, lower-cased, at most 64 characters."""
    return username.strip().lower()[:64] if isinstance(username, str) else ""


def address_key(address: str | None) -> str:
    """The client address a login attempt is counted under."""
    return (address or "unknown")[:64]


def refusal(username: str, address: str, *, now: datetime, limits: LoginLimits) -> Refusal | None:
    """Return why a login for ``username`` from ``address`` is refused now, or None when it may be tried."""
    locked = (LoginFailure.select(LoginFailure.locked_until)
              .where((LoginFailure.username == username) & LoginFailure.locked_until.is_null(False))
              .order_by(LoginFailure.locked_until.desc()).first())
    if locked is not None and locked.locked_until > now:
        return Refusal(ACCOUNT, locked.locked_until)
    recent = [row.at for row in LoginFailure.select(LoginFailure.at)
              .where((LoginFailure.address == address) & (LoginFailure.at > now - limits.window))
              .order_by(LoginFailure.at.desc()).limit(limits.address_max_failures)]
    if len(recent) >= limits.address_max_failures:
        return Refusal(ADDRESS, recent[-1] + limits.window)
    return None


def record_failure(username: str, address: str, *, now: datetime, limits: LoginLimits) -> list[Refusal]:
    """Count a failed login; return the refusals this failure starts (a new account lockout, the address
    reaching its limit), for the audit log."""
    started: list[Refusal] = []
    with write_transaction():
        LoginFailure.delete().where(LoginFailure.at < now - MEMORY).execute()
        failure = LoginFailure.create(at=now, username=username, address=address)
        in_window = (LoginFailure.select().where((LoginFailure.username == username)
                                                 & (LoginFailure.at > now - limits.window)).count())
        if in_window >= limits.max_failures:
            earlier = (LoginFailure.select().where((LoginFailure.username == username)
                                                   & LoginFailure.locked_until.is_null(False)).count())
            lockout = min(FIRST_LOCKOUT * 2 ** min(earlier, 20), MAX_LOCKOUT)
            failure.locked_until = now + lockout
            failure.save()
            started.append(Refusal(ACCOUNT, failure.locked_until))
        from_address = (LoginFailure.select().where((LoginFailure.address == address)
                                                    & (LoginFailure.at > now - limits.window)).count())
        if from_address == limits.address_max_failures:
            started.append(Refusal(ADDRESS, now + limits.window))
    return started


def record_success(username: str) -> None:
    """Clear a name's failures and lockouts after its right password (its address's count stays)."""
    LoginFailure.update(username="", locked_until=None).where(LoginFailure.username == username).execute()
