"""Signed codes: round trip, QR size, and each way a code can be bad with its own reason."""

import base64
from datetime import UTC, datetime, timedelta

import pytest
import segno
from hypothesis import given
from hypothesis import strategies as st

from protocols.codes import (
    SIGNED_LENGTH,
    SIGNED_PREFIX,
    Scheme,
    SignedClaims,
    credential_of,
    encode_signed,
    generate_signing_key,
    private_key_from_pem,
    private_key_to_pem,
    public_key_from_text,
    public_key_to_text,
    scheme_of,
    verify_signed,
)
from protocols.reasons import Reason

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def central_key():
    return generate_signing_key()


@pytest.fixture
def claims():
    return SignedClaims(
        key_id=3,
        meeting_id=125,
        attendee_id=4711,
        valid_from=NOW - timedelta(hours=2),
        valid_until=NOW + timedelta(hours=4),
    )


@pytest.fixture
def trusted(central_key):
    return {3: central_key.public_key()}


def test_round_trip(central_key, claims, trusted):
    text = encode_signed(claims, central_key)
    assert text.startswith(SIGNED_PREFIX) and len(text) == SIGNED_LENGTH
    assert scheme_of(text) is Scheme.SIGNED
    result = verify_signed(text, trusted, NOW)
    assert result.reason is Reason.OK
    assert result.claims == claims
    assert credential_of(text) == "signed:3:125:4711"


def test_fits_qr_version_6_at_level_m(central_key, claims):
    text = encode_signed(claims, central_key)
    symbol = segno.make(text, error="m", micro=False, boost_error=False)
    assert symbol.version <= 6
    assert symbol.error == "M"


def test_tampered_code_is_bad_signature(central_key, claims, trusted):
    text = encode_signed(claims, central_key)
    raw = bytearray(base64.b32decode(text[len(SIGNED_PREFIX) :] + "=" * (-len(text[4:]) % 8)))
    raw[6] ^= 0x01  # attendee id changed
    tampered = SIGNED_PREFIX + base64.b32encode(bytes(raw)).decode().rstrip("=")
    assert verify_signed(tampered, trusted, NOW).reason is Reason.BAD_SIGNATURE


def test_forged_with_another_key_under_a_trusted_key_id(claims, trusted):
    forger = generate_signing_key()
    assert verify_signed(encode_signed(claims, forger), trusted, NOW).reason is Reason.BAD_SIGNATURE


def test_unknown_key_id(central_key, claims, trusted):
    other = SignedClaims(9, claims.meeting_id, claims.attendee_id, claims.valid_from, claims.valid_until)
    assert verify_signed(encode_signed(other, central_key), trusted, NOW).reason is Reason.UNKNOWN_KEY


@pytest.mark.parametrize("cut", [1, 10, 60])
def test_truncated_is_malformed(central_key, claims, trusted, cut):
    text = encode_signed(claims, central_key)
    assert verify_signed(text[:-cut], trusted, NOW).reason is Reason.MALFORMED


def test_expired_and_not_yet_valid(central_key, claims, trusted):
    text = encode_signed(claims, central_key)
    assert verify_signed(text, trusted, claims.valid_until + timedelta(seconds=1)).reason is Reason.EXPIRED
    assert (
        verify_signed(text, trusted, claims.valid_from - timedelta(seconds=1)).reason is Reason.NOT_YET_VALID
    )
    assert verify_signed(text, trusted, claims.valid_until).reason is Reason.OK


def test_bad_base32_is_malformed(trusted):
    text = SIGNED_PREFIX + "1" * (SIGNED_LENGTH - len(SIGNED_PREFIX))
    assert verify_signed(text, trusted, NOW).reason is Reason.MALFORMED


def test_key_serialisation_round_trip(central_key):
    public_text = public_key_to_text(central_key.public_key())
    assert public_key_to_text(public_key_from_text(public_text)) == public_text
    assert private_key_to_pem(private_key_from_pem(private_key_to_pem(central_key))) == private_key_to_pem(
        central_key
    )
    with pytest.raises(ValueError):
        public_key_from_text("not-a-key")


def test_naive_datetimes_are_refused(central_key):
    naive = SignedClaims(1, 1, 1, datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(ValueError):
        encode_signed(naive, central_key)


@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    key = generate_signing_key()
    assert verify_signed(text, {1: key.public_key()}, NOW).reason is not Reason.OK
    assert verify_signed(SIGNED_PREFIX + text, {1: key.public_key()}, NOW).reason is not Reason.OK
