"""Benchmark camera decoding on hard frames: every pipeline option against raw zxing-cpp and pyzbar, same run.

Generates photograph-like 640x480 frames (``gate/camera/hard_frames.py``: perspective, optics, per-pixel noise,
real JPEG) for each condition: baseline, small, motion blur, low light, glare, phone-screen moire, tilt up to
50 degrees, dark mode, each with compact codes, signed codes of version 1 (136 characters, QR version 6) and of
version 2 (149 digits, QR version 4), and Code 128 on paper at a distance (compact codes);
plus empty frames and look-alike textures (text, stripes, keyboards, fabric, a phone showing text). Then it
decodes every frame with each option, timing each frame, and reports per condition: decoded, wrong reads,
false reads, and ms/frame median and p95 on one core; the totals with ratios against raw
``zxingcpp.read_barcodes`` and against the union of raw zxing-cpp and pyzbar; and the whole ``CameraScanner``
(thread, de-duplication, events) over the same frames in frames/s.

    PYTHONPATH=. python benchmarks/camera_decode.py [--per-condition 50] [--seed 1] [--quick]

Targets (issue 15): on every condition at least what raw zxing-cpp decodes; overall >= 95 % of the union of
raw zxing-cpp and pyzbar; 0 false reads; >= 100 frames/s; empty frames at most 2x the cost of the single
denoised pass of before; signed codes >= 90 % at 75-110 px and under motion blur.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from gate.camera import CameraScanner, MemorySource, PyzbarDecoder, ZxingDecoder
from gate.camera.decoders import BarcodeDecoder
from gate.camera.hard_frames import CONDITIONS, HardFrame, make_hard_frames, render_hard_frame
from gate.camera.synthetic import sample_compact_codes, sample_signed_code
from gate.config import ScannerSection
from gate.scanners.base import ScanEvent
from protocols.reasons import Reason


@dataclass
class Score:
    """What one option did on one group of frames."""

    frames: int = 0
    decoded: int = 0
    wrong: int = 0
    false_reads: int = 0
    ms: list[float] = field(default_factory=list)
    """CPU time of this thread per frame (``time.thread_time``): what a core spends, whatever the machine load."""
    wall_ms: list[float] = field(default_factory=list)
    hits: list[bool] = field(default_factory=list)


class RawZxing(BarcodeDecoder):
    """``zxingcpp.read_barcodes`` on the frame as it comes, with its defaults (the reference)."""

    name = "zxing-raw"

    def __init__(self) -> None:
        import zxingcpp

        self._zxing = zxingcpp
        self._formats = zxingcpp.BarcodeFormats(
            [zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.Code128]
        )

    def decode(self, frame: np.ndarray) -> list[str]:
        """Return the valid texts zxing-cpp reads in ``frame``."""
        return [r.text for r in self._zxing.read_barcodes(frame, formats=self._formats) if r.valid]


def options() -> list[tuple[str, Callable[[], BarcodeDecoder]]]:
    """Every decoder option measured, the references first."""
    return [
        ("raw zxingcpp.read_barcodes", RawZxing),
        ("raw pyzbar", lambda: PyzbarDecoder(denoise=False)),
        ("before: denoise, one pass", lambda: ZxingDecoder(passes=("denoise",))),
        ("raw → denoise (default before)", lambda: ZxingDecoder(passes=("raw", "denoise"))),
        ("raw → denoise → global", lambda: ZxingDecoder(passes=("raw", "denoise", "global"))),
        ("raw → denoise → upscale", lambda: ZxingDecoder(passes=("raw", "denoise", "upscale"))),
        (
            "raw → denoise → upscale|global alternating",
            lambda: ZxingDecoder(passes=("raw", "denoise", "upscale", "global"), alternate=True),
        ),
        ("raw → denoise → flatten", lambda: ZxingDecoder(passes=("raw", "denoise", "flatten"))),
        (deblur_label(1), lambda: ZxingDecoder(passes=("raw", "denoise", "deblur"))),
        ("raw → denoise → flatten → deblur", lambda: ZxingDecoder(passes=("raw", "denoise", "flatten", "deblur"))),
        (
            "raw → denoise → flatten|deblur alternating",
            lambda: ZxingDecoder(passes=("raw", "denoise", "flatten", "deblur"), alternate=True),
        ),
        (deblur_label(2), lambda: ZxingDecoder(passes=("raw", "denoise", "deblur"), extra_every=2)),
        (deblur_label(3), lambda: ZxingDecoder(passes=("raw", "denoise", "deblur"), extra_every=3)),
        (deblur_label(4), lambda: ZxingDecoder(passes=("raw", "denoise", "deblur"), extra_every=4)),
    ]


GATE_EXTRA_EVERY = ScannerSection.model_fields["extra_passes_every"].default
"""How often a gate runs the passes after the second by default (``[scanner] extra_passes_every``)."""


def deblur_label(every: int) -> str:
    """The row of raw → denoise → deblur with the deblur on one frame in ``every``, marked when a gate's default."""
    label = "raw → denoise → deblur" + (f", 1 frame in {every}" if every > 1 else "")
    return label + (" (gate default)" if every == GATE_EXTRA_EVERY else "")


