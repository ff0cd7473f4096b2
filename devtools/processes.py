"""Stopping the processes that tests, benchmarks and devtools' servers start themselves.

:func:`stop_processes` asks every one still running to end (SIGTERM), then waits for each, its timeout stretched by
``VAORA_TEST_TIMEOUT_SCALE`` (:func:`devtools.timeouts.scaled`), and kills (SIGKILL) and reaps one that did not end.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from typing import Any

from devtools.timeouts import scaled


def stop_processes(processes: Iterable[subprocess.Popen[Any]], timeout: float = 10) -> None:
    """Stop ``processes``: SIGTERM to every one still running, then wait for each up to ``timeout`` seconds (scaled
    for a loaded machine) and SIGKILL the ones that did not end."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
