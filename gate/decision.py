"""The gate's decision: a pure function from a scanned text, a read-only cache view, ``now`` and the gate's mode.

No I/O and no clock: everything it needs is passed in, so it is tested table-driven with frozen time. The mode
set by central's commands is an input: a gate in ``lockdown`` refuses every scan (``locked_down``) before
reading it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict, Unpack

from protocols.cccd import looks_like_cccd
from protocols.codes import (
    MAX_SCAN_LENGTH,
    Scheme,
    SignedClaims,
    check_compact,
    compact_hash,
    scheme_of,
    verify_signed,
)
from protocols.meeting_days import meeting_day
from protocols.payloads import DelegateEntry, Direction, GateMode, MeetingEntry
from protocols.reasons import Reason

from .store import CacheView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """Whether to open, why, and what is known of the credential and its holder."""

    allowed: bool
    reason: Reason
    scheme: Scheme | None = None
    meeting_id: int | None = None
    delegate_id: int | None = None
    credential: str | None = None
    name: str | None = None
    organisation: str | None = None
    position: str | None = None


class Known(TypedDict, total=False):
    """What a decision knows of the credential and its holder (the optional fields of :class:`Decision`)."""

    scheme: Scheme | None
    meeting_id: int | None
    delegate_id: int | None
    credential: str | None
    name: str | None
    organisation: str | None
    position: str | None


def _refuse(reason: Reason, **known: Unpack[Known]) -> Decision:
    return Decision(False, reason, **known)


def decide(scan: str, cache: CacheView, now: datetime, site_id: str,
           direction: Direction = Direction.IN, mode: GateMode = GateMode.NORMAL) -> Decision:
    """Decide on one scanned text at a gate of site ``site_id`` facing ``direction``, in ``mode``, at ``now``.
    Never raises.

    Order: LOCKED_DOWN (mode ``lockdown``: nothing else is looked at); ID_CARD (the QR of a citizen ID card:
    the person is sent to the desk); TOO_LONG; MALFORMED (neither scheme);
    compact: MALFORMED/BAD_CHECKSUM, UNKNOWN_CODE; signed: MALFORMED/UNKNOWN_KEY/BAD_SIGNATURE/NOT_YET_VALID/
    EXPIRED, UNKNOWN_CODE (meeting not cached, or a meeting with no venue at this site, ``site_id`` not among its
    :attr:`~protocols.payloads.MeetingEntry.gate_sites`: the same answer whether the snapshot or the change stream
    brought it); then MEETING_CANCELLED, REVOKED, and the delegate's validity window for
    compact codes; then, at an
    ``in`` gate, anti-passback by the meeting's ``entry_policy``: ``single`` refuses ALREADY_INSIDE once the
    credential has entered on the same meeting day (:func:`protocols.meeting_days.meeting_day`: 04:00 to 04:00
    Vietnam time, an overnight meeting is one day), so a delegate of a 3-day meeting enters once a day;
    ``reentry`` while its latest passage was in, ``unlimited`` never; else OK.
    A failing cache gives INTERNAL_ERROR (refused).
    """
    if mode == GateMode.LOCKDOWN:
        return _refuse(Reason.LOCKED_DOWN)
    try:
        return _decide(scan, cache, now, site_id, direction)
    except Exception:
        log.exception("decision failed")
        return _refuse(Reason.INTERNAL_ERROR)


def _decide(scan: str, cache: CacheView, now: datetime, site_id: str, direction: Direction) -> Decision:
    if not isinstance(scan, str):
        return _refuse(Reason.MALFORMED)
    if looks_like_cccd(scan):
        # A citizen ID card, not an invitation: the desk registers walk-ins from it. Nothing of it is kept.
        return _refuse(Reason.ID_CARD)
    if len(scan) > MAX_SCAN_LENGTH:
        return _refuse(Reason.TOO_LONG)
    scheme = scheme_of(scan)
    if scheme is None:
        return _refuse(Reason.MALFORMED)

    delegate: DelegateEntry | None
    meeting: MeetingEntry | None
    if scheme is Scheme.COMPACT:
        checked = check_compact(scan)
        if checked is not Reason.OK:
            return _refuse(checked, scheme=scheme)
        credential = compact_hash(scan)
        delegate = cache.lookup_code_hash(credential)
        if delegate is None:
            return _refuse(Reason.UNKNOWN_CODE, scheme=scheme, credential=credential)
        meeting_id, delegate_id = delegate.meeting_id, delegate.id
        meeting = cache.meeting(meeting_id)
    else:
        result = verify_signed(scan.strip(), cache.public_keys(), now, cache.short_public_keys())
        claims = result.claims
        if result.reason is not Reason.OK or claims is None:
            if result.reason in (Reason.NOT_YET_VALID, Reason.EXPIRED) and claims is not None:
                # Authentic but outside its window: say whose code it was.
                return _refuse(result.reason, scheme=scheme, meeting_id=claims.meeting_id,
                               delegate_id=claims.attendee_id, credential=_signed_credential(claims))
            reason = result.reason if result.reason is not Reason.OK else Reason.MALFORMED
            return _refuse(reason, scheme=scheme)
        credential = _signed_credential(claims)
        meeting_id, delegate_id = claims.meeting_id, claims.attendee_id
        meeting = cache.meeting(meeting_id)
        # A delegate registered after the last sync is not cached yet; the signature vouches for them.
        delegate = cache.delegate(meeting_id, delegate_id) if meeting is not None else None

    known = Known(scheme=scheme, meeting_id=meeting_id, delegate_id=delegate_id, credential=credential)
    if delegate is not None:
        known.update(Known(name=delegate.name, organisation=delegate.organisation, position=delegate.position))
    if meeting is None or site_id not in meeting.gate_sites:
        # A gate's snapshot holds only the meetings with a venue at its site (main hall or remote point); a
        # meeting the change stream brought with no venue here is answered the same way, so the reason never
        # depends on how the cache was filled.
        return _refuse(Reason.UNKNOWN_CODE, scheme=scheme, credential=credential)
    if meeting.status == "cancelled":
        # Before REVOKED: cancelling a meeting also revokes every code of it, and the person should hear why.
        return _refuse(Reason.MEETING_CANCELLED, **known)
    if delegate is not None and delegate.revoked:
        return _refuse(Reason.REVOKED, **known)
    if scheme is Scheme.COMPACT and delegate is not None:
        if now < delegate.valid_from:
            return _refuse(Reason.NOT_YET_VALID, **known)
        if now > delegate.valid_until:
            return _refuse(Reason.EXPIRED, **known)
    if direction is Direction.IN and _passed_back(meeting, credential, cache, now):
        return _refuse(Reason.ALREADY_INSIDE, **known)
    return Decision(True, Reason.OK, **known)


def _passed_back(meeting: MeetingEntry, credential: str, cache: CacheView, now: datetime) -> bool:
    """True when the meeting's entry policy forbids another entry with ``credential`` at ``now``."""
    policy = meeting.entry_policy
    if policy == "single":
        entered_at = cache.last_entry_at(credential)
        return entered_at is not None and (
            meeting_day(meeting.starts_at, meeting.ends_at, entered_at)
            >= meeting_day(meeting.starts_at, meeting.ends_at, now))
    if policy == "reentry":
        return cache.is_inside(credential)
    return False


def _signed_credential(claims: SignedClaims) -> str:
    return f"signed:{claims.key_id}:{claims.meeting_id}:{claims.attendee_id}"
