"""Parse the QR on a chip-based Vietnamese citizen ID card (CCCD) into a record the desk form can use.

The QR holds ``|``-separated fields::

    001085012345|123456789|Nguyễn Văn Ánh|15081985|Nam|Số 1 Đinh Tiên Hoàng, Hoàn Kiếm, Hà Nội|20042021

ID number (12 digits), old ID number (9 digits, or 12 for the last generation of old cards; may be empty),
full name, date of birth ``ddmmyyyy``, sex (``Nam``/``Nữ``), address, date of issue ``ddmmyyyy``. Newer
cards may leave the trailing fields (sex, address, date of issue) empty or leave them out.

Scanners deliver the text in several ways: as a ``str`` from a keyboard-mode scanner, as UTF-8 bytes from a
serial one, and sometimes as mojibake (the UTF-8 bytes read as Latin-1/Windows-1252, "Nguyá»…n"). All of
them end as the same NFC-normalised record; anything else raises ``CccdError`` with a specific reason.
The ID number is personal data: log ``record.masked_id``, never ``record.id_number``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from protocols.cccd import DATE, ID_NUMBER, MAX_FIELDS, MAX_LENGTH, MIN_FIELDS, OLD_ID_NUMBER, SEPARATOR
from protocols.logs import mask_id_number
from protocols.reasons import Reason


class CccdProblem(StrEnum):
    """Why a scanned text is not a usable CCCD record."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    BAD_ENCODING = "bad_encoding"
    CONTROL_CHARACTERS = "control_characters"
    WRONG_FIELD_COUNT = "wrong_field_count"
    BAD_ID_NUMBER = "bad_id_number"
    BAD_OLD_ID_NUMBER = "bad_old_id_number"
    EMPTY_NAME = "empty_name"
    BAD_NAME = "bad_name"
    BAD_DATE = "bad_date"
    BAD_SEX = "bad_sex"


class CccdError(ValueError):
    """A scanned text is not a CCCD record: ``reason_code`` says why, ``message_vi`` tells the guard.

    Messages never contain the scanned data (it is personal), so the error can be logged as is.
    """

    def __init__(self, reason_code: str, message_vi: str) -> None:
        super().__init__(f"{reason_code}: {message_vi}")
        self.reason_code = reason_code
        self.message_vi = message_vi

    @property
    def reason(self) -> Reason:
        """The protocol-level reason: ``TOO_LONG`` for over-long input, ``MALFORMED`` otherwise."""
        return Reason.TOO_LONG if self.reason_code == CccdProblem.TOO_LONG else Reason.MALFORMED


@dataclass(frozen=True, repr=False)
class CccdRecord:
    """What the card's QR says; ``sex`` is ``"Nam"``, ``"Nữ"`` or ``""``; ``address`` may be ``""``."""

    id_number: str
    old_id_number: str
    full_name: str
    date_of_birth: date
    sex: str
    address: str
    issued_on: date | None

    @property
    def masked_id(self) -> str:
        """The ID number with all but its last four digits masked, for logs and lists."""
        return mask_id_number(self.id_number)

    def __repr__(self) -> str:
        """Show only the masked ID number, so a logged record leaks no personal data."""
        return f"CccdRecord(masked_id={self.masked_id!r})"


def _fail(problem: CccdProblem, message_vi: str) -> CccdError:
    return CccdError(problem, message_vi)


# Characters Windows-1252 puts in 0x80-0x9F, back to their byte; Latin-1 covers everything else below 256.
_CP1252_BYTES = {
    bytes([value]).decode("cp1252"): value
    for value in range(0x80, 0xA0)
    if value not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
}


def _repair_mojibake(text: str) -> str:
    """Undo UTF-8 that was read as Latin-1 or Windows-1252; return ``text`` unchanged if it is not that.

    The text is mojibake when every character maps back to one byte and those bytes are valid UTF-8 that
    differs from the text. Real Vietnamese text never passes this test: its letters with tone marks lie
    above U+00FF, and a Latin-1 letter followed by symbols in 0x80-0xBF is not a Vietnamese spelling.
    """
    if text.isascii():
        return text
    raw = bytearray()
    for ch in text:
        code = ord(ch)
        if code < 0x100:
            raw.append(code)
        elif ch in _CP1252_BYTES:
            raw.append(_CP1252_BYTES[ch])
        else:
            return text
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return text


# Cc control, Cf format (zero-width, direction marks), Cs lone surrogates, Co private use, Zl/Zp separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_SEX = {"nam": "Nam", "nữ": "Nữ", "nu": "Nữ"}


def _to_text(data: str | bytes | bytearray | memoryview) -> str:
    if isinstance(data, str):
        if len(data) > 4 * MAX_LENGTH:
            raise _fail(CccdProblem.TOO_LONG, f"Dữ liệu quá dài (tối đa {MAX_LENGTH} ký tự)")
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > 4 * MAX_LENGTH:
            raise _fail(CccdProblem.TOO_LONG, f"Dữ liệu quá dài (tối đa {MAX_LENGTH} ký tự)")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail(CccdProblem.BAD_ENCODING, "Không đọc được bảng mã của dữ liệu (cần UTF-8)") from None
    raise TypeError(f"parse_cccd expects str or bytes, not {type(data).__name__}")


