"""The gate seen from outside: the guard's status page view, the code reader's state and systemd's STATUS line.

Everything here reads the running gate and builds plain values (:class:`gate.status.model.GateView`, strings);
nothing changes the gate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from protocols.payloads import GateMode

from ..scanners import Scanner
from .model import CameraView, GateView, ScanView

if TYPE_CHECKING:
    from ..app import Gate

ScannerState = tuple[str, datetime | None, str | None]


class ScannerWatch:
    """The code reader's state for the status page: (status, since, detail).

    status: "ok", "starting", "lost", "ended", "closed" (camera), "ok"/"lost" (serial, HID by their open
    device), "none" before start. ``since`` is when it entered that status, as far as known.
    """

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._status: tuple[str, float] | None = None

    def wall_time(self, seconds_ago: float) -> datetime:
        """The wall-clock time ``seconds_ago`` seconds before now (on the clock the page shows)."""
        return self._clock() - timedelta(seconds=max(seconds_ago, 0.0))

    def state(self, scanner: Scanner | None) -> ScannerState:
        """The state of ``scanner`` now."""
        if scanner is None:
            return "none", None, None
        state = getattr(scanner, "state", None)  # a camera reports its own state; line scanners do not
        if state is not None and hasattr(state, "status"):
            since = self._clock() - timedelta(seconds=max(time.monotonic() - state.since, 0.0))
            return state.status, since, state.detail
        connected = getattr(scanner, "connected", None)
        status = "ok" if connected is None or connected.is_set() else "lost"
        now = time.monotonic()
        if self._status is None or self._status[0] != status:
            self._status = (status, now)
        since = self._clock() - timedelta(seconds=now - self._status[1])
        detail = None if status == "ok" else "device not open; retrying"
        return status, since, detail


def turnstile_label(gate: Gate) -> str:
    """The cycle's state, with "released" / "lockdown" when central's command (not the input) rules it, and
    "unlocked" while the relay is open for a passage the cycle does not follow (a gate without a passage
    sensor pulses the relay directly): the panel never says "locked" while the turnstile turns."""
    state = gate.cycle.state
    if state == "locked" and gate.turnstile.is_unlocked:
        state = "unlocked"
    mode = gate.mode
    if mode == GateMode.RELEASE and state == "emergency" and not gate.status_fields()["emergency"]:
        return "released"
    if mode == GateMode.LOCKDOWN and state == "locked":
        return "lockdown"
    return state


def camera_view(gate: Gate) -> CameraView | None:
    """The camera's frames/s, drops, last decode and last refusal; None when the gate reads no camera.

    The last refusal is the newest scan (not a manual open) if it was refused: a code seen but refused.
    """
    scanner = gate.scanner
    frame_rate = getattr(scanner, "frame_rate", None)
    if scanner is None or frame_rate is None:
        return None
    last_decode = None
    decoded_at = getattr(scanner, "last_decode_at", None)
    if decoded_at is not None:
        monotonic = getattr(scanner, "clock", time.monotonic)
        last_decode = gate.scanner_watch.wall_time(monotonic() - decoded_at)
    scans = [r for r in gate.recent.snapshot() if not r.manual]
    newest = max(scans, key=lambda r: r.at, default=None)
    refused = newest if newest is not None and not newest.allowed else None
    return CameraView(
        frames_per_s=float(frame_rate()), frames=int(getattr(scanner, "frames", 0)),
        dropped=int(getattr(scanner, "frames_dropped", 0)), last_decode=last_decode,
        refused_reason=refused.reason if refused is not None else None,
        refused_at=refused.at if refused is not None else None,
        snapshot=bool(gate.config.status.camera_snapshot),
    )


def gate_view(gate: Gate) -> GateView:
    """A snapshot of ``gate`` for the guard's status page."""
    transport = gate.transport
    store = gate.cache
    status, _, detail = gate.scanner_state()
    return GateView(
        gate_id=gate.gate_id, name=gate.config.gate.display_name, site_id=gate.site_id,
        direction=gate.config.gate.direction,
        online=bool(transport is not None and transport.is_connected),
        online_since=transport.online_since if transport is not None else None,
        offline_since=transport.offline_since if transport is not None else None,
        cache_seq=store.seq if store is not None else 0,
        synced_at=store.synced_at if store is not None else None,
        sync_pending=gate.refresher.pending,
        emergency=gate.status_fields()["emergency"], turnstile_state=turnstile_label(gate),
        scanner_state=status, mode=gate.mode,
        scanner_detail=detail, outbox_pending=store.outbox_pending() if store is not None else 0,
        recent=[ScanView(at=r.at, allowed=r.allowed, reason=r.reason, name=r.name,
                         organisation=r.organisation, position=r.position, manual=r.manual,
                         outcome=r.outcome) for r in gate.recent],
        camera=camera_view(gate),
    )


def status_line(gate: Gate, healthy: bool) -> str:
    """A one-line summary for systemd's STATUS= (no personal data)."""
    pending = gate.cache.outbox_pending() if gate.cache is not None else 0
    online = bool(gate.transport is not None and gate.transport.is_connected)
    return (f"gate {gate.gate_id}: turnstile {gate.cycle.state}, scans {gate.scans_handled}, "
            f"outbox {pending}, {'online' if online else 'offline'}"
            + ("" if healthy else ", SCAN HANDLER STALLED"))
