"""Code sources. Every scanner implements :class:`Scanner`; ``build_scanner`` picks one from the config.

Later issues add HID (evdev) and camera scanners behind the same interface.
"""

from __future__ import annotations

import sys

from gate.config import ScannerSection

from .base import ScanCallback, ScanEvent, Scanner
from .lines import LineAssembler

__all__ = ["LineAssembler", "ScanCallback", "ScanEvent", "Scanner", "build_scanner"]


def build_scanner(config: ScannerSection) -> Scanner:
    """Build the scanner described by a ``gate.config.ScannerSection``."""
    if config.type == "stdin":
        from .stdin import StreamScanner

        return StreamScanner(
            sys.stdin, max_length=config.max_length, prefix=config.prefix, suffix=config.suffix
        )
    from .serial import SerialScanner

    return SerialScanner(
        config.device,
        baudrate=config.baudrate,
        terminator=config.terminator,
        gap_s=config.gap_ms / 1000,
        prefix=config.prefix,
        suffix=config.suffix,
        max_length=config.max_length,
    )
