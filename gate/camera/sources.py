"""Frame sources for the camera scanner: the Pi camera, USB webcams (V4L2), image folders and video files.

Every source implements :class:`FrameSource`: ``open()``, ``read() -> numpy array | None`` and ``close()``.
``read`` returns a grayscale (H x W) or colour (H x W x 3 BGR, or x 4) ``uint8`` array, or None when no frame
could be read (the camera vanished, or a finite source reached its end). ``open`` and ``read`` may raise
``OSError``/``RuntimeError``; :class:`gate.camera.scanner.CameraScanner` treats that as a lost camera.

``finite`` sources (image folders and video files without ``loop``, in-memory lists) end: when such a source
returns None the scanner stops instead of reopening it. OpenCV and picamera2 are imported lazily, so importing
this module costs nothing on a gate that reads a serial scanner.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Frame = np.ndarray
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"})


class FrameSource(ABC):
    """Where frames come from. Not thread-safe: one scanner thread calls ``open``/``read``/``close``."""

    finite: bool = False
    """True when the source ends (None from ``read`` means "no more frames", not "camera lost")."""

    name: str = "camera"

    @abstractmethod
    def open(self) -> None:
        """Acquire the device or file; raise ``OSError``/``RuntimeError`` when it is not there."""

    @abstractmethod
    def read(self) -> Frame | None:
        """Return the next frame (``uint8``, grayscale or BGR), or None when none could be read."""

    @abstractmethod
    def close(self) -> None:
        """Release the device. Safe to call more than once, and when ``open`` failed."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Picamera2Source(FrameSource):
    """The Raspberry Pi camera module through picamera2 (libcamera); only usable on a Pi.

    It asks for a YUV420 stream and hands out its Y plane, which is the grayscale image the decoders want,
    without a colour conversion. ``module`` replaces the ``picamera2`` module (tests elsewhere than on a Pi).
    """

    def __init__(self, camera_num: int = 0, width: int = 640, height: int = 480, module: Any = None) -> None:
        self.camera_num = camera_num
        self.width = width
        self.height = height
        self.name = f"picamera2:{camera_num}"
        self._module = module
        self._camera: Any = None

    def open(self) -> None:
        """Start the camera; raises ``RuntimeError`` when picamera2 or the camera is missing."""
        module = self._module
        if module is None:
            try:
                module = importlib.import_module("picamera2")  # only present on a Pi
            except ImportError as exc:
                raise RuntimeError("picamera2 is not installed (it only exists on a Raspberry Pi)") from exc
        camera = module.Picamera2(self.camera_num)
        try:
            config = camera.create_video_configuration(
                main={"size": (self.width, self.height), "format": "YUV420"}, buffer_count=4
            )
            camera.configure(config)
            camera.start()
        except Exception:
            camera.close()
            raise
        self._camera = camera

    def read(self) -> Frame | None:
        """Capture one frame and return its luminance plane, or None when the camera is not open."""
        camera = self._camera
        if camera is None:
            return None
        array = camera.capture_array("main")
        if array is None:
            return None
        # A YUV420 buffer is (height * 3 / 2) x stride; the first `height` rows are Y.
        return np.ascontiguousarray(array[: self.height, : self.width])

    def close(self) -> None:
        """Stop and close the camera."""
        camera, self._camera = self._camera, None
        if camera is None:
            return
        try:
            camera.stop()
        finally:
            camera.close()


class _OpenCVCapture(FrameSource):
    """Shared code of the sources read through ``cv2.VideoCapture``."""

    def __init__(self) -> None:
        self._capture: Any = None

    def _open_capture(self, target: int | str, api: int | None) -> Any:
        import cv2  # lazy: only camera gates need OpenCV

        capture = cv2.VideoCapture(target, api) if api is not None else cv2.VideoCapture(target)
        if not capture.isOpened():
            capture.release()
            raise OSError(f"cannot open {target!r}")
        return capture

    def read(self) -> Frame | None:
        """Grab the next frame, or None when the device or file gave none."""
        capture = self._capture
        if capture is None:
            return None
        ok, frame = capture.read()
        if not ok or frame is None:
            return None
        return np.asarray(frame)

    def close(self) -> None:
        """Release the capture."""
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


