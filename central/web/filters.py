"""Jinja filters: local (Vietnam) time, phones in national format, labels of channels and venue kinds; the state
enums as globals."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask
from flask_babel import gettext as _

from central.core.states import ALL_STATES, State
from central.core.validation import national_phone

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

# Every state labels itself (central.core.states); what is left here is a delivery's channel and a venue's kind.
STATUS_LABELS = {
    "email": "Thư điện tử",
    "sms": "Tin nhắn SMS",
    "main": "Hội trường chính",
    "remote": "Điểm cầu",
}


def localtime(value: datetime | None, fmt: str = "%H:%M %d/%m/%Y") -> str:
    """Format an aware datetime in Vietnam time ("" for None)."""
    if value is None:
        return ""
    return value.astimezone(LOCAL_TZ).strftime(fmt)


def iso_localtime(value: str | None, fmt: str = "%H:%M:%S %d/%m/%Y") -> str:
    """Format an ISO 8601 timestamp (as the pages' JSON states carry them) in Vietnam time ("" for None)."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(LOCAL_TZ).strftime(fmt)


def label(value: str | None) -> str:
    """Return the translated label of a delivery channel or venue kind."""
    if value is None:
        return ""
    return _(STATUS_LABELS[value]) if value in STATUS_LABELS else value


def state_labels(enum: type[State], lang: str | None = None) -> dict[str, str]:
    """Each member's value -> its label (in ``lang``, else the current locale), for a page's script."""
    return {member.value: member.text(lang) if lang else str(member.label) for member in enum}


def person(username: str | None) -> str:
    """A staff member as pages show them: full name and position, never a bare username when a name is known."""
    from central.auth.users import person_label

    return person_label(username)


def register_filters(app: Flask) -> None:
    """Register the filters on ``app``, and the state enums (``MeetingState`` ...) and ``state_labels`` as globals."""
    app.add_template_filter(localtime, "localtime")
    app.add_template_filter(iso_localtime, "iso_localtime")
    app.add_template_filter(label, "label")
    app.jinja_env.filters["person"] = person
    app.add_template_filter(national_phone, "phone")
    app.jinja_env.globals.update({enum.__name__: enum for enum in ALL_STATES}, state_labels=state_labels)
