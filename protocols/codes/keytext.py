"""Public keys as gates receive them: URL-safe base64 of the key's raw bytes (both signed-code versions)."""

from __future__ import annotations

import base64
import binascii


def key_to_text(raw: bytes) -> str:
    """Return the URL-safe base64 text of a public key's raw bytes."""
    return base64.urlsafe_b64encode(raw).decode("ascii")


def key_bytes_from_text(text: str, size: int, what: str) -> bytes:
    """Return the raw bytes of a public key written by :func:`key_to_text`; ``ValueError`` naming ``what`` when
    the text is not base64 or not ``size`` bytes long."""
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"{what} is not base64") from exc
    if len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes")
    return raw
