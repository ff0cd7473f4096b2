"""200 open live dashboards against ``vaora-central serve`` (gunicorn, gthread): do other requests still get
answered, and how fast, compared with the same server with no dashboard open (same run)?

Starts a migrated SQLite central with an administrator on a free port, logs in, opens ``--streams`` server-sent
event streams of one meeting's dashboard (each held by a client thread reading its keepalives), then times
``--requests`` requests of the login page and ``/healthz`` from one client while they are open.

    python benchmarks/sse_capacity.py [--streams 200] [--requests 300] [--workers 2] [--threads 128]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._gate_fixture import header  # noqa: E402
from devtools.ports import free_port, wait_for_http  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
PASSWORD = "Mật-khẩu-đo-tải-2026!"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> None:
    subprocess.run([sys.executable, "-m", "central.cli", *args], env=env, cwd=REPO, input=stdin, text=True,
                   capture_output=True, check=True, timeout=120)


def _time_requests(base: str, count: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"/login": [], "/healthz": []}
    session = requests.Session()
    for _ in range(count):
        for route in timings:
            started = time.perf_counter()
            answer = session.get(base + route, timeout=30)
            timings[route].append((time.perf_counter() - started) * 1000)
            if answer.status_code not in (200, 503):
                raise SystemExit(f"{route}: HTTP {answer.status_code}")
    return timings


def main() -> int:
    """Run the measurement and print a Markdown block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        (Path(tmp) / "secret").write_text("k" * 40, encoding="utf-8")
        env = {**os.environ, "VAORA_DATABASE_URL": f"sqlite:///{tmp}/central.db", "VAORA_API_TOKEN": TOKEN,
               "VAORA_SECRET_KEY_FILE": f"{tmp}/secret", "VAORA_SIGNING_KEY_FILE": f"{tmp}/key.pem",
               "VAORA_DATA_DIR": f"{tmp}/data", "VAORA_PUBLIC_URL": base, "VAORA_LOG_LEVEL": "WARNING",
               "VAORA_WEB_WORKERS": str(args.workers), "VAORA_WEB_THREADS": str(args.threads)}
        _cli(env, "init-db")
        _cli(env, "create-admin", "quantri", stdin=PASSWORD + "\n")
        server = subprocess.Popen([sys.executable, "-m", "central.cli", "serve", "--port", str(port)], env=env,
                                  cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            try:
                wait_for_http(f"{base}/login", timeout=60, process=server)
            except RuntimeError as exc:
                raise SystemExit(str(exc)) from None
            starts = datetime.now(UTC) + timedelta(days=1)
            meeting = requests.post(f"{base}/api/v1/meetings", headers={"Authorization": f"Bearer {TOKEN}"},
                                    json={"title": "Đo tải", "starts_at": starts.isoformat(),
                                          "ends_at": (starts + timedelta(hours=2)).isoformat(), "venue": "Hội trường",
                                          "site_id": "hq"}, timeout=30).json()["id"]
            session = requests.Session()
            token = CSRF.search(session.get(f"{base}/login", timeout=10).text).group(1)  # type: ignore[union-attr]
            session.post(f"{base}/login", data={"csrf_token": token, "username": "quantri", "password": PASSWORD},
                         timeout=60)
            cookies = session.cookies.get_dict()

            quiet = _time_requests(base, args.requests)

            statuses: list[int] = []
            opened = threading.Semaphore(0)
            stop = threading.Event()

            def hold() -> None:
                with requests.get(f"{base}/meetings/{meeting}/truc-tiep/su-kien?keepalive=5", cookies=cookies,
                                  stream=True, timeout=60) as stream:
                    statuses.append(stream.status_code)
                    opened.release()
                    if stream.status_code == 200:
                        for _ in stream.iter_lines():
                            if stop.is_set():
                                break

            holders = [threading.Thread(target=hold, daemon=True) for _ in range(args.streams)]
            for holder in holders:
                holder.start()
            for _ in holders:
                opened.acquire(timeout=120)
            busy = _time_requests(base, args.requests)
            stop.set()
        finally:
            server.terminate()
            server.wait(30)

    held = statuses.count(200)
    print("```markdown")
    print("\n".join(header("Live dashboards holding a gthread server", None)))
    print(f"- server: `vaora-central serve`, {args.workers} workers × {args.threads} threads (streams per worker "
          f"capped at {args.threads - args.threads // 8}), SQLite; clients on the same 2 cores")
    print(f"- {args.streams} dashboard streams opened: {held} held (HTTP 200), {statuses.count(503)} told to retry "
          f"(503), others {len(statuses) - held - statuses.count(503)}")
    print()
    print("| route | no dashboard open: median / p95 (ms) | streams open: median / p95 (ms) | ratio (median) |")
    print("| --- | ---: | ---: | ---: |")
    for route in quiet:
        q, b = sorted(quiet[route]), sorted(busy[route])
        qm, bm = statistics.median(q), statistics.median(b)
        print(f"| {route} | {qm:.1f} / {q[int(len(q) * 0.95)]:.1f} | {bm:.1f} / {b[int(len(b) * 0.95)]:.1f} | "
              f"{bm / qm:.2f}x |")
    print("```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
