"""Field validators for input from outside (HTTP JSON); each returns the clean value or a Vietnamese message.

Validators raise :class:`FieldError`; :class:`FieldCollector` gathers them so one response lists every bad
field at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from central.core.errors import InvalidInputError
from protocols.topics import is_valid_id

T = TypeVar("T")

_EMAIL = re.compile(
    r"^[^@\s\"(),:;<>\[\\\]]{1,64}@(?=.{1,253}$)"
    r"([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_PHONE_SEPARATORS = re.compile(r"[\s.\-()]")
_MOBILE = re.compile(r"^[35789]\d{8}$")
_LANDLINE = re.compile(r"^2\d{9}$")


class FieldError(ValueError):
    """One field's value is unacceptable; the message is Vietnamese, shown to the person who typed it."""


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in text)


def text(value: Any, *, required: bool, max_length: int) -> str:
    """Return ``value`` stripped; it must be a string without control characters and not too long."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise FieldError("Phải là chuỗi ký tự")
    value = unicodedata.normalize("NFC", value.strip())
    if required and not value:
        raise FieldError("Không được để trống")
    if len(value) > max_length:
        raise FieldError(f"Tối đa {max_length} ký tự")
    if _has_control(value):
        raise FieldError("Chứa ký tự không hợp lệ")
    return value


def multiline_text(value: Any, *, required: bool, max_length: int) -> str:
    """Like :func:`text`, but line breaks are allowed (``\r\n`` becomes ``\n``, tabs become spaces)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise FieldError("Phải là chuỗi ký tự")
    lines = value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").split("\n")
    if any(_has_control(line) for line in lines):
        raise FieldError("Chứa ký tự không hợp lệ")
    value = unicodedata.normalize("NFC", "\n".join(line.rstrip() for line in lines).strip())
    if required and not value:
        raise FieldError("Không được để trống")
    if len(value) > max_length:
        raise FieldError(f"Tối đa {max_length} ký tự")
    return value


def email(value: Any, *, required: bool = True) -> str | None:
    """Return a valid e-mail address, domain lower-cased (None when optional and empty)."""
    raw = text(value, required=required, max_length=254)
    if not raw:
        return None
    if _EMAIL.fullmatch(raw) is None:
        raise FieldError("Địa chỉ email không hợp lệ")
    local, domain = raw.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def phone(value: Any) -> str | None:
    """Return a Vietnamese phone number in international form (``+84912345678``), or None when empty.

    Accepts ``0912345678``, ``+84 912 345 678``, ``84912345678`` and landlines ``02xxxxxxxxx``.
    """
    raw = text(value, required=False, max_length=30)
    if not raw:
        return None
    digits = _PHONE_SEPARATORS.sub("", raw)
    if digits.startswith("+84"):
        national = digits[3:]
    elif digits.startswith("84") and len(digits) >= 11:
        national = digits[2:]
    elif digits.startswith("0"):
        national = digits[1:]
    else:
        raise FieldError("Số điện thoại không hợp lệ (ví dụ 0912345678)")
    if not (_MOBILE.fullmatch(national) or _LANDLINE.fullmatch(national)):
        raise FieldError("Số điện thoại không hợp lệ (ví dụ 0912345678)")
    return "+84" + national


def national_phone(value: str | None) -> str:
    """A stored phone (``+84987654321``) as people read it: ``0987 654 321``; landlines ``024 3825 1234``.

    The one display rule for phones (the Jinja filter ``phone`` calls it); storage stays international.
    Anything not a Vietnamese number is returned unchanged ("" for None).
    """
    if not value:
        return ""
    try:
        stored = phone(value)
    except FieldError:
        return value
    national = "0" + (stored or "")[3:]
    if len(national) == 10:  # mobile: 0987 654 321
        return f"{national[:4]} {national[4:7]} {national[7:]}"
    return f"{national[:3]} {national[3:7]} {national[7:]}"  # landline: 024 3825 1234


def site_id(value: Any) -> str:
    """Return a valid gate or site id (lower-case letters, digits, ``-``, ``_``; at most 32)."""
    if not isinstance(value, str) or not is_valid_id(value):
        raise FieldError("Mã chỉ gồm chữ thường, số, '-' và '_', tối đa 32 ký tự")
    return value


def aware_datetime(value: Any) -> datetime:
    """Return an ISO 8601 datetime with a timezone offset (e.g. ``2025-03-01T08:00:00+07:00``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise FieldError("Không được để trống")
    if not isinstance(value, str):
        raise FieldError("Phải là thời gian ISO 8601, ví dụ 2025-03-01T08:00:00+07:00")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise FieldError("Phải là thời gian ISO 8601, ví dụ 2025-03-01T08:00:00+07:00") from None
    if parsed.tzinfo is None:
        raise FieldError("Thiếu múi giờ, ví dụ +07:00")
    return parsed


def choice(value: Any, options: tuple[str, ...], default: str | None = None) -> str:
    """Return ``value`` when it is one of ``options`` (``default`` when missing)."""
    if value is None and default is not None:
        return default
    if value not in options:
        raise FieldError("Phải là một trong: " + ", ".join(options))
    return value


DB_INT_MIN = -(2**63)
DB_INT_MAX = 2**63 - 1
"""The range of the database's integer columns (SQLite INTEGER, PostgreSQL bigint): ids and numbers from
outside beyond it are refused before they reach a query (SQLite raises ``OverflowError`` on them)."""


def fits_database(value: int) -> bool:
    """True when ``value`` fits a 64-bit signed database integer."""
    return DB_INT_MIN <= value <= DB_INT_MAX


def positive_int(value: Any) -> int:
    """Return a positive integer id (at most :data:`DB_INT_MAX`)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FieldError("Phải là số nguyên dương")
    if not fits_database(value):
        raise FieldError(f"Phải là số nguyên dương, tối đa {DB_INT_MAX}")
    return value


def positive_ids(value: Any, *, message: str = "Phải là danh sách mã số") -> list[int]:
    """Return a list of positive integer ids (each at most :data:`DB_INT_MAX`), duplicates dropped, in order.

    ``None`` or ``""`` is an empty list; anything else that is not a list of such ids is refused with ``message``.
    """
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise FieldError(message)
    try:
        ids = [positive_int(item) for item in value]
    except FieldError:
        raise FieldError(message) from None
    return list(dict.fromkeys(ids))


class FieldCollector:
    """Apply validators to fields of a mapping; raise one ``InvalidInputError`` listing every failure."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.errors: dict[str, str] = {}

    def take(self, name: str, validator: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Validate ``data[name]``; on failure record the message and return None."""
        try:
            return validator(self.data.get(name), *args, **kwargs)
        except FieldError as exc:
            self.errors[name] = str(exc)
            return None  # type: ignore[return-value]

    def add(self, name: str, message: str) -> None:
        """Record a failure found by a cross-field check."""
        self.errors.setdefault(name, message)

    def raise_if_any(self) -> None:
        """Raise :class:`InvalidInputError` when any field failed."""
        if self.errors:
            raise InvalidInputError(dict(self.errors))
