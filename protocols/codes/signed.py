"""The signed code: meeting, attendee and validity window signed by central, verified offline by gates.

Two formats, told apart by their prefix; gates accept both, central issues version 2 whenever the claims fit
it (:func:`encode_signed`), so version 1 codes already in the field keep working until they expire.

Version 2 (``92`` and 147 digits, a version 4 QR at level M, read by a camera at 75-110 px): see
:mod:`protocols.codes.signed_short` (Schnorr over secp256k1 with a 128-bit challenge, 48 bytes).

Version 1 text form: ``VR1:`` followed by unpadded RFC 4648 base32 of an 18-byte body and a 64-byte signature.
The body is big-endian ``key_id u16, meeting_id u32, attendee_id u32, valid_from u32, valid_until u32``
(Unix seconds, UTC). The signature covers the prefix and the body. Every character is in the QR alphanumeric
set, so the 136-character code fits a version 6 QR symbol at error correction level M.

Gates hold only public keys: they can admit a delegate registered after their last sync, and a stolen gate
cannot mint codes.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocols.reasons import Reason

from .keytext import key_bytes_from_text, key_to_text
from .signed_short import (
    SHORT_LENGTH,
    SHORT_PREFIX,
    ShortClaimsDoNotFitError,
    encode_short,
    is_short,
    pack_body,
    short_private_key,
    split_short,
    unpack_body,
    verify_short,
)

if TYPE_CHECKING:
    from coincurve import PublicKey as ShortPublicKey

SIGNED_PREFIX = "VR1:"
_BODY = struct.Struct(">HIIII")
_SIGNATURE_LENGTH = 64
_RAW_LENGTH = _BODY.size + _SIGNATURE_LENGTH
SIGNED_LENGTH = len(SIGNED_PREFIX) + len(base64.b32encode(b"\0" * _RAW_LENGTH).rstrip(b"="))
_U32 = 2**32 - 1


@dataclass(frozen=True)
class SignedClaims:
    """What a signed code asserts: who may enter which meeting, and when."""

    key_id: int
    meeting_id: int
    attendee_id: int
    valid_from: datetime
    valid_until: datetime


@dataclass(frozen=True)
class SignedResult:
    """The outcome of verifying a signed code; ``claims`` is set once the layout parsed."""

    reason: Reason
    claims: SignedClaims | None = None


def _to_unix(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("datetimes in codes must be timezone-aware")
    value = int(moment.timestamp())
    if not 0 <= value <= _U32:
        raise ValueError("datetime out of range for a signed code")
    return value


def _claims_body(claims: SignedClaims) -> bytes:
    if not 0 <= claims.key_id <= 0xFFFF:
        raise ValueError("key_id must fit 16 bits")
    for name in ("meeting_id", "attendee_id"):
        if not 0 <= getattr(claims, name) <= _U32:
            raise ValueError(f"{name} must fit 32 bits")
    return _BODY.pack(
        claims.key_id,
        claims.meeting_id,
        claims.attendee_id,
        _to_unix(claims.valid_from),
        _to_unix(claims.valid_until),
    )


def encode_signed(claims: SignedClaims, private_key: Ed25519PrivateKey, version: int = 1,
                  aux_random: bytes | None = None) -> str:
    """Return the text of a signed code for ``claims``, signed with ``private_key`` (the key id's key).

    ``version=2`` makes the short code (its window rounded inwards to whole minutes) and falls back to
    version 1 when the claims do not fit it; gates verify version 2 with the key's short public key.
    ``aux_random`` (version 2 only; test material) fixes the randomness of its signature's nonce
    (:func:`~protocols.codes.signed_short.sign_short`); Ed25519 (version 1) is deterministic already.
    """
    if version == 2:
        try:
            body2 = pack_body(claims.key_id, claims.meeting_id, claims.attendee_id, claims.valid_from,
                              claims.valid_until)
        except ShortClaimsDoNotFitError:
            pass
        else:
            return encode_short(body2, short_private_key(private_key), aux_random)
    elif version != 1:
        raise ValueError(f"unknown signed code version {version}")
    body = _claims_body(claims)
    signature = private_key.sign(SIGNED_PREFIX.encode("ascii") + body)
    return SIGNED_PREFIX + base64.b32encode(body + signature).decode("ascii").rstrip("=")


def _split(text: str) -> tuple[bytes, bytes] | None:
    candidate = text.strip()
    if candidate[: len(SIGNED_PREFIX)].upper() != SIGNED_PREFIX or len(candidate) != SIGNED_LENGTH:
        return None
    encoded = candidate[len(SIGNED_PREFIX) :].upper()
    try:
        raw = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _RAW_LENGTH:
        return None
    return raw[: _BODY.size], raw[_BODY.size :]


def _parse_claims(body: bytes) -> SignedClaims:
    key_id, meeting_id, attendee_id, valid_from, valid_until = _BODY.unpack(body)
    return SignedClaims(
        key_id=key_id,
        meeting_id=meeting_id,
        attendee_id=attendee_id,
        valid_from=datetime.fromtimestamp(valid_from, UTC),
        valid_until=datetime.fromtimestamp(valid_until, UTC),
    )


def _short_claims(body: bytes) -> SignedClaims:
    key_id, meeting_id, attendee_id, valid_from, valid_until = unpack_body(body)
    return SignedClaims(key_id, meeting_id, attendee_id, valid_from, valid_until)


def signed_version(text: str) -> int | None:
    """1 or 2 for a text shaped like that version of the signed code, else None."""
    if is_short(text):
        return 2
    return 1 if text.strip()[: len(SIGNED_PREFIX)].upper() == SIGNED_PREFIX else None


def read_signed_claims(text: str) -> SignedClaims | None:
    """Return the claims of a signed-code text (either version) WITHOUT checking the signature, or None."""
    short = split_short(text)
    if short is not None:
        return _short_claims(short[0])
    parts = _split(text)
    return None if parts is None else _parse_claims(parts[0])


def _check_window(claims: SignedClaims, now: datetime) -> SignedResult:
    if now < claims.valid_from:
        return SignedResult(Reason.NOT_YET_VALID, claims)
    if now > claims.valid_until:
        return SignedResult(Reason.EXPIRED, claims)
    return SignedResult(Reason.OK, claims)


def _verdict(claims: SignedClaims, signature_ok: bool | None, now: datetime) -> SignedResult:
    """The verdict on a code's parsed claims: ``signature_ok`` None when no trusted key has the code's key id."""
    if signature_ok is None:
        return SignedResult(Reason.UNKNOWN_KEY, claims)
    if not signature_ok:
        return SignedResult(Reason.BAD_SIGNATURE, claims)
    return _check_window(claims, now)


def _short_signature_ok(claims: SignedClaims, body: bytes, signature: bytes,
                        keys: Mapping[int, ShortPublicKey]) -> bool | None:
    key = keys.get(claims.key_id)
    return None if key is None else verify_short(SHORT_PREFIX.encode("ascii") + body, signature, key)


def _ed25519_signature_ok(claims: SignedClaims, body: bytes, signature: bytes,
                          keys: Mapping[int, Ed25519PublicKey]) -> bool | None:
    key = keys.get(claims.key_id)
    if key is None:
        return None
    try:
        key.verify(signature, SIGNED_PREFIX.encode("ascii") + body)
    except InvalidSignature:
        return False
    return True


def verify_signed(
    text: str,
    keys: Mapping[int, Ed25519PublicKey],
    now: datetime,
    short_keys: Mapping[int, ShortPublicKey] | None = None,
) -> SignedResult:
    """Verify a signed code (either version) against trusted public keys at time ``now``. Never raises.

    ``keys`` are the Ed25519 keys (version 1), ``short_keys`` the secp256k1 ones (version 2) by key id.
    Reasons: ``MALFORMED`` (wrong prefix, length or encoding: a truncated code lands here), ``UNKNOWN_KEY``
    (the key id is not trusted), ``BAD_SIGNATURE`` (tampered or forged), ``NOT_YET_VALID``, ``EXPIRED``,
    ``OK``.
    """
    try:
        if is_short(text):
            short = split_short(text)
            if short is None:
                return SignedResult(Reason.MALFORMED)
            claims = _short_claims(short[0])
            return _verdict(claims, _short_signature_ok(claims, *short, short_keys or {}), now)
        parts = _split(text)
        if parts is None:
            return SignedResult(Reason.MALFORMED)
        claims = _parse_claims(parts[0])
        return _verdict(claims, _ed25519_signature_ok(claims, *parts, keys), now)
    except Exception:
        return SignedResult(Reason.MALFORMED)


def generate_signing_key() -> Ed25519PrivateKey:
    """Return a new Ed25519 private key for central."""
    return Ed25519PrivateKey.generate()


def public_key_to_text(key: Ed25519PublicKey) -> str:
    """Return the URL-safe base64 of a public key's raw 32 bytes (as sent to gates)."""
    return key_to_text(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Parse a public key written by :func:`public_key_to_text`; raises ValueError when invalid."""
    return Ed25519PublicKey.from_public_bytes(key_bytes_from_text(text, 32, "public key"))


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    """Serialise a private key as unencrypted PKCS#8 PEM (store the file with mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def private_key_from_pem(data: bytes) -> Ed25519PrivateKey:
    """Load a private key written by :func:`private_key_to_pem`; raises ValueError for anything else."""
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


__all__ = [
    "SHORT_LENGTH",
    "SHORT_PREFIX",
    "SIGNED_LENGTH",
    "SIGNED_PREFIX",
    "SignedClaims",
    "SignedResult",
    "encode_signed",
    "generate_signing_key",
    "private_key_from_pem",
    "private_key_to_pem",
    "public_key_from_text",
    "public_key_to_text",
    "read_signed_claims",
    "signed_version",
    "verify_signed",
]
