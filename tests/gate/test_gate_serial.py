"""SerialScanner over a real pseudo-terminal pair: reading, garbage, unplug and reconnect."""

from __future__ import annotations

import contextlib
import os
import queue
from collections.abc import Iterator
from typing import Any

import pytest
import serial

from gate.scanners import ScanEvent
from gate.scanners.serial import SerialScanner
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until


class Pty:
    """A pty pair; the test writes to the master as if it were the scanner."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def pty() -> Iterator[Pty]:
    pair = Pty()
    yield pair
    pair.close()


def collect() -> tuple[queue.Queue[ScanEvent], Any]:
    events: queue.Queue[ScanEvent] = queue.Queue()
    return events, events.put


def next_event(events: queue.Queue[ScanEvent], timeout: float = 3.0) -> ScanEvent:
    return events.get(timeout=timeout)


def test_reads_codes_from_a_pty(pty: Pty) -> None:
    events, on_scan = collect()
    scanner = SerialScanner(pty.path, baudrate=9600, terminator="cr")
    scanner.start(on_scan)
    try:
        assert scanner.connected.wait(3)
        pty.write(b"ABCDEF\r")
        event = next_event(events)
        assert (event.text, event.reason) == ("ABCDEF", Reason.OK)
        assert event.source == f"serial:{pty.path}"
        pty.write(b"\xff\xfe\x80\r" + b"Z" * 5000 + b"\rGOOD\r")
        assert [next_event(events).reason for _ in range(3)] == [Reason.MALFORMED, Reason.TOO_LONG, Reason.OK]
    finally:
        scanner.close()


def test_handler_exception_does_not_kill_the_reader(pty: Pty) -> None:
    events, put = collect()

    def on_scan(event: ScanEvent) -> None:
        if event.text == "BOOM":
            raise RuntimeError("handler bug")
        put(event)

    scanner = SerialScanner(pty.path, terminator="cr")
    scanner.start(on_scan)
    try:
        assert scanner.connected.wait(3)
        pty.write(b"BOOM\rAFTER\r")
        assert next_event(events).text == "AFTER"
    finally:
        scanner.close()


def test_unplug_and_replug_reopens_with_backoff() -> None:
    current = {"pty": Pty()}
    attempts: list[str] = []

    def opener(device: str, **kwargs: Any) -> serial.Serial:
        attempts.append(device)
        return serial.serial_for_url(current["pty"].path, **kwargs)

    events, on_scan = collect()
    scanner = SerialScanner("/dev/scanner", terminator="cr", opener=opener, backoff_initial=0.05,
                            backoff_max=0.2)
    scanner.start(on_scan)
    try:
        assert scanner.connected.wait(3)
        current["pty"].write(b"FIRST\r")
        assert next_event(events).text == "FIRST"
        # Unplug: the device disappears (master and slave closed), reads fail with an OSError/SerialException.
        old = current["pty"]
        current["pty"] = Pty()
        old.close()
        assert wait_until(lambda: scanner.opens >= 2, timeout=scaled(5.0))
        assert scanner.opens == 2
        assert scanner.connected.wait(scaled(3.0))
        current["pty"].write(b"SECOND\r")
        assert next_event(events).text == "SECOND"
    finally:
        scanner.close()
        current["pty"].close()


def test_missing_device_keeps_retrying_until_it_appears(tmp_path: Any) -> None:
    pair: dict[str, Pty] = {}
    attempts = 0

    def opener(device: str, **kwargs: Any) -> serial.Serial:
        nonlocal attempts
        attempts += 1
        if "pty" not in pair:
            raise serial.SerialException(f"could not open port {device}: No such file or directory")
        return serial.serial_for_url(pair["pty"].path, **kwargs)

    events, on_scan = collect()
    scanner = SerialScanner("/dev/ttyACM9", opener=opener, backoff_initial=0.02, backoff_max=0.05)
    scanner.start(on_scan)
    try:
        assert wait_until(lambda: attempts >= 3, timeout=scaled(5.0))
        assert not scanner.connected.is_set()
        pair["pty"] = Pty()
        assert scanner.connected.wait(3)
        pair["pty"].write(b"LATE\r")
        assert next_event(events).text == "LATE"
    finally:
        scanner.close()
        if "pty" in pair:
            pair["pty"].close()


def test_close_stops_the_thread_promptly(pty: Pty) -> None:
    scanner = SerialScanner(pty.path)
    scanner.start(lambda event: None)
    assert scanner.connected.wait(3)
    reader = scanner._thread
    assert reader is not None
    scanner.close()  # joins the reader for at most 2 s
    assert not reader.is_alive()
    assert not scanner.connected.is_set()


class StepClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_garbage_without_terminator_ends_after_the_idle_time_and_the_next_code_reads(pty: Pty) -> None:
    events, on_scan = collect()
    clock = StepClock()
    scanner = SerialScanner(pty.path, terminator="cr", line_idle_s=0.3, clock=clock)
    scanner.start(on_scan)
    try:
        assert scanner.connected.wait(3)
        pty.write(b"\xff\xfe#noise")  # a misread: no terminator ever comes
        assert wait_until(lambda: scanner.assembler.pending_bytes == 8, 3.0)
        assert events.empty()
        clock.now += 0.5  # the line stays idle longer than line_idle_s
        event = next_event(events)
        assert (event.text, event.reason) == (None, Reason.MALFORMED)
        pty.write(b"ABCDEF\r")
        event = next_event(events)
        assert (event.text, event.reason) == ("ABCDEF", Reason.OK)
    finally:
        scanner.close()
