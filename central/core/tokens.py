"""Bearer secrets at rest: session cookies, gate tokens, API client tokens and invitation secrets are stored only as
their SHA-256 (hex), so a copy of the database opens nothing. The secrets are long random strings, so a plain hash
(not a slow password hash) is enough.
"""

from __future__ import annotations

import hashlib
import hmac


def digest(secret: str) -> str:
    """Return the stored form of a bearer secret: the hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


_ABSENT = digest("vaora: no such secret")


def matches(stored: str | None, given: str) -> bool:
    """True when ``given`` (a :func:`digest`) equals the ``stored`` digest. Compared in constant time, and an
    absent or empty ``stored`` (no such row, no secret yet) is compared against a stand-in first, so a miss costs
    what a hit costs; it never matches, not even the stand-in's own preimage."""
    return hmac.compare_digest(stored or _ABSENT, given) and bool(stored)
