"""Columns of the gate's tables and the conversions between their rows and the ``protocols`` entries.

Times are stored as POSIX seconds (REAL) and read back as aware UTC datetimes. Rows were validated on their way
in (snapshot or change), so entries are built from them without validating again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from protocols.codes import Scheme
from protocols.payloads import DelegateEntry, MeetingEntry

MEETING_COLUMNS = ("id", "title", "scheme", "starts_at", "ends_at", "site_id", "venue", "status", "entry_policy",
                   "sites")
"""``sites``: the meeting's gate sites separated by spaces (site ids have none), NULL for its main site alone."""
DELEGATE_COLUMNS = ("meeting_id", "delegate_id", "name", "organisation", "position", "code_hash", "valid_from",
                    "valid_until", "revoked")
KEY_COLUMNS = ("key_id", "public_key", "revoked", "short_key")


def upsert_sql(table: str, columns: tuple[str, ...]) -> str:
    """``INSERT OR REPLACE`` of one row with ``columns`` into ``table``."""
    return f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


SQL_UPSERT_DELEGATE = upsert_sql("delegates", DELEGATE_COLUMNS)
SQL_UPSERT_MEETING = upsert_sql("meetings", MEETING_COLUMNS)
SQL_UPSERT_KEY = upsert_sql("signing_keys", KEY_COLUMNS)


def timestamp(moment: datetime) -> float:
    """POSIX seconds of an aware datetime (a naive one is refused)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime; the gate works in aware UTC datetimes")
    return moment.timestamp()


def moment(value: float) -> datetime:
    """The aware UTC datetime of stored POSIX seconds."""
    return datetime.fromtimestamp(value, UTC)


def optional_moment(value: float | None) -> datetime | None:
    """:func:`moment`, or None for NULL."""
    return None if value is None else moment(value)


def delegate_row(d: DelegateEntry) -> tuple[Any, ...]:
    """The ``delegates`` row of an entry."""
    return (d.meeting_id, d.id, d.name, d.organisation, d.position, d.code_hash, timestamp(d.valid_from),
            timestamp(d.valid_until), int(d.revoked))


def meeting_row(m: MeetingEntry) -> tuple[Any, ...]:
    """The ``meetings`` row of an entry."""
    return (m.id, m.title, m.scheme.value, timestamp(m.starts_at), timestamp(m.ends_at), m.site_id, m.venue,
            m.status, m.entry_policy, " ".join(m.sites) if m.sites else None)


def delegate_entry(row: tuple[Any, ...]) -> DelegateEntry:
    """The entry of a ``delegates`` row (columns in :data:`DELEGATE_COLUMNS` order)."""
    return DelegateEntry.model_construct(
        meeting_id=row[0], id=row[1], name=row[2], organisation=row[3], position=row[4], code_hash=row[5],
        valid_from=moment(row[6]), valid_until=moment(row[7]), revoked=bool(row[8]),
    )


def meeting_entry(row: tuple[Any, ...]) -> MeetingEntry:
    """The entry of a ``meetings`` row (columns in :data:`MEETING_COLUMNS` order)."""
    return MeetingEntry.model_construct(
        id=row[0], title=row[1], scheme=Scheme(row[2]), starts_at=moment(row[3]), ends_at=moment(row[4]),
        site_id=row[5], venue=row[6], status=row[7], entry_policy=row[8],
        sites=row[9].split() if row[9] else None,
    )
