"""The short signed code (version 2): 149 digits, a version 4 QR at error correction M.

Why: the version 1 code (``VR1:``, 136 characters, a version 6 QR) carries a 64-byte Ed25519 signature; at
75-110 px a camera gives its 41 modules under 3 px each and reads almost none of them, nor under motion blur.
A version 4 QR at level M holds at most 149 digits (about 494 bits), less than an Ed25519 signature alone, so
version 2 uses a shorter signature that is still verified offline with a public key:

- **Signature**: Schnorr over secp256k1 with a 128-bit challenge (Neven, Smart, Warinschi 2009: a Schnorr
  challenge of half the group size keeps the 128-bit security of the group), 48 bytes: ``e`` (16 bytes) and
  ``s`` (32 bytes). ``R = k*G``, ``e = SHA-256(tag, R, P, message)[:16]``, ``s = k + e*x mod n``; the gate
  checks ``e == SHA-256(tag, s*G - e*P, P, message)[:16]``. Group operations are libsecp256k1's (coincurve),
  constant time for the secret ones (``k*G``, ``e*x``, ``+k``). The nonce ``k`` is derived from the secret and
  the message (as RFC 6979 does) and 32 fresh random bytes, so a faulty random source cannot repeat it.
- **Key**: the secp256k1 secret is derived from the key id's Ed25519 private key with HKDF-SHA256 (info
  :data:`_KEY_INFO`), so central keeps one key file per key id; gates get its public key
  (:func:`short_public_key_to_text`, 33 bytes compressed, URL-safe base64) beside the Ed25519 one.
- **Body** (13 bytes, big-endian bit fields): key id 16 bits, meeting id 24, attendee id 24, ``valid_from`` in
  minutes since 2024-01-01 UTC 24 bits (until 2055), the window's length in minutes 16 bits (up to 45 days).
  The window is rounded inwards to whole minutes (never longer than asked). Claims that do not fit
  (:func:`fits_short`) are issued as version 1.
- **Text**: :data:`SHORT_PREFIX` (``92``) and the 61 bytes of body and signature as one zero-padded
  147-digit number: digits only, the QR's numeric mode, and typed the same on every keyboard layout.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from coincurve import PrivateKey, PublicKey
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .keytext import key_bytes_from_text, key_to_text

SHORT_PREFIX = "92"
_DIGITS = 147
SHORT_LENGTH = len(SHORT_PREFIX) + _DIGITS
_BODY_BYTES = 13
_SIG_BYTES = 48
_RAW_BITS = 8 * (_BODY_BYTES + _SIG_BYTES)
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_FIELDS = (("key_id", 16), ("meeting_id", 24), ("attendee_id", 24), ("from_minute", 24), ("minutes", 16))
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # secp256k1 group order
_KEY_INFO = b"vaora signed code v2 secp256k1 key"
_TAG = hashlib.sha256(b"vaora signed code v2 challenge").digest()


class ShortClaimsDoNotFitError(ValueError):
    """The claims exceed a field of the short code (central then issues version 1)."""


def short_private_key(ed25519_key: Ed25519PrivateKey) -> PrivateKey:
    """The secp256k1 signing key of a key id, derived from its Ed25519 private key (HKDF-SHA256)."""
    seed = ed25519_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    for counter in range(256):
        secret = HKDF(hashes.SHA256(), 32, salt=None, info=_KEY_INFO + bytes([counter])).derive(seed)
        if 0 < int.from_bytes(secret, "big") < _N:
            return PrivateKey(secret)
    raise ValueError("no valid secp256k1 key derived")  # pragma: no cover - probability 2^-32000


def short_public_key_to_text(key: PublicKey) -> str:
    """URL-safe base64 of the compressed 33-byte public key (44 characters), as gates receive it."""
    return key_to_text(key.format(compressed=True))


def short_public_key_from_text(text: str) -> PublicKey:
    """Parse :func:`short_public_key_to_text`'s text; ``ValueError`` when it is not a secp256k1 point."""
    raw = key_bytes_from_text(text, 33, "short public key")
    try:
        return PublicKey(raw)
    except Exception as exc:
        raise ValueError("short public key is not a secp256k1 point") from exc


