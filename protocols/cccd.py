"""Recognise the QR of a Vietnamese citizen ID card (CCCD) by its shape, without reading the person's data.

A gate must tell a person who holds up their ID card instead of their invitation code to go to the desk (only
the desk registers walk-ins from the card). The card's QR is ``|``-separated::

    001085012345|123456789|Nguyễn Văn Ánh|15081985|Nam|Số 1 Đinh Tiên Hoàng, Hoàn Kiếm, Hà Nội|20042021

ID number (12 digits), old ID number (9 or 12 digits, or empty), name, date of birth ``ddmmyyyy``, then sex,
address and date of issue, which newer cards may leave empty or out. :func:`looks_like_cccd` checks only that
shape (it never returns the data, which is personal); the desk's full parser is ``central.desk.cccd``.
"""

from __future__ import annotations

import re

SEPARATOR = "|"
MIN_FIELDS = 4
"""ID number, old ID number, name, date of birth; sex, address and date of issue may be left out."""
MAX_FIELDS = 7
MAX_LENGTH = 1000
"""Longest text looked at, in characters (a real card's QR holds about 300)."""

ID_NUMBER = re.compile(r"[0-9]{12}")
"""The ID number: 12 ASCII digits."""
OLD_ID_NUMBER = re.compile(r"(?:[0-9]{9}|[0-9]{12})?")
"""The old ID number (CMND): 9 digits, 12 for the last generation of old cards, or none."""
DATE = re.compile(r"[0-9]{8}")
"""A date as ``ddmmyyyy``."""


def looks_like_cccd(text: str) -> bool:
    """True when ``text`` has the shape of a CCCD QR: 4 to 7 ``|``-separated fields, a 12-digit ID number, an
    old ID number of 9 or 12 digits or none, a name, and a date of birth of 8 digits."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH or SEPARATOR not in text:
        return False
    fields = text.strip().split(SEPARATOR)
    if not MIN_FIELDS <= len(fields) <= MAX_FIELDS:
        return False
    id_number, old_id_number, name, born = (field.strip() for field in fields[:4])
    return (
        ID_NUMBER.fullmatch(id_number) is not None
        and OLD_ID_NUMBER.fullmatch(old_id_number) is not None
        and bool(name)
        and DATE.fullmatch(born) is not None
    )
