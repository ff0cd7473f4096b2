"""CCCD QR parsing at the guard desk: real-looking card texts, every refusal reason, broken encodings."""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.desk.cccd import MAX_LENGTH, CccdError, CccdProblem, CccdRecord, format_cccd, parse_cccd
from protocols.reasons import Reason

SAMPLE = "001085012345|123456789|Nguyễn Văn Ánh|15081985|Nam|Số 1 Đinh Tiên Hoàng, Hoàn Kiếm, Hà Nội|20042021"
SAMPLE_RECORD = CccdRecord(
    id_number="001085012345",
    old_id_number="123456789",
    full_name="Nguyễn Văn Ánh",
    date_of_birth=date(1985, 8, 15),
    sex="Nam",
    address="Số 1 Đinh Tiên Hoàng, Hoàn Kiếm, Hà Nội",
    issued_on=date(2021, 4, 20),
)


def test_real_card_text_gives_every_field() -> None:
    record = parse_cccd(SAMPLE)
    assert record == SAMPLE_RECORD
    assert record.full_name == "Nguyễn Văn Ánh"
    assert record.date_of_birth == date(1985, 8, 15)
    assert record.issued_on == date(2021, 4, 20)
    assert record.masked_id == "********2345"


def test_record_repr_shows_only_the_masked_id() -> None:
    shown = repr(parse_cccd(SAMPLE))
    assert "001085012345" not in shown
    assert "Nguyễn" not in shown
    assert "********2345" in shown


def test_female_card_without_old_number_and_trailing_newline() -> None:
    text = "079190001234||Trần Thị Thu Hương|02011990|Nữ|12 Nguyễn Huệ, Quận 1, TP. Hồ Chí Minh|10072022\r\n"
    record = parse_cccd(text)
    assert record.old_id_number == ""
    assert record.sex == "Nữ"
    assert record.full_name == "Trần Thị Thu Hương"
    assert record.issued_on == date(2022, 7, 10)


def test_twelve_digit_old_id_number_is_accepted() -> None:
    record = parse_cccd("001085012345|001085000111|Lê Văn Tám|01011985|Nam|Hà Nội|01012020")
    assert record.old_id_number == "001085000111"


@pytest.mark.parametrize(
    ("text", "sex", "address", "issued"),
    [
        ("001085012345||Phạm Đức Mạnh|15081985|Nam|Hà Nội|", "Nam", "Hà Nội", None),
        ("001085012345||Phạm Đức Mạnh|15081985|Nam||", "Nam", "", None),
        ("001085012345||Phạm Đức Mạnh|15081985|||", "", "", None),
        ("001085012345||Phạm Đức Mạnh|15081985|Nam|Hà Nội", "Nam", "Hà Nội", None),
        ("001085012345||Phạm Đức Mạnh|15081985|Nam", "Nam", "", None),
        ("001085012345||Phạm Đức Mạnh|15081985", "", "", None),
        ("001085012345||Phạm Đức Mạnh|15081985|Nam|Hà Nội|01012021|", "Nam", "Hà Nội", date(2021, 1, 1)),
    ],
)
def test_trailing_fields_empty_or_left_out(text: str, sex: str, address: str, issued: date | None) -> None:
    record = parse_cccd(text)
    assert record.full_name == "Phạm Đức Mạnh"
    assert (record.sex, record.address, record.issued_on) == (sex, address, issued)


def test_sex_is_normalised_from_any_case_or_unaccented_form() -> None:
    assert parse_cccd("001085012345||Hà Lan|01011990|NỮ|Hà Nội|").sex == "Nữ"
    assert parse_cccd("001085012345||Hà Lan|01011990|nu|Hà Nội|").sex == "Nữ"
    assert parse_cccd("001085012345||Hà Văn|01011990|NAM|Hà Nội|").sex == "Nam"


