"""What the guard's status page shows: a plain snapshot of the gate (``GateView``) and its JSON form.

The gate builds a :class:`GateView` on demand (``Gate.status_view()``); the status server turns it into JSON
with :func:`to_json` and pushes it to the page. Everything here is plain data and pure functions: no I/O,
no clock (``now`` is passed in when a time should be shown with its date).

Times in the JSON are ISO 8601 in UTC (``at``, ``online_since`` ...) plus a ready-made Vietnam local time
(UTC+7) for display (``time_local`` "HH:MM:SS", ``*_local`` "HH:MM:SS", with " dd/mm" appended when the day
differs from ``now``'s local day).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

from protocols.payloads import GateMode
from protocols.reasons import Reason, describe

VIETNAM = timezone(timedelta(hours=7), "ICT")


@dataclass(frozen=True)
class ScanView:
    """One handled scan as the guard sees it.

    ``reason`` is ``Reason.OK`` for an allowed scan; ``manual`` marks a guard's manual opening; ``outcome``
    is the check-in outcome (``protocols.payloads.Outcome`` value: "entered", "not_passed", "refused") when
    known.
    """

    at: datetime
    allowed: bool
    reason: Reason
    name: str | None
    organisation: str | None
    position: str | None
    manual: bool = False
    outcome: str | None = None


@dataclass(frozen=True)
class CameraView:
    """A camera gate's reader: frames/s, frames read and dropped, the last decode and the last refusal.

    ``last_decode``: when a code was last read in a frame. ``refused_reason`` / ``refused_at``: the last code
    seen but refused (a reason code such as "expired"), None when the last scan was let through.
    """

    frames_per_s: float
    frames: int
    dropped: int
    last_decode: datetime | None
    refused_reason: Reason | None = None
    refused_at: datetime | None = None
    snapshot: bool = False
    """The page may fetch ``/camera.jpg`` (``[status] camera_snapshot``)."""


@dataclass(frozen=True)
class GateView:
    """The gate's state at one moment.

    ``direction``: "in" or "out". ``online``: connected to the broker; ``online_since`` / ``offline_since``
    say since when. ``cache_seq``: the cache's change sequence; ``synced_at``: last snapshot or change applied.
    ``turnstile_state``: e.g. "locked", "unlocked", "emergency", "stopped". ``scanner_state``: e.g. "none",
    "starting", "ok", "lost", "ended", "closed", with ``scanner_detail`` (why). ``recent``: the last scans in
    any order (the page sorts them newest first). ``scanner_since`` (optional): since when the scanner is in
    ``scanner_state``; the page shows it when the scanner is not "ok". ``sync_pending``: the gate knows it
    is behind central (a gap in the change stream, or central unreachable at start-up) and is fetching a
    snapshot; the page then says "not synced since ``synced_at``" even while the broker is connected.
    ``mode``: set by central's commands: "normal", "lockdown" (every scan refused) or "release" (held open).
    ``camera``: set on a camera gate (:class:`CameraView`).
    """

    gate_id: str
    name: str
    site_id: str
    direction: str
    online: bool
    online_since: datetime | None
    offline_since: datetime | None
    cache_seq: int
    synced_at: datetime | None
    emergency: bool
    turnstile_state: str
    scanner_state: str
    scanner_detail: str | None
    outbox_pending: int
    recent: list[ScanView] = field(default_factory=list)
    scanner_since: datetime | None = None
    sync_pending: bool = False
    mode: str = GateMode.NORMAL
    camera: CameraView | None = None


def camera_to_json(camera: CameraView | None, now: datetime | None) -> dict[str, Any] | None:
    """The camera's part of the page's JSON, None on a gate without a camera."""
    if camera is None:
        return None
    reason = camera.refused_reason
    return {
        "frames_per_s": round(camera.frames_per_s, 1),
        "frames": int(camera.frames),
        "dropped": int(camera.dropped),
        "last_decode": iso_utc(camera.last_decode),
        "last_decode_local": local_time(camera.last_decode, now),
        "refused_reason": None if reason is None else str(reason),
        "refused_reason_vi": None if reason is None else describe(reason),
        "refused_reason_en": None if reason is None else describe(reason, "en"),
        "refused_at_local": local_time(camera.refused_at, now),
        "snapshot": bool(camera.snapshot),
    }


@runtime_checkable
class StatusSource(Protocol):
    """Anything that can describe a gate right now (``gate.app.Gate`` implements it)."""

    def status_view(self) -> GateView:
        """Return the gate's current state."""
        ...


