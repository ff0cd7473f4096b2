"""The change log gates follow after their snapshot: every registration, meeting and key change appends one.

Each change is stored with the gate sites it concerns (:func:`change_sites`, table ``change_site``): the change
feed (:mod:`central.messaging.changefeed`) publishes it on each of those sites' streams only, so a gate never
receives another site's delegates. :data:`listeners` is a seam: each callable registered there is called with the
new :class:`protocols.payloads.Change` after it has been stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime

import peewee
from pydantic import TypeAdapter

from central.core.db import tuples
from central.core.models import ALL_SITES, Change, ChangeSite
from protocols import payloads

log = logging.getLogger(__name__)

listeners: list[Callable[[payloads.Change], None]] = []
"""Called with each stored change (e.g. a future MQTT publisher). Exceptions are logged, never raised."""

_BODY = TypeAdapter(payloads.ChangeBody)

MeetingSites = Callable[[int], "list[str] | None"]
_meeting_sites: list[MeetingSites] = []


def register_meeting_sites(resolver: MeetingSites) -> None:
    """Set how to find a meeting's gate sites (None for an unknown meeting). The meetings feature registers
    :func:`central.meetings.venues.meeting_sites` when its models load (core imports no feature)."""
    _meeting_sites[:] = [resolver]


def _sites_of_meeting(meeting_id: int) -> list[str] | None:
    return _meeting_sites[0](meeting_id) if _meeting_sites else None


def change_sites(body: payloads.ChangeBody, was_at: Iterable[str] = ()) -> set[str]:
    """The gate sites whose stream gets ``body``: the one answer, asked by :func:`append_change`.

    - a meeting upsert: the meeting's sites as the body names them, and ``was_at`` (its sites before the edit), so
      the gates of a site it left learn that it is no longer theirs;
    - a delegate upsert or revocation: its meeting's sites now, and ``was_at``; a revocation of a delegate of an
      unknown meeting goes to every site (it names only ids, and a gate holding the code must hear of it), an
      upsert of one goes nowhere (no gate can admit it);
    - a signing key: every site (:data:`ALL_SITES`).
    """
    extra = set(was_at)
    if isinstance(body, payloads.KeyAdd | payloads.KeyRevoke):
        return {ALL_SITES}
    if isinstance(body, payloads.MeetingUpsert):
        return set(body.meeting.gate_sites) | extra
    meeting_id = body.delegate.meeting_id if isinstance(body, payloads.DelegateUpsert) else body.meeting_id
    sites = _sites_of_meeting(meeting_id)
    if sites is None:
        return {ALL_SITES} if isinstance(body, payloads.DelegateRevoke) else extra
    return set(sites) | extra


def append_change(body: payloads.ChangeBody, now: datetime, *, was_at: Iterable[str] = ()) -> payloads.Change:
    """Store ``body`` as the next change, with the sites it goes to (:func:`change_sites`; ``was_at``: the sites
    of the meeting before this edit), and return it with its sequence number.

    Call inside the transaction that made the change, so the change exists exactly when the data does.
    """
    row = Change.create(at=now, kind=body.kind, body=body.model_dump_json())
    sites = change_sites(body, was_at)
    if sites:
        ChangeSite.insert_many([(row.seq, site) for site in sorted(sites)],
                               fields=[ChangeSite.seq, ChangeSite.site_id]).execute()
    change = payloads.Change(seq=row.seq, at=now, body=body)
    for listener in listeners:
        try:
            listener(change)
        except Exception:
            log.exception("change listener failed seq=%s", change.seq)
    return change


def last_seq() -> int:
    """Return the sequence number of the latest change (0 when there is none)."""
    return Change.select(peewee.fn.MAX(Change.seq)).scalar() or 0


def last_seq_of_sites(site_ids: Iterable[str]) -> dict[str, int]:
    """The latest change each of ``site_ids`` gets (its own or one for every site; 0 when none): a gate of the site
    whose cache is below it is behind."""
    wanted = sorted(set(site_ids))
    every = (ChangeSite.select(peewee.fn.MAX(ChangeSite.seq)).where(ChangeSite.site_id == ALL_SITES).scalar() or 0)
    found = {site: every for site in wanted}
    if wanted:
        rows = tuples(ChangeSite.select(ChangeSite.site_id, peewee.fn.MAX(ChangeSite.seq))
                      .where(ChangeSite.site_id.in_(wanted)).group_by(ChangeSite.site_id))
        for site, seq in rows:
            found[site] = max(every, seq or 0)
    return found


def changes_of_site_after(site_id: str, seq: int) -> int:
    """How many changes ``site_id``'s gates get after ``seq`` (its own and those for every site)."""
    return (ChangeSite.select(ChangeSite.seq).where(ChangeSite.site_id.in_([site_id, ALL_SITES])
                                                    & (ChangeSite.seq > seq)).distinct().count())


def sites_of_changes(seqs: Iterable[int]) -> dict[int, set[str]]:
    """The sites each stored change goes to, by ``seq`` (a change without any is missing)."""
    wanted = list(seqs)
    found: dict[int, set[str]] = {}
    for start in range(0, len(wanted), 500):
        rows = tuples(ChangeSite.select(ChangeSite.seq, ChangeSite.site_id)
                      .where(ChangeSite.seq.in_(wanted[start:start + 500])))
        for seq, site in rows:
            found.setdefault(seq, set()).add(site)
    return found


def changes_since(seq: int, limit: int = 1000) -> list[payloads.Change]:
    """Return the stored changes after ``seq``, oldest first."""
    rows = (
        Change.select()
        .where(Change.seq > seq)
        .order_by(Change.seq)
        .limit(limit)
    )
    return [
        payloads.Change(seq=row.seq, at=row.at, body=_BODY.validate_python(json.loads(row.body)))
        for row in rows
    ]
