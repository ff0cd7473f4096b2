"""Benchmark camera decoding: zxing-cpp against pyzbar on synthetic 640x480 gate frames, in the same run.

Generates N frames (default 300; about half show a code: a compact code as a QR on a phone or a Code128 on a
paper ticket, or a 136-character signed code as a QR; the rest are empty scenes), then measures for each
decoder frames per second, the share of code frames decoded to exactly their code, wrong reads, and false
reads on empty frames; and the whole ``CameraScanner`` pipeline (thread, de-duplication, events) reading the
same frames from memory, as a fraction of the raw decoder speed. Pinned to one core. Prints a Markdown table.

    PYTHONPATH=. python benchmarks/camera_decode.py [--frames 300] [--seed 1] [--rounds 3]

Target: >= 100 frames/s, 100 % decoded, 0 false reads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata

from gate.camera import CameraScanner, MemorySource, PyzbarDecoder, ZxingDecoder
from gate.camera.decoders import BarcodeDecoder
from gate.camera.synthetic import SyntheticFrame, make_frames, sample_compact_codes, sample_signed_code
from gate.scanners.base import ScanEvent
from protocols.reasons import Reason

COMPACT = "7K3MPQRSTVWXY2"


@dataclass
class Result:
    """What one decoder did over all frames."""

    label: str
    seconds: list[float] = field(default_factory=list)
    decoded: int = 0
    wrong: int = 0
    false_reads: int = 0
    misses: Counter[str] = field(default_factory=Counter)
    pipeline_seconds: list[float] = field(default_factory=list)
    pipeline_events: int = 0


def _kind(frame: SyntheticFrame) -> str:
    base = frame.kind.removesuffix("-bgr")
    return f"{base}/{'signed' if frame.expected and len(frame.expected) > 20 else 'compact'}"


def decode_all(decoder: BarcodeDecoder, frames: list[SyntheticFrame], result: Result, score: bool) -> None:
    """Decode every frame once, timing the loop; count hits, misses and false reads when ``score``."""
    started = time.perf_counter()
    found = [decoder.decode(f.frame) for f in frames]
    result.seconds.append(time.perf_counter() - started)
    if not score:
        return
    for frame, texts in zip(frames, found, strict=True):
        if frame.expected is None:
            result.false_reads += bool(texts)
        elif texts == [frame.expected]:
            result.decoded += 1
        else:
            result.wrong += any(t != frame.expected for t in texts)
            result.misses[_kind(frame)] += 1


def run_pipeline(decoder: BarcodeDecoder, frames: list[SyntheticFrame], result: Result) -> None:
    """Run a CameraScanner over the frames from memory (dedup off, so every decoded frame is an event)."""
    events: list[ScanEvent] = []
    scanner = CameraScanner(MemorySource([f.frame for f in frames]), decoder, dedup_window_s=0.0)
    started = time.perf_counter()
    scanner.start(events.append)
    if not scanner.wait_finished(timeout=600):
        raise RuntimeError("pipeline did not finish")
    result.pipeline_seconds.append(time.perf_counter() - started)
    scanner.close()
    result.pipeline_events = sum(e.reason is Reason.OK for e in events)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    """Generate frames, measure both decoders and the pipeline, print the Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="number of frames (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the frame generator (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per decoder; the median is shown")
    parser.add_argument("--code-fraction", type=float, default=0.5, help="share of frames with a code")
    args = parser.parse_args(argv)

    pinned = "no"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
        pinned = "core 0"
    import cv2

    cv2.setNumThreads(1)

    codes = [COMPACT, *sample_compact_codes(2, seed=args.seed), sample_signed_code(args.seed)]
    started = time.perf_counter()
    frames = make_frames(args.frames, codes, seed=args.seed, code_fraction=args.code_fraction)
    generation_s = time.perf_counter() - started
    with_code = sum(f.expected is not None for f in frames)
    kinds = Counter(_kind(f) for f in frames if f.expected)

    decoders: list[tuple[str, BarcodeDecoder]] = [
        ("zxing-cpp", ZxingDecoder()),
        ("pyzbar", PyzbarDecoder()),
        ("zxing-cpp, no denoise", ZxingDecoder(denoise=False)),
        ("pyzbar, no denoise", PyzbarDecoder(denoise=False)),
    ]
    results = {label: Result(label) for label, _ in decoders}
    for _, decoder in decoders:  # warm up (library loading, first allocations)
        for f in frames[:10]:
            decoder.decode(f.frame)
    for round_no in range(args.rounds):  # interleaved, so machine noise hits every decoder alike
        for label, decoder in decoders:
            decode_all(decoder, frames, results[label], score=round_no == 0)
    for _ in range(args.rounds):
        for label, decoder in decoders[:2]:
            run_pipeline(decoder, frames, results[label])

    from _gate_fixture import header

    print("\n".join(header("Camera decoding", argv)))
    print(f"- pinned to {pinned}; zxing-cpp {_version('zxing-cpp')}, pyzbar {_version('pyzbar')}, "
          f"opencv {cv2.__version__}, numpy {_version('numpy')}")
    print(
        f"- {len(frames)} frames 640x480 (seed {args.seed}): {with_code} with a code "
        f"({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}), {len(frames) - with_code} empty; "
        f"generated in {generation_s:.1f} s; median of {args.rounds} rounds\n"
    )
    print(
        "| decoder | frames/s | ms/frame | decoded | wrong reads | false reads (empty) "
        "| pipeline frames/s | pipeline / raw |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for result in results.values():
        seconds = statistics.median(result.seconds)
        fps = len(frames) / seconds
        pipeline = "-"
        ratio = "-"
        if result.pipeline_seconds:
            pipeline_fps = len(frames) / statistics.median(result.pipeline_seconds)
            pipeline = f"{pipeline_fps:.0f}"
            ratio = f"{pipeline_fps / fps:.2f}"
            if result.pipeline_events != result.decoded:
                ratio += f" ({result.pipeline_events} events vs {result.decoded} decoded!)"
        print(
            f"| {result.label} | {fps:.0f} | {1000 * seconds / len(frames):.2f} "
            f"| {result.decoded}/{with_code} ({100 * result.decoded / max(with_code, 1):.1f} %) "
            f"| {result.wrong} | {result.false_reads}/{len(frames) - with_code} | {pipeline} | {ratio} |"
        )
    print()
    for result in results.values():
        if result.misses:
            missed = ", ".join(f"{kind} {n}/{kinds[kind]}" for kind, n in sorted(result.misses.items()))
            print(f"- {result.label} missed: {missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
