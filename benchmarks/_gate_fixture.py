"""Shared set-up of the benchmarks (the gate ones above all); not a benchmark itself.

A large synthetic snapshot with real compact and signed codes, a gate config built in code, a MockPin that
timestamps its rising edge, a pseudo-terminal for the serial scanner, a stand-in for central that
acknowledges check-ins over MQTT and one that serves recorded snapshots over HTTP, a Mosquitto with the
shipped persistence settings, percentiles and the machine description every report starts with.
The memory benchmarks import it only in their parent process (it is not light), never in the measured child.
Only the gate's public API is used (``Gate``, ``parse_config``, ``GateCache``, the scanners, MockFactory).
"""

from __future__ import annotations

import http.server
import os
import platform
import shlex
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gpiozero.pins.mock import MockFactory, MockPin

from gate.config import GateConfig, parse_config
from gate.sync import SyncError, SyncFailure
from protocols import topics
from protocols.codes import (
    Scheme,
    SignedClaims,
    compact_hash,
    encode_signed,
    generate_compact,
    generate_signing_key,
    public_key_to_text,
)
from protocols.payloads import Ack, CheckIn, DelegateEntry, KeyEntry, MeetingEntry, Snapshot, decode, encode

if TYPE_CHECKING:
    from devtools.broker import LocalBroker

GATE_ID = "bench-1"
SITE_ID = "hq"
RELAY, GREEN, RED = 17, 27, 22
KEY_ID = 1
MEETINGS_PER_SCHEME = 5


# ----- the world: a snapshot of N delegates with their codes ------------------------------------------------


@dataclass
class World:
    """A snapshot plus what a benchmark needs to present codes for it.

    ``compact_codes``: compact code of every compact delegate (delegate ids are the list order, see
    ``compact_ids``); ``signed_ids``: (meeting id, delegate id) of every signed-scheme delegate.
    """

    snapshot: Snapshot
    signing_key: Ed25519PrivateKey
    valid_from: datetime
    valid_until: datetime
    compact_ids: list[int] = field(default_factory=list)
    compact_codes: list[str] = field(default_factory=list)
    signed_ids: list[tuple[int, int]] = field(default_factory=list)

    def signed_code(self, index: int) -> str:
        """The signed code of the ``index``-th signed delegate (signed on demand: Ed25519 is fast)."""
        meeting_id, delegate_id = self.signed_ids[index]
        claims = SignedClaims(KEY_ID, meeting_id, delegate_id, self.valid_from, self.valid_until)
        return encode_signed(claims, self.signing_key)


