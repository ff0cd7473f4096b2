"""The snapshot a gate loads over HTTP: the current meetings with a venue at its site, their delegates and the
trusted keys.

Served as one JSON document (:class:`protocols.payloads.Snapshot`), or, when the gate asks for
``application/x-ndjson``, as a line stream (:func:`protocols.payloads.encode_snapshot_stream`) that the gate
validates and stores entry by entry without holding the whole snapshot in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from central.core.changes import last_seq
from central.core.db import database
from central.core.keys import trusted_keys
from central.core.states import ApprovalState
from central.core.validity import DEFAULT_GRACE_AFTER_END
from central.gates.models import Gate
from central.invitations.models import Invitation, Organisation
from central.meetings.models import Meeting
from central.meetings.services import meeting_entry
from central.meetings.venues import meetings_at_site, sites_of_meetings
from central.registration.delegates import delegate_entry
from central.registration.models import Delegate
from protocols import payloads


def build_snapshot(gate: Gate, now: datetime, grace_after_end: timedelta = DEFAULT_GRACE_AFTER_END,
                   *, with_sites: bool = True) -> payloads.Snapshot:
    """Return the snapshot for ``gate`` as of the latest change.

    Meetings with a venue at the gate's site (their main hall or one of their remote points) whose codes still
    count (``ends_at`` plus ``grace_after_end``, the grace of every code's window, after ``now``), each with all of
    its gate sites, their delegates (compact codes only as hashes, revoked ones flagged) and every signing key.
    Built in one transaction so ``seq`` matches the content. ``with_sites=False`` (for a gate that did not say it
    reads them, :data:`protocols.payloads.FEATURE_MEETING_SITES`) leaves every meeting's ``sites`` out, so a gate
    older than the field still loads its snapshot.
    """
    with database.atomic():
        seq = last_seq()
        meetings = list(
            Meeting.select()
            .where(meetings_at_site(gate.site_id) & (Meeting.ends_at > now - grace_after_end))
            .order_by(Meeting.starts_at, Meeting.id)
        )
        meeting_ids = [m.id for m in meetings]
        delegates = []
        if meeting_ids:
            delegates = list(
                Delegate.select(Delegate, Invitation, Organisation)
                .join(Invitation)
                .join(Organisation)
                # a registration awaiting (or refused by) the office has no code: the gates never hear of it
                .where(Delegate.meeting.in_(meeting_ids) & (Delegate.approval == ApprovalState.APPROVED))
                .order_by(Delegate.id)
            )
        keys = trusted_keys()
        sites = sites_of_meetings(meetings)
    return payloads.Snapshot(
        seq=seq,
        generated_at=now,
        meetings=[meeting_entry(m, sites[m.id] if with_sites else [m.site_id]) for m in meetings],
        delegates=[delegate_entry(d) for d in delegates],
        keys=keys,
    )


def stream_snapshot(gate: Gate, now: datetime, grace_after_end: timedelta = DEFAULT_GRACE_AFTER_END,
                    *, with_sites: bool = True) -> Iterator[bytes]:
    """The snapshot of ``gate`` as NDJSON lines; built (and its seq fixed) before the first line is yielded."""
    return payloads.encode_snapshot_stream(build_snapshot(gate, now, grace_after_end, with_sites=with_sites))


def reads_meeting_sites(features_header: str | None) -> bool:
    """True when a gate's :data:`protocols.payloads.SNAPSHOT_FEATURES_HEADER` lists the meetings' ``sites``."""
    features = {part.strip().lower() for part in (features_header or "").split(",")}
    return payloads.FEATURE_MEETING_SITES in features
