"""Turn a byte stream from a scanner into scan events: terminators, prefix/suffix, garbage and length limits.

``LineAssembler`` is pure (no I/O, time passed in) so every edge case is tested without a device.
"""

from __future__ import annotations

from typing import Literal

from protocols.reasons import Reason

from .base import ScanEvent

Terminator = Literal["cr", "lf", "crlf", "gap"]
_TERMINATORS: dict[str, bytes] = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}
_LINE_BREAKS = b"\r\n"
_BYTES_PER_CHAR = 4  # worst case UTF-8


class LineAssembler:
    """Assemble scanner bytes into lines and validate them.

    A line ends at the configured terminator ("cr", "lf", "crlf") or, with "gap", when no byte arrived for
    ``gap_s`` seconds (call ``flush(now)`` periodically; CR and LF also end a line in gap mode). With a
    terminator, a partial line that got no byte for ``idle_s`` seconds ends too (``flush(now)``, or the next
    byte): garbage without a terminator (a misread, a glitch on the line) is answered and forgotten instead of
    swallowing the next code into one unreadable line. Stray CR/LF
    around a line are ignored, so a "cr" scanner that actually sends CRLF still reads cleanly. A line
    longer than ``max_length`` characters yields ONE ``TOO_LONG`` event and is discarded up to its
    terminator; bytes that are not UTF-8 or contain non-printable characters yield ``MALFORMED``. Empty
    lines yield nothing.
    """

    def __init__(
        self,
        terminator: Terminator = "cr",
        gap_s: float = 0.05,
        prefix: str = "",
        suffix: str = "",
        max_length: int = 256,
        source: str = "scanner",
        idle_s: float = 0.3,
    ) -> None:
        if terminator != "gap" and terminator not in _TERMINATORS:
            raise ValueError(f"unknown terminator {terminator!r}")
        self.terminator = terminator
        self.gap_s = gap_s
        self.idle_s = idle_s
        self.prefix = prefix
        self.suffix = suffix
        self.max_length = max_length
        self.source = source
        self._buffer = bytearray()
        self._discarding = False
        self._last_byte_at: float | None = None
        self._byte_limit = (max_length + len(prefix) + len(suffix)) * _BYTES_PER_CHAR + 2

    def feed(self, data: bytes, now: float) -> list[ScanEvent]:
        """Add bytes read at monotonic time ``now``; return the scan events completed by them."""
        events: list[ScanEvent] = list(self.flush(now))  # a line left idle ends before new bytes start one
        if data:
            self._last_byte_at = now
        self._buffer.extend(data)
        while True:
            end, term_len = self._find_terminator()
            if end < 0:
                break
            line = bytes(self._buffer[:end])
            del self._buffer[: end + term_len]
            if self._discarding:
                self._discarding = False  # the over-long line ends here; it was refused already
                continue
            if event := self._finish(line, now):
                events.append(event)
        if len(self._buffer) > self._byte_limit:
            self._buffer.clear()
            if not self._discarding:
                self._discarding = True
                events.append(ScanEvent(None, Reason.TOO_LONG, self.source, now))
        return events

    def flush(self, now: float) -> list[ScanEvent]:
        """End the pending line if no byte came for ``gap_s`` (gap mode) or ``idle_s`` (with a terminator)
        seconds; else return []."""
        wait = self.gap_s if self.terminator == "gap" else self.idle_s
        if self._last_byte_at is None or now - self._last_byte_at < wait:
            return []
        line = bytes(self._buffer)
        self._buffer.clear()
        self._last_byte_at = None
        if self._discarding:
            self._discarding = False
            return []
        event = self._finish(line, now)
        return [event] if event else []

    @property
    def pending_bytes(self) -> int:
        """How many bytes of an unfinished line are held."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget any partial line (after the device was reopened)."""
        self._buffer.clear()
        self._discarding = False
        self._last_byte_at = None

    def _find_terminator(self) -> tuple[int, int]:
        if self.terminator == "gap":
            positions = [p for p in (self._buffer.find(b"\r"), self._buffer.find(b"\n")) if p >= 0]
            return (min(positions), 1) if positions else (-1, 0)
        term = _TERMINATORS[self.terminator]
        return self._buffer.find(term), len(term)

    def _finish(self, line: bytes, now: float) -> ScanEvent | None:
        line = line.strip(_LINE_BREAKS)
        if not line:
            return None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return ScanEvent(None, Reason.MALFORMED, self.source, now)
        text = text.removeprefix(self.prefix).removesuffix(self.suffix)
        text = text.strip(" ")
        if not text:
            return None
        if not text.isprintable():
            return ScanEvent(None, Reason.MALFORMED, self.source, now)
        if len(text) > self.max_length:
            return ScanEvent(None, Reason.TOO_LONG, self.source, now)
        return ScanEvent(text, Reason.OK, self.source, now)