def _aware(value: datetime) -> datetime:
    """Treat a naive datetime as UTC (the project uses aware datetimes; this only avoids a crash)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 text of ``value`` in UTC, or None."""
    if value is None:
        return None
    return _aware(value).astimezone(UTC).isoformat()


def local_time(value: datetime | None, now: datetime | None = None) -> str | None:
    """Vietnam local time (UTC+7) as "HH:MM:SS", plus " dd/mm" when not on ``now``'s local day; or None."""
    if value is None:
        return None
    local = _aware(value).astimezone(VIETNAM)
    text = local.strftime("%H:%M:%S")
    if now is not None and _aware(now).astimezone(VIETNAM).date() != local.date():
        text += local.strftime(" %d/%m")
    return text


def _reason(value: Reason | str) -> Reason | str:
    try:
        return Reason(value)
    except ValueError:
        return str(value)


def scan_to_json(scan: ScanView, now: datetime | None = None) -> dict[str, Any]:
    """JSON-ready dict of one scan, with the reason's Vietnamese and English texts and the local time."""
    reason = _reason(scan.reason)
    return {
        "at": iso_utc(scan.at),
        "time_local": local_time(scan.at, now),
        "allowed": bool(scan.allowed),
        "reason": str(reason),
        "reason_vi": describe(reason),
        "reason_en": describe(reason, "en"),
        "name": scan.name,
        "organisation": scan.organisation,
        "position": scan.position,
        "manual": bool(scan.manual),
        "outcome": scan.outcome,
    }


def banner(last: dict[str, Any] | None, turnstile_state: str) -> str:
    """What the big result banner says, so it never contradicts the turnstile panel.

    "none" (no scan yet), "refused" (TỪ CHỐI), "enter" (MỜI VÀO: allowed and the turnstile is open for it),
    "entered" (ĐÃ VÀO: the sensor saw the passage), "not_passed" (the unlock time ran out), "unknown" (the
    gate restarted before the outcome was known) or "relocked" (allowed, but the turnstile is locked again
    and no outcome came, e.g. central locked the gate).
    """
    if last is None:
        return "none"
    if not last["allowed"]:
        return "refused"
    outcome = last.get("outcome")
    if outcome in ("not_passed", "unknown"):
        return str(outcome)
    if turnstile_state in ("unlocked", "emergency", "released"):
        return "enter"  # open for this person (a gate without a sensor records "entered" as it opens)
    if outcome == "entered":
        return "entered"
    return "relocked"


def to_json(view: GateView, now: datetime | None = None) -> dict[str, Any]:
    """JSON-ready dict of a gate view for the page: ``{"ok": true, "gate": {...}, "last": ..., "recent": [...]}``.

    ``recent`` is sorted newest first and ``last`` is its first element (or None); ``banner`` is
    :func:`banner` of it. ``now`` only decides
    whether local times carry their date. The result holds no "generated at" stamp, so two equal views give
    equal JSON (the server sends updates only on change).
    """
    recent = sorted(view.recent, key=lambda scan: _aware(scan.at), reverse=True)
    scans = [scan_to_json(scan, now) for scan in recent]
    return {
        "ok": True,
        "gate": {
            "id": view.gate_id,
            "name": view.name,
            "site_id": view.site_id,
            "direction": view.direction,
            "online": bool(view.online),
            "online_since": iso_utc(view.online_since),
            "online_since_local": local_time(view.online_since, now),
            "offline_since": iso_utc(view.offline_since),
            "offline_since_local": local_time(view.offline_since, now),
            "cache_seq": int(view.cache_seq),
            "synced_at": iso_utc(view.synced_at),
            "synced_at_local": local_time(view.synced_at, now),
            "sync_pending": bool(view.sync_pending),
            "emergency": bool(view.emergency),
            "turnstile_state": view.turnstile_state,
            "scanner_state": view.scanner_state,
            "scanner_detail": view.scanner_detail,
            "scanner_since": iso_utc(view.scanner_since),
            "scanner_since_local": local_time(view.scanner_since, now),
            "outbox_pending": int(view.outbox_pending),
            "mode": view.mode,
            "camera": camera_to_json(view.camera, now),
        },
        "last": scans[0] if scans else None,
        "banner": banner(scans[0] if scans else None, view.turnstile_state),
        "recent": scans,
    }


def error_json(reason: Reason = Reason.INTERNAL_ERROR) -> dict[str, Any]:
    """JSON-ready dict shown when the gate's state cannot be read: ``{"ok": false, "reason": ..., ...}``."""
    return {
        "ok": False,
        "reason": str(reason),
        "reason_vi": describe(reason),
        "reason_en": describe(reason, "en"),
    }
