"""Process memory figures and fresh child processes for the memory benchmarks (``gate_memory.py``,
``snapshot_load.py``), standard library only, so a child that imports it measures what it came to measure:
the figures, running one child, and the ``--child`` / ``--quick`` handling both scripts share."""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

QUICK_DELEGATES, FULL_DELEGATES = 10_000, 100_000
"""Snapshot sizes of a ``--quick`` run and of a full one."""


def memory_now() -> dict[str, float]:
    """This process's VmRSS, VmHWM (from /proc/self/status) and ru_maxrss, in MiB."""
    figures: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures[name] = int(value.split()[0]) / 1024
    figures["ru_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def run_child(script: str | Path, mode: str, *extra: str) -> dict[str, Any]:
    """Run ``script`` as a fresh child process with ``--child mode``; return the JSON it printed last."""
    import subprocess  # the parent's only: children do not pay for it

    command = [sys.executable, str(Path(script).resolve()), "--child", mode, *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {mode} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_if_child(args: Any, children: Mapping[str, Callable[[Any], dict[str, Any]]]) -> bool:
    """In a child (``--child MODE``): run ``children[MODE](args)``, print its figures as JSON, return True."""
    if not args.child:
        return False
    print(json.dumps(children[args.child](args)))
    return True


def apply_sizes(args: Any) -> int:
    """Fill ``args.delegates`` (``--quick``: 10,000, else 100,000 unless given) and return the repeats
    (``--quick``: 1, else 3 unless given)."""
    args.delegates = args.delegates or (QUICK_DELEGATES if args.quick else FULL_DELEGATES)
    return int(args.repeats or (1 if args.quick else 3))
