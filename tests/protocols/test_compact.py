"""Compact codes: shape, entropy, typo detection and hashing."""

import math

from hypothesis import given
from hypothesis import strategies as st

from protocols.codes import (
    ALPHABET,
    COMPACT_LENGTH,
    MAX_SCAN_LENGTH,
    Scheme,
    check_compact,
    compact_hash,
    credential_of,
    format_compact,
    generate_compact,
    normalise_compact,
    scheme_of,
)
from protocols.reasons import Reason


def test_alphabet_has_no_look_alikes_and_code_has_64_bits():
    assert not set("01OIL") & set(ALPHABET)
    assert len(set(ALPHABET)) == len(ALPHABET)
    random_chars = COMPACT_LENGTH - 1
    assert random_chars * math.log2(len(ALPHABET)) >= 64
    assert COMPACT_LENGTH <= 16


def test_generated_codes_are_valid_and_distinct():
    codes = {generate_compact() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert len(code) == COMPACT_LENGTH
        assert set(code) <= set(ALPHABET)
        assert check_compact(code) is Reason.OK
        assert scheme_of(code) is Scheme.COMPACT


def test_printed_form_lower_case_and_spaces_are_accepted():
    code = generate_compact()
    printed = format_compact(code)
    assert printed.count("-") == 3
    for typed in (printed, printed.lower(), " " + printed.replace("-", " ") + "\n"):
        assert normalise_compact(typed) == code
        assert check_compact(typed) is Reason.OK
        assert compact_hash(typed) == compact_hash(code)


def test_every_single_substitution_is_detected():
    code = generate_compact()
    for position in range(COMPACT_LENGTH):
        for replacement in ALPHABET:
            if replacement == code[position]:
                continue
            typo = code[:position] + replacement + code[position + 1 :]
            assert check_compact(typo) is Reason.BAD_CHECKSUM, (code, typo)


def test_every_adjacent_swap_is_detected():
    for _ in range(50):
        code = generate_compact()
        for position in range(COMPACT_LENGTH - 1):
            a, b = code[position], code[position + 1]
            if a == b:
                continue
            swapped = code[:position] + b + a + code[position + 2 :]
            assert check_compact(swapped) is Reason.BAD_CHECKSUM


def test_wrong_shapes_are_malformed():
    code = generate_compact()
    for text in ("", code[:-1], code + "2", code[:5] + "0" + code[6:], code[:5] + "O" + code[6:], "Ä" * 14):
        assert check_compact(text) is Reason.MALFORMED
        assert credential_of(text) is None or scheme_of(text) is not Scheme.COMPACT


def test_hash_is_hex_sha256_and_hides_the_code():
    code = generate_compact()
    digest = compact_hash(code)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert code not in digest
    assert credential_of(code) == digest


@given(st.text(max_size=MAX_SCAN_LENGTH))
def test_arbitrary_text_never_raises(text):
    reason = check_compact(text)
    assert reason in {Reason.OK, Reason.MALFORMED, Reason.BAD_CHECKSUM}
    scheme_of(text)
    credential_of(text)
