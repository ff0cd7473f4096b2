"""Code sources. Every scanner implements :class:`Scanner`; ``build_scanner`` picks one from the config.

Types: ``serial`` (USB-CDC virtual COM or RS-232), ``stdin`` (a terminal), ``hid`` (USB keyboard-wedge
through evdev, :mod:`gate.scanners.hid`) and ``camera`` (:mod:`gate.camera`). Device libraries (evdev,
OpenCV, zxing-cpp, picamera2) are imported only when their scanner is built.
"""

from __future__ import annotations

import sys

from gate.config import ScannerSection

from .base import ScanCallback, ScanEvent, Scanner
from .lines import LineAssembler

__all__ = ["LineAssembler", "ScanCallback", "ScanEvent", "Scanner", "build_scanner"]


def build_scanner(config: ScannerSection) -> Scanner:
    """Build the scanner described by a ``gate.config.ScannerSection``; ``ValueError`` for a bad setting."""
    if config.type == "stdin":
        from .stdin import StreamScanner

        return StreamScanner(
            sys.stdin, max_length=config.max_length, prefix=config.prefix, suffix=config.suffix
        )
    if config.type == "hid":
        from .hid import HidScanner

        return HidScanner(
            path=config.device,
            vendor=config.vendor if config.device is None else None,
            product=config.product if config.device is None else None,
            keymap=config.keymap,
            grab=config.grab,
            max_length=config.max_length,
            stuck_key_s=config.stuck_key_ms / 1000,
            tab_terminates=config.tab_terminates,
            prefix=config.prefix,
            suffix=config.suffix,
        )
    if config.type == "camera":
        from gate.camera import build_camera_scanner

        return build_camera_scanner(
            camera=config.camera,
            device=config.resolved_device or "",
            decoder=config.decoder,
            dedup_ms=config.dedup_ms,
            width=config.width,
            height=config.height,
            max_length=config.max_length,
            symbologies=config.symbologies,
            passes=config.passes,
            alternate_passes=config.alternate_passes,
            extra_passes_every=config.extra_passes_every,
        )
    from .serial import SerialScanner

    return SerialScanner(
        config.resolved_device or "/dev/ttyACM0",
        baudrate=config.baudrate,
        terminator=config.terminator,
        gap_s=config.gap_ms / 1000,
        prefix=config.prefix,
        suffix=config.suffix,
        max_length=config.max_length,
        line_idle_s=config.line_idle_ms / 1000,
    )
