"""Split the machine's cores between the simulated gates and the server side, for the scale benchmarks.

In the field the gates are other machines: their publishing costs the server nothing. On a 2-core benchmark machine
the publisher processes take the same cores as the broker, the ingest and PostgreSQL, so a path that does more
work per message loses twice (its own work and the publishers' share). :func:`split_cores` puts the gates on one
core and everything that runs on a server (the benchmark process and what it starts: brokers, the raw subscriber,
ingest processes; and PostgreSQL's processes) on the other, for as long as the block runs. Linux only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks._cputime import postgres_processes

GATE_CPUS_ENV = "VAORA_BENCH_GATE_CPUS"
"""Comma-separated CPU numbers the simulated gates pin themselves to (set by :func:`split_cores`)."""


def pin_gate_process() -> None:
    """Pin the calling process to the gates' CPUs when :data:`GATE_CPUS_ENV` names them (a publisher calls this)."""
    cpus = os.environ.get(GATE_CPUS_ENV)
    if cpus:
        os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})


def _set(pid: int, cpus: set[int]) -> bool:
    try:
        os.sched_setaffinity(pid, cpus)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@contextmanager
def split_cores(gate_cpu: int = 0, server_cpu: int = 1) -> Iterator[None]:
    """Run the block with the gates on ``gate_cpu`` and this process, its children and PostgreSQL on
    ``server_cpu``; every affinity changed is put back afterwards (also on an error)."""
    own = os.sched_getaffinity(0)
    postgres = {pid: os.sched_getaffinity(pid) for pid in postgres_processes()}
    previous_env = os.environ.get(GATE_CPUS_ENV)
    os.sched_setaffinity(0, {server_cpu})
    for pid in postgres:
        _set(pid, {server_cpu})  # new backends fork from the postmaster and inherit it
    os.environ[GATE_CPUS_ENV] = str(gate_cpu)
    try:
        yield
    finally:
        if previous_env is None:
            os.environ.pop(GATE_CPUS_ENV, None)
        else:
            os.environ[GATE_CPUS_ENV] = previous_env
        for pid in postgres_processes():
            _set(pid, postgres.get(pid, own))
        os.sched_setaffinity(0, own)
