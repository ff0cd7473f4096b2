"""Password hashing with argon2id (argon2-cffi); hashes carry their parameters, so they can be upgraded."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
"""The default (RFC 9106 low-memory profile: argon2id, 64 MiB, 3 passes)."""

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


def hash_password(password: str) -> str:
    """Return the argon2id hash of ``password``."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Return True when ``password`` matches ``stored_hash`` (never raises for a bad hash or password)."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Return True when the hash was made with weaker parameters than the current ones."""
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def use_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Replace the hasher (tests use a cheap profile); returns the previous one."""
    global _HASHER
    previous, _HASHER = _HASHER, hasher
    dummy_hash.cache_clear()
    return previous


@cache
def dummy_hash() -> str:
    """A hash verified against when the username is unknown, so that costs as long as a wrong password."""
    return hash_password("vaora-timing-equaliser")
