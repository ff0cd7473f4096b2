"""Form helpers shared by the staff pages: local date-time fields and conversions to service input."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from wtforms import StringField

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


class LocalDateTimeField(StringField):
    """An ``<input type="datetime-local">`` in Vietnam time; the service validates the value."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("render_kw", {})["type"] = "datetime-local"
        super().__init__(*args, **kwargs)


def local_to_iso(value: str | None) -> str | None:
    """Turn a ``datetime-local`` value (Vietnam time) into ISO 8601 with offset; unparsable text passes
    through unchanged so the service reports it, and an empty value gives None."""
    if not value:
        return None
    try:
        parsed = datetime.strptime(value.strip(), LOCAL_FORMAT)
    except ValueError:
        return value
    return parsed.replace(tzinfo=LOCAL_TZ).isoformat()


def iso_to_local(moment: datetime | None) -> str:
    """Return an aware datetime as a ``datetime-local`` value in Vietnam time."""
    return moment.astimezone(LOCAL_TZ).strftime(LOCAL_FORMAT) if moment else ""
