"""Process memory figures and fresh child processes for the memory benchmarks (standard library only, so a
child that imports it measures what it came to measure)."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any


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
