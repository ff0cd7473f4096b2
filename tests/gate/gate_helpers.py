"""Helpers for gate tests: configs built in code, and snapshots with real compact and signed codes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gate.transport import AckHandler, ChangeHandler, SiteCheckInHandler, StatusFields, Transport
from protocols.codes import (
    Scheme,
    compact_hash,
    generate_compact,
    generate_signing_key,
    public_key_to_text,
    short_private_key,
    short_public_key_to_text,
)
from protocols.payloads import DelegateEntry, KeyEntry, MeetingEntry, Snapshot

NOW = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
SITE = "hq"


@dataclass
class World:
    """A snapshot plus the secrets a test needs to make codes for it."""

    snapshot: Snapshot
    codes: dict[int, str] = field(default_factory=dict)  # delegate id -> compact code
    signing_key: Ed25519PrivateKey | None = None


def build_world(n_delegates: int = 3, *, now: datetime = NOW, site: str = SITE) -> World:
    """Meeting 1 (compact, open, at ``site``) with ``n_delegates`` delegates, and meeting 2 (signed).

    Also: meeting 3 cancelled, meeting 4 at another site, each with one compact delegate (ids 9003, 9004);
    delegate 9001 of meeting 1 is revoked, 9005 is valid only tomorrow, 9006 expired yesterday.
    """
    key = generate_signing_key()
    start, end = now - timedelta(hours=1), now + timedelta(hours=3)

    def meeting(mid: int, scheme: Scheme = Scheme.COMPACT, status: str = "open",
                at: str = site) -> MeetingEntry:
        return MeetingEntry(id=mid, title=f"Họp {mid}", scheme=scheme, starts_at=start, ends_at=end,
                            site_id=at, venue="Hội trường A", status=status)

    meetings = [meeting(1), meeting(2, Scheme.SIGNED), meeting(3, status="cancelled"), meeting(4, at="other")]
    codes: dict[int, str] = {}
    delegates: list[DelegateEntry] = []

    def add(did: int, mid: int, *, revoked: bool = False, valid_from: datetime = start,
            valid_until: datetime = end, with_code: bool = True) -> None:
        code = generate_compact() if with_code else None
        if code:
            codes[did] = code
        delegates.append(DelegateEntry(
            id=did, meeting_id=mid, name=f"Nguyễn Văn {did}", organisation="Sở Tư pháp",
            position="Phó Giám đốc",
            code_hash=compact_hash(code) if code else None, valid_from=valid_from, valid_until=valid_until,
            revoked=revoked,
        ))

    for did in range(1, n_delegates + 1):
        add(did, 1)
    add(9001, 1, revoked=True)
    add(9003, 3)
    add(9004, 4)
    add(9005, 1, valid_from=now + timedelta(days=1), valid_until=now + timedelta(days=2))
    add(9006, 1, valid_from=now - timedelta(days=2), valid_until=now - timedelta(days=1))
    add(7001, 2, with_code=False)
    add(7002, 2, with_code=False, revoked=True)
    snapshot = Snapshot(seq=42, generated_at=now, meetings=meetings, delegates=delegates,
                        keys=[KeyEntry(key_id=7, public_key=public_key_to_text(key.public_key()),
                                      short_key=short_public_key_to_text(short_private_key(key).public_key))])
    return World(snapshot, codes, key)


def config_dict(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A valid config as a dict, with per-section overrides merged in."""
    data: dict[str, Any] = {
        "gate": {"id": "g1", "site": SITE, "simulate": True, "data_dir": str(tmp_path / "data")},
        "central": {"url": "http://127.0.0.1:9", "token": "t0ken", "timeout": 1.0},
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "scanner": {"type": "stdin"},
        "pins": {"relay": 17, "green_led": 27, "red_led": 22},
        "turnstile": {"unlock_seconds": 0.3},
        "status": {"enabled": False},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


class FakeTransport:
    """An in-memory :class:`gate.transport.Transport`: records what is published; ``connected`` can be switched."""

    def __init__(self, connected: bool = True) -> None:
        self.on_ack: AckHandler | None = None
        self.on_connected: Callable[[], None] | None = None
        self.on_change: ChangeHandler | None = None
        self.on_site_checkin: SiteCheckInHandler | None = None
        self.on_session_lost: Callable[[], None] | None = None
        self.on_command: Callable[[bytes], None] | None = None
        self.status_fields: StatusFields | None = None
        self.published: list[bytes] = []
        self.connected = connected
        self.online_since: datetime | None = NOW if connected else None
        self.offline_since: datetime | None = None if connected else NOW
        self.offline_published = False
        self.site_published: list[bytes] = []
        self.heartbeats: list[bytes] = []
        self.command_results: list[bytes] = []
        self.status_published = 0

    @property
    def is_connected(self) -> bool:
        return self.connected

    def start(self) -> None:
        pass

    def publish_checkin(self, payload: bytes) -> bool:
        if not self.connected:
            return False
        self.published.append(payload)
        return True

    def publish_site_checkin(self, payload: bytes) -> bool:
        self.site_published.append(payload)
        return True

    def publish_command_result(self, payload: bytes) -> bool:
        self.command_results.append(payload)
        return True

    def publish_heartbeat(self, payload: bytes) -> bool:
        if not self.connected:
            return False
        self.heartbeats.append(payload)
        return True

    def publish_status(self) -> bool:
        self.status_published += 1
        return True

    def publish_offline(self, timeout: float = 2.0) -> None:
        self.offline_published = True

    def stop(self) -> None:
        self.connected = False


def _conforms(transport: FakeTransport) -> Transport:
    return transport  # mypy checks that FakeTransport is a Transport


class IdleScanner:
    """A scanner that never reads anything (tests call ``gate.handle_scan`` / ``gate.on_scan`` directly)."""

    def __init__(self) -> None:
        self.on_scan: Any = None
        self.closed = False

    def start(self, on_scan: Any) -> None:
        self.on_scan = on_scan

    def close(self) -> None:
        self.closed = True


def outlast_an_unlock(green: Any) -> None:
    """Return once the green LED's slow emergency flashing (0.5 s a phase) changed three times: later than
    any test unlock pulse (at most 0.4 s) would have ended, measured by events, not by a stopwatch.
    ``green``: the MockPin of the green LED."""
    from tests.conftest import wait_until

    start = len(green.states)
    wait_until(lambda: len(green.states) >= start + 3)


def pulse_lengths(monkeypatch: Any, device: Any) -> list[float]:
    """Record the length of every pulse ``device`` (a gpiozero output) is asked for through ``blink()``.

    Tests check the length the gate *asks* for, and that the pin came back by itself, in order. How closely
    gpiozero's background thread keeps that length is a wall-clock matter of gpiozero's, which a loaded
    machine stretches or squeezes by milliseconds (a pulse of 0.2 s was seen to measure 0.1898 s).
    """
    asked: list[float] = []
    real = device.blink

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(float(kwargs["on_time"] if "on_time" in kwargs else args[0] if args else 1.0))
        return real(*args, **kwargs)

    monkeypatch.setattr(device, "blink", spy)
    return asked
