"""The multi-pass camera decoder on hard frames, its settings, and bad frames that never stop the scanner.

Frames come from ``gate/camera/hard_frames.py`` (perspective, optics, per-pixel noise, real JPEG) with fixed
seeds; zxing-cpp, ZBar and the scanner thread run for real. The benchmark's ``--quick`` run is smoke-tested.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gate.camera import CameraScanner, MemorySource, ZxingDecoder, build_camera_scanner
from gate.camera.decoders import BarcodeDecoder
from gate.camera.hard_frames import (
    CONDITIONS,
    EMPTY_KINDS,
    HardFrame,
    make_hard_frames,
    render_empty_frame,
    render_hard_frame,
)
from gate.camera.synthetic import sample_compact_codes, sample_signed_code
from gate.config import load_config
from gate.scanners import build_scanner
from gate.scanners.base import ScanEvent

ROOT = Path(__file__).resolve().parents[2]
COMPACT = sample_compact_codes(4, seed=5)
SIGNED = [sample_signed_code(5, attendee_id=77 + i) for i in range(2)]


@pytest.fixture(scope="module")
def frames() -> list[HardFrame]:
    return make_hard_frames(3, COMPACT, SIGNED, seed=9, empty=12)


def _hits(decoder: BarcodeDecoder, frames: list[HardFrame]) -> list[bool]:
    return [f.expected in decoder.decode(f.frame) for f in frames if f.expected]


def test_hard_frames_are_jpeg_camera_frames_of_every_condition(frames: list[HardFrame]) -> None:
    """640x480 grayscale uint8; every condition with compact codes, QR conditions with signed codes too."""
    assert {f.frame.shape for f in frames} == {(480, 640)} and {f.frame.dtype for f in frames} == {np.dtype(np.uint8)}
    seen = {(f.condition, f.scheme) for f in frames if f.expected}
    assert {c for c, s in seen if s == "compact"} == set(CONDITIONS)
    assert {c for c, s in seen if s == "signed"} == set(CONDITIONS) - {"code128_far"}
    assert {f.condition for f in frames if f.expected is None} == set(EMPTY_KINDS)
    dark = render_hard_frame(COMPACT[0], "low_light", 3)
    assert dark.mean() < render_hard_frame(COMPACT[0], "baseline", 3).mean() - 30
    assert render_empty_frame("keyboard", 1).std() > 10  # a texture, not a flat grey


def test_multi_pass_reads_every_frame_raw_zxing_reads_and_more(frames: list[HardFrame]) -> None:
    """The default (raw, then denoised) never reads less than one raw pass; the denoised pass adds frames."""
    raw = _hits(ZxingDecoder(passes=("raw",)), frames)
    default = ZxingDecoder()
    multi = _hits(default, frames)
    assert default.passes == ("raw", "denoise")
    assert all(m for r, m in zip(raw, multi, strict=True) if r)
    assert sum(multi) > sum(raw)
    assert default.pass_hits["raw"] == sum(raw) and default.pass_hits["denoise"] == sum(multi) - sum(raw)


def test_no_pass_reads_anything_on_empty_frames_and_look_alikes(frames: list[HardFrame]) -> None:
    decoder = ZxingDecoder(passes=("raw", "denoise", "global", "upscale"))
    assert [decoder.decode(f.frame) for f in frames if f.expected is None] == [[]] * 12


def test_the_benchmarks_signed_codes_are_the_same_in_every_run() -> None:
    """The hard-frame benchmark draws its codes from a seed: both versions give the same text for the same seed
    and attendee (a version 2 signature's nonce randomness too), so runs measure the same frames."""
    for version in (1, 2):
        assert sample_signed_code(1, attendee_id=1000, version=version) == sample_signed_code(
            1, attendee_id=1000, version=version)
        assert sample_signed_code(1, attendee_id=1000, version=version) != sample_signed_code(
            1, attendee_id=1001, version=version)


def test_alternate_runs_one_extra_pass_per_frame_in_turn() -> None:
    decoder = ZxingDecoder(passes=("raw", "denoise", "upscale", "global"), alternate=True)
    assert [decoder.schedule()[2] for _ in range(4)] == ["upscale", "global", "upscale", "global"]
    assert ZxingDecoder(passes=("raw", "denoise", "global")).schedule() == ("raw", "denoise", "global")


@pytest.mark.parametrize("passes", [(), ("raw", "raw"), ("sharpen",)])
def test_bad_passes_are_refused(passes: Any) -> None:
    with pytest.raises(ValueError, match="passes"):
        ZxingDecoder(passes=passes)


def test_symbologies_and_passes_come_from_the_gate_config(tmp_path: Path) -> None:
    """A QR-only site: the Code 128 ticket is not read, the QR is; the passes are the configured ones."""
    path = tmp_path / "gate.toml"
    example = (ROOT / "firmware_config" / "camera.toml").read_text()
    gate_default = 'passes = ["raw", "denoise", "deblur"]'
    path.write_text(example.replace('symbologies = ["qr", "code128"]', 'symbologies = ["qr"]')
                    .replace(gate_default, 'passes = ["raw", "denoise", "upscale"]')
                    .replace("alternate_passes = false", "alternate_passes = true")
                    .replace("extra_passes_every = 1", "extra_passes_every = 3"))
    scanner = build_scanner(load_config(path).scanner)
    assert isinstance(scanner, CameraScanner) and isinstance(scanner.decoder, ZxingDecoder)
    decoder = scanner.decoder
    assert decoder.symbologies == ("qr",) and decoder.passes == ("raw", "denoise", "upscale") and decoder.alternate
    assert decoder.extra_every == 3
    ticket = next(s for s in range(40) if COMPACT[0] in ZxingDecoder().decode(
        render_hard_frame(COMPACT[0], "code128_far", s)))
    assert decoder.decode(render_hard_frame(COMPACT[0], "code128_far", ticket)) == []
    assert decoder.decode(render_hard_frame(COMPACT[0], "baseline", 1)) == [COMPACT[0]]
    default = build_camera_scanner(camera="images", device=str(tmp_path)).decoder
    assert isinstance(default, ZxingDecoder) and default.symbologies == ("qr", "code128")


def test_duplicate_passes_in_config_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    example = (ROOT / "firmware_config" / "camera.toml").read_text()
    path.write_text(example.replace('passes = ["raw", "denoise", "deblur"]', 'passes = ["raw", "raw"]'))
    with pytest.raises(Exception, match=r"scanner\.passes"):
        load_config(path)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Exploding(BarcodeDecoder):
    """A decoder that raises on a frame whose first pixel is 13 and otherwise defers to zxing-cpp."""

    name = "exploding"

    def __init__(self) -> None:
        self.inner = ZxingDecoder()

    def decode(self, frame: np.ndarray) -> list[str]:
        if isinstance(frame, np.ndarray) and frame.ndim == 2 and frame[0, 0] == 13:
            raise RuntimeError("decoder blew up")
        return self.inner.decode(frame)


def test_bad_frames_are_dropped_counted_and_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    """Wrong type, wrong size, garbage and a raising decoder: dropped and counted; the code after is read."""
    good = render_hard_frame(COMPACT[1], "baseline", 2)
    raising = good.copy()
    raising[0, 0] = 13
    clock = FakeClock()
    bad: list[Any] = [np.zeros((480, 640), np.float64), np.zeros((240, 320), np.uint8), b"\x00garbage",
                      np.zeros((480, 640, 7), np.uint8), raising]
    script = iter([good, *bad])

    class Source(MemorySource):
        def read(self) -> Any:
            item = next(script, None)
            clock.now += 10.0  # ten seconds a frame: the six drops span a minute
            return item

    events: list[ScanEvent] = []
    scanner = CameraScanner(Source([]), Exploding(), dedup_window_s=0.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="gate.camera.scanner"):
        scanner.start(events.append)
        assert scanner.wait_finished(timeout=30)
    scanner.close()
    assert [e.text for e in events] == [COMPACT[1]]
    assert scanner.frames == 6 and scanner.frames_dropped == 5 and scanner.last_decode_at == 1010.0
    drops = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 1 and "1 frame(s) (1 in all)" in drops[0]  # the next five fall within the minute


def test_drops_are_logged_again_after_a_minute_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    scanner = CameraScanner(MemorySource([]), ZxingDecoder(), clock=clock)
    with caplog.at_level(logging.WARNING, logger="gate.camera.scanner"):
        for step in (0.0, 20.0, 20.0, 20.0, 1.0):
            clock.now += step
            scanner._handle_frame("not a frame", lambda _: None)  # type: ignore[arg-type]
    drops = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 2 and "dropped 1 frame(s) (1 in all)" in drops[0]
    assert "dropped 3 frame(s) (4 in all)" in drops[1] and scanner.frames_dropped == 5


@pytest.mark.slow
def test_benchmark_quick_run_reports_every_condition_and_option() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "camera_decode.py", "--quick"], cwd=ROOT / "benchmarks", env=env,
        capture_output=True, text=True, timeout=600, check=True,
    )
    report = result.stdout
    for condition in CONDITIONS:
        assert f"| {condition}/compact | 3 |" in report
    assert "| empty |" in report and "| raw zxingcpp.read_barcodes |" in report
    assert "| raw → denoise (default before) |" in report and "Union of raw zxing-cpp and raw pyzbar" in report
    assert "| raw → denoise → deblur (gate default) |" in report and "A code held up" in report
    assert "| raw → denoise → deblur, 1 frame in 4 |" in report  # the default until the deblur got cheap
    # the cost on code frames, also on those the old single pass read (what "no more than before" compares)
    header = next(line for line in report.splitlines() if line.startswith("| option | decoded |"))
    assert "| ms code frames median / p95 | ms on the code frames the old single pass read, median / p95 |" in header
    row = next(line for line in report.splitlines() if line.startswith("| raw → denoise → deblur (gate default) | "))
    assert row.count("|") == header.count("|")


def test_benchmark_held_only_reports_reads_within_1_3_5_and_10_frames() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "camera_decode.py", "--held-only", "--held", "1"], cwd=ROOT / "benchmarks", env=env,
        capture_output=True, text=True, timeout=600, check=True,
    )
    report = result.stdout
    assert "2 sequences of 10 frames" in report and "within the first 1 / 3 / 5 / 10 frames" in report
    rows = [line for line in report.splitlines() if line.startswith("| raw → denoise → deblur (gate default)")]
    assert len(rows) == 1 and rows[0].count(" of 1 |") == 2  # one sequence per signed scheme
    assert "| raw pyzbar |" not in report  # only the references and the deblur schedules