def test_decomposed_name_and_extra_spaces_come_out_nfc_and_trimmed() -> None:
    nfd = unicodedata.normalize("NFD", "  Nguyễn   Văn  Ánh ")
    record = parse_cccd(f"001085012345||{nfd}|15081985|Nam| Hà Nội |")
    assert record.full_name == "Nguyễn Văn Ánh"
    assert unicodedata.is_normalized("NFC", record.full_name)
    assert record.address == "Hà Nội"


def test_name_with_apostrophe_from_ethnic_minority_naming_is_kept() -> None:
    assert parse_cccd("066190001234||H'Hen Niê|01011990|Nữ|Đắk Lắk|").full_name == "H'Hen Niê"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", CccdProblem.EMPTY),
        ("  \r\n", CccdProblem.EMPTY),
        ("001085012345", CccdProblem.WRONG_FIELD_COUNT),
        ("001085012345||Nguyễn Văn Ánh", CccdProblem.WRONG_FIELD_COUNT),
        ("001085012345||Nguyễn Văn Ánh|15081985|Nam|Hà Nội|20042021|extra", CccdProblem.WRONG_FIELD_COUNT),
        ("https://example.vn/?a=1|b", CccdProblem.WRONG_FIELD_COUNT),
        ("00108501234||Nguyễn Văn Ánh|15081985|Nam|Hà Nội|20042021", CccdProblem.BAD_ID_NUMBER),
        ("0010850123456||Nguyễn Văn Ánh|15081985|Nam|Hà Nội|20042021", CccdProblem.BAD_ID_NUMBER),
        ("00108501234A||Nguyễn Văn Ánh|15081985|Nam|Hà Nội|20042021", CccdProblem.BAD_ID_NUMBER),
        ("００１０８５０１２３４５||Nguyễn Văn Ánh|15081985|Nam|Hà Nội|", CccdProblem.BAD_ID_NUMBER),
        ("001085012345|12345678|Nguyễn Văn Ánh|15081985|Nam|Hà Nội|20042021", CccdProblem.BAD_OLD_ID_NUMBER),
        ("001085012345|12345678X|Nguyễn Văn Ánh|15081985|Nam|Hà Nội|", CccdProblem.BAD_OLD_ID_NUMBER),
        ("001085012345|123456789||15081985|Nam|Hà Nội|20042021", CccdProblem.EMPTY_NAME),
        ("001085012345|123456789|   |15081985|Nam|Hà Nội|20042021", CccdProblem.EMPTY_NAME),
        ("001085012345|123456789|Nguyễn 2|15081985|Nam|Hà Nội|20042021", CccdProblem.BAD_NAME),
        ("001085012345|123456789|---|15081985|Nam|Hà Nội|20042021", CccdProblem.BAD_NAME),
        ("001085012345|123456789|Nguyễn Văn Ánh|1508198|Nam|Hà Nội|20042021", CccdProblem.BAD_DATE),
        ("001085012345|123456789|Nguyễn Văn Ánh|1985-08-15|Nam|Hà Nội|", CccdProblem.BAD_DATE),
        ("001085012345|123456789|Nguyễn Văn Ánh|31021985|Nam|Hà Nội|20042021", CccdProblem.BAD_DATE),
        ("001085012345|123456789|Nguyễn Văn Ánh|15131985|Nam|Hà Nội|20042021", CccdProblem.BAD_DATE),
        ("001085012345|123456789|Nguyễn Văn Ánh|15081885|Nam|Hà Nội|20042021", CccdProblem.BAD_DATE),
        ("001085012345|123456789|Nguyễn Văn Ánh|15081985|Nam|Hà Nội|32042021", CccdProblem.BAD_DATE),
        ("001085012345|123456789|Nguyễn Văn Ánh|15081985|Nam|Hà Nội|01011980", CccdProblem.BAD_DATE),
        ("001085012345|123456789|Nguyễn Văn Ánh|15081985|Male|Hà Nội|20042021", CccdProblem.BAD_SEX),
        (
            "001085012345|123456789|Nguyễn\tVăn Ánh|15081985|Nam|Hà Nội|20042021",
            CccdProblem.CONTROL_CHARACTERS,
        ),
        (
            "001085012345|123456789|Nguyễn Văn Ánh|15081985|Nam|Hà\nNội|20042021",
            CccdProblem.CONTROL_CHARACTERS,
        ),
        ("001085012345|123456789|Nguyễn\x00Văn|15081985|Nam|Hà Nội|20042021", CccdProblem.CONTROL_CHARACTERS),
        (
            "001085012345|123456789|Nguyễn\u200bVăn|15081985|Nam|Hà Nội|20042021",
            CccdProblem.CONTROL_CHARACTERS,
        ),
        (
            "\x1b[31m001085012345|123456789|Nguyễn Văn Ánh|15081985|Nam|Hà Nội|",
            CccdProblem.CONTROL_CHARACTERS,
        ),
        ("001085012345||Nguyễn Văn Ánh|15081985|Nam|" + "Hà Nội " * 200 + "|", CccdProblem.TOO_LONG),
        ("x" * 50_000, CccdProblem.TOO_LONG),
    ],
)
def test_malformed_text_is_refused_with_its_reason(text: str, problem: CccdProblem) -> None:
    with pytest.raises(CccdError) as caught:
        parse_cccd(text)
    assert caught.value.reason_code == problem
    assert caught.value.message_vi  # something to show the guard
    assert "001085012345" not in str(caught.value)  # no personal data in the message
    expected = Reason.TOO_LONG if problem is CccdProblem.TOO_LONG else Reason.MALFORMED
    assert caught.value.reason is expected