class OpenCVSource(_OpenCVCapture):
    """A USB webcam through OpenCV's V4L2 backend: ``OpenCVSource(0)`` or ``OpenCVSource("/dev/video0")``."""

    def __init__(
        self, device: int | str = 0, width: int = 640, height: int = 480, fps: int | None = None
    ) -> None:
        super().__init__()
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        self.device = device
        self.width = width
        self.height = height
        self.fps = fps
        self.name = f"v4l2:{device}"

    def open(self) -> None:
        """Open the device with the V4L2 backend and ask for the configured size; ``OSError`` if absent."""
        import cv2

        if isinstance(self.device, str) and not Path(self.device).exists():
            raise OSError(f"no such camera device {self.device}")
        capture = self._open_capture(self.device, cv2.CAP_V4L2)
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # decode the newest frame, not a queue of stale ones
        if self.fps:
            capture.set(cv2.CAP_PROP_FPS, self.fps)
        self._capture = capture


class VideoFileSource(_OpenCVCapture):
    """Frames of a video file (demos, recorded field footage); ``loop`` restarts it at the end."""

    def __init__(self, path: str | Path, loop: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.loop = loop
        self.finite = not loop
        self.name = f"video:{self.path.name}"

    def open(self) -> None:
        """Open the file; ``OSError`` when it is missing or not a video OpenCV can read."""
        if not self.path.is_file():
            raise OSError(f"no such video file {self.path}")
        self._capture = self._open_capture(str(self.path), None)

    def read(self) -> Frame | None:
        """Return the next frame; at the end, restart when looping, else None."""
        frame = super().read()
        if frame is None and self.loop and self._capture is not None:
            import cv2

            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            frame = super().read()
        return frame


class ImageDirectorySource(FrameSource):
    """The image files of a folder in name order (tests and demos); ``loop`` starts again at the end.

    ``interval_s`` paces the frames like a camera would (0 = as fast as they are read). An unreadable file is
    logged and skipped.
    """

    def __init__(self, path: str | Path, loop: bool = False, interval_s: float = 0.0) -> None:
        self.path = Path(path)
        self.loop = loop
        self.finite = not loop
        self.interval_s = interval_s
        self.name = f"images:{self.path.name}"
        self._files: list[Path] = []
        self._index = 0
        self._last_at: float | None = None

    def open(self) -> None:
        """List the folder's images; ``OSError`` when the folder is missing or holds none."""
        if not self.path.is_dir():
            raise OSError(f"no such image folder {self.path}")
        self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise OSError(f"no images in {self.path}")
        self._index = 0

    def read(self) -> Frame | None:
        """Return the next image as a grayscale array, or None at the end (without ``loop``)."""
        import cv2

        _pace(self, self.interval_s)
        for _ in range(len(self._files)):
            if self._index >= len(self._files):
                if not self.loop:
                    return None
                self._index = 0
            path = self._files[self._index]
            self._index += 1
            frame = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if frame is not None:
                return frame
            log.warning("camera source=%s skipped unreadable image %s", self.name, path.name)
        return None

    def close(self) -> None:
        """Forget the file list."""
        self._files = []
        self._index = 0


class MemorySource(FrameSource):
    """Frames held in memory (tests, benchmarks, demos); ``loop`` repeats them, else the source ends."""

    def __init__(self, frames: Sequence[Frame], loop: bool = False, interval_s: float = 0.0) -> None:
        self.frames = list(frames)
        self.loop = loop
        self.finite = not loop
        self.interval_s = interval_s
        self.name = "memory"
        self._index = 0
        self._last_at: float | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """Start from the first frame."""
        with self._lock:
            self._index = 0

    def read(self) -> Frame | None:
        """Return the next frame, or None at the end (without ``loop``)."""
        _pace(self, self.interval_s)
        with self._lock:
            if self._index >= len(self.frames):
                if not self.loop or not self.frames:
                    return None
                self._index = 0
            frame = self.frames[self._index]
            self._index += 1
            return frame

    def close(self) -> None:
        """Nothing to release."""


def _pace(source: Any, interval_s: float) -> None:
    """Sleep so that successive reads of ``source`` are at least ``interval_s`` apart."""
    if interval_s <= 0:
        return
    now = time.monotonic()
    last = source._last_at
    if last is not None and now - last < interval_s:
        time.sleep(interval_s - (now - last))
    source._last_at = time.monotonic()
