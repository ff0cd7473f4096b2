"""Attendee codes: the compact scheme (the default) and the signed scheme, chosen per meeting."""

from __future__ import annotations

from enum import StrEnum

from protocols.codes.compact import (
    ALPHABET,
    COMPACT_LENGTH,
    check_compact,
    compact_hash,
    format_compact,
    generate_compact,
    normalise_compact,
)
from protocols.codes.signed import (
    SHORT_LENGTH,
    SHORT_PREFIX,
    SIGNED_LENGTH,
    SIGNED_PREFIX,
    SignedClaims,
    SignedResult,
    encode_signed,
    generate_signing_key,
    private_key_from_pem,
    private_key_to_pem,
    public_key_from_text,
    public_key_to_text,
    read_signed_claims,
    signed_version,
    verify_signed,
)
from protocols.codes.signed_short import (
    short_keys_from_text,
    short_private_key,
    short_public_key_from_text,
    short_public_key_to_text,
)
from protocols.reasons import Reason

MAX_SCAN_LENGTH = 256


class Scheme(StrEnum):
    """The two code schemes a meeting can use."""

    COMPACT = "compact"
    SIGNED = "signed"


def scheme_of(text: str) -> Scheme | None:
    """Return which scheme a scanned text is shaped like, or None when it is neither."""
    if signed_version(text) is not None:
        return Scheme.SIGNED
    if normalise_compact(text) is not None:
        return Scheme.COMPACT
    return None


def credential_of(text: str) -> str | None:
    """Return a stable identifier of the credential a text carries (for anti-passback), or None.

    Compact codes are identified by their hash; signed codes by key, meeting and attendee, so a code
    re-issued with another validity window is still the same person's credential.
    """
    scheme = scheme_of(text)
    if scheme is Scheme.COMPACT:
        return compact_hash(text) if check_compact(text) is Reason.OK else None
    if scheme is Scheme.SIGNED:
        claims = read_signed_claims(text)
        if claims is None:
            return None
        return f"signed:{claims.key_id}:{claims.meeting_id}:{claims.attendee_id}"
    return None


__all__ = [
    "ALPHABET",
    "COMPACT_LENGTH",
    "MAX_SCAN_LENGTH",
    "SHORT_LENGTH",
    "SHORT_PREFIX",
    "SIGNED_LENGTH",
    "SIGNED_PREFIX",
    "Scheme",
    "SignedClaims",
    "SignedResult",
    "check_compact",
    "compact_hash",
    "credential_of",
    "encode_signed",
    "format_compact",
    "generate_compact",
    "generate_signing_key",
    "normalise_compact",
    "private_key_from_pem",
    "private_key_to_pem",
    "public_key_from_text",
    "public_key_to_text",
    "read_signed_claims",
    "scheme_of",
    "short_keys_from_text",
    "short_private_key",
    "short_public_key_from_text",
    "short_public_key_to_text",
    "signed_version",
    "verify_signed",
]