GATE_DEFAULT = deblur_label(GATE_EXTRA_EVERY)


def group_of(frame: HardFrame) -> str:
    """The report row of a frame: ``condition/scheme``, or ``empty`` for frames without a code."""
    return "empty" if frame.expected is None else f"{frame.condition}/{frame.scheme}"


TARGET_GROUPS = ("signed 75-110 px", "signed-v2 75-110 px", "motion_blur/signed", "motion_blur/signed-v2")


def keys_of(frame: HardFrame) -> list[str]:
    """The report rows a frame counts in: its group, all, codes or empties, and the signed-code targets."""
    keys = [group_of(frame), "all", "codes" if frame.expected else "empties"]
    if frame.condition == "small" and frame.scheme.startswith("signed") and 75 <= frame.span <= 110:
        keys.append(f"{frame.scheme} 75-110 px")
    return keys


def score_all(decoder: BarcodeDecoder, frames: list[HardFrame]) -> dict[str, Score]:
    """Decode every frame once, timing each; return the score per group and ``all``."""
    scores: dict[str, Score] = {}
    for frame in frames:
        started, cpu_started = time.perf_counter(), time.thread_time()
        texts = decoder.decode(frame.frame)
        cpu = 1000 * (time.thread_time() - cpu_started)
        elapsed = 1000 * (time.perf_counter() - started)
        for key in keys_of(frame):
            score = scores.setdefault(key, Score())
            score.frames += 1
            score.ms.append(cpu)
            score.wall_ms.append(elapsed)
            if frame.expected is None:
                score.false_reads += bool(texts)
            else:
                hit = frame.expected in texts
                score.decoded += hit
                score.hits.append(hit)
                score.wrong += any(t != frame.expected for t in texts)
    return scores


def pipeline_fps(decoder: BarcodeDecoder, frames: list[HardFrame]) -> tuple[float, float, int]:
    """Run a CameraScanner over the frames from memory; return frames/s of wall time and of the process's CPU
    time (the machine's load left out), and the number of OK events."""
    events: list[ScanEvent] = []
    scanner = CameraScanner(MemorySource([f.frame for f in frames]), decoder, dedup_window_s=0.0)
    started, cpu_started = time.perf_counter(), time.process_time()
    scanner.start(events.append)
    if not scanner.wait_finished(timeout=900):
        raise RuntimeError("pipeline did not finish")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    scanner.close()
    return len(frames) / seconds, len(frames) / cpu, sum(e.reason is Reason.OK for e in events)


HELD_FRAMES = 10
EMPTY_REPS = 9