def test_text_of_exactly_the_maximum_length_is_accepted() -> None:
    head = "001085012345||Nguyễn Văn Ánh|15081985|Nam|"
    text = head + "a" * (MAX_LENGTH - len(head) - 1) + "|"
    assert len(text) == MAX_LENGTH
    assert parse_cccd(text).address == "a" * (MAX_LENGTH - len(head) - 1)
    with pytest.raises(CccdError) as caught:
        parse_cccd(head + "a" * (MAX_LENGTH - len(head)) + "|")
    assert caught.value.reason_code == CccdProblem.TOO_LONG


def test_dates_after_today_are_refused_when_today_is_given() -> None:
    text = "001085012345||Nguyễn Văn Ánh|15081985|Nam|Hà Nội|20042031"
    assert parse_cccd(text).issued_on == date(2031, 4, 20)  # without today nothing can be said
    with pytest.raises(CccdError) as caught:
        parse_cccd(text, today=date(2026, 11, 27))
    assert caught.value.reason_code == CccdProblem.BAD_DATE
    assert parse_cccd(SAMPLE, today=date(2026, 11, 27)) == SAMPLE_RECORD


def test_utf8_bytes_from_a_serial_scanner() -> None:
    assert parse_cccd(SAMPLE.encode("utf-8")) == SAMPLE_RECORD
    assert parse_cccd(bytearray(SAMPLE.encode("utf-8") + b"\r\n")) == SAMPLE_RECORD
    assert parse_cccd(b"\xef\xbb\xbf" + SAMPLE.encode("utf-8")) == SAMPLE_RECORD  # UTF-8 BOM


def test_windows_1252_mojibake_string_is_repaired() -> None:
    garbled = (
        "001085012345|123456789|Nguyá»…n VÄƒn TÃ¢m|15081985|Nam|Sá»‘ 1 Ä\x90inh TiÃªn HoÃ\xa0ng|20042021"
    )
    record = parse_cccd(garbled)
    assert record.full_name == "Nguyễn Văn Tâm"
    assert record.address == "Số 1 Đinh Tiên Hoàng"


