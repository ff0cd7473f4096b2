"""The camera scanner: a thread that reads frames, decodes codes and emits scan events.

A code held in front of the camera is seen on many consecutive frames; :class:`Deduplicator` lets it through
once, and again only after it has been out of sight for ``dedup_window_s`` seconds. A different code is let
through at once. A camera that disappears (``read`` returns None or raises, ``open`` fails) is reported
through ``state`` ("lost" with the time since when, and a log line) and re-opened with exponential backoff;
the thread never dies of it, nor of a failing decoder or scan handler.

A bad frame (the wrong type or size, garbage from the camera, a decoder that raises) is dropped and counted
(``frames_dropped``); so is a frame whose height and width differ from the first one's since the camera
opened. Drops are logged at most once a minute (:data:`DROP_LOG_INTERVAL_S`, on the injected clock) with the
number dropped since the last line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gate.scanners.base import ScanCallback, ScanEvent, Scanner
from protocols.codes import MAX_SCAN_LENGTH
from protocols.reasons import Reason

from .decoders import BarcodeDecoder, ZxingDecoder, to_gray
from .sources import Frame, FrameSource

log = logging.getLogger(__name__)

DROP_LOG_INTERVAL_S = 60.0
CameraStatus = Literal["starting", "ok", "lost", "ended", "closed"]


@dataclass(frozen=True)
class CameraState:
    """What the camera is doing: ``status`` since ``since`` (``time.monotonic()``), ``detail`` why if lost."""

    status: CameraStatus
    since: float
    detail: str | None = None


class Deduplicator:
    """Let each code through once while it stays in view.

    ``filter(texts, now)`` returns the texts of one frame that were not seen during the ``window_s`` seconds
    before ``now``; every sighting restarts a code's window, so a code held still is emitted once, and once
    more only after it has been out of view for ``window_s``. Pure: time is passed in.
    """

    def __init__(self, window_s: float = 2.0) -> None:
        if window_s < 0:
            raise ValueError("window_s must be >= 0")
        self.window_s = window_s
        self._last_seen: dict[str, float] = {}

    def filter(self, texts: Iterable[str], now: float) -> list[str]:
        """Return the new texts among ``texts`` (seen at monotonic time ``now``) and remember them all."""
        if self._last_seen:
            self._last_seen = {t: at for t, at in self._last_seen.items() if now - at < self.window_s}
        fresh: list[str] = []
        for text in texts:
            if text not in self._last_seen and text not in fresh:
                fresh.append(text)
            self._last_seen[text] = now
        return fresh

    def reset(self) -> None:
        """Forget every code (a different camera, a restart)."""
        self._last_seen.clear()


def encode_jpeg(gray: np.ndarray, quality: int = 60) -> bytes | None:
    """``gray`` (2-D uint8) as JPEG bytes with OpenCV; None where OpenCV is not installed (a Pi camera gate
    with the ``camera`` extra alone)."""
    try:
        import cv2
    except ImportError:
        return None
    ok, data = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return bytes(data.tobytes()) if ok else None


def validate_text(text: str, source: str, now: float, max_length: int = MAX_SCAN_LENGTH) -> ScanEvent:
    """Turn a decoded text into a scan event: OK, or TOO_LONG / MALFORMED (non-printable) without the text."""
    if len(text) > max_length:
        return ScanEvent(None, Reason.TOO_LONG, source, now)
    if not text.strip() or not text.isprintable():
        return ScanEvent(None, Reason.MALFORMED, source, now)
    return ScanEvent(text, Reason.OK, source, now)


class CameraScanner(Scanner):
    """Read codes from a camera: ``CameraScanner(source, decoder, dedup_window_s=2.0)``.

    ``source`` is a :class:`FrameSource`, ``decoder`` a :class:`BarcodeDecoder` (default zxing-cpp).
    ``on_state`` (optional) is called with each new :class:`CameraState` from the scanner thread.
    ``clock`` gives monotonic seconds (tests pass a fake one). Counters ``frames``, ``frames_with_codes``,
    ``events`` and ``opens`` are for heartbeats and benchmarks.
    """

    def __init__(
        self,
        source: FrameSource,
        decoder: BarcodeDecoder | None = None,
        dedup_window_s: float = 2.0,
        max_length: int = MAX_SCAN_LENGTH,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        on_state: Callable[[CameraState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.decoder = decoder if decoder is not None else ZxingDecoder()
        self.dedup = Deduplicator(dedup_window_s)
        self.max_length = max_length
        self.source_name = f"camera:{getattr(source, 'name', type(source).__name__)}"
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._on_state = on_state
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = CameraState("starting", clock())
        self._state_lock = threading.Lock()
        self.finished = threading.Event()
        """Set when the thread has stopped (closed, or a finite source ended)."""
        self.frames = 0
        self.frames_with_codes = 0
        self.events = 0
        self.opens = 0
        self.frames_dropped = 0
        self.last_decode_at: float | None = None
        """Clock time of the last frame in which a code was read (None before the first)."""
        self._frame_shape: tuple[int, ...] | None = None  # the size of the camera's first frame since it opened
        self._drop_logged_at: float | None = None
        self._last_frame: Frame | None = None
        self._rate_mark: tuple[float, int] | None = None  # (clock, frames) at the start of the rate window
        self._rate = 0.0
        self._drops_unlogged = 0

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock the scanner's times (``state.since``, ``last_decode_at``) are on."""
        return self._clock

    @property
    def state(self) -> CameraState:
        """The camera's current state: starting, ok, lost (with ``detail``), ended or closed."""
        with self._state_lock:
            return self._state

    def start(self, on_scan: ScanCallback) -> None:
        """Start the reader thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("scanner already started")
        self._stop.clear()
        self.finished.clear()
        with self._state_lock:
            self._state = CameraState("starting", self._clock())
        self._thread = threading.Thread(
            target=self._run, args=(on_scan,), name=f"camera-scanner:{self.source_name}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the reader thread; it releases the camera. Safe to call more than once."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
            if thread.is_alive():
                log.warning("camera source=%s reader did not stop within 5 s", self.source_name)
        elif thread is None:
            self._close_source()
        self._set_state("closed")

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Block until the thread stopped (a finite source ended, or ``close``); True if it did."""
        return self.finished.wait(timeout)

    def _set_state(self, status: CameraStatus, detail: str | None = None) -> None:
        with self._state_lock:
            if self._state.status == status and self._state.detail == detail:
                return
            if self._state.status == "closed":
                return
            state = self._state = CameraState(status, self._clock(), detail)
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                log.exception("camera state handler failed")

    def _lost(self, detail: str, backoff: float) -> None:
        was = self.state.status
        self._set_state("lost", detail)
        if was != "lost":
            log.warning("camera source=%s lost: %s; reopening in %.1fs", self.source_name, detail, backoff)
        else:
            log.info("camera source=%s still lost: %s; retry in %.1fs", self.source_name, detail, backoff)
        self._close_source()
        self._stop.wait(backoff)

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception:
            log.debug("closing camera source=%s failed", self.source_name, exc_info=True)

    def _run(self, on_scan: ScanCallback) -> None:
        backoff = self._backoff_initial
        opened = False
        try:
            while not self._stop.is_set():
                if not opened:
                    try:
                        self.source.open()
                    except Exception as exc:
                        self._lost(f"open failed: {exc}", backoff)
                        backoff = min(backoff * 2, self._backoff_max)
                        continue
                    opened = True
                    self.opens += 1
                    self._frame_shape = None
                try:
                    frame = self.source.read()
                except Exception as exc:
                    frame, error = None, f"read failed: {type(exc).__name__}: {exc}"
                else:
                    error = "no frame from camera"
                if frame is None:
                    opened = False
                    if self.source.finite and error == "no frame from camera":
                        self._set_state("ended")
                        log.info("camera source=%s ended after %d frames", self.source_name, self.frames)
                        return
                    self._lost(error, backoff)
                    backoff = min(backoff * 2, self._backoff_max)
                    continue
                if self.state.status != "ok":
                    if self.state.status == "lost":
                        log.info("camera source=%s recovered", self.source_name)
                    self._set_state("ok")
                backoff = self._backoff_initial
                self._handle_frame(frame, on_scan)
        finally:
            self._close_source()
            self.finished.set()

    RATE_WINDOW_S = 2.0

    def frame_rate(self) -> float:
        """Frames per second over the last completed window of about two seconds (0.0 before the first)."""
        return self._rate

    def _count_frame(self) -> None:
        """Count a frame read (decoded or dropped) and roll the frame-rate window."""
        self.frames += 1
        now = self._clock()
        if self._rate_mark is None:
            self._rate_mark = (now, self.frames)
        elif now - self._rate_mark[0] >= self.RATE_WINDOW_S:
            self._rate = (self.frames - self._rate_mark[1]) / (now - self._rate_mark[0])
            self._rate_mark = (now, self.frames)

    def _drop(self, why: str) -> None:
        """Count a dropped frame; log it unless a drop was logged less than a minute ago."""
        self.frames_dropped += 1
        self._drops_unlogged += 1
        now = self._clock()
        if self._drop_logged_at is not None and now - self._drop_logged_at < DROP_LOG_INTERVAL_S:
            return
        log.warning(
            "camera source=%s decoder=%s dropped %d frame(s) (%d in all); last: %s",
            self.source_name, self.decoder.name, self._drops_unlogged, self.frames_dropped, why,
        )
        self._drop_logged_at, self._drops_unlogged = now, 0

    def snapshot_jpeg(self, quality: int = 60) -> bytes | None:
        """The last frame read, grayscale at half size, as a small JPEG; None before the first frame, for a
        frame that cannot be shown, or without OpenCV to encode it (``webcam`` extra)."""
        frame = self._last_frame
        if frame is None:
            return None
        try:
            small = to_gray(frame)[::2, ::2].copy()
        except ValueError:
            return None
        return encode_jpeg(small, quality)

    def _handle_frame(self, frame: Frame, on_scan: ScanCallback) -> None:
        self._last_frame = frame
        shape = getattr(frame, "shape", None)
        if isinstance(shape, tuple):
            shape = shape[:2]  # (height, width): a source may mix grayscale and colour frames
            if self._frame_shape is None:
                self._frame_shape = shape
            elif shape != self._frame_shape:
                self._drop(f"frame of shape {shape}, the camera gave {self._frame_shape}")
                self._count_frame()
                return
        try:
            texts = self.decoder.decode(frame)
        except Exception as exc:
            self._drop(f"{type(exc).__name__}: {exc}")
            self._count_frame()
            return
        if texts:
            self.frames_with_codes += 1
            now = self._clock()
            self.last_decode_at = now
            for text in self.dedup.filter(texts, now):
                event = validate_text(text, self.source_name, now, self.max_length)
                self.events += 1
                try:
                    on_scan(event)
                except Exception:
                    log.exception("scan handler failed; camera scanner keeps reading")
        self._count_frame()  # last: a reader of `frames` knows this frame's events were delivered