def empty_costs(factories: dict[str, Callable[[], BarcodeDecoder]], empties: list[HardFrame],
                reps: int = EMPTY_REPS) -> dict[str, float]:
    """Per option, the CPU ms an empty frame costs on average: the median over ``reps`` rounds of the mean over
    the empty frames. The rounds interleave the options (each round runs every option over every frame), so a
    burst of load on the machine falls on all of them alike; a decoder keeps its turn of passes across rounds.
    Each round takes the frames in a new random order (the same for every option): the empty kinds come in a
    fixed rotation of six, and "one frame in 2 or 3" would otherwise always or never land on the same kinds."""
    decoders = {label: factory() for label, factory in factories.items()}
    rounds: dict[str, list[float]] = {label: [] for label in decoders}
    rng = np.random.default_rng(7)
    for _ in range(reps):
        order = [empties[i] for i in rng.permutation(len(empties))]
        for label, decoder in decoders.items():
            cpu_started = time.thread_time()
            for frame in order:
                decoder.decode(frame.frame)
            rounds[label].append(1000 * (time.thread_time() - cpu_started) / len(empties))
    return {label: statistics.median(values) for label, values in rounds.items()}


def held_sequences(count: int, codes: dict[str, list[str]], seed: int) -> list[tuple[str, str, list[np.ndarray]]]:
    """``count`` codes per scheme, each held up under motion blur for :data:`HELD_FRAMES` frames.

    Each frame of a sequence is drawn independently from the ``motion_blur`` condition (its own pose, blur
    length and angle, noise and JPEG quality): a hand that shakes differently from frame to frame.
    """
    sequences: list[tuple[str, str, list[np.ndarray]]] = []
    for scheme, texts in codes.items():
        for i in range(count):
            text = texts[i % len(texts)]
            base = seed * 1_000_003 + 700_000 + 1000 * len(sequences)
            sequences.append((scheme, text, [render_hard_frame(text, "motion_blur", base + k)
                                             for k in range(HELD_FRAMES)]))
    return sequences


def score_held(decoder: BarcodeDecoder, sequences: list[tuple[str, str, list[np.ndarray]]]) -> dict[str, list[int]]:
    """Per scheme, the index of the first frame of each sequence that read its code (HELD_FRAMES if none).

    Every frame is decoded, as a camera would, so a decoder's turn of passes runs on across sequences."""
    firsts: dict[str, list[int]] = {}
    for scheme, text, frames in sequences:
        first = HELD_FRAMES
        for k, frame in enumerate(frames):
            if text in decoder.decode(frame) and first == HELD_FRAMES:
                first = k
        firsts.setdefault(scheme, []).append(first)
    return firsts


