"""Central on several processes: two ``vaora-central serve`` processes on one database, a live-dashboard stream
open on each, and a check-in stored by a third process (as ingest would) appears on both. The database is the
shared source of the live events; no web process holds anything the other needs. On PostgreSQL the hub is woken
by the database's notification, not by its clock."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import requests

from central.attendance.live import CHECKINS, LiveHub
from central.attendance.services import mark_present
from central.core.db import database, open_database
from central.invitations.models import Invitation, Organisation
from central.meetings.models import Meeting
from central.registration.models import Delegate
from devtools.ports import free_port
from tests.central.test_server import PASSWORD, REPO, TOKEN, _cli, log_in
from tests.conftest import scaled, wait_until


@contextmanager
def _serve(env: dict[str, str], log: Path) -> Iterator[str]:
    """One ``vaora-central serve`` (one gunicorn worker) on a free port; yields its base URL."""
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "central.cli", "serve", "--port", str(port)], cwd=REPO,
                                  env={**env, "VAORA_PUBLIC_URL": f"http://127.0.0.1:{port}"}, stdout=out,
                                  stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return requests.get(f"{base}/login", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        try:
            wait_until(answers, timeout=60, message=lambda: log.read_text(errors="replace")[-2000:])
            yield base
        finally:
            server.kill()
            server.wait()


class Stream:
    """A dashboard's event stream, read on a thread: the ``event:`` and ``data:`` lines it received."""

    def __init__(self, session: requests.Session, url: str) -> None:
        self.lines: list[str] = []
        self.response = session.get(url, stream=True, timeout=scaled(60))
        assert self.response.status_code == 200, self.response.text[:300]
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                self.lines.append(line)
        except (requests.RequestException, AttributeError, ValueError):  # closed at the end of the test
            pass

    def saw(self, kind: str, text: str = "") -> bool:
        return any(line == f"event: {kind}" and text in following for line, following in pairwise([*self.lines, ""]))

    def close(self) -> None:
        self.response.close()


def _meeting_with_delegate() -> tuple[Meeting, Delegate]:
    now = datetime.now(UTC)
    with database.connection_context():
        meeting = Meeting.create(title="Giao ban liên cơ quan", starts_at=now - timedelta(hours=1),
                                 ends_at=now + timedelta(hours=3), venue="Phòng họp 1", site_id="hq", created_at=now)
        organisation = Organisation.create(name="Sở Tư pháp")
        invitation = Invitation.create(meeting=meeting, organisation=organisation, number="3/GM-UBND", year=now.year,
                                       seq=3, secret_hash="x", created_at=now)
        delegate = Delegate.create(invitation=invitation, meeting=meeting, name="Trần Thị Bình",
                                   position="Phó Giám đốc", email="binh.tran@example.vn", code="x",
                                   credential=uuid.uuid4().hex, valid_from=meeting.starts_at,
                                   valid_until=meeting.ends_at, created_at=now)
    return meeting, delegate


@pytest.mark.slow
def test_a_checkin_appears_on_dashboards_of_both_web_processes(tmp_path: Path, database_url: str) -> None:
    env = {**os.environ, "VAORA_DATABASE_URL": database_url, "VAORA_API_TOKEN": TOKEN,
           "VAORA_SIGNING_KEY_FILE": str(tmp_path / "key.pem"), "VAORA_DATA_DIR": str(tmp_path / "data"),
           "VAORA_WEB_WORKERS": "1", "VAORA_WEB_THREADS": "8", "VAORA_LOG_LEVEL": "INFO"}
    (tmp_path / "secret").write_text("s" * 40, encoding="utf-8")
    env["VAORA_SECRET_KEY_FILE"] = str(tmp_path / "secret")  # one session key: a login is good on either process
    created = _cli(env, "create-admin", "quantri", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    open_database(database_url)
    meeting, delegate = _meeting_with_delegate()

    with ExitStack() as stack:
        bases = [stack.enter_context(_serve(env, tmp_path / f"serve-{n}.log")) for n in (1, 2)]
        streams = []
        for base in bases:
            stream = Stream(log_in(base), f"{base}/meetings/{meeting.id}/truc-tiep/su-kien?keepalive=1")
            stack.callback(stream.close)
            streams.append(stream)
        for stream in streams:
            wait_until(lambda s=stream: s.saw("hello"), timeout=30)

        with database.connection_context():  # a third process's write, as ingest's would be
            mark_present(meeting, {"delegate_id": delegate.id, "reason": "Vào bằng cửa phụ"}, actor="test",
                         now=datetime.now(UTC))
        for number, stream in enumerate(streams, 1):
            wait_until(lambda s=stream: s.saw("checkins", "Trần Thị Bình"), timeout=30,
                       message=f"the check-in did not reach the dashboard on process {number}")
    database.close()


def test_the_hub_is_woken_by_postgresql_and_polls_sqlite(database_url: str) -> None:
    """A hub that would poll only once an hour sees a check-in at once on PostgreSQL (NOTIFY, migration m0014);
    on SQLite it polls every ``interval``."""
    open_database(database_url)
    meeting, delegate = _meeting_with_delegate()
    postgres = database_url.startswith("postgresql")
    hub = LiveHub(interval=0.05, slow_interval=3600 if postgres else 0.05)
    try:
        with database.connection_context():
            sub = hub.subscribe(meeting.id, frozenset({CHECKINS}))
        if postgres:
            wait_until(lambda: hub.notified, timeout=30)
        with database.connection_context():
            mark_present(meeting, {"delegate_id": delegate.id, "reason": "Quên mã"}, actor="test",
                         now=datetime.now(UTC))
        event = sub.queue.get(timeout=scaled(30))
        assert event is not None and event.kind == CHECKINS and event.data[0]["name"] == "Trần Thị Bình"
        assert hub.notified is postgres
    finally:
        hub.stop()
        database.close()
