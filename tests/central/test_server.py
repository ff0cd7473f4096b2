"""The production server, as an operator runs it: ``vaora-central serve`` (gunicorn, gthread) on a free port,
driven over HTTP: health, metrics, login, a page, a live-dashboard stream, and a graceful stop on SIGTERM that
also ends the open stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.ports import free_port
from tests.central.staff import csrf
from tests.conftest import scaled, wait_until

REPO = Path(__file__).resolve().parents[2]
TOKEN = "operator-token-0123456789abcdef"
PASSWORD = "Mật-khẩu-dài-2026!"


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "central.cli", *args], env=env, cwd=REPO, input=stdin, text=True,
                          capture_output=True, timeout=scaled(60), check=False)


@contextmanager
def serving(tmp_path: Path, *, secret_key: bool = True, settings: dict[str, str] | None = None,
            graceful: bool = False) -> Iterator[tuple[str, subprocess.Popen[bytes], dict[str, str], Path]]:
    """A migrated SQLite central with an administrator, served by ``vaora-central serve`` on a free port
    (``secret_key=False``: no ``VAORA_SECRET_KEY_FILE``, the server makes one for the run under ``TMPDIR``).
    ``settings`` add to or replace the environment's ``VAORA_*``; ``graceful`` stops the server with SIGTERM
    (its last log lines written) instead of SIGKILL. Yields the base URL, the server, its environment and the
    file its output goes to."""
    port = free_port()
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "VAORA_DATABASE_URL": f"sqlite:///{tmp_path}/central.db", "VAORA_API_TOKEN": TOKEN,
           "VAORA_SIGNING_KEY_FILE": str(tmp_path / "key.pem"), "TMPDIR": str(tmp_path / "tmp"),
           "VAORA_DATA_DIR": str(tmp_path / "data"), "VAORA_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "VAORA_WEB_WORKERS": "2", "VAORA_WEB_THREADS": "8", "VAORA_LOG_LEVEL": "INFO", **(settings or {})}
    env.pop("VAORA_SECRET_KEY_FILE", None)
    if secret_key:
        (tmp_path / "secret").write_text("s" * 40, encoding="utf-8")
        env["VAORA_SECRET_KEY_FILE"] = str(tmp_path / "secret")
    assert _cli(env, "init-db").returncode == 0
    created = _cli(env, "create-admin", "quantri", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "central.cli", "serve", "--port", str(port)], env=env,
                              cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(f"{base}/login", timeout=2).status_code == 200
        except requests.RequestException:  # not listening yet, or its workers still booting
            return False

    try:
        wait_until(answers, timeout=scaled(30), message="the server did not answer")
        yield base, server, env, tmp_path / "serve.log"
    finally:
        if server.poll() is None and graceful:
            server.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                server.wait(timeout=scaled(15))
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], dict[str, str], Path]]:
    """:func:`serving` with a configured secret key."""
    with serving(tmp_path) as running:
        yield running


def log_in(base: str, username: str = "quantri", password: str = PASSWORD) -> requests.Session:
    """A session logged in as ``username`` (by default the administrator :func:`serving` creates)."""
    session = requests.Session()
    form = session.get(f"{base}/login", timeout=5).text
    answer = session.post(f"{base}/login", data={"csrf_token": csrf(form), "username": username,
                                                  "password": password}, timeout=30, allow_redirects=False)
    assert answer.status_code in (302, 303), answer.text[:300]
    return session


def test_the_real_server_serves_health_login_a_page_and_a_stream_then_stops_gracefully(
    served: tuple[str, subprocess.Popen[bytes], dict[str, str], Path],
) -> None:
    base, server, env, log_file = served
    # Health: the database answers, but no ingest has beaten yet, and the answer says no more than that.
    health = requests.get(f"{base}/healthz", timeout=5)
    assert health.status_code == 503
    assert health.json() == {"status": "failing", "checks": {"database": "ok", "ingest": "failing"}}
    from central.core.beats import INGEST, record_beat
    from central.core.db import database, open_database

    open_database(env["VAORA_DATABASE_URL"])
    with database.connection_context():
        record_beat(INGEST, datetime.now(UTC))
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200

    # Metrics from this machine (loopback) in Prometheus text.
    metrics = requests.get(f"{base}/metrics", timeout=5)
    assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/plain")
    assert "vaora_checkins_stored_total 0.0" in metrics.text
    assert 'vaora_worker_beat_age_seconds{worker="ingest"}' in metrics.text

    # Log in as the administrator, open a page.
    session = log_in(base)
    page = session.get(f"{base}/meetings/", timeout=10)
    assert page.status_code == 200 and "Cuộc họp" in page.text

    # A meeting, through the API, and its live dashboard's stream.
    starts = datetime.now(UTC) + timedelta(days=1)
    meeting = requests.post(f"{base}/api/v1/meetings", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
                            json={"title": "Giao ban", "starts_at": starts.isoformat(),
                                  "ends_at": (starts + timedelta(hours=2)).isoformat(), "venue": "Phòng 1",
                                  "site_id": "hq"})
    assert meeting.status_code == 201, meeting.text
    stream = session.get(f"{base}/meetings/{meeting.json()['id']}/truc-tiep/su-kien?keepalive=1", stream=True,
                         timeout=scaled(20))
    assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
    lines = stream.iter_lines(decode_unicode=True)
    assert next(line for line in lines if line.startswith("event:")) == "event: hello"

    # SIGTERM with the stream open: the stream ends and the server exits cleanly, well inside systemd's stop time.
    stopped_at = time.monotonic()
    server.send_signal(signal.SIGTERM)
    for _ in lines:  # drains to the end of the stream, which the server closes
        pass
    assert server.wait(timeout=scaled(15)) == 0
    took = time.monotonic() - stopped_at
    print(f"SIGTERM to exit with an open stream: {took:.2f} s")
    text = log_file.read_text(encoding="utf-8")
    assert "Booting worker" in text and "Shutting down: Master" in text
    for line in text.splitlines():  # every line, gunicorn's included, is the project's structured format
        if line.strip():
            assert line.startswith("ts="), line
    assert PASSWORD not in text and TOKEN not in text


def test_without_a_configured_key_every_worker_shares_one_session_key_removed_at_stop(tmp_path: Path) -> None:
    with serving(tmp_path, secret_key=False) as (base, server, _env, _log):
        (folder,) = (tmp_path / "tmp").glob("vaora-central-*")
        assert (folder / "secret-key").stat().st_mode & 0o777 == 0o600
        session = log_in(base)
        # Each request opens its own connection, so both workers answer some: none may see a stranger.
        for _ in range(20):
            page = session.get(f"{base}/meetings/", timeout=10, allow_redirects=False,
                               headers={"Connection": "close"})
            assert page.status_code == 200, "a session signed by one worker is valid in the other"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=scaled(15)) == 0
    assert not folder.exists(), "the run's session key is removed when the server stops"


@pytest.mark.parametrize("proxies", [0, 1])
def test_behind_a_proxy_the_client_address_comes_from_x_forwarded_for(
    central_config: dict[str, Any], proxies: int
) -> None:
    """/metrics is open to the machine itself only: with one proxy configured, a forwarded outside address is
    an outside caller (needs the token); with none, the header is not believed."""
    from central.app import create_app

    app = create_app({**central_config, "VAORA_PROXY_COUNT": str(proxies)})
    client = app.test_client()
    outside = {"X-Forwarded-For": "203.0.113.9"}
    assert client.get("/metrics", headers=outside).status_code == (403 if proxies else 200)
    with_token = {**outside, "Authorization": f"Bearer {central_config['VAORA_API_TOKEN']}"}
    assert client.get("/metrics", headers=with_token).status_code == 200
    assert client.get("/metrics", headers={**outside, "Authorization": "Bearer wrong"}).status_code == (
        403 if proxies else 200)


def test_two_processes_share_the_registration_limiter_through_redis(central_config: dict[str, Any],
                                                                    redis_url: str) -> None:
    """With ``VAORA_REDIS_URL`` set, guesses counted by one web process count in the other (two apps stand for two
    gunicorn workers or machines), through a redis-server of the test's own."""
    redis = pytest.importorskip("redis")
    from central.app import create_app

    settings = {**central_config, "VAORA_REDIS_URL": redis_url, "REGISTRATION_GUESS_LIMIT": "3 per minute"}
    one, two = create_app(settings).test_client(), create_app(settings).test_client()
    address = {"REMOTE_ADDR": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}  # fresh counters for this run
    suffix = uuid.uuid4().hex[:8]
    number = f"1{suffix}/TM-UBND"
    assert one.get(f"/dang-ky/{number}?s=x", environ_base=address).status_code == 404
    delegate = {"name": "Nguyễn Văn An", "position": "Chuyên viên", "email": "an.nguyen@example.vn"}
    assert one.post(f"/api/v1/invitations/{number}/delegates", json=delegate, headers={"X-Invitation-Secret": "x"},
                    environ_base=address).status_code == 404
    assert two.get(f"/dang-ky/{number}?s=y", environ_base=address).status_code == 404
    assert two.get(f"/dang-ky/{number}?s=z", environ_base=address).status_code == 429
    assert one.get(f"/dang-ky/{number}?s=z", environ_base=address).status_code == 429
    assert one.get(f"/dang-ky/2{suffix}/TM-UBND?s=x", environ_base=address).status_code == 404, "another number"
    assert redis.Redis.from_url(redis_url).keys("*vaora-invitation-guess*"), "the counts live in Redis"
