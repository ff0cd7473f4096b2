"""The short signed code (version 2): a version 4 QR at level M, both versions verified, every tampering refused."""

from datetime import UTC, datetime, timedelta

import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.codes import (
    SHORT_LENGTH,
    SHORT_PREFIX,
    SIGNED_PREFIX,
    Scheme,
    SignedClaims,
    credential_of,
    encode_signed,
    generate_signing_key,
    read_signed_claims,
    scheme_of,
    short_keys_from_text,
    short_private_key,
    short_public_key_from_text,
    short_public_key_to_text,
    signed_version,
    verify_signed,
)
from protocols.reasons import Reason

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
KEY = generate_signing_key()
OTHER = generate_signing_key()
SHORT = {3: short_private_key(KEY).public_key}
FULL = {3: KEY.public_key()}


def claims(**changes: object) -> SignedClaims:
    values: dict[str, object] = {"key_id": 3, "meeting_id": 125, "attendee_id": 4711,
                                 "valid_from": NOW - timedelta(hours=2), "valid_until": NOW + timedelta(hours=4)}
    values.update(changes)
    return SignedClaims(**values)  # type: ignore[arg-type]


def test_version_2_is_149_digits_in_a_version_4_qr_at_level_m() -> None:
    text = encode_signed(claims(), KEY, version=2)
    assert len(text) == SHORT_LENGTH == 149 and text.isdigit() and text.startswith(SHORT_PREFIX)
    qr = segno.make_qr(text, error="m", boost_error=False)
    assert (qr.version, qr.error, qr.mode) == (4, "M", "numeric")
    old = encode_signed(claims(), KEY)
    assert segno.make_qr(old, error="m", boost_error=False).version == 6


def test_both_versions_verify_with_the_same_claims_and_credential() -> None:
    new, old = encode_signed(claims(), KEY, version=2), encode_signed(claims(), KEY)
    assert old.startswith(SIGNED_PREFIX) and (signed_version(old), signed_version(new)) == (1, 2)
    for text in (new, old):
        result = verify_signed(text, FULL, NOW, SHORT)
        assert result.reason is Reason.OK and result.claims == claims()
        assert scheme_of(text) is Scheme.SIGNED and credential_of(text) == "signed:3:125:4711"
        assert read_signed_claims(text) == claims()


def test_the_window_is_rounded_inwards_to_whole_minutes() -> None:
    odd = claims(valid_from=NOW + timedelta(seconds=10), valid_until=NOW + timedelta(hours=1, seconds=50))
    result = verify_signed(encode_signed(odd, KEY, version=2), FULL, NOW + timedelta(minutes=30), SHORT)
    assert result.reason is Reason.OK and result.claims is not None
    assert result.claims.valid_from == NOW + timedelta(minutes=1)
    assert result.claims.valid_until == NOW + timedelta(hours=1)


def test_claims_too_large_for_version_2_are_issued_as_version_1() -> None:
    for big in (claims(attendee_id=1 << 24), claims(meeting_id=1 << 24), claims(valid_until=NOW + timedelta(days=60)),
                claims(valid_from=datetime(2023, 12, 31, tzinfo=UTC))):
        text = encode_signed(big, KEY, version=2)
        assert text.startswith(SIGNED_PREFIX) and verify_signed(text, FULL, NOW, SHORT).claims == big
    with pytest.raises(ValueError, match="version"):
        encode_signed(claims(), KEY, version=3)


def _flip_digit(text: str, index: int) -> str:
    return text[:index] + str((int(text[index]) + 1) % 10) + text[index + 1 :]


@pytest.mark.parametrize("index", [2, 10, 20, 30, 40, 60, 100, 148])
def test_a_changed_digit_is_refused(index: int) -> None:
    """Digits 2-33 carry the body, the rest the signature; whichever changes, the code is refused."""
    tampered = _flip_digit(encode_signed(claims(), KEY, version=2), index)
    assert verify_signed(tampered, FULL, NOW, SHORT).reason in (Reason.BAD_SIGNATURE, Reason.MALFORMED,
                                                                Reason.UNKNOWN_KEY)


