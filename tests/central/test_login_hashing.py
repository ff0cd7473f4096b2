"""Unauthenticated memory: 100 parallel wrong logins against the real server (``vaora-central serve``, one gunicorn
worker with 128 threads, so all of them are in flight at once in one process) keep that worker's peak memory
(``VmHWM``) under 400 MiB, because at most ``VAORA_PASSWORD_HASH_CONCURRENCY`` (2) argon2 checks of 64 MiB run at
once. The hashes are argon2's real default profile (the administrator is made by ``create-admin``).

Without the cap every one of the 100 checks would hold its 64 MiB at once (the issue measured 16 parallel wrong
logins taking central from 166 to 1,173 MiB); measured with this test on the code before the cap: 110 MiB before,
2,016 MiB after the 100 logins, against 264 MiB with it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.central.staff import csrf
from tests.central.test_server import serving
from tests.conftest import scaled, wait_until

ATTEMPTS = 100
LIMIT_MIB = 400


@contextmanager
def one_worker(tmp_path: Path, hash_concurrency: int) -> Iterator[tuple[str, int]]:
    """A migrated SQLite central with an administrator, served by one gunicorn worker of 128 threads; yields the
    base URL and the worker's process id. The login throttle's limits are set out of reach, so that every
    attempt reaches the password check and only the hashing cap is measured."""
    settings = {"VAORA_WEB_WORKERS": "1", "VAORA_WEB_THREADS": "128",
                "VAORA_PASSWORD_HASH_CONCURRENCY": str(hash_concurrency), "VAORA_LOGIN_MAX_FAILURES": "100",
                "VAORA_LOGIN_ADDRESS_MAX_FAILURES": "10000"}
    with serving(tmp_path, settings=settings) as (base, server, _env, _log):

        def worker() -> int | None:
            children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
            return int(children[0]) if len(children) == 1 else None

        yield base, wait_until(worker, timeout=scaled(10), message="no single gunicorn worker")


def peak_mib(pid: int) -> float:
    """The process's peak resident memory (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def wrong_logins_in_parallel(base: str, attempts: int = ATTEMPTS) -> list[requests.Response]:
    """``attempts`` browsers, each with its own CSRF token, send a wrong password at the same moment."""
    browsers = []
    for _ in range(attempts):
        browser = requests.Session()
        browsers.append((browser, csrf(browser.get(f"{base}/login", timeout=scaled(10)).text)))
    start = threading.Barrier(attempts)

    def attempt(browser: requests.Session, token: str) -> requests.Response:
        start.wait()
        return browser.post(f"{base}/login", data={"csrf_token": token, "username": "quantri",
                                                    "password": "sai-mat-khau-000"}, timeout=scaled(120))

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        return list(pool.map(lambda pair: attempt(*pair), browsers))


def test_a_hundred_parallel_wrong_logins_keep_the_worker_under_400_mib(tmp_path: Path) -> None:
    with one_worker(tmp_path, hash_concurrency=2) as (base, worker):
        before = peak_mib(worker)
        answers = wrong_logins_in_parallel(base)
        peak = peak_mib(worker)
    statuses = Counter(answer.status_code for answer in answers)
    print(f"worker peak memory: {before:.0f} MiB before, {peak:.0f} MiB after {ATTEMPTS} parallel wrong logins; "
          f"answers {dict(statuses)}")
    assert set(statuses) <= {400, 503}, statuses  # wrong password, or every hashing slot busy: never a 500
    assert sum(answer.status_code == 400 for answer in answers) >= 2, "the passwords were checked"
    for answer in answers:
        if answer.status_code == 503:
            assert answer.headers["Retry-After"] == "5" and "Hệ thống đang bận" in answer.text
    assert peak < LIMIT_MIB, f"{peak:.0f} MiB"
