"""The scanner interface every code source implements (serial, terminal; later HID and camera)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from protocols.reasons import Reason


@dataclass(frozen=True)
class ScanEvent:
    """One scan as read from a device.

    ``text`` is the decoded code (prefix/suffix stripped) when ``reason`` is OK, else None; ``reason`` is OK,
    MALFORMED (binary garbage, bad UTF-8) or TOO_LONG; ``received_at`` is a ``time.monotonic()`` reading.
    """

    text: str | None
    reason: Reason
    source: str
    received_at: float


ScanCallback = Callable[[ScanEvent], None]


class Scanner(ABC):
    """A source of scans. ``start`` begins delivering events to ``on_scan`` from a background thread."""

    @abstractmethod
    def start(self, on_scan: ScanCallback) -> None:
        """Begin reading; every scan (good or refused) is passed to ``on_scan``. Returns at once."""

    @abstractmethod
    def close(self) -> None:
        """Stop reading and release the device. Safe to call more than once."""
