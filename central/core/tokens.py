"""Bearer secrets at rest: session cookies, gate tokens, API client tokens and invitation secrets are stored only as
their SHA-256 (hex), so a copy of the database opens nothing. The secrets are long random strings, so a plain hash
(not a slow password hash) is enough.
"""

from __future__ import annotations

import hashlib


def digest(secret: str) -> str:
    """Return the stored form of a bearer secret: the hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