def build_world(n_delegates: int, now: datetime | None = None) -> World:
    """Ten open meetings at ``SITE_ID`` (1-5 compact, 6-10 signed) sharing ``n_delegates`` delegates.

    Delegates alternate between a compact meeting (with a code hash) and a signed meeting (no code hash),
    so half of them can be scanned with each scheme. Everything is valid from an hour ago for a day.
    """
    now = now or datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(days=1)
    key = generate_signing_key()
    meetings = [
        MeetingEntry(id=mid, title=f"Họp giao ban {mid}",
                     scheme=Scheme.COMPACT if mid <= MEETINGS_PER_SCHEME else Scheme.SIGNED, starts_at=start,
                     ends_at=end, site_id=SITE_ID, venue="Hội trường A", status="open")
        for mid in range(1, 2 * MEETINGS_PER_SCHEME + 1)
    ]
    empty = Snapshot(seq=1, generated_at=now, meetings=meetings, delegates=[], keys=[])
    world = World(empty, key, start, end)
    delegates: list[DelegateEntry] = []
    for did in range(1, n_delegates + 1):
        compact = did % 2 == 1
        slot = (did // 2) % MEETINGS_PER_SCHEME
        meeting_id = 1 + slot if compact else 1 + MEETINGS_PER_SCHEME + slot
        code = generate_compact() if compact else None
        delegates.append(DelegateEntry(
            id=did, meeting_id=meeting_id, name=f"Nguyễn Văn Đại biểu {did}", organisation="Sở Tư pháp",
            position="Phó Giám đốc", code_hash=compact_hash(code) if code else None, valid_from=start,
            valid_until=end,
        ))
        if code:
            world.compact_ids.append(did)
            world.compact_codes.append(code)
        else:
            world.signed_ids.append((meeting_id, did))
    world.snapshot = Snapshot(seq=1, generated_at=now, meetings=meetings, delegates=delegates,
                              keys=[KeyEntry(key_id=KEY_ID, public_key=public_key_to_text(key.public_key()))])
    return world


# ----- gate pieces ------------------------------------------------------------------------------------------


def gate_config(data_dir: Path, device: str, mqtt_port: int, central_url: str = "http://127.0.0.1:9",
                unlock_seconds: float = 5.0) -> GateConfig:
    """A secure-mode gate (relay pin HIGH = unlocked) with a serial scanner on ``device``.

    Where the gate has a status page (``[status]``), it is enabled on a free port, as on a real gate.
    """
    data: dict[str, Any] = {
        "gate": {"id": GATE_ID, "site": SITE_ID, "fail_mode": "secure", "data_dir": str(data_dir)},
        "central": {"url": central_url, "token": "bench-token", "timeout": 5},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "scanner": {"type": "serial", "device": device, "baudrate": 9600, "terminator": "cr"},
        "pins": {"relay": RELAY, "green_led": GREEN, "red_led": RED},
        "turnstile": {"unlock_seconds": unlock_seconds},
    }
    if "status" in GateConfig.model_fields:
        data["status"] = {"enabled": True, "listen": "127.0.0.1", "port": 0}
    return parse_config(data)


def unreachable_central(*args: Any, **kwargs: Any) -> Snapshot:
    """A snapshot fetcher for a central that is down: the gate keeps deciding from its cache."""
    raise SyncError(SyncFailure.UNREACHABLE, "benchmark: no central")


class EdgeTimingPin(MockPin):
    """A MockPin that stamps every rising edge with ``time.perf_counter()`` and signals ``rose``."""

    def __init__(self, factory: Any, info: Any) -> None:
        self.rose = threading.Event()
        self.rose_at = 0.0
        super().__init__(factory, info)

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        if changed and value:
            self.rose_at = time.perf_counter()
            self.rose.set()
        return changed


def timing_factory() -> MockFactory:
    """A MockFactory whose pins are :class:`EdgeTimingPin`."""
    return MockFactory(pin_class=EdgeTimingPin)


def open_pty() -> tuple[int, str, int]:
    """A pseudo-terminal pair: (master fd the benchmark writes to, slave path for the scanner, slave fd)."""
    master, slave = os.openpty()
    return master, os.ttyname(slave), slave


class AckingCentral:
    """Stands in for central's ingest worker on MQTT: every check-in is answered with an ``Ack`` "stored".

    So the gate's outbox drains as in normal operation (without it every row would be re-published).
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.received = 0
        self._connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-central")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("benchmark central could not connect to the broker")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        client.subscribe(topics.ALL_GATE_CHECKINS, qos=1)
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        checkin = decode(CheckIn, message.payload)
        self.received += 1
        ack = Ack(checkin_id=checkin.id, gate_id=checkin.gate_id, status="stored", reason=None)
        client.publish(topics.gate_acks(checkin.gate_id), encode(ack), qos=1)

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


# ----- a stand-in central serving recorded snapshots, and the broker --------------------------------------


def serve_snapshot(gate_id: str, token: str, choose: Callable[[Mapping[str, str]], tuple[Path, str]],
                   ) -> tuple[http.server.ThreadingHTTPServer, list[int]]:
    """Serve a recorded answer at central's snapshot URL of ``gate_id``, bearer ``token`` checked, streamed from
    disk in a background thread. ``choose(request headers) -> (file, media type)`` picks the answer (e.g. the
    NDJSON stream when ``Accept`` asks for it). Returns the server (``server_address[1]`` is its port; call
    ``shutdown()``) and the list of byte counts served."""
    served: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != f"/api/v1/gates/{gate_id}/snapshot":
                self.send_error(404)
                return
            if self.headers.get("Authorization") != f"Bearer {token}":
                self.send_error(401)
                return
            path, media_type = choose(self.headers)
            self.send_response(200)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with path.open("rb") as body:
                shutil.copyfileobj(body, self.wfile, 256 * 1024)
            served.append(path.stat().st_size)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name="snapshot-server", daemon=True).start()
    return server, served


SHIPPED_PERSISTENCE = "autosave_on_changes false\nautosave_interval 5"
"""The persistence settings of systemd/mosquitto/vaora.conf (LocalBroker's default saves on every change)."""
SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "systemd" / "mosquitto" / "vaora.conf"


def shipped_flow_control() -> str:
    """The ``max_inflight_messages`` line of the shipped broker configuration (empty when it has none)."""
    lines = SHIPPED_CONFIG.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if line.startswith("max_inflight_messages "))


def shipped_broker(directory: Path, extra_config: str = "", **options: Any) -> LocalBroker:
    """A started private Mosquitto in ``directory`` that saves its database and lets messages be in flight as the
    shipped config does;
    ``extra_config`` lines are added, ``options`` go to :class:`~devtools.broker.LocalBroker`. (devtools is
    imported here: the memory benchmarks run without the repository on ``sys.path``.)"""
    from devtools.broker import LocalBroker

    config = "\n".join(part for part in (shipped_flow_control(), extra_config.strip(), SHIPPED_PERSISTENCE) if part)
    return LocalBroker(directory, extra_config=config, **options).start()


# ----- figures and the report header ------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank: a value that was actually observed."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(min(rank, len(ordered))) - 1]


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def load_average() -> str:
    """The 1/5/15-minute load averages, as text."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def filesystem_of(path: str | Path) -> str:
    """The filesystem type (ext4, tmpfs, ...) holding ``path``, from /proc/mounts; "?" when unknown."""
    target = str(Path(path).resolve())
    best, kind = "", "?"
    try:
        for line in Path("/proc/mounts").read_text(encoding="utf-8").splitlines():
            fields = line.split()
            mount = fields[1]
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if len(fields) > 2 and inside and len(mount) > len(best):
                best, kind = mount, fields[2]
    except OSError:
        pass
    return kind


def command_line(argv: Sequence[str] | None) -> str:
    """The command that reproduces this run, as typed from the repository root."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", sys.argv[0], *args])


def header(title: str, argv: Sequence[str] | None) -> list[str]:
    """The first lines of a report: title with the UTC date, command, machine, Python."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"## {title} ({stamp})",
        "",
        f"- command: `{command_line(argv)}`",
        f"- machine: {platform.platform()}, {platform.machine()}, {cpu_model()}, {os.cpu_count()} CPUs, "
        f"load average at start {load_average()}",
        f"- python {platform.python_version()} ({sys.executable})",
    ]
