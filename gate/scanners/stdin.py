"""A scanner reading lines typed or pasted on a terminal (bench testing, keyboard-wedge scanners on a tty)."""

from __future__ import annotations

import logging
import threading
import time
from typing import IO, Any

from .base import ScanCallback, Scanner
from .lines import LineAssembler

log = logging.getLogger(__name__)


class StreamScanner(Scanner):
    """Read newline-terminated scans from a text or binary stream (``sys.stdin`` by default in the CLI)."""

    def __init__(self, stream: IO[Any], max_length: int = 256, prefix: str = "", suffix: str = "",
                 source: str = "stdin") -> None:
        self.stream = stream
        self.assembler = LineAssembler(
            "lf", prefix=prefix, suffix=suffix, max_length=max_length, source=source
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()
        """Set when the stream reached end of file."""

    def start(self, on_scan: ScanCallback) -> None:
        """Start the reader thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("scanner already started")
        self._thread = threading.Thread(target=self._run, args=(on_scan,), name="stdin-scanner", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop delivering scans. A read blocked on a terminal ends with the process (daemon thread)."""
        self._stop.set()

    def _run(self, on_scan: ScanCallback) -> None:
        binary = getattr(self.stream, "buffer", self.stream)
        while not self._stop.is_set():
            try:
                chunk = binary.readline(64 * 1024)
            except (OSError, ValueError) as exc:
                log.warning("stdin scanner stopped: %s", exc)
                break
            if not chunk:
                break
            data = chunk.encode("utf-8", "surrogateescape") if isinstance(chunk, str) else chunk
            for event in self.assembler.feed(data, time.monotonic()):
                if self._stop.is_set():
                    return
                try:
                    on_scan(event)
                except Exception:
                    log.exception("scan handler failed; scanner keeps reading")
        self.finished.set()