def _minutes(moment: datetime, up: bool) -> int:
    if moment.tzinfo is None:
        raise ValueError("datetimes in codes must be timezone-aware")
    seconds = (moment - EPOCH).total_seconds()
    whole = int(seconds // 60)
    return whole + 1 if up and whole * 60 < seconds else whole


def pack_body(key_id: int, meeting_id: int, attendee_id: int, valid_from: datetime,
              valid_until: datetime) -> bytes:
    """The 13-byte body; raises :class:`ShortClaimsDoNotFitError` when a value is out of its field's range."""
    start = _minutes(valid_from, up=True)
    end = _minutes(valid_until, up=False)
    values = {"key_id": key_id, "meeting_id": meeting_id, "attendee_id": attendee_id, "from_minute": start,
              "minutes": end - start}
    packed = 0
    for name, bits in _FIELDS:
        value = values[name]
        if not 0 <= value < 1 << bits:
            raise ShortClaimsDoNotFitError(f"{name}={value} does not fit {bits} bits")
        packed = packed << bits | value
    return packed.to_bytes(_BODY_BYTES, "big")


def unpack_body(body: bytes) -> tuple[int, int, int, datetime, datetime]:
    """(key_id, meeting_id, attendee_id, valid_from, valid_until) of a 13-byte body."""
    packed = int.from_bytes(body, "big")
    values: dict[str, int] = {}
    for name, bits in reversed(_FIELDS):
        values[name] = packed & ((1 << bits) - 1)
        packed >>= bits
    start = EPOCH + timedelta(minutes=values["from_minute"])
    return (values["key_id"], values["meeting_id"], values["attendee_id"], start,
            start + timedelta(minutes=values["minutes"]))


def _challenge(r_point: bytes, public: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha256(_TAG + r_point + public + message).digest()[:16], "big")


def sign_short(message: bytes, key: PrivateKey, aux_random: bytes | None = None) -> bytes:
    """A 48-byte Schnorr signature (``e`` 16 bytes, ``s`` 32 bytes) of ``message``.

    ``aux_random``: the 32 bytes mixed into the nonce (as BIP-340's auxiliary randomness); None, the default and
    the only choice for real codes, takes fresh bytes from ``os.urandom``. Given only for reproducible test and
    benchmark material: the nonce still depends on the secret and the message."""
    if aux_random is not None and len(aux_random) != 32:
        raise ValueError("aux_random must be 32 bytes")
    extra = os.urandom(32) if aux_random is None else aux_random
    public = key.public_key.format(compressed=True)
    for attempt in range(16):
        nonce = hmac.new(key.secret, b"nonce" + bytes([attempt]) + extra + message, "sha256").digest()
        k = int.from_bytes(nonce, "big")
        if not 0 < k < _N:
            continue  # pragma: no cover - probability 2^-128
        r_point = PrivateKey(nonce).public_key.format(compressed=True)
        e = _challenge(r_point, public, message)
        if e == 0:
            continue  # pragma: no cover - probability 2^-128
        ex = key.multiply(e.to_bytes(32, "big"))  # e*x mod n, constant time in libsecp256k1
        s = ex.add(nonce)  # + k mod n
        return e.to_bytes(16, "big") + s.secret
    raise ValueError("could not sign")  # pragma: no cover


def verify_short(message: bytes, signature: bytes, key: PublicKey) -> bool:
    """True when ``signature`` is ``key``'s Schnorr signature of ``message``. Never raises."""
    try:
        if len(signature) != _SIG_BYTES:
            return False
        e = int.from_bytes(signature[:16], "big")
        s = int.from_bytes(signature[16:], "big")
        if not (e > 0 and 0 < s < _N):
            return False
        s_g = PublicKey.from_secret(signature[16:])
        minus_e_p = key.multiply((_N - e).to_bytes(32, "big"))
        r_point = PublicKey.combine_keys([s_g, minus_e_p])  # raises when the sum is the point at infinity
        expected = _challenge(r_point.format(compressed=True), key.format(compressed=True), message)
        return hmac.compare_digest(expected.to_bytes(16, "big"), signature[:16])
    except Exception:
        return False


def encode_short(body: bytes, key: PrivateKey, aux_random: bytes | None = None) -> str:
    """The text of a short code: the prefix and body + signature as 147 digits (``aux_random``: see
    :func:`sign_short`)."""
    signature = sign_short(SHORT_PREFIX.encode("ascii") + body, key, aux_random)
    number = int.from_bytes(body + signature, "big")
    return SHORT_PREFIX + str(number).zfill(_DIGITS)


def split_short(text: str) -> tuple[bytes, bytes] | None:
    """(body, signature) of a short-code text, or None when it is not shaped like one."""
    candidate = text.strip()
    if len(candidate) != SHORT_LENGTH or not candidate.isascii() or not candidate.isdigit():
        return None
    if not candidate.startswith(SHORT_PREFIX):
        return None
    number = int(candidate[len(SHORT_PREFIX):])
    if number >> _RAW_BITS:
        return None
    raw = number.to_bytes(_BODY_BYTES + _SIG_BYTES, "big")
    return raw[:_BODY_BYTES], raw[_BODY_BYTES:]


def is_short(text: str) -> bool:
    """True when ``text`` has the short code's shape (prefix, length, digits)."""
    candidate = text.strip()
    return len(candidate) == SHORT_LENGTH and candidate.isdigit() and candidate.startswith(SHORT_PREFIX)


def short_keys_from_text(texts: Mapping[int, str]) -> dict[int, PublicKey]:
    """Parse a ``{key_id: text}`` mapping, skipping (not raising on) texts that are not keys."""
    keys: dict[int, PublicKey] = {}
    for key_id, text in texts.items():
        try:
            keys[key_id] = short_public_key_from_text(text)
        except ValueError:
            continue
    return keys
