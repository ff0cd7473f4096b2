"""Fixtures for end-to-end tests: central's web server and ingest worker as real processes.

``central`` is ready when its web server answers and its ingest worker's subscriptions are taken by the broker;
both waits scale with ``VAORA_TEST_TIMEOUT_SCALE``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.broker import LocalBroker
from devtools.mailcatcher import MailCatcher
from devtools.ports import free_port
from gate.scanners import ScanEvent
from gate.sync import SyncError, SyncFailure
from protocols import topics
from protocols.payloads import Snapshot
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until
from tests.gate.gate_helpers import World, build_world

API_TOKEN = "e2e-organiser-token"
STARTUP_TIMEOUT_S = 60.0
"""Ceiling (unscaled) for a central process to answer after it was spawned; a loaded machine needs many
seconds to import Flask and the app, a quiet one about one."""
INGEST_CLIENT_ID = "vaora-central-ingest"
"""The MQTT client id of ``vaora-central ingest`` (its persistent session at the broker)."""
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
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=scaled(30), **kwargs)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "central.cli", *args], env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT
    )


def _answers(url: str, process: subprocess.Popen, log: Path) -> bool:
    """True once ``url`` answers 200; fails the test at once when the process has exited."""
    if process.poll() is not None:
        pytest.fail(f"central exited early (rc={process.returncode}):\n{log_tail(log)}")
    try:
        return requests.get(url, timeout=scaled(2)).status_code == 200
    except requests.RequestException:
        return False


def log_tail(log: Path, chars: int = 3000) -> str:
    """The end of a process's log file, for failure messages."""
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


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
    subscriptions_from = broker.log_position()
    subprocess.run([sys.executable, "-m", "central.cli", "init-db"], env=env, cwd=REPO, check=True,
                   capture_output=True, timeout=scaled(STARTUP_TIMEOUT_S))
    server = _spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
    ingest_log = tmp_path / "ingest.log"
    ingest = _spawn(["ingest"], env, ingest_log)
    running = Central(f"http://127.0.0.1:{port}", env, database_path, [server, ingest])
    try:
        ready = f"{running.url}/api/v1/openapi.json"
        wait_until(lambda: _answers(ready, server, log), timeout=STARTUP_TIMEOUT_S, interval=0.1,
                   message=lambda: f"central did not answer at {ready}:\n{log_tail(log)}")
        # Ready means the ingest worker listens too: a check-in published before its SUBSCRIBE would be lost.
        try:
            broker.wait_subscribed(INGEST_CLIENT_ID, topics.ALL_GATE_CHECKINS, since=subscriptions_from,
                                   timeout=STARTUP_TIMEOUT_S)
        except TimeoutError as error:
            pytest.fail(f"{error}\ningest (rc={ingest.poll()}):\n{log_tail(ingest_log)}")
        yield running
    finally:
        for process in running.processes:
            process.terminate()
        for process in running.processes:
            try:
                process.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ----- pages in Chromium ---------------------------------------------------------------------------------------

PAGE_TIMEOUT_S = 15.0
"""Ceiling (unscaled) for every Playwright wait of a page opened with :func:`open_page`."""


def open_page(browser: Any, **context_options: Any) -> Any:
    """A new page in a fresh browser context (Vietnamese locale unless given) whose waits scale with
    ``VAORA_TEST_TIMEOUT_SCALE`` (Playwright's ``expect`` assertions too); the context closes with the ``browser``
    fixture."""
    from playwright.sync_api import expect

    expect.set_options(timeout=scaled(PAGE_TIMEOUT_S) * 1000)
    context = browser.new_context(**{"locale": "vi-VN", **context_options})
    page = context.new_page()
    page.set_default_timeout(scaled(PAGE_TIMEOUT_S) * 1000)
    return page


def watch_live_stream(page: Any) -> None:
    """Remember the dashboard's live event stream and mark the document, for :func:`updated_live`."""
    page.evaluate("window.__liveSource = window.vaoraDashboard.source; window.__sameDocument = true")


def updated_live(page: Any) -> bool:
    """True while the page is the document :func:`watch_live_stream` marked, with the same event stream open:
    what it shows since came over that stream (no reload, no reconnect after the browser gave up)."""
    return bool(page.evaluate(
        "window.__sameDocument === true && window.vaoraDashboard.source === window.__liveSource"
        " && window.__liveSource.readyState === EventSource.OPEN"))


# ----- in-process gates on the test world (test_offline, test_wire_input) ---------------------------------------

NOW = datetime.now(UTC).replace(microsecond=0)  # gates decide at wall-clock time (codes valid around it)


class Fetch:
    """The gate's snapshot fetch: serves ``snapshot`` (or raises unreachable while it is None); counts calls."""

    def __init__(self, snapshot: Snapshot | None) -> None:
        self.snapshot = snapshot
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, url: str, gate_id: str, token: str | None, timeout: float) -> Snapshot:
        with self._lock:
            self.calls += 1
            if self.snapshot is None:
                raise SyncError(SyncFailure.UNREACHABLE, "central stopped")
            return self.snapshot


def scan_event(text: str) -> ScanEvent:
    """A scanned ``text`` as the gate's scanner hands it over (for ``Gate.handle_scan``)."""
    return ScanEvent(text, Reason.OK, "test", time.monotonic())


def world_at_seq0(policy: str = "single") -> World:
    """The test world as central's snapshot before its first change (seq 0), meetings with ``policy``."""
    world = build_world(4, now=NOW)
    meetings = [m.model_copy(update={"entry_policy": policy}) for m in world.snapshot.meetings]
    world.snapshot = world.snapshot.model_copy(update={"seq": 0, "meetings": meetings})
    return world
