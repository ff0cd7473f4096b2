"""The camera scanner: codes read from camera frames (Pi camera, USB webcam, files) with zxing-cpp or pyzbar.

``build_camera_scanner`` makes a :class:`CameraScanner` from the ``[scanner]`` settings of a camera gate::

    [scanner]
    type = "camera"
    camera = "picamera2"      # or "opencv" (USB webcam, V4L2), "images" (a folder), "video" (a file)
    device = "/dev/video0"    # opencv: index or device path; images/video: path; picamera2: camera number
    decoder = "zxing"         # or "pyzbar"
    symbologies = ["qr", "code128"]   # e.g. ["qr"] for a QR-only site
    passes = ["raw", "denoise", "deblur"]  # zxing: in order until one reads (+ "global", "upscale", "flatten")
    alternate_passes = false  # zxing: passes after the second run one per frame in turn
    extra_passes_every = 1    # zxing: passes after the second run on one frame in this many
    dedup_ms = 2000           # a code in view is emitted once; again after this long out of view
    width = 640
    height = 480
    max_length = 256

zxing-cpp, pyzbar and picamera2 are imported only when a scanner is built, and OpenCV only by the sources that
read through it ("opencv", "video", "images"): a Pi camera gate with zxing-cpp needs numpy and zxing-cpp
alone (the ``camera`` extra; ``webcam`` adds OpenCV, ``zbar`` adds pyzbar).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from protocols.codes import MAX_SCAN_LENGTH

from .decoders import (
    DEFAULT_PASSES,
    DEFAULT_SYMBOLOGIES,
    BarcodeDecoder,
    PassName,
    PyzbarDecoder,
    Symbology,
    ZxingDecoder,
    build_decoder,
    to_gray,
)
from .scanner import CameraScanner, CameraState, Deduplicator, validate_text
from .sources import (
    FrameSource,
    ImageDirectorySource,
    MemorySource,
    OpenCVSource,
    Picamera2Source,
    VideoFileSource,
)

CameraKind = Literal["picamera2", "opencv", "images", "video"]
CAMERA_KINDS: tuple[CameraKind, ...] = ("picamera2", "opencv", "images", "video")

__all__ = [
    "CAMERA_KINDS",
    "BarcodeDecoder",
    "CameraKind",
    "CameraScanner",
    "CameraState",
    "Deduplicator",
    "FrameSource",
    "ImageDirectorySource",
    "MemorySource",
    "OpenCVSource",
    "Picamera2Source",
    "PyzbarDecoder",
    "VideoFileSource",
    "ZxingDecoder",
    "build_camera_scanner",
    "build_decoder",
    "build_source",
    "to_gray",
    "validate_text",
]


def build_source(camera: CameraKind, device: str = "", width: int = 640, height: int = 480) -> FrameSource:
    """Return the frame source for a ``camera`` kind; ``ValueError`` for an unknown kind or bad device."""
    if camera == "picamera2":
        if device and not device.isdigit():
            raise ValueError(f"picamera2 device must be a camera number, not {device!r}")
        return Picamera2Source(int(device or 0), width=width, height=height)
    if camera == "opencv":
        return OpenCVSource(device or 0, width=width, height=height)
    if not device:
        raise ValueError(f"camera {camera!r} needs a device path")
    if camera == "images":
        return ImageDirectorySource(device, loop=True, interval_s=0.1)
    if camera == "video":
        return VideoFileSource(device, loop=True)
    raise ValueError(f"unknown camera {camera!r}; use one of {', '.join(CAMERA_KINDS)}")


def build_camera_scanner(
    camera: CameraKind = "opencv",
    device: str = "",
    decoder: str = "zxing",
    dedup_ms: int = 2000,
    width: int = 640,
    height: int = 480,
    max_length: int = MAX_SCAN_LENGTH,
    symbologies: Sequence[Symbology] = DEFAULT_SYMBOLOGIES,
    passes: Sequence[PassName] = DEFAULT_PASSES,
    alternate_passes: bool = False,
    extra_passes_every: int = 1,
) -> CameraScanner:
    """Build a camera scanner from the ``[scanner]`` keys above; ``ValueError`` for a bad value."""
    if not 0 <= dedup_ms <= 600_000:
        raise ValueError("dedup_ms must be between 0 and 600000")
    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        raise ValueError("width and height must be between 16 and 4096")
    source = build_source(camera, device, width, height)
    return CameraScanner(
        source,
        build_decoder(decoder, symbologies, passes, alternate_passes, extra_passes_every),
        dedup_window_s=dedup_ms / 1000, max_length=max_length
    )
