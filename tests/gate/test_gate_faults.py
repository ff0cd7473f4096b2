"""Bad input and faults at the gate: a flooding scanner, garbage and 10 kB scans on the HID and camera paths,
a camera that disappears, no code text or personal data in the logs, and the status page's view."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from evdev import InputEvent, ecodes
from gpiozero.pins.mock import MockFactory

from gate.app import Gate
from gate.camera import CameraScanner, MemorySource
from gate.camera.decoders import BarcodeDecoder
from gate.camera.sources import FrameSource
from gate.config import GateConfig
from gate.debounce import ScanDebouncer
from gate.scanners import ScanEvent
from gate.scanners.hid import HidDecoder
from gate.scanners.serial import SerialScanner
from gate.store import GateStore
from protocols.payloads import CheckIn, decode
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until
from tests.gate.gate_helpers import NOW, FakeTransport, IdleScanner, World


@pytest.fixture
def make_gate(world: World, make_config: Callable[..., GateConfig]) -> Iterator[Callable[..., Gate]]:
    gates: list[Gate] = []

    def make(source: Any = None, **sections: dict[str, Any]) -> Gate:
        config = make_config(**sections)
        seed = GateStore(config.gate.data_dir)
        seed.load_snapshot(world.snapshot, NOW)
        seed.close()
        gate = Gate(config, pin_factory=MockFactory(), scanner=source or IdleScanner(),
                    transport=FakeTransport(), clock=lambda: NOW, flush_timeout=0.1)
        gates.append(gate)
        gate.start()
        return gate

    yield make
    for gate in gates:
        gate.stop()


def outbox(gate: Gate) -> list[CheckIn]:
    assert gate.cache is not None
    return [decode(CheckIn, row.payload) for row in gate.cache.outbox_rows()]


# ----- a stuck trigger


def test_debouncer_is_pure_and_slides_its_window() -> None:
    debouncer = ScanDebouncer(1.5)
    a, b = ScanEvent("AAA", Reason.OK, "s", 0), ScanEvent("BBB", Reason.OK, "s", 0)
    assert debouncer.accept(a, 0.0)
    assert not debouncer.accept(a, 1.0)
    assert debouncer.accept(b, 1.1), "a different code at once"
    assert not debouncer.accept(a, 2.4), "every sighting restarts the window"
    assert debouncer.accept(a, 4.0)
    assert debouncer.ignored == 2
    assert ScanDebouncer(0).accept(a, 0.0) and ScanDebouncer(0).accept(a, 0.0)


def test_flooding_scanner_is_decided_once_and_other_codes_pass_at_once(
    make_gate: Callable[..., Gate], world: World,
) -> None:
    scanner = IdleScanner()
    gate = make_gate(source=scanner)
    stuck, other = world.codes[1], world.codes[2]
    handled_before_other: list[int] = []
    handled_after_other: list[int] = []
    start = time.monotonic()

    def flood() -> None:  # 50 scans a second for 1 s (by their reading times), from the scanner's thread
        for i in range(50):
            at = start + i * 0.02
            if i == 25:
                handled_before_other.append(gate.scans_handled)
                scanner.on_scan(ScanEvent(other, Reason.OK, "serial:test", at))
                handled_after_other.append(gate.scans_handled)
            scanner.on_scan(ScanEvent(stuck, Reason.OK, "serial:test", at))

    reader = threading.Thread(target=flood)
    reader.start()
    reader.join(scaled(10))
    assert not reader.is_alive()
    assert gate.scans_handled == 2
    assert gate.admission.debouncer.ignored == 49
    assert [(c.delegate_id, c.allowed) for c in outbox(gate)] == [(1, True), (2, True)]
    assert handled_after_other[0] == handled_before_other[0] + 1, "the other code was handled at once, in line"


def test_debounce_window_is_configurable(make_gate: Callable[..., Gate], world: World) -> None:
    gate = make_gate(scanner={"debounce_ms": 100})
    gate.on_scan(ScanEvent(world.codes[9001], Reason.OK, "t", 10.0))
    gate.on_scan(ScanEvent(world.codes[9001], Reason.OK, "t", 10.05))
    gate.on_scan(ScanEvent(world.codes[9001], Reason.OK, "t", 10.3))
    assert gate.scans_handled == 2


# ----- garbage on the HID and camera paths


def key_events(codes: list[int], t0: float = 1000.0) -> list[InputEvent]:
    events: list[InputEvent] = []
    t = t0
    for code in codes:
        for value in (1, 0):
            t += 0.001
            sec, usec = int(t), int((t % 1) * 1_000_000)
            events.append(InputEvent(sec, usec, ecodes.EV_KEY, code, value))
            events.append(InputEvent(sec, usec, ecodes.EV_SYN, ecodes.SYN_REPORT, 0))
    return events


def typed(text: str) -> list[int]:
    return [getattr(ecodes, f"KEY_{ch}") for ch in text]


def test_hid_path_refuses_10kb_and_unmappable_keys_and_keeps_going(
    make_gate: Callable[..., Gate], world: World,
) -> None:
    gate = make_gate()
    decoder = HidDecoder("us")
    code = world.codes[1]
    events = (key_events([*typed("A" * 10000), ecodes.KEY_ENTER])
              + key_events([ecodes.KEY_F1, ecodes.KEY_F13, ecodes.KEY_ENTER], t0=2000)
              + key_events([*typed(code), ecodes.KEY_ENTER], t0=3000))
    scans = decoder.feed(events, time.monotonic())
    # No Shift held: the scanner types lowercase; compact codes are case-insensitive.
    assert [(s.reason, s.text) for s in scans] == [(Reason.TOO_LONG, None), (Reason.MALFORMED, None),
                                                   (Reason.OK, code.lower())]
    for event in scans:
        gate.on_scan(event)
    assert [(c.reason, c.allowed) for c in outbox(gate)] == [(Reason.TOO_LONG, False),
                                                            (Reason.MALFORMED, False), (Reason.OK, True)]


class ScriptedDecoder(BarcodeDecoder):
    """Returns one scripted list of texts per frame (frames carry their index in pixel [0, 0])."""

    name = "scripted"

    def __init__(self, per_frame: list[list[str]]) -> None:
        self.per_frame = per_frame

    def decode(self, frame: np.ndarray) -> list[str]:
        return self.per_frame[int(frame[0, 0])]


def test_camera_path_refuses_binary_and_10kb_texts_and_keeps_going(
    make_gate: Callable[..., Gate], world: World,
) -> None:
    texts = [["\x00\x1b\x7fbin\xff"], ["B" * 10_000], [world.codes[2]]]
    frames = [np.full((4, 4), i, dtype=np.uint8) for i in range(len(texts))]
    scanner = CameraScanner(MemorySource(frames), ScriptedDecoder(texts), dedup_window_s=0)
    gate = make_gate(source=scanner)
    assert gate.wait_for_scans(3)
    assert [(c.reason, c.allowed) for c in outbox(gate)] == [(Reason.MALFORMED, False),
                                                            (Reason.TOO_LONG, False), (Reason.OK, True)]


class VanishingCamera(FrameSource):
    """A camera that delivers frames until ``unplug`` is set, then fails every open/read."""

    name = "vanishing"

    def __init__(self) -> None:
        self.unplugged = threading.Event()

    def open(self) -> None:
        if self.unplugged.is_set():
            raise OSError("no such camera device /dev/video0")

    def read(self) -> np.ndarray | None:
        time.sleep(0.01)
        return None if self.unplugged.is_set() else np.zeros((4, 4), dtype=np.uint8)

    def close(self) -> None:
        pass


def test_camera_that_disappears_is_reported_with_since_and_retried(make_gate: Callable[..., Gate]) -> None:
    camera = VanishingCamera()
    scanner = CameraScanner(camera, ScriptedDecoder([[]]), backoff_initial=0.05, backoff_max=0.1)
    gate = make_gate(source=scanner)
    assert wait_until(lambda: gate.scanner_state()[0] == "ok")
    camera.unplugged.set()
    _status, since, detail = wait_until(lambda: gate.scanner_state() if gate.scanner_state()[0] == "lost"
                                       else None)
    assert since is not None and detail
    opens = scanner.opens
    camera.unplugged.clear()
    wait_until(lambda: gate.scanner_state()[0] == "ok")
    assert scanner.opens > opens, "re-opened after it came back"


def test_serial_scanner_state_follows_the_device(make_gate: Callable[..., Gate], tmp_path: Any) -> None:
    scanner = SerialScanner(str(tmp_path / "missing-tty"), backoff_initial=0.05, backoff_max=0.1)
    gate = make_gate(source=scanner)
    status, since, detail = gate.scanner_state()
    assert status == "lost" and detail and since is not None


# ----- logs


def test_no_code_text_reaches_the_log(make_gate: Callable[..., Gate], world: World,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    gate = make_gate()
    original = world.codes[1]
    tampered = original[:-1] + ("3" if original.endswith("2") else "2")  # never the original itself
    codes = [original, world.codes[9001], tampered]
    at = time.monotonic()  # one reading time for all: the repeat falls in the debounce window however slow the run
    for code in codes:
        gate.on_scan(ScanEvent(code, Reason.OK, "t", at))
    gate.on_scan(ScanEvent(codes[0], Reason.OK, "t", at))  # a repeat, logged at DEBUG
    assert gate.scans_handled == 3
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "scan decided" in text
    for code in codes:
        assert code not in text
    assert "Nguyễn" not in text, "names stay out of the log too"


# ----- status page view


def test_status_view_shows_the_gate_for_the_guard(make_gate: Callable[..., Gate], world: World) -> None:
    from gate.status.model import GateView, to_json

    gate = make_gate(gate={"name": "Cổng 1"})
    gate.handle_scan(ScanEvent(world.codes[1], Reason.OK, "t", time.monotonic()))
    gate.handle_scan(ScanEvent(world.codes[9001], Reason.OK, "t", time.monotonic()))
    # The admitted code opened the turnstile for one passage (0.3 s, no sensor): the panel says so until it locks.
    wait_until(lambda: gate.status_view().turnstile_state == "locked")
    view = gate.status_view()
    assert isinstance(view, GateView)
    assert (view.gate_id, view.name, view.site_id, view.direction) == ("g1", "Cổng 1", "hq", "in")
    assert view.online and view.online_since == NOW and view.offline_since is None
    assert view.cache_seq == 42 and view.synced_at == NOW
    assert (view.emergency, view.turnstile_state, view.scanner_state) == (False, "locked", "ok")
    assert view.outbox_pending == 2
    newest, oldest = view.recent
    assert (newest.allowed, newest.reason, newest.name) == (False, Reason.REVOKED, "Nguyễn Văn 9001")
    assert (oldest.allowed, oldest.position, oldest.outcome, oldest.manual) == (True, "Phó Giám đốc", "entered",
                                                                                False)
    assert to_json(view)["gate"]["online"] is True


def test_status_server_starts_and_stops_with_the_gate(make_gate: Callable[..., Gate]) -> None:
    import urllib.request

    gate = make_gate(status={"enabled": True, "listen": "127.0.0.1", "port": 0})
    server = gate.status_server
    assert server is not None
    with urllib.request.urlopen(server.url, timeout=5) as response:
        assert response.status == 200
    gate.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url, timeout=2)
