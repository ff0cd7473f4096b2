"""A calendar entry (RFC 5545 iCalendar) for one delegate's meeting, written by hand: it is a few lines.

Times are written in UTC (``DTSTART:20250310T010000Z``) so no VTIMEZONE block is needed; the UID is stable
per delegate, so a re-sent ticket updates the entry instead of adding a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

PRODID = "-//vaora//ve tham du//VI"
MAX_LINE_OCTETS = 75


@dataclass(frozen=True)
class CalendarEvent:
    """What goes into the entry; datetimes must be aware."""

    uid: str
    summary: str
    starts_at: datetime
    ends_at: datetime
    location: str
    description: str
    stamp: datetime


def escape_text(value: str) -> str:
    """Escape a TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def fold(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545 3.1), never splitting a UTF-8 character."""
    out: list[str] = []
    current = ""
    limit = MAX_LINE_OCTETS
    for char in line:
        if len((current + char).encode("utf-8")) > limit:
            out.append(current)
            current = " " + char
            limit = MAX_LINE_OCTETS
        else:
            current += char
    out.append(current)
    return "\r\n".join(out)


def utc_stamp(moment: datetime) -> str:
    """Return ``moment`` as an RFC 5545 UTC DATE-TIME (``YYYYMMDDTHHMMSSZ``)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime refused, pass an aware one")
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def build_ics(event: CalendarEvent) -> bytes:
    """Return the ``text/calendar`` body (METHOD:PUBLISH, one VEVENT) as UTF-8 bytes with CRLF lines."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{escape_text(event.uid)}",
        f"DTSTAMP:{utc_stamp(event.stamp)}",
        f"DTSTART:{utc_stamp(event.starts_at)}",
        f"DTEND:{utc_stamp(event.ends_at)}",
        f"SUMMARY:{escape_text(event.summary)}",
        f"LOCATION:{escape_text(event.location)}",
        f"DESCRIPTION:{escape_text(event.description)}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(fold(line) for line in lines) + "\r\n").encode("utf-8")