def _parse_date(value: str, label_vi: str) -> date:
    if not DATE.fullmatch(value):
        raise _fail(CccdProblem.BAD_DATE, f"{label_vi} phải có dạng ngày tháng năm (ddmmyyyy)")
    try:
        parsed = date(int(value[4:]), int(value[2:4]), int(value[:2]))
    except ValueError:
        raise _fail(CccdProblem.BAD_DATE, f"{label_vi} không phải ngày có thật") from None
    if parsed.year < 1900:
        raise _fail(CccdProblem.BAD_DATE, f"{label_vi} trước năm 1900")
    return parsed


def parse_cccd(data: str | bytes, today: date | None = None) -> CccdRecord:
    """Parse the text of a CCCD QR into a ``CccdRecord``; raise ``CccdError`` if it is not one.

    ``data`` is the scanned text, or the scanner's bytes (UTF-8); mojibake (UTF-8 read as Latin-1 or
    Windows-1252) is repaired either way. A leading BOM and trailing CR/LF are dropped, the text is NFC
    normalised, each field is trimmed and the name's inner whitespace collapsed; diacritics are kept.
    With ``today`` given, a date of birth or issue after it is refused as well.
    """
    text = _to_text(data)
    text = text.removeprefix("\ufeff").rstrip("\r\n")
    text = unicodedata.normalize("NFC", _repair_mojibake(text)).removeprefix("\ufeff")
    if not text.strip():
        raise _fail(CccdProblem.EMPTY, "Chưa có dữ liệu từ mã QR")
    if len(text) > MAX_LENGTH:
        raise _fail(CccdProblem.TOO_LONG, f"Dữ liệu quá dài (tối đa {MAX_LENGTH} ký tự)")
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in text):
        raise _fail(CccdProblem.CONTROL_CHARACTERS, "Dữ liệu chứa ký tự điều khiển, không phải mã QR CCCD")

    fields = [part.strip() for part in text.split(SEPARATOR)]
    while len(fields) > MAX_FIELDS and fields[-1] == "":
        fields.pop()  # a trailing "|" or empty extra fields add nothing
    if not MIN_FIELDS <= len(fields) <= MAX_FIELDS:
        raise _fail(
            CccdProblem.WRONG_FIELD_COUNT,
            f"Mã QR có {len(fields)} trường, CCCD có từ {MIN_FIELDS} đến {MAX_FIELDS} trường",
        )
    fields += [""] * (MAX_FIELDS - len(fields))
    id_number, old_id_number, name, birth, sex, address, issued = fields

    if not ID_NUMBER.fullmatch(id_number):
        raise _fail(CccdProblem.BAD_ID_NUMBER, "Số CCCD phải gồm đúng 12 chữ số")
    if not OLD_ID_NUMBER.fullmatch(old_id_number):
        raise _fail(CccdProblem.BAD_OLD_ID_NUMBER, "Số CMND cũ phải gồm 9 hoặc 12 chữ số, hoặc để trống")
    full_name = " ".join(name.split())
    if not full_name:
        raise _fail(CccdProblem.EMPTY_NAME, "Thiếu họ và tên")
    if any(ch.isdigit() for ch in full_name) or not any(ch.isalpha() for ch in full_name):
        raise _fail(CccdProblem.BAD_NAME, "Họ và tên không hợp lệ")
    date_of_birth = _parse_date(birth, "Ngày sinh")
    issued_on = _parse_date(issued, "Ngày cấp") if issued else None
    if issued_on is not None and issued_on < date_of_birth:
        raise _fail(CccdProblem.BAD_DATE, "Ngày cấp trước ngày sinh")
    if today is not None and (date_of_birth > today or (issued_on is not None and issued_on > today)):
        raise _fail(CccdProblem.BAD_DATE, "Ngày sinh hoặc ngày cấp ở tương lai")
    if sex and sex.casefold() not in _SEX:
        raise _fail(CccdProblem.BAD_SEX, "Giới tính phải là Nam hoặc Nữ")

    return CccdRecord(
        id_number=id_number,
        old_id_number=old_id_number,
        full_name=full_name,
        date_of_birth=date_of_birth,
        sex=_SEX[sex.casefold()] if sex else "",
        address=address,
        issued_on=issued_on,
    )


def format_cccd(record: CccdRecord) -> str:
    """Return the QR text of ``record`` (all seven fields), the inverse of ``parse_cccd``."""
    return SEPARATOR.join(
        [
            record.id_number,
            record.old_id_number,
            record.full_name,
            record.date_of_birth.strftime("%d%m") + f"{record.date_of_birth.year:04d}",
            record.sex,
            record.address,
            ""
            if record.issued_on is None
            else record.issued_on.strftime("%d%m") + f"{record.issued_on.year:04d}",
        ]
    )
