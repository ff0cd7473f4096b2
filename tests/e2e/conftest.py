"""Fixtures for end-to-end tests: central's web server and ingest worker as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from devtools.broker import LocalBroker
from devtools.mailcatcher import MailCatcher
from devtools.ports import free_port

API_TOKEN = "e2e-organiser-token"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Central:
    """A running central: its base URL, environment, database file and processes."""

    url: str
    env: dict[str, str]
    database_path: Path
    processes: list[subprocess.Popen]

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """Call the JSON API as the office (with the organiser token)."""
        headers = {"Authorization": f"Bearer {API_TOKEN}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "central.cli", *args], env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT
    )


def _wait_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"central exited early:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"central did not answer at {url}:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def central(tmp_path: Path, broker: LocalBroker, mail: MailCatcher) -> Iterator[Central]:
    """Central on SQLite: `vaora-central serve` and `vaora-central ingest` as separate processes."""
    port = free_port()
    database_path = tmp_path / "central.db"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VAORA_DATABASE_URL": f"sqlite:///{database_path}",
        "VAORA_SMTP_HOST": mail.host,
        "VAORA_SMTP_PORT": str(mail.port),
        "VAORA_MQTT_HOST": broker.host,
        "VAORA_MQTT_PORT": str(broker.port),
        "VAORA_API_TOKEN": API_TOKEN,
        "VAORA_SIGNING_KEY_FILE": str(tmp_path / "signing-key.pem"),
        "VAORA_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    log = tmp_path / "central.log"
    subprocess.run(
        [sys.executable, "-m", "central.cli", "init-db"], env=env, cwd=REPO, check=True, capture_output=True
    )
    server = _spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
    ingest = _spawn(["ingest"], env, tmp_path / "ingest.log")
    running = Central(f"http://127.0.0.1:{port}", env, database_path, [server, ingest])
    try:
        _wait_http(f"{running.url}/api/v1/openapi.json", server, log)
        yield running
    finally:
        for process in running.processes:
            process.terminate()
        for process in running.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
