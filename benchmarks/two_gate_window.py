"""The window in which two gates of one site both admit one code, with the broker up.

Anti-passback across gates travels through the site's broker: a gate that admits a code publishes the passage on
the site's check-in topic, and the other gates record it. Until that message has arrived, another gate still
admits the same code. Measured here on a private Mosquitto with two in-process gates (``gate.app.Gate`` with their
real MQTT transport and SQLite caches, MockFactory pins, central unreachable, ``single`` entry policy): one fresh
code per trial is scanned at gate A, then, a controlled offset later (A's scan start to B's scan start, as it
happened: a sleeping thread overshoots a little), at gate B, both through ``Gate.handle_scan`` as a scanner would
hand them over. For each offset the table gives how many
trials both gates admitted; the window is the largest offset at which that still happened. The time from A's
scan to B refusing the code (polling B's real decision) is measured too.

    .venv/bin/python benchmarks/two_gate_window.py [--offsets 0,5,10,15,20,25,30,40,60] [--trials 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._gate_fixture import build_world, header, median, percentile
from benchmarks.passback_window import admits, two_gates
from gate.app import Gate
from gate.scanners import ScanEvent
from protocols.reasons import Reason

SETTLE_S = 0.3
"""Pause between trials: the gates' turnstiles lock again and their fan-out settles."""


def scan(gate: Gate, code: str) -> bool:
    """Hand ``code`` to ``gate`` as its scanner would; True when admitted."""
    decision, _ = gate.handle_scan(ScanEvent(code, Reason.OK, "bench", time.monotonic()))
    return decision.allowed


def trial(gate_a: Gate, gate_b: Gate, code: str, offset_s: float) -> tuple[bool, bool, float]:
    """Scan ``code`` at A, and at B about ``offset_s`` later; return (A admitted, B admitted, the offset between the
    two scans' starts as it happened, in seconds)."""
    result: dict[str, float] = {}

    def at_b() -> None:
        time.sleep(offset_s)  # sleeping, not spinning: a spinning thread would starve the gates' own threads
        result["b_at"] = time.perf_counter()
        result["b"] = scan(gate_b, code)

    thread = threading.Thread(target=at_b)
    a_at = time.perf_counter()
    thread.start()
    admitted_a = scan(gate_a, code)
    thread.join()
    return admitted_a, bool(result["b"]), result["b_at"] - a_at


def learn_latency(gate_a: Gate, gate_b: Gate, code: str) -> float:
    """Seconds from A's scan start until B's decision refuses ``code``."""
    t0 = time.perf_counter()
    scan(gate_a, code)
    while admits(gate_b, code):
        if time.perf_counter() - t0 > 5:
            raise RuntimeError("B never learned a code admitted at A")
        time.sleep(0.0005)
    return time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> None:
    """Run the trials and print a Markdown block for BENCHMARKS.md."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--offsets", default="0,5,10,15,20,25,30,40,60",
                        help="delays from A's scan to B's, milliseconds, comma-separated")
    parser.add_argument("--trials", type=int, default=20, help="trials per offset (one fresh code each)")
    args = parser.parse_args(argv)
    offsets = [float(value) for value in args.offsets.split(",") if value]
    world = build_world(max(200, 2 * (len(offsets) + 1) * args.trials + 100))
    codes = iter(world.compact_codes)
    lines = header("Two gates, one code, broker up: the double-admission window", argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        with two_gates(directory, world.snapshot) as (_broker, gates):
            time.sleep(1.0)  # both gates' subscriptions live, start-up publishing over
            latencies = []
            for _ in range(args.trials):
                latencies.append(learn_latency(gates["a"], gates["b"], next(codes)))
                time.sleep(SETTLE_S)
            rows = []
            doubles: list[float] = []
            for offset_ms in offsets:
                both = refused_at_a = 0
                actual: list[float] = []
                for _ in range(args.trials):
                    admitted_a, admitted_b, happened = trial(gates["a"], gates["b"], next(codes), offset_ms / 1000)
                    actual.append(happened)
                    if admitted_a and admitted_b:
                        both += 1
                        doubles.append(happened)
                    refused_at_a += not admitted_a
                    time.sleep(SETTLE_S)
                rows.append((offset_ms, median(actual) * 1000, min(actual) * 1000, max(actual) * 1000, both,
                             refused_at_a))
    window = max(doubles, default=None)
    lines += [
        "- two in-process gates `a` and `b` of one site on a private Mosquitto (loopback), real `MqttTransport`, "
        "SQLite caches, `single` entry policy, no passage sensor (a gate records the passage when it admits); "
        "central unreachable",
        f"- scan at a -> b's decision refuses the code, {len(latencies)} codes: median "
        f"{median(latencies) * 1000:.1f} ms, p90 {percentile(latencies, 90) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms",
        "",
        "| b scans after a, asked (ms) | as it happened: median (min–max) (ms) | trials | both admitted "
        "| refused at a |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {asked:.0f} | {mid:.1f} ({low:.1f}–{high:.1f}) | {args.trials} | {both} | {refused} |"
              for asked, mid, low, high, both, refused in rows]
    lines += ["", "- window (the largest offset, as it happened, at which both gates admitted the code): "
                  f"{'none' if window is None else f'{window * 1000:.1f} ms'}; every double admission, by offset "
                  f"(ms): {', '.join(f'{d * 1000:.1f}' for d in sorted(doubles)) or 'none'}"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