def test_forged_unknown_missing_key_expired_and_malformed_have_their_reasons() -> None:
    forged = encode_signed(claims(), OTHER, version=2)  # another central's key under a trusted key id
    assert verify_signed(forged, FULL, NOW, SHORT).reason is Reason.BAD_SIGNATURE
    assert verify_signed(encode_signed(claims(key_id=9), KEY, version=2), FULL, NOW, SHORT).reason \
        is Reason.UNKNOWN_KEY
    text = encode_signed(claims(), KEY, version=2)
    assert verify_signed(text, FULL, NOW).reason is Reason.UNKNOWN_KEY  # a gate without short keys
    assert verify_signed(text, FULL, NOW + timedelta(hours=5), SHORT).reason is Reason.EXPIRED
    assert verify_signed(text, FULL, NOW - timedelta(hours=3), SHORT).reason is Reason.NOT_YET_VALID
    for bad in (text[:-1], text + "0", SHORT_PREFIX + "9" * 147, "93" + text[2:], text[:50] + "A" + text[51:]):
        assert verify_signed(bad, FULL, NOW, SHORT).reason is Reason.MALFORMED, bad
    assert verify_signed(SHORT_PREFIX + "0" * 147, FULL, NOW, SHORT).reason is not Reason.OK


def test_signatures_are_fresh_each_time_and_all_verify() -> None:
    texts = {encode_signed(claims(), KEY, version=2) for _ in range(5)}
    assert len(texts) == 5
    assert all(verify_signed(t, FULL, NOW, SHORT).reason is Reason.OK for t in texts)


def test_the_short_key_is_derived_from_the_key_ids_ed25519_key_and_travels_as_text() -> None:
    assert short_private_key(KEY).secret == short_private_key(KEY).secret
    assert short_private_key(KEY).secret != short_private_key(OTHER).secret
    text = short_public_key_to_text(SHORT[3])
    assert len(text) == 44 and short_public_key_from_text(text).format() == SHORT[3].format()
    for bad in ("", "not base64!", "AAAA", "A" * 44):
        with pytest.raises(ValueError):
            short_public_key_from_text(bad)
    assert set(short_keys_from_text({3: text, 4: "garbage"})) == {3}


@settings(max_examples=40, deadline=None)
@given(
    key_id=st.integers(0, 0xFFFF), meeting_id=st.integers(0, (1 << 24) - 1),
    attendee_id=st.integers(0, (1 << 24) - 1), start=st.integers(0, 30 * 365 * 24 * 60),
    minutes=st.integers(0, 0xFFFF),
)
def test_every_claim_that_fits_round_trips(key_id: int, meeting_id: int, attendee_id: int, start: int,
                                           minutes: int) -> None:
    begin = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=start)
    wanted = SignedClaims(key_id, meeting_id, attendee_id, begin, begin + timedelta(minutes=minutes))
    text = encode_signed(wanted, KEY, version=2)
    assert len(text) == SHORT_LENGTH
    result = verify_signed(text, {}, begin, {key_id: SHORT[3]})
    assert result.reason is Reason.OK and result.claims == wanted


def test_the_nonce_takes_fresh_randomness_unless_test_material_fixes_it() -> None:
    """Real codes for the same claims differ (fresh bytes in each nonce) and both verify; the same
    ``aux_random`` gives the same code (benchmarks measure the same frames every run), another one another code,
    and a wrong length is refused."""
    first, second = encode_signed(claims(), KEY, version=2), encode_signed(claims(), KEY, version=2)
    assert first != second
    fixed = [encode_signed(claims(), KEY, version=2, aux_random=bytes([n]) * 32) for n in (1, 1, 2)]
    assert fixed[0] == fixed[1] != fixed[2]
    for text in (first, second, *fixed):
        assert verify_signed(text, FULL, NOW, SHORT).reason is Reason.OK
    with pytest.raises(ValueError, match="32 bytes"):
        encode_signed(claims(), KEY, version=2, aux_random=b"short")
