"""Password hashing with argon2id (argon2-cffi), the cap on concurrent hashing, and the password policy.

- Hashes carry their parameters, so they can be upgraded (:func:`needs_rehash`).
- Each argon2 run of the default profile holds 64 MiB. At most ``VAORA_PASSWORD_HASH_CONCURRENCY`` run at once
  per process (:func:`configure_hashing`, a bounded semaphore): a burst of 100 parallel logins costs a few
  times 64 MiB, not 100 times. A caller that cannot get a turn within :data:`HASH_WAIT_SECONDS` gets
  :class:`HashingBusyError` (the login page answers 503 with ``Retry-After``) instead of queueing without end.
- :func:`password_problem` is the one policy every path that sets a password applies: a length of 12 to 256, not
  one of the 30,000 most common passwords (zxcvbn's frequency list), not containing the username.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from central.core.errors import ServiceError
from protocols.reasons import Reason

_HASHER = PasswordHasher()
"""The default (RFC 9106 low-memory profile: argon2id, 64 MiB, 3 passes)."""

MIN_PASSWORD_LENGTH = 12
"""OWASP ASVS 4.0 2.1.1 (level 1): at least 12 characters."""
MAX_PASSWORD_LENGTH = 256

DEFAULT_HASH_CONCURRENCY = 2
HASH_WAIT_SECONDS = 5.0
"""How long a password check waits for a free hashing slot before it is refused as busy."""
BUSY_RETRY_AFTER_SECONDS = 5
"""The ``Retry-After`` a refused (busy) login answers with."""

_SLOTS = threading.BoundedSemaphore(DEFAULT_HASH_CONCURRENCY)
_SLOTS_SIZE = DEFAULT_HASH_CONCURRENCY


class HashingBusyError(ServiceError):
    """Every hashing slot stayed taken for :data:`HASH_WAIT_SECONDS`; try again in a few seconds."""

    def __init__(self) -> None:
        super().__init__(Reason.INTERNAL_ERROR, "Hệ thống đang bận, vui lòng thử lại sau ít giây")


def configure_hashing(concurrency: int) -> None:
    """Allow ``concurrency`` argon2 runs at once in this process (``VAORA_PASSWORD_HASH_CONCURRENCY``).

    Process-wide: every app of the process shares the one semaphore. A new size replaces the semaphore; runs
    holding the old one finish on it.
    """
    global _SLOTS, _SLOTS_SIZE
    if concurrency < 1:
        raise ValueError("the hashing concurrency must be at least 1")
    if concurrency != _SLOTS_SIZE:
        _SLOTS, _SLOTS_SIZE = threading.BoundedSemaphore(concurrency), concurrency


@contextmanager
def hashing_slot() -> Iterator[None]:
    """Hold one of the process's hashing slots; raise :class:`HashingBusyError` when none frees up in time."""
    slots = _SLOTS
    if not slots.acquire(timeout=HASH_WAIT_SECONDS):
        raise HashingBusyError()
    try:
        yield
    finally:
        slots.release()


def hash_password(password: str) -> str:
    """Return the argon2id hash of ``password`` (waits for a hashing slot; may raise :class:`HashingBusyError`)."""
    with hashing_slot():
        return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Return True when ``password`` matches ``stored_hash`` (never raises for a bad hash or password; raises
    :class:`HashingBusyError` when no hashing slot frees up in time)."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        return False
    with hashing_slot():
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


@cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: object, username: str | None = None) -> str | None:
    """Return why ``password`` may not be set (a Vietnamese message), or None when it is acceptable.

    Refused: not 12 to 256 characters; one of the 30,000 most common passwords (zxcvbn's list, compared
    case-insensitively); containing ``username`` (case-insensitively).
    """
    if not isinstance(password, str) or not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        return f"Mật khẩu phải từ {MIN_PASSWORD_LENGTH} đến {MAX_PASSWORD_LENGTH} ký tự"
    folded = password.casefold()
    if folded in _common_passwords():
        return "Mật khẩu này quá phổ biến, dễ bị đoán; hãy chọn mật khẩu khác"
    if username and username.strip().casefold() in folded:
        return "Mật khẩu không được chứa tên đăng nhập"
    return None
