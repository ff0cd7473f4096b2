"""The compact code: a short random code that gates know only by its hash.

A compact code is 14 characters from a 31-character alphabet without look-alike characters (no 0, O, 1, I, L):
13 random characters (64.4 bits) and one check character. The check character is a position-weighted sum
modulo 31, a prime, so every single mistyped character and every swap of two neighbours is detected when a
guard types the code by hand. The code is printed in groups (``ABCD-EFGH-JKMN-PQ``); gates accept it with or
without separators and in either case.
"""

from __future__ import annotations

import hashlib
import secrets

from protocols.reasons import Reason

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
RANDOM_LENGTH = 13
COMPACT_LENGTH = RANDOM_LENGTH + 1
_BASE = len(ALPHABET)
_INDEX = {ch: i for i, ch in enumerate(ALPHABET)}
_SEPARATORS = str.maketrans("", "", " -\t")
_HASH_DOMAIN = b"vaora.compact.v1:"


def _weighted_sum(chars: str) -> int:
    return sum((position + 1) * _INDEX[ch] for position, ch in enumerate(chars))


def _check_char(payload: str) -> str:
    # The check character sits at weight COMPACT_LENGTH; choose it so the whole weighted sum is 0 mod 31.
    total = _weighted_sum(payload)
    inverse = pow(COMPACT_LENGTH, -1, _BASE)
    return ALPHABET[(-total * inverse) % _BASE]


def generate_compact() -> str:
    """Return a new random compact code (14 characters, at least 64 bits of randomness)."""
    payload = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return payload + _check_char(payload)


def normalise_compact(text: str) -> str | None:
    """Return the canonical form of a compact code, or None when the text is not compact-shaped.

    Separators (spaces, hyphens) are removed and letters are upper-cased; the check character is not verified.
    """
    candidate = text.strip().translate(_SEPARATORS).upper()
    if len(candidate) != COMPACT_LENGTH or any(ch not in _INDEX for ch in candidate):
        return None
    return candidate


def check_compact(text: str) -> Reason:
    """Return ``OK`` for a well-formed compact code, else ``MALFORMED`` or ``BAD_CHECKSUM``."""
    code = normalise_compact(text)
    if code is None:
        return Reason.MALFORMED
    if _weighted_sum(code) % _BASE != 0:
        return Reason.BAD_CHECKSUM
    return Reason.OK


def compact_hash(code: str) -> str:
    """Return the hex SHA-256 of the normalised code: the only form in which gates store a compact code."""
    canonical = normalise_compact(code)
    if canonical is None:
        raise ValueError("not a compact code")
    return hashlib.sha256(_HASH_DOMAIN + canonical.encode("ascii")).hexdigest()


def format_compact(code: str) -> str:
    """Return the code grouped by four for printing and reading aloud, e.g. ``ABCD-EFGH-JKMN-PQ``."""
    canonical = normalise_compact(code) or code
    return "-".join(canonical[i : i + 4] for i in range(0, len(canonical), 4))