def held_report(held: dict[str, dict[str, list[int]]]) -> list[str]:
    """The held-up code table: how many sequences were read within 1, 3, 5 and 10 frames."""
    schemes = list(next(iter(held.values())))
    lines = ["", f"A code held up under motion blur ({HELD_FRAMES} frames each, blur drawn anew per frame): "
             "sequences read within the first 1 / 3 / 5 / 10 frames:", "",
             "| option | " + " | ".join(schemes) + " |", "| --- | " + " | ".join("---:" for _ in schemes) + " |"]
    for label, firsts in held.items():
        cells = []
        for scheme in schemes:
            values = firsts[scheme]
            cells.append(" / ".join(str(sum(v < n for v in values)) for n in (1, 3, 5, HELD_FRAMES))
                         + f" of {len(values)}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {float(np.percentile(values, 95)):.1f}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def report(results: dict[str, dict[str, Score]], frames: list[HardFrame], argv: list[str] | None,
           extra: list[str], empty_cost: dict[str, float]) -> list[str]:
    """The Markdown report: the per-condition table and the summary."""
    labels = list(results)
    raw, pyzbar = results[labels[0]], results[labels[1]]
    groups = [g for g in dict.fromkeys(group_of(f) for f in frames) if g != "empty"]
    lines = [*extra, "", "Decoded per condition (wrong reads in brackets when any); CPU ms/frame median / p95:", ""]
    lines.append("| condition | frames | " + " | ".join(labels) + " |")
    lines.append("| --- | ---: | " + " | ".join("---:" for _ in labels) + " |")
    for group in [*groups, "empty"]:
        cells = []
        for label in labels:
            score = results[label][group]
            if group == "empty":
                cell = f"{score.false_reads} false"
            else:
                cell = f"{score.decoded}" + (f" ({score.wrong} wrong)" if score.wrong else "")
            cells.append(f"{cell}, {_ms(score.ms)} ms")
        lines.append(f"| {group} | {results[labels[0]][group].frames} | " + " | ".join(cells) + " |")
    union = [a or b for a, b in zip(raw["codes"].hits, pyzbar["codes"].hits, strict=True)]
    lines += ["", "| option | decoded | / raw zxing-cpp | / pyzbar | / union raw zxing-cpp ∪ pyzbar | wrong "
              "| false | conditions below raw zxing-cpp | ms code frames median / p95 | ms on the code frames the "
              "old single pass read, median / p95 | ms empty frames "
              f"median / p95 | ms empty frame, mean (× before; median of {EMPTY_REPS} rounds) |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    before = empty_cost[labels[2]]
    read_before = results[labels[2]]["codes"].hits  # the frames "before: denoise, one pass" read
    for label in labels:
        codes = results[label]["codes"]
        below = [g for g in groups if results[label][g].decoded < raw[g].decoded]
        lines.append(
            f"| {label} | {codes.decoded}/{codes.frames} | {codes.decoded / max(raw['codes'].decoded, 1):.3f} "
            f"| {codes.decoded / max(pyzbar['codes'].decoded, 1):.3f} | {codes.decoded / max(sum(union), 1):.3f} "
            f"| {results[label]['all'].wrong} | {results[label]['empties'].false_reads} "
            f"| {', '.join(below) or 'none'} | {_ms(codes.ms)} "
            f"| {_ms([ms for ms, hit in zip(codes.ms, read_before, strict=True) if hit])} "
            f"| {_ms(results[label]['empties'].ms)} "
            f"| {empty_cost[label]:.2f} ({empty_cost[label] / before:.2f}×) |"
        )
    lines.append(f"\nUnion of raw zxing-cpp and raw pyzbar: {sum(union)}/{len(union)} code frames.")
    lines += ["", "Signed codes whose symbol spans 75-110 px (small condition) and under motion blur:", "",
              "| option | " + " | ".join(k for k in TARGET_GROUPS) + " |",
              "| --- | " + " | ".join("---:" for _ in TARGET_GROUPS) + " |"]
    for label in labels:
        cells = [f"{results[label][key].decoded}/{results[label][key].frames}" if key in results[label] else "-"
                 for key in TARGET_GROUPS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


HELD_ONLY_OPTIONS = ("raw zxingcpp.read_barcodes", "raw → denoise (default before)",
                     *(deblur_label(every) for every in (1, 2, 3, 4)))


def held_only(count: int, seed: int, argv: list[str] | None) -> int:
    """Score only the held-up sequences (``count`` per signed scheme) for :data:`HELD_ONLY_OPTIONS`."""
    signed = [sample_signed_code(seed, attendee_id=1000 + i) for i in range(20)]
    short = [sample_signed_code(seed, attendee_id=1000 + i, version=2) for i in range(20)]
    started = time.perf_counter()
    sequences = held_sequences(count, {"signed": signed, "signed-v2": short}, seed)
    generation_s = time.perf_counter() - started
    held = {label: score_held(factory(), sequences) for label, factory in options() if label in HELD_ONLY_OPTIONS}
    from _gate_fixture import header

    lines = [*header("Camera decoding, held-up codes only", argv),
             f"- {len(sequences)} sequences of {HELD_FRAMES} frames (seed {seed}), generated in {generation_s:.0f} s"]
    print("\n".join([*lines, *held_report(held)]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Generate the hard frames, score every option, run the pipeline, print the Markdown report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--per-condition", type=int, default=50, help="frames per condition and scheme")
    parser.add_argument("--seed", type=int, default=1, help="seed of the frame generator (default 1)")
    parser.add_argument("--quick", action="store_true", help="3 frames per condition: a smoke test")
    parser.add_argument("--held", type=int, default=20,
                        help="codes per signed scheme held up for 10 motion-blurred frames (default 20)")
    parser.add_argument("--held-only", action="store_true",
                        help="only the held-up sequences, for the options with a deblur pass and the references")
    args = parser.parse_args(argv)
    if args.held_only:
        return held_only(args.held, args.seed, argv)
    per_condition = 3 if args.quick else args.per_condition

    pinned = "no"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        pinned = f"core {sorted(os.sched_getaffinity(0))[0]}"
    import cv2

    cv2.setNumThreads(1)
    compact = sample_compact_codes(per_condition, seed=args.seed)
    signed = [sample_signed_code(args.seed, attendee_id=1000 + i) for i in range(min(per_condition, 20))]
    short = [sample_signed_code(args.seed, attendee_id=1000 + i, version=2) for i in range(min(per_condition, 20))]
    started = time.perf_counter()
    frames = make_hard_frames(per_condition, compact, signed, seed=args.seed, short_codes=short)
    generation_s = time.perf_counter() - started

    held_count = 2 if args.quick else args.held
    sequences = held_sequences(held_count, {"signed": signed, "signed-v2": short}, args.seed)

    results: dict[str, dict[str, Score]] = {}
    held: dict[str, dict[str, list[int]]] = {}
    decoders: dict[str, BarcodeDecoder] = {}
    for label, factory in options():
        decoder = decoders[label] = factory()
        for f in frames[:5]:  # warm up (library loading, first allocations)
            decoder.decode(f.frame)
        if isinstance(decoder, ZxingDecoder):
            decoder.pass_hits = dict.fromkeys(decoder.passes, 0)
        results[label] = score_all(decoder, frames)
        held[label] = score_held(factory(), sequences)
    empty_cost = empty_costs(dict(options()), [f for f in frames if f.expected is None])
    default_label = options()[3][0]
    fps, cpu_fps, events = pipeline_fps(ZxingDecoder(), frames)
    last_label, last_factory = next((label, f) for label, f in options() if label == GATE_DEFAULT)
    last_fps, last_cpu_fps, last_events = pipeline_fps(last_factory(), frames)

    from _gate_fixture import header

    with_code = sum(f.expected is not None for f in frames)
    extra = [
        *header("Camera decoding, hard frames", argv),
        f"- pinned to {pinned}, nice {os.nice(0)}; zxing-cpp {_version('zxing-cpp')}, pyzbar {_version('pyzbar')}, "
        f"opencv {cv2.__version__}, numpy {_version('numpy')}",
        f"- {len(frames)} frames 640x480 gray, JPEG (seed {args.seed}): {per_condition} per condition and scheme "
        f"({', '.join(CONDITIONS)}), {with_code} with a code, {len(frames) - with_code} empty; compact codes "
        f"{len(compact[0])} chars, signed {len(signed[0])} chars (version 1, QR version 6), signed-v2 "
        f"{len(short[0])} digits (QR version 4); generated in {generation_s:.0f} s",
        f"- whole CameraScanner pipeline ({default_label}) over the same frames: {cpu_fps:.0f} frames per CPU "
        f"second ({fps:.0f} frames/s of wall time on this machine), {events} OK events (decoded "
        f"{results[default_label]['codes'].decoded})",
        f"- the same with {last_label}: {last_cpu_fps:.0f} frames per CPU second ({last_fps:.0f} frames/s of "
        f"wall time), {last_events} OK events",
        "- ms/frame below are CPU time of the decoding thread (``time.thread_time``): the machine's load is left "
        "out; wall-time medians of all frames: " + ", ".join(
            f"{label} {statistics.median(r['all'].wall_ms):.1f} ms" for label, r in results.items()),
    ]
    for label, decoder in decoders.items():
        if isinstance(decoder, ZxingDecoder) and len(decoder.passes) > 1:
            hits = ", ".join(f"{name} {n}" for name, n in decoder.pass_hits.items())
            extra.append(f"- frames decoded by each pass of {label}: {hits}")
    print("\n".join([*report(results, frames, argv, extra, empty_cost), *held_report(held)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
