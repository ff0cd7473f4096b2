"""CPU time and connections of other processes, read from /proc (Linux), for the scale benchmarks; not a benchmark.

CPU seconds (user + system, from ``/proc/<pid>/stat``) count only what a process ran, so a per-message cost taken
as a difference before/after a run holds on a loaded machine, where wall-clock rates do not. Also: the PostgreSQL
backends serving one database (their command line names it), the worker processes of a gunicorn arbiter, and how
many established TCP connections on a listening port each process holds (which worker took which client).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads), or 0.0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is fields[0], utime fields[11]
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_seconds(pids: Iterable[int]) -> float:
    """The CPU seconds of ``pids`` together."""
    return sum(process_cpu(pid) for pid in pids)


def cpu_by_pid(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds of each of ``pids``."""
    return {pid: process_cpu(pid) for pid in pids}


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two :func:`cpu_by_pid` readings (a process absent before counts from zero)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def postgres_backends(database_name: str, exclude: Iterable[int] = ()) -> list[int]:
    """The PostgreSQL backend processes connected to ``database_name`` (``postgres: user db host(port) ...``),
    less ``exclude`` (the benchmark's own connection)."""
    skip = set(exclude)
    return [pid for pid in _pids() if pid not in skip
            and f" {database_name} " in f"{_cmdline(pid)} " and _cmdline(pid).startswith("postgres: ")]


def postgres_processes() -> list[int]:
    """The pids of the local PostgreSQL server's processes: the postmaster (``.../bin/postgres -D ...``) and what
    it forks (``postgres: ...``: backends and helpers)."""
    found = []
    for pid in _pids():
        command = _cmdline(pid)
        if command.startswith("postgres") or command.split(" ", 1)[0].endswith("/bin/postgres"):
            found.append(pid)
    return found


def children(parent: int) -> list[int]:
    """The direct child processes of ``parent``."""
    found = []
    for pid in _pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == parent:
            found.append(pid)
    return found


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local port is ``port`` (the server's side)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    return inodes


def connections_by_pid(pids: Iterable[int], port: int) -> dict[int, int]:
    """How many established connections to local ``port`` each of ``pids`` holds open (by its file descriptors)."""
    inodes = _established_inodes(port)
    counts: dict[int, int] = {}
    for pid in pids:
        held = 0
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    held += 1
        except OSError:
            pass
        counts[pid] = held
    return counts
