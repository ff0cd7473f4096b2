"""One limit on guessing invitation links, shared by every route that opens an invitation by number and secret.

The registration pages, the registration JSON API and the document downloads all find an invitation through
:func:`central.invitations.services.find_invitation`, which asks the request's :class:`GuessGuard`. A miss (an
unknown number or a wrong secret, the same thing to the caller) counts against the pair (invitation number,
client address); once the pair has used up the limit (``REGISTRATION_GUESS_LIMIT``, default 10 per minute,
whatever route the guesses came through), every try of that pair is refused with 429 until the window moves on,
even with the right secret. Another number from the same address, or the right secret from another address
(an organisation behind the same NAT as a neighbour who mistyped, or the office itself), is not affected.

The counts live in the ``limits`` storage named by ``VAORA_RATELIMIT_STORAGE``: ``memory://`` counts per
process, ``redis://`` shares them between the web processes and machines.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app, has_request_context, request
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from central.core.errors import NotFoundError
from protocols.reasons import Reason

if TYPE_CHECKING:
    from central.invitations.models import Invitation

DEFAULT_LIMIT = "10 per minute"
"""Misses allowed per (invitation number, client address) and window; ``REGISTRATION_GUESS_LIMIT`` overrides."""
EXTENSION = "vaora_invitation_guesses"
"""Where the app keeps its :class:`GuessCounter` (``app.extensions``)."""
KEY_PREFIX = "vaora-invitation-guess"
REASON = "too_many_guesses"
"""The reason code of a refused try."""
MESSAGE = "Bạn đã thử mở thư mời sai quá nhiều lần. Vui lòng đợi một phút rồi thử lại."
MAX_NUMBER = 128
"""Only this much of a given number is counted (a longer one is no invitation's number anyway)."""


class TooManyGuessesError(TooManyRequests):
    """The (number, address) pair used up its guesses: 429 with ``Retry-After`` wherever it is not caught."""

    reason = REASON

    def __init__(self, retry_after: int) -> None:
        super().__init__(MESSAGE, retry_after=retry_after)
        self.retry_after_s = retry_after


def _number_key(number: object) -> str:
    text = number[:MAX_NUMBER] if isinstance(number, str) else ""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class GuessCounter:
    """Counts misses per (invitation number, client address) in a ``limits`` storage (memory or Redis)."""

    def __init__(self, storage_uri: str, limit: str = DEFAULT_LIMIT) -> None:
        self.limit = parse(limit)
        self._strategy = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def _ids(self, number: object, address: str) -> tuple[str, str, str]:
        return KEY_PREFIX, _number_key(number), address

    def blocked(self, number: object, address: str) -> bool:
        """True when the pair has no guess left in the current window."""
        return not self._strategy.test(self.limit, *self._ids(number, address))

    def miss(self, number: object, address: str) -> None:
        """Count one wrong try of the pair."""
        self._strategy.hit(self.limit, *self._ids(number, address))

    def retry_after(self, number: object, address: str) -> int:
        """Whole seconds until the pair may try again (at least 1)."""
        stats = self._strategy.get_window_stats(self.limit, *self._ids(number, address))
        return max(1, math.ceil(stats.reset_time - time.time()))


@dataclass(frozen=True)
class GuessGuard:
    """The counter bound to one client address: what :func:`find_invitation` consults."""

    counter: GuessCounter
    address: str

    def check(self, number: object) -> None:
        """Raise :class:`TooManyGuessesError` when this address used up its guesses at ``number``."""
        if self.counter.blocked(number, self.address):
            raise TooManyGuessesError(self.counter.retry_after(number, self.address))

    def miss(self, number: object) -> None:
        """Count a wrong try at ``number`` from this address."""
        self.counter.miss(number, self.address)


def install(app: Flask, storage_uri: str, limit: str | None = None) -> GuessCounter:
    """Give ``app`` its guess counter (``limit`` defaults to ``REGISTRATION_GUESS_LIMIT`` or 10 per minute)."""
    counter = GuessCounter(storage_uri, limit or str(app.config.get("REGISTRATION_GUESS_LIMIT") or DEFAULT_LIMIT))
    app.extensions[EXTENSION] = counter
    return counter


def request_guard() -> GuessGuard | None:
    """The guard of the current request (its client address, after ProxyFix), or None outside a request or in
    an app without a counter."""
    if not has_request_context():
        return None
    counter = current_app.extensions.get(EXTENSION)
    if counter is None:
        return None
    return GuessGuard(counter, request.remote_addr or "")


def found_or_miss(found: Invitation | None, guard: GuessGuard | None, number: object) -> Invitation:
    """Return the invitation a secret opened; when none did, count a miss of ``number`` on ``guard`` and raise the
    one error for an unknown number and a wrong secret alike (the caller cannot tell which)."""
    if found is None:
        if guard is not None:
            guard.miss(number)
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy thư mời hoặc mã bí mật không đúng")
    return found
