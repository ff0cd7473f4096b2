"""Serial (USB-CDC or RS-232) barcode/QR scanners read with pyserial on a background thread.

The reader never dies: a vanished device (unplugged cable, SerialException/OSError) is closed and reopened
with exponential backoff, and an exception from the scan callback is logged and reading continues.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from .base import ScanCallback, ScanEvent, Scanner
from .lines import LineAssembler, Terminator

log = logging.getLogger(__name__)


class SerialScanner(Scanner):
    """Read scans from a serial device; ``opener`` is injectable (default ``serial.serial_for_url``)."""

    def __init__(
        self,
        device: str,
        baudrate: int = 9600,
        terminator: Terminator = "cr",
        gap_s: float = 0.05,
        prefix: str = "",
        suffix: str = "",
        max_length: int = 256,
        opener: Callable[..., Any] = serial.serial_for_url,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        line_idle_s: float = 0.3,
    ) -> None:
        self.device = device
        self.baudrate = baudrate
        self.assembler = LineAssembler(
            terminator, gap_s, prefix, suffix, max_length, source=f"serial:{device}", idle_s=line_idle_s
        )
        self._opener = opener
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._clock = clock
        # Short read timeout: keeps close() responsive and ends a gap-terminated or idle partial line on time.
        self._read_timeout = min(0.1, (gap_s if terminator == "gap" else line_idle_s) / 2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: Any = None
        self.opens = 0
        """How many times the device was opened successfully (1 + reconnects)."""
        self.connected = threading.Event()

    def start(self, on_scan: ScanCallback) -> None:
        """Start the reader thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("scanner already started")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(on_scan,), name=f"serial-scanner:{self.device}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the reader thread and close the device."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2)
        self._close_port()

    def _close_port(self) -> None:
        port, self._port = self._port, None
        self.connected.clear()
        if port is not None:
            try:
                port.close()
            except Exception:  # closing a vanished device may fail; nothing to do about it
                log.debug("closing %s failed", self.device, exc_info=True)

    def _run(self, on_scan: ScanCallback) -> None:
        backoff = self._backoff_initial
        while not self._stop.is_set():
            try:
                self._port = self._opener(self.device, baudrate=self.baudrate, timeout=self._read_timeout)
            except (serial.SerialException, OSError, ValueError) as exc:
                log.warning("scanner device=%s open failed: %s; retry in %.1fs", self.device, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._backoff_max)
                continue
            self.opens += 1
            self.connected.set()
            self.assembler.reset()
            log.info("scanner device=%s opened", self.device)
            try:
                self._read_loop(on_scan)
                backoff = self._backoff_initial
            except (serial.SerialException, OSError) as exc:
                if not self._stop.is_set():
                    log.warning("scanner device=%s lost: %s; reopening in %.1fs", self.device, exc, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self._backoff_max)
            finally:
                self._close_port()

    def _read_loop(self, on_scan: ScanCallback) -> None:
        while not self._stop.is_set():
            port = self._port
            if port is None:
                return
            data = port.read(1)
            if data:
                waiting = port.in_waiting
                if waiting:
                    data += port.read(waiting)
                events = self.assembler.feed(data, self._clock())
            else:
                events = self.assembler.flush(self._clock())
            for event in events:
                _deliver(on_scan, event)


def _deliver(on_scan: ScanCallback, event: ScanEvent) -> None:
    try:
        on_scan(event)
    except Exception:
        log.exception("scan handler failed; scanner keeps reading")
