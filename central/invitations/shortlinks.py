"""Short registration links for SMS: ``<public url>/dk/<token>``, an 8-character token per invitation.

The long link (``/registration/<number>?secret=<32 characters>``) uses up most of an SMS's 160 characters, so
the SMS carries a short one and the title and venue fit. The token is drawn from 57 characters without
look-alikes (no 0/O, 1/I/l): 57^8 ≈ 1.1·10^14 (46 bits). Only its SHA-256 is stored (``invitation.short_hash``);
it opens the same registration page as the invitation's secret (:func:`central.invitations.services.
find_invitation` accepts either), so every page, form and download works from it alone.

Guessing is bounded by the guess counter (:mod:`central.invitations.guesses`): a miss at ``/dk/`` counts
against the client's address under one shared key, so an address gets ``REGISTRATION_GUESS_LIMIT`` (10 per
minute) tries at *all* short links together; at that rate hitting one of a thousand live invitations takes an
address about 10^4 years.
"""

from __future__ import annotations

import secrets

from central.core.tokens import digest, matches
from central.invitations.guesses import GuessGuard, found_or_miss, request_guard
from central.invitations.models import Invitation

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
TOKEN_LENGTH = 8
PATH = "/dk/"
GUESS_KEY = "short-link"
"""The one guess-counter key of every ``/dk/`` miss (per client address)."""


def new_token() -> str:
    """Return a fresh random token of :data:`TOKEN_LENGTH` characters from :data:`ALPHABET`."""
    return "".join(secrets.choice(ALPHABET) for _ in range(TOKEN_LENGTH))


def is_token(value: object) -> bool:
    """True when ``value`` has the shape of a token (length and alphabet), before any lookup."""
    return isinstance(value, str) and len(value) == TOKEN_LENGTH and all(ch in ALPHABET for ch in value)


def short_url(public_url: str, token: str) -> str:
    """Return the SMS link of an invitation: ``<public url>/dk/<token>``."""
    return f"{public_url.rstrip('/')}{PATH}{token}"


def find_by_token(token: object, *, guard: GuessGuard | None = None) -> Invitation:
    """Return the invitation whose short token is ``token`` or raise :class:`NotFoundError`; a miss counts as a
    guess of the caller's address (``guard``, by default the current request's), and an address that used up
    its guesses gets ``TooManyGuessesError`` before anything is looked up."""
    guard = guard if guard is not None else request_guard()
    if guard is not None:
        guard.check(GUESS_KEY)
    found = None
    if is_token(token):
        assert isinstance(token, str)
        given = digest(token)
        row = Invitation.get_or_none(Invitation.short_hash == given)
        if matches(row.short_hash if row is not None else None, given) and row is not None and row.number:
            found = row
    return found_or_miss(found, guard, GUESS_KEY)
