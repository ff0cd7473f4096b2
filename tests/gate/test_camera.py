"""The camera scanner: realistic frames read by both decoders, de-duplication, and a camera that vanishes.

Frames are generated (segno, Pillow/OpenCV, numpy) with fixed seeds: codes on a phone screen or paper ticket,
warped, blurred, low in contrast and noisy, and empty scenes. The Pi camera is the only fake (it cannot exist
here); everything else runs for real: zxing-cpp, ZBar, OpenCV reading files, threads.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from gate.camera import (
    CameraScanner,
    CameraState,
    Deduplicator,
    FrameSource,
    ImageDirectorySource,
    MemorySource,
    OpenCVSource,
    Picamera2Source,
    PyzbarDecoder,
    VideoFileSource,
    ZxingDecoder,
    build_camera_scanner,
    build_decoder,
    to_gray,
)
from gate.camera.synthetic import (
    EMPTY_KINDS,
    render_code_frame,
    render_empty_frame,
    sample_compact_codes,
)
from gate.scanners.base import ScanEvent, Scanner
from protocols.codes import (
    SIGNED_PREFIX,
    Scheme,
    SignedClaims,
    check_compact,
    encode_signed,
    scheme_of,
    verify_signed,
)
from protocols.reasons import Reason
from tests.conftest import wait_until

COMPACT = "7K3MPQRSTVWXY2"
_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # fixed: the frames must not vary between runs
_START = datetime(2025, 3, 14, 7, 30, tzinfo=UTC)
SIGNED = encode_signed(
    SignedClaims(
        key_id=3,
        meeting_id=125,
        attendee_id=987654,
        valid_from=_START,
        valid_until=_START + timedelta(hours=9),
    ),
    _KEY,
)
OTHER = sample_compact_codes(1, seed=11)[0]


def test_the_codes_under_test_are_real_codes() -> None:
    """The frames carry a compact code and a genuine 136-character signed code that verifies."""
    assert len(COMPACT) == 14 and scheme_of(COMPACT) is Scheme.COMPACT
    assert check_compact(OTHER) is Reason.OK
    assert len(SIGNED) == 136 and SIGNED.startswith(SIGNED_PREFIX)
    assert verify_signed(SIGNED, {3: _KEY.public_key()}, _START + timedelta(hours=1)).reason is Reason.OK
    assert segno.make_qr(SIGNED, error="m", boost_error=False).version <= 6


# --- decoders --------------------------------------------------------------------------------------------

DECODERS: dict[str, Callable[[], Any]] = {"zxing": ZxingDecoder, "pyzbar": PyzbarDecoder}


def _steady_frames() -> list[tuple[np.ndarray, str, str]]:
    """Codes held fairly square to the camera: QR compact, QR signed, Code128 compact; a third in BGR."""
    frames = []
    for i in range(8):
        frames.append((render_code_frame(COMPACT, 100 + i, "qr", i % 3 == 0, steady=True), COMPACT, "qr"))
        frames.append((render_code_frame(SIGNED, 200 + i, "qr", i % 3 == 1, steady=True), SIGNED, "qr"))
        frames.append(
            (render_code_frame(COMPACT, 300 + i, "code128", i % 3 == 2, steady=True), COMPACT, "c128")
        )
    return frames


def _hard_frames() -> list[tuple[np.ndarray, str]]:
    """Codes turned up to 25 degrees, perspective-tilted, blurred up to sigma 1.3, low contrast, noisy."""
    frames = []
    for i in range(12):
        frames.append((render_code_frame(COMPACT, 400 + i, "qr", i % 4 == 0), COMPACT))
        frames.append((render_code_frame(SIGNED, 500 + i, "qr", i % 4 == 1), SIGNED))
    for i in range(6):
        frames.append((render_code_frame(OTHER, 600 + i, "code128", i % 2 == 0), OTHER))
    return frames


def _empty_frames() -> list[np.ndarray]:
    return [render_empty_frame(700 + i, kind, color=i % 2 == 1) for i in range(6) for kind in EMPTY_KINDS]


@pytest.fixture(scope="module")
def steady_frames() -> list[tuple[np.ndarray, str, str]]:
    return _steady_frames()


@pytest.fixture(scope="module")
def hard_frames() -> list[tuple[np.ndarray, str]]:
    return _hard_frames()


@pytest.fixture(scope="module")
def empty_frames() -> list[np.ndarray]:
    return _empty_frames()


def test_frames_are_realistic_camera_frames(steady_frames: list, empty_frames: list) -> None:
    """640x480, grayscale or BGR uint8, and low in contrast (no pure black/white code on a white page)."""
    for frame, _, _ in steady_frames[:6]:
        assert frame.shape in ((480, 640), (480, 640, 3)) and frame.dtype == np.uint8
        gray = to_gray(frame)
        assert gray.max() < 250 and gray.min() > 5
    assert {f.shape for f in empty_frames} == {(480, 640), (480, 640, 3)}


@pytest.mark.parametrize("name", DECODERS)
def test_every_steady_code_frame_decodes_to_exactly_the_code(name: str, steady_frames: list) -> None:
    decoder = DECODERS[name]()
    misses = [
        (i, kind) for i, (frame, code, kind) in enumerate(steady_frames) if decoder.decode(frame) != [code]
    ]
    assert misses == []


def test_zxing_decodes_every_hard_frame(hard_frames: list) -> None:
    decoder = ZxingDecoder()
    misses = [i for i, (frame, code) in enumerate(hard_frames) if decoder.decode(frame) != [code]]
    assert misses == []


def test_pyzbar_reads_most_hard_frames_and_never_misreads(hard_frames: list) -> None:
    """ZBar is weaker on tilted, blurred codes (documented); it may miss a frame but must not read wrongly."""
    decoder = PyzbarDecoder()
    results = [(decoder.decode(frame), code) for frame, code in hard_frames]
    assert all(found in ([], [code]) for found, code in results)
    assert sum(found == [code] for found, code in results) >= 0.8 * len(results)


@pytest.mark.parametrize("name", DECODERS)
def test_no_false_reads_on_empty_frames(name: str, empty_frames: list) -> None:
    decoder = DECODERS[name]()
    reads = [(i, found) for i, frame in enumerate(empty_frames) if (found := decoder.decode(frame))]
    assert reads == []


def _plain_qr_frame(data: str | bytes) -> np.ndarray:
    """A QR rendered with Pillow on a grey 640x480 frame (byte mode for bytes)."""
    qr = segno.make_qr(data, error="m", encoding="utf-8" if isinstance(data, str) else None)
    page = Image.new("L", (640, 480), 170)
    matrix = np.pad(np.array([list(row) for row in qr.matrix], dtype=bool), 4)
    code = Image.fromarray(np.where(matrix, 30, 225).astype(np.uint8)).resize(
        (matrix.shape[1] * 6, matrix.shape[0] * 6), Image.Resampling.NEAREST
    )
    page.paste(code, (80, 40))
    return np.asarray(page)


@pytest.mark.parametrize("name", DECODERS)
def test_decoders_return_utf8_text_and_skip_bytes_that_are_not_utf8(name: str) -> None:
    decoder = DECODERS[name]()
    assert decoder.decode(_plain_qr_frame("Đại biểu số 7")) == ["Đại biểu số 7"]
    assert decoder.decode(_plain_qr_frame(b"\xff\xfe\x00\x81 not text")) == []


@pytest.mark.parametrize("name", DECODERS)
def test_two_codes_in_one_frame_are_both_read(name: str) -> None:
    left = to_gray(render_code_frame(COMPACT, 1, "qr", steady=True))
    right = to_gray(render_code_frame(OTHER, 2, "qr", steady=True))
    both = np.hstack([left, right])
    assert sorted(DECODERS[name]().decode(both)) == sorted([COMPACT, OTHER])


@pytest.mark.parametrize(
    "frame",
    [np.zeros((480, 640), np.float32), np.zeros((0, 0), np.uint8), np.zeros(10, np.uint8), "not an image"],
    ids=["float", "empty", "1-d", "str"],
)
def test_bad_frames_are_refused_with_value_error(frame: Any) -> None:
    with pytest.raises(ValueError):
        to_gray(frame)
    with pytest.raises(ValueError):
        ZxingDecoder().decode(frame)


def test_build_decoder_rejects_unknown_names() -> None:
    assert isinstance(build_decoder("pyzbar"), PyzbarDecoder)
    with pytest.raises(ValueError, match="unknown decoder"):
        build_decoder("opencv")
    with pytest.raises(ValueError, match="unsupported symbologies"):
        ZxingDecoder(symbologies=["aztec"])  # type: ignore[list-item]


# --- deduplication ---------------------------------------------------------------------------------------


def test_dedup_emits_a_code_held_in_view_once() -> None:
    dedup = Deduplicator(window_s=2.0)
    emitted = [dedup.filter([COMPACT], now=t / 10) for t in range(0, 50)]  # 5 s in view, 10 frames/s
    assert emitted[0] == [COMPACT] and all(e == [] for e in emitted[1:])


def test_dedup_emits_a_different_code_at_once_and_not_twice() -> None:
    dedup = Deduplicator(window_s=2.0)
    assert dedup.filter([COMPACT], now=0.0) == [COMPACT]
    assert dedup.filter([OTHER], now=0.1) == [OTHER]
    assert dedup.filter([COMPACT, OTHER], now=0.2) == []
    assert dedup.filter([SIGNED, SIGNED], now=0.3) == [SIGNED]


def test_dedup_window_expires_after_the_code_left_view() -> None:
    dedup = Deduplicator(window_s=2.0)
    assert dedup.filter([COMPACT], now=10.0) == [COMPACT]
    assert dedup.filter([], now=11.0) == []
    assert dedup.filter([COMPACT], now=11.99) == []  # back within the window: still the same scan
    assert dedup.filter([COMPACT], now=13.98) == []  # the window restarted at 11.99
    assert dedup.filter([COMPACT], now=16.0) == [COMPACT]  # out of view for 2.02 s: a new scan


# --- scanner thread --------------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedSource(FrameSource):
    """A camera driven by the test: queued frames are returned, queued exceptions raised, None returned as is.

    ``open_failures`` makes the next opens fail like an unplugged camera.
    """

    def __init__(self) -> None:
        self.items: queue.Queue[Any] = queue.Queue()
        self.open_failures = 0
        self.opens = 0
        self.closes = 0
        self.is_open = False
        self.shutdown = threading.Event()
        self.name = "scripted"

    def open(self) -> None:
        if self.open_failures:
            self.open_failures -= 1
            raise OSError("no camera at /dev/video0")
        self.opens += 1
        self.is_open = True

    def read(self) -> np.ndarray | None:
        assert self.is_open, "read on a closed camera"
        while not self.shutdown.is_set():
            try:
                item = self.items.get(timeout=0.02)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            return item
        return np.zeros((48, 64), np.uint8)

    def close(self) -> None:
        self.closes += 1
        self.is_open = False


class Harness:
    """A started CameraScanner over a ScriptedSource, with its events and state changes recorded."""

    def __init__(self, **kwargs: Any) -> None:
        self.clock = FakeClock()
        self.source = ScriptedSource()
        self.events: list[ScanEvent] = []
        self.states: list[CameraState] = []
        self.scanner = CameraScanner(
            self.source,
            ZxingDecoder(),
            clock=self.clock,
            on_state=self.states.append,
            backoff_initial=0.01,
            backoff_max=0.04,
            **kwargs,
        )
        self.scanner.start(self.events.append)

    def show(self, *frames: Any, at: float | None = None) -> None:
        """Move the clock to ``at`` and let the camera deliver ``frames``; wait until they were processed."""
        if at is not None:
            self.clock.now = 1000.0 + at
        for frame in frames:
            done = self.scanner.frames + 1
            self.source.items.put(frame)
            wait_until(lambda done=done: self.scanner.frames >= done)

    @property
    def texts(self) -> list[str | None]:
        return [e.text for e in self.events]

    def close(self) -> None:
        self.source.shutdown.set()
        self.scanner.close()


@pytest.fixture(scope="module")
def code_frames() -> dict[str, np.ndarray]:
    return {
        "a": render_code_frame(COMPACT, 1, "qr", steady=True),
        "a2": render_code_frame(COMPACT, 2, "qr", color=True, steady=True),
        "b": render_code_frame(OTHER, 3, "qr", steady=True),
        "signed": render_code_frame(SIGNED, 4, "qr", steady=True),
        "empty": render_empty_frame(5, "text"),
    }


@pytest.fixture
def harness() -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**kwargs: Any) -> Harness:
        made.append(Harness(**kwargs))
        return made[-1]

    yield make
    for h in made:
        h.close()


def test_camera_scanner_implements_the_gate_scanner_interface() -> None:
    assert issubclass(CameraScanner, Scanner)


def test_same_code_on_consecutive_frames_counts_once(
    harness: Callable[..., Harness], code_frames: dict
) -> None:
    h = harness(dedup_window_s=2.0)
    h.show(code_frames["a"], code_frames["a2"], code_frames["a"], at=0.0)
    h.show(code_frames["a"], at=0.5)
    h.show(code_frames["a"], at=1.9)
    h.show(code_frames["a"], at=3.5)  # still in view, never out of sight for 2 s
    assert h.texts == [COMPACT]
    event = h.events[0]
    assert event.reason is Reason.OK and event.source == "camera:scripted" and event.received_at == 1000.0
    assert h.scanner.state.status == "ok"


def test_a_different_code_is_emitted_at_once(harness: Callable[..., Harness], code_frames: dict) -> None:
    h = harness(dedup_window_s=2.0)
    h.show(code_frames["a"], at=0.0)
    h.show(code_frames["b"], at=0.1)
    h.show(code_frames["signed"], at=0.2)
    h.show(code_frames["a"], code_frames["b"], at=0.3)
    assert h.texts == [COMPACT, OTHER, SIGNED]


def test_code_is_emitted_again_after_the_window(harness: Callable[..., Harness], code_frames: dict) -> None:
    h = harness(dedup_window_s=2.0)
    h.show(code_frames["a"], at=0.0)
    h.show(code_frames["empty"], code_frames["empty"], at=1.0)
    h.show(code_frames["a"], at=1.5)  # back within the window: the same scan
    h.show(code_frames["empty"], at=2.5)
    h.show(code_frames["a"], at=3.6)  # out of view for 2.1 s: a new scan
    assert h.texts == [COMPACT, COMPACT]
    assert [e.received_at for e in h.events] == [1000.0, 1003.6]


def test_the_window_is_configurable(harness: Callable[..., Harness], code_frames: dict) -> None:
    h = harness(dedup_window_s=0.25)
    h.show(code_frames["a"], at=0.0)
    h.show(code_frames["a"], at=0.2)
    h.show(code_frames["a"], at=0.5)
    assert h.texts == [COMPACT, COMPACT]


def test_a_code_longer_than_max_length_is_refused(harness: Callable[..., Harness], code_frames: dict) -> None:
    h = harness(max_length=20)
    h.show(code_frames["signed"], code_frames["signed"], at=0.0)
    h.show(code_frames["a"], at=0.1)
    assert [(e.text, e.reason) for e in h.events] == [(None, Reason.TOO_LONG), (COMPACT, Reason.OK)]


def test_bad_frames_and_handler_errors_do_not_stop_the_scanner(code_frames: dict) -> None:
    source = ScriptedSource()
    calls: list[ScanEvent] = []

    def handler(event: ScanEvent) -> None:
        calls.append(event)
        raise RuntimeError("display crashed")

    scanner = CameraScanner(source, ZxingDecoder(), clock=FakeClock())
    scanner.start(handler)
    try:
        for frame in (np.zeros((480, 640), np.float64), code_frames["a"], code_frames["b"]):
            done = scanner.frames + 1
            source.items.put(frame)
            wait_until(lambda done=done: scanner.frames >= done)
        assert [e.text for e in calls] == [COMPACT, OTHER]
        assert scanner.state.status == "ok"
    finally:
        source.shutdown.set()
        scanner.close()
    assert scanner.state.status == "closed" and not source.is_open


def test_lost_camera_is_reported_and_reopened_with_backoff(
    harness: Callable[..., Harness], code_frames: dict, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gate.camera.scanner")
    h = harness(dedup_window_s=2.0)
    h.show(code_frames["a"], at=0.0)
    assert h.scanner.state.status == "ok" and h.source.opens == 1

    h.clock.now = 1005.0
    h.source.open_failures = 3  # unplugged: the read fails, then the camera cannot be opened three times
    h.source.items.put(OSError("VIDIOC_DQBUF: No such device"))
    wait_until(lambda: h.source.opens == 2)
    lost = [s for s in h.states if s.status == "lost"]
    assert lost[0].since == 1005.0 and "No such device" in (lost[0].detail or "")
    assert any(s.status == "lost" and "open failed" in (s.detail or "") for s in h.states)
    assert h.source.closes >= 4  # the camera was released after the failed read and each failed open
    assert any("lost" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)

    h.show(code_frames["b"], at=6.0)  # it came back
    assert h.scanner.state == CameraState("ok", 1006.0, None)
    assert any("recovered" in r.getMessage() for r in caplog.records)
    assert h.texts == [COMPACT, OTHER]
    assert [s.status for s in h.states][:2] == ["ok", "lost"] and h.states[-1].status == "ok"


def test_read_returning_none_counts_as_lost(harness: Callable[..., Harness], code_frames: dict) -> None:
    h = harness()
    h.show(code_frames["a"], at=0.0)
    h.clock.now = 1001.0
    h.source.items.put(None)
    wait_until(lambda: h.source.opens == 2)
    assert any(s == CameraState("lost", 1001.0, "no frame from camera") for s in h.states)
    h.show(code_frames["a"], at=1.5)  # the same code, still within the window: not a second scan
    assert h.texts == [COMPACT] and h.scanner.state.status == "ok"


def test_missing_usb_camera_is_lost_and_close_is_prompt() -> None:
    scanner = CameraScanner(OpenCVSource("/dev/video-missing-42"), ZxingDecoder(), backoff_initial=0.01)
    scanner.start(lambda event: None)
    wait_until(lambda: scanner.state.status == "lost")
    assert "no such camera device" in (scanner.state.detail or "")
    scanner.close()  # waits for the reader, which is in its retry backoff
    assert scanner.finished.is_set() and scanner.state.status == "closed"


# --- file sources ----------------------------------------------------------------------------------------


def _run_to_end(scanner: CameraScanner) -> list[ScanEvent]:
    events: list[ScanEvent] = []
    scanner.start(events.append)
    assert scanner.wait_finished(timeout=20)
    assert scanner.state.status == "ended"
    scanner.close()
    return events


def test_memory_source_ends_and_every_code_is_read_once(code_frames: dict) -> None:
    frames = [code_frames[k] for k in ("empty", "a", "a2", "a", "b", "b", "empty", "signed")]
    scanner = CameraScanner(MemorySource(frames), ZxingDecoder(), dedup_window_s=0.0)
    assert [e.text for e in _run_to_end(scanner)] == [COMPACT, COMPACT, COMPACT, OTHER, OTHER, SIGNED]
    events = _run_to_end(CameraScanner(MemorySource(frames), ZxingDecoder()))
    assert [e.text for e in events] == [COMPACT, OTHER, SIGNED]
    assert scanner.state.status == "closed"
    assert [e.text for e in _run_to_end(scanner)] == [COMPACT, COMPACT, COMPACT, OTHER, OTHER, SIGNED]  # restart


def test_image_directory_source_reads_files_in_order(tmp_path: Path, code_frames: dict) -> None:
    for i, key in enumerate(("b", "empty", "signed", "a2")):
        cv2.imwrite(str(tmp_path / f"frame-{i:02d}.png"), code_frames[key])
    (tmp_path / "frame-99.png").write_bytes(b"not a png")  # unreadable: skipped with a log line
    (tmp_path / "notes.txt").write_text("ignored")
    events = _run_to_end(CameraScanner(ImageDirectorySource(tmp_path), PyzbarDecoder()))
    assert [e.text for e in events] == [OTHER, SIGNED, COMPACT]


def test_image_directory_missing_is_lost_not_fatal(tmp_path: Path) -> None:
    scanner = CameraScanner(ImageDirectorySource(tmp_path / "nope"), ZxingDecoder(), backoff_initial=0.01)
    scanner.start(lambda event: None)
    wait_until(lambda: scanner.state.status == "lost")
    scanner.close()


def test_video_file_source_reads_a_recorded_clip(tmp_path: Path, code_frames: dict) -> None:
    path = tmp_path / "gate.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (640, 480), True)
    assert writer.isOpened()
    for key in ("empty", "a", "a", "a", "empty", "b", "b"):
        frame = code_frames[key]
        writer.write(frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    events = _run_to_end(CameraScanner(VideoFileSource(path), ZxingDecoder()))
    assert [e.text for e in events] == [COMPACT, OTHER]


# --- Pi camera and the factory ---------------------------------------------------------------------------


class FakePicamera2:
    """Stands in for picamera2.Picamera2 (no Pi camera here): YUV420 buffers whose Y plane is a code frame."""

    instances: ClassVar[list[FakePicamera2]] = []

    def __init__(self, camera_num: int) -> None:
        self.camera_num = camera_num
        self.config: dict[str, Any] | None = None
        self.started = False
        self.closed = False
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main: dict[str, Any], buffer_count: int) -> dict[str, Any]:
        return {"main": main, "buffer_count": buffer_count}

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def start(self) -> None:
        self.started = True

    def capture_array(self, stream: str) -> np.ndarray:
        luma = to_gray(render_code_frame(COMPACT, 9, "qr", steady=True))
        chroma = np.full((240, 640), 128, np.uint8)  # U and V planes below Y
        return np.vstack([luma, chroma])

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


def test_picamera2_source_hands_out_the_luma_plane() -> None:
    module = type("picamera2", (), {"Picamera2": FakePicamera2})
    source = Picamera2Source(camera_num=0, module=module)
    with source:
        camera = FakePicamera2.instances[-1]
        assert camera.started and camera.config == {
            "main": {"size": (640, 480), "format": "YUV420"},
            "buffer_count": 4,
        }
        frame = source.read()
        assert frame is not None and frame.shape == (480, 640)
        assert ZxingDecoder().decode(frame) == [COMPACT]
    assert camera.closed and source.read() is None


def test_picamera2_missing_off_the_pi_is_a_clear_error() -> None:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="picamera2 is not installed"):
            Picamera2Source().open()
    else:  # pragma: no cover - only on a Pi
        pytest.skip("picamera2 is installed")


def test_build_camera_scanner_from_config_values(tmp_path: Path) -> None:
    scanner = build_camera_scanner(camera="images", device=str(tmp_path), decoder="pyzbar", dedup_ms=1500)
    assert isinstance(scanner.source, ImageDirectorySource) and isinstance(scanner.decoder, PyzbarDecoder)
    assert scanner.dedup.window_s == 1.5
    assert isinstance(build_camera_scanner(camera="opencv", device="0").source, OpenCVSource)
    assert isinstance(build_camera_scanner(camera="picamera2").source, Picamera2Source)
    for bad in (
        {"camera": "webcam"},
        {"camera": "images"},
        {"camera": "picamera2", "device": "/dev/video0"},
        {"decoder": "quirc"},
        {"dedup_ms": -1},
        {"width": 0},
    ):
        with pytest.raises(ValueError):
            build_camera_scanner(**bad)
