"""Benchmark loading a 100,000-delegate snapshot into a gate's cache over HTTP: wall time and peak RSS.

The snapshot is central's response recorded to a file: ``protocols.payloads.encode_snapshot_stream`` is what
central's ``GET /api/v1/gates/{gate}/snapshot`` streams when a gate asks for ``application/x-ndjson``
(``central.gates.snapshot.stream_snapshot``), and ``encode`` gives the one-document JSON form. A stand-in
central serves the recording from disk, checks the gate's bearer token and, like central, picks the form from
the ``Accept`` header. Each load runs in a fresh process (this script with ``--child``) that first imports
``gate.app`` as a gate process has, then does what ``Gate.refresh_snapshot`` does: ``fetch_snapshot`` and
``ChangeFollower.load_snapshot`` into an empty ``GateStore`` on disk. Measured in that process:

- wall time from the request to the snapshot committed, split into staging (entries validated and written to
  the scratch file, scans still decided) and the swap (one transaction, the cache's lock held);
- memory: VmRSS before and after, and the high-water marks VmHWM and ``ru_maxrss``;
- scans during the load: a thread calls ``decide()`` on cached codes every 2 ms; its slowest call shows
  how long the swap held scans up;
- correctness: every delegate cached, 200 sampled compact codes admitted.

For comparison, the same load from a central that only sends the one-document JSON form (decoded whole, as
gates did before the stream).

    .venv/bin/python benchmarks/snapshot_load.py [--delegates 100000] [--repeats 3] [--quick]

Target: <= 3 s for 100,000 delegates (issue #4); memory: the gate's <= 80 MB (issue #3).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _procmem
from _procmem import memory_now

# Only light modules at the top: children run this file and must import only what they measure.

TARGET_S = 3.0
TARGET_MB = 80.0
TOKEN = "bench-token"
GATE_ID = "bench-1"
SAMPLED_CODES = 200
STREAM_MEDIA_TYPE = "application/x-ndjson"  # protocols.payloads.SNAPSHOT_STREAM_MEDIA_TYPE (checked by the child)


# ----- children ---------------------------------------------------------------------------------------------


def child_prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Build the snapshot and record both of central's answers (stream and document) and sample codes."""
    from _gate_fixture import build_world

    from protocols.payloads import encode, encode_snapshot_stream

    world = build_world(args.delegates)
    with Path(args.stream).open("wb") as out:
        for line in encode_snapshot_stream(world.snapshot):
            out.write(line)
    Path(args.document).write_bytes(encode(world.snapshot))
    step = max(1, len(world.compact_codes) // SAMPLED_CODES)
    Path(args.codes).write_text(json.dumps(world.compact_codes[::step][:SAMPLED_CODES]), encoding="utf-8")
    return {"stream_bytes": Path(args.stream).stat().st_size, "document_bytes": Path(args.document).stat().st_size,
            "meetings": len(world.snapshot.meetings), "keys": len(world.snapshot.keys)}


def child_load(args: argparse.Namespace) -> dict[str, Any]:
    """In a fresh gate-like process: fetch and load the snapshot into an empty cache; time and measure it."""
    from datetime import UTC, datetime

    import gate.app  # noqa: F401 - a gate process has it loaded before it fetches a snapshot
    from gate.decision import decide
    from gate.follow import ChangeFollower
    from gate.store import GateStore
    from gate.sync import SnapshotStream, fetch_snapshot
    from protocols.payloads import SNAPSHOT_STREAM_MEDIA_TYPE

    assert SNAPSHOT_STREAM_MEDIA_TYPE == STREAM_MEDIA_TYPE
    codes: list[str] = json.loads(Path(args.codes).read_text(encoding="utf-8"))
    result: dict[str, Any] = {"imported": memory_now()}

    class TimedCache(GateStore):
        """The cache, with its two load steps timed."""

        stage_s = swap_s = 0.0

        def stage_snapshot(self, snapshot: Any) -> Any:
            started = time.perf_counter()
            try:
                return super().stage_snapshot(snapshot)
            finally:
                self.stage_s = time.perf_counter() - started

        def swap_in(self, staged: Any, now: datetime) -> None:
            started = time.perf_counter()
            try:
                super().swap_in(staged, now)
            finally:
                self.swap_s = time.perf_counter() - started

    cache = TimedCache(args.data_dir)
    follower = ChangeFollower(cache, lambda: None)
    # A previous snapshot with one meeting would make the probe's scans meaningful; an empty cache refuses
    # with unknown_code, which costs the same lookups.
    probe_times: list[float] = []
    loading = threading.Event()
    loading.set()

    def probe() -> None:
        now = datetime.now(UTC)
        i = 0
        while loading.is_set():
            started = time.perf_counter()
            decide(codes[i % len(codes)], cache, now, "hq")
            probe_times.append(time.perf_counter() - started)
            i += 1
            time.sleep(0.002)

    prober = threading.Thread(target=probe, daemon=True)
    result["before"] = memory_now()
    prober.start()
    started = time.perf_counter()
    snapshot = fetch_snapshot(args.central_url, GATE_ID, TOKEN, timeout=30)
    try:
        follower.load_snapshot(snapshot)
    finally:
        if isinstance(snapshot, SnapshotStream):
            snapshot.close()
    result["load_s"] = time.perf_counter() - started
    loading.clear()
    prober.join()
    result["after"] = memory_now()
    result["streamed"] = isinstance(snapshot, SnapshotStream)
    result["stage_s"], result["swap_s"] = cache.stage_s, cache.swap_s
    result["delegates"] = cache.delegate_count()
    now = datetime.now(UTC)
    result["admitted"] = sum(decide(code, cache, now, "hq").allowed for code in codes)
    result["sampled"] = len(codes)
    result["probe_calls"] = len(probe_times)
    result["probe_max_ms"] = max(probe_times) * 1000 if probe_times else float("nan")
    cache.close()
    return result


CHILDREN = {"prepare": child_prepare, "load": child_load}


def run_child(mode: str, *extra: str) -> dict[str, Any]:
    """Run this script as a fresh child process in ``mode``; return the JSON it printed last."""
    return _procmem.run_child(__file__, mode, *extra)


# ----- a stand-in central serving the recorded answers ------------------------------------------------------


def serve(stream: Path, document: Path, streaming: bool) -> Any:
    """Serve the recording at the gate's snapshot URL (bearer token checked). ``streaming``: answer with the
    NDJSON stream when the request's Accept asks for it (as central does); else always the JSON document."""
    from _gate_fixture import serve_snapshot

    def choose(headers: Any) -> tuple[Path, str]:
        if streaming and STREAM_MEDIA_TYPE in (headers.get("Accept") or ""):
            return stream, STREAM_MEDIA_TYPE
        return document, "application/json"

    server, _served = serve_snapshot(GATE_ID, TOKEN, choose)
    return server


# ----- parent -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Prepare, run the loads in fresh processes, print the Markdown report."""
    import shutil
    import statistics
    import tempfile

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--delegates", type=int, default=None, help="delegates (default 100,000)")
    parser.add_argument("--repeats", type=int, default=None, help="loads of each form; medians (default 3)")
    parser.add_argument("--workdir", default="/var/tmp", help="where the caches go (default /var/tmp)")
    parser.add_argument("--quick", action="store_true", help="10,000 delegates, 1 repeat unless given")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--stream", help=argparse.SUPPRESS)
    parser.add_argument("--document", help=argparse.SUPPRESS)
    parser.add_argument("--codes", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--central-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repeats = _procmem.apply_sizes(args)
    if _procmem.run_if_child(args, CHILDREN):
        return 0
    from _gate_fixture import filesystem_of, header, load_average

    user_args = list(sys.argv[1:] if argv is None else argv)
    load_before = load_average()

    with tempfile.TemporaryDirectory(prefix="vaora-snapload-", dir=args.workdir) as tmp_name:
        tmp = Path(tmp_name)
        files = {"stream": tmp / "snapshot.ndjson", "document": tmp / "snapshot.json", "codes": tmp / "codes.json"}
        prepared = run_child("prepare", "--delegates", str(args.delegates),
                             *(f"--{k}={v}" for k, v in files.items()))
        # The parent stays small while it spawns the loads (Linux carries the spawning process's memory
        # high-water mark into a child's ru_maxrss); the report's helpers are imported afterwards.
        streaming = serve(files["stream"], files["document"], streaming=True)
        legacy = serve(files["stream"], files["document"], streaming=False)
        runs: dict[str, list[dict[str, Any]]] = {"stream": [], "document": []}
        try:
            for run in range(repeats):  # interleaved, so machine noise hits both forms alike
                for form, server in (("stream", streaming), ("document", legacy)):
                    data_dir = tmp / f"gate-{form}-{run}"
                    runs[form].append(run_child(
                        "load", f"--codes={files['codes']}", f"--data-dir={data_dir}",
                        f"--central-url=http://127.0.0.1:{server.server_address[1]}"))
                    shutil.rmtree(data_dir)
        finally:
            streaming.shutdown()
            legacy.shutdown()

        fs = filesystem_of(tmp)

    def med(form: str, *keys: str) -> float:
        values = []
        for r in runs[form]:
            value: Any = r
            for key in keys:
                value = value[key]
            values.append(value)
        return statistics.median(values)

    lines = header("Snapshot load into a gate's cache", user_args)
    lines += [
        f"- snapshot: {args.delegates:,} delegates (half compact with code hashes, half signed), "
        f"{prepared['meetings']} meetings, {prepared['keys']} key; central's answer recorded: NDJSON stream "
        f"{prepared['stream_bytes'] / 2**20:.1f} MiB, JSON document {prepared['document_bytes'] / 2**20:.1f} MiB; "
        "served over loopback HTTP by a stand-in central (bearer token checked, form chosen by `Accept`)",
        f"- gate side: a fresh process per load (`import gate.app` first), `fetch_snapshot` + "
        f"`ChangeFollower.load_snapshot` into an empty `GateStore` on {fs}; each figure a median of {repeats}; "
        f"MiB (2^20 bytes); load average before the loads {load_before}, at the end {load_average()}",
        "",
        "| central sends | load s | staging s | swap s (scans held) | slowest `decide()` during the load ms "
        "| RSS before | RSS after | peak RSS (VmHWM) | peak RSS (ru_maxrss) | cached | sampled codes admitted "
        "| target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    failed = False
    for form, label in (("stream", "NDJSON stream (gates ask for it)"), ("document", "one JSON document (before)")):
        load_s, hwm = med(form, "load_s"), med(form, "after", "VmHWM")
        ok_time, ok_mem = load_s <= TARGET_S, hwm <= TARGET_MB
        cached = min(r["delegates"] for r in runs[form])
        admitted = min(r["admitted"] for r in runs[form])
        failed |= cached != args.delegates or admitted != runs[form][0]["sampled"]
        staging = f"{med(form, 'stage_s'):.2f}"
        lines.append(
            f"| {label} | {load_s:.2f} | {staging} | {med(form, 'swap_s'):.2f} | {med(form, 'probe_max_ms'):.1f} "
            f"| {med(form, 'before', 'VmRSS'):.1f} | {med(form, 'after', 'VmRSS'):.1f} | {hwm:.1f} "
            f"| {med(form, 'after', 'ru_maxrss'):.1f} | {cached:,} | {admitted}/{runs[form][0]['sampled']} "
            f"| <= {TARGET_S:g} s: {'pass' if ok_time else '**FAIL**'}; <= {TARGET_MB:g} MB: "
            f"{'pass' if ok_mem else '**FAIL**'} |")
    lines += [
        "",
        "- load s: from the HTTP request to the snapshot committed; staging: entries validated one by one and "
        "written to the scratch file (scans decided from the old cache meanwhile); swap: the one transaction "
        "that replaces the cached data (the cache's lock held, scans wait)",
        "- the JSON document form is fetched and decoded whole first (in the load time, not in its staging "
        "time), then staged from the decoded lists",
    ]
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
