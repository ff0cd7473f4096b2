"""Repeated scans of the same text (a stuck trigger, a code held under the scanner) are handled once.

:class:`ScanDebouncer` is pure (time passed in). A scan whose key was seen less than ``window_s`` seconds
before is a repeat: ignored and counted. Every sighting restarts the window, so a scanner flooding one code
is decided once for the whole flood; a different code is let through at once. Scans without text (refused
by the reader: garbage, over-long) are keyed by reason and source, so a flood of garbage is recorded once.
"""

from __future__ import annotations

from .scanners.base import ScanEvent


class ScanDebouncer:
    """``accept(event, now) -> bool``: False for a repeat within ``window_s`` (0 disables debouncing)."""

    def __init__(self, window_s: float = 1.5) -> None:
        if window_s < 0:
            raise ValueError("window_s must be >= 0")
        self.window_s = window_s
        self.ignored = 0
        """How many scans were ignored as repeats."""
        self._last_seen: dict[str, float] = {}

    @staticmethod
    def key_of(event: ScanEvent) -> str:
        """What makes two scans "the same": the text, or for a refused read its reason and source."""
        return f"text:{event.text}" if event.text is not None else f"refused:{event.reason}@{event.source}"

    def accept(self, event: ScanEvent, now: float) -> bool:
        """True when ``event`` (read at monotonic time ``now``) should be handled."""
        if self.window_s == 0:
            return True
        if len(self._last_seen) > 64:
            self._last_seen = {k: t for k, t in self._last_seen.items() if now - t < self.window_s}
        key = self.key_of(event)
        last = self._last_seen.get(key)
        self._last_seen[key] = now
        if last is not None and now - last < self.window_s:
            self.ignored += 1
            return False
        return True