def test_latin1_mojibake_string_and_its_utf8_bytes_are_repaired() -> None:
    garbled = SAMPLE.encode("utf-8").decode("latin-1")
    assert "Nguyá»\x85n" in garbled
    assert parse_cccd(garbled) == SAMPLE_RECORD
    assert parse_cccd(garbled.encode("utf-8")) == SAMPLE_RECORD


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(CccdError) as caught:
        parse_cccd(SAMPLE.encode("utf-16"))
    assert caught.value.reason_code == CccdProblem.BAD_ENCODING
    with pytest.raises(CccdError) as caught:
        parse_cccd("001085012345||Lê Hà|15081985|Nam|Hà Nam|".encode("cp1258"))  # Vietnamese code page
    assert caught.value.reason_code == CccdProblem.BAD_ENCODING


def test_latin1_letters_in_real_names_are_not_mistaken_for_mojibake() -> None:
    # "Lê Hà" is all Latin-1, but its bytes are not valid UTF-8, so it must come through unchanged.
    assert parse_cccd("001085012345||Lê Hà|15081985|Nữ|Hà Nội|").full_name == "Lê Hà"


# ------------------------------------------------------------------------------------------ properties

_BASE_VOWELS = "aăâeêioôơuưy"
_TONES = ["", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323"]
_VOWELS = [unicodedata.normalize("NFC", v + t) for v in _BASE_VOWELS for t in _TONES]
_LOWER = sorted({*_VOWELS, *"bcdđghklmnpqrstvx"})
VIETNAMESE_LETTERS = _LOWER + [letter.upper() for letter in _LOWER]
assert len(_VOWELS) == 72

words = st.text(alphabet=VIETNAMESE_LETTERS, min_size=1, max_size=7)
names = st.lists(words, min_size=1, max_size=5).map(" ".join)
addresses = st.lists(
    st.one_of(words, st.integers(1, 999).map(str), words.map(lambda w: w + ",")), min_size=1, max_size=12
).map(" ".join)
digit_strings = st.text(alphabet="0123456789", min_size=12, max_size=12)


@st.composite
def records(draw: st.DrawFn) -> CccdRecord:
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)))
    issued = draw(st.none() | st.integers(0, 30_000).map(lambda days: born + timedelta(days=days)))
    return CccdRecord(
        id_number=draw(digit_strings),
        old_id_number=draw(st.sampled_from(["", "123456789", "987654321012"])),
        full_name=draw(names),
        date_of_birth=born,
        sex=draw(st.sampled_from(["Nam", "Nữ", ""])),
        address=draw(st.just("") | addresses),
        issued_on=issued if issued is None or issued.year <= 9999 else None,
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_format_then_parse_round_trips_via_text_utf8_and_mojibake(record: CccdRecord) -> None:
    text = format_cccd(record)
    assert parse_cccd(text) == record
    assert parse_cccd(text.encode("utf-8")) == record
    garbled = text.encode("utf-8").decode("latin-1")
    assert parse_cccd(garbled) == record
    assert parse_cccd(garbled.encode("utf-8")) == record
    assert parse_cccd(unicodedata.normalize("NFD", text) + "\r\n") == record


def test_every_vietnamese_vowel_with_every_tone_survives_the_round_trip() -> None:
    name = " ".join(["Nguyễn", *_VOWELS, *(v.upper() for v in _VOWELS), "Đđ"])
    record = parse_cccd(f"001085012345||{name}|15081985|Nam|Hà Nội|")
    assert record.full_name == name
    assert parse_cccd(f"001085012345||{name}|15081985|Nam|Hà Nội|".encode().decode("latin-1")) == record


@settings(max_examples=500)
@given(st.one_of(st.text(max_size=300), st.text(alphabet="0123456789|Nam Nữ\r\n\x00é»", max_size=80)))
def test_arbitrary_text_never_raises_anything_but_cccd_error(text: str) -> None:
    try:
        record = parse_cccd(text)
    except CccdError as error:
        assert error.reason_code in set(CccdProblem)
    else:
        assert len(record.id_number) == 12


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_cccd_error(data: bytes) -> None:
    try:
        parse_cccd(data)
    except CccdError as error:
        assert error.reason_code in set(CccdProblem)
