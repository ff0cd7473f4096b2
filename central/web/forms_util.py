"""Small conversions from form text to service input."""

from __future__ import annotations

from typing import Any


def int_or_raw(value: Any) -> Any:
    """Return ``value`` as an int when it is a whole number, None when empty, else unchanged (the service
    then reports it)."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    return int(text) if text.isdigit() and len(text) < 10 else text
