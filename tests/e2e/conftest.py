"""Fixtures for end-to-end tests: central's web server and ingest worker as real processes.

``central`` is ready when its web server answers and its ingest worker's subscriptions are taken by the broker;
both waits scale with ``VAORA_TEST_TIMEOUT_SCALE``.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests
import zxingcpp
from gpiozero.pins.mock import MockFactory
from PIL import Image

from central.core.changes import append_change
from central.core.db import database, open_database
from central.messaging.changefeed import ChangeFeed
from central.migrations import migrate
from devtools import approval
from devtools.broker import LocalBroker
from devtools.mailcatcher import MailCatcher
from devtools.ports import free_port
from devtools.processes import stop_processes
from gate.app import Gate
from gate.config import parse_config
from gate.scanners import ScanEvent
from gate.sync import SyncError, SyncFailure
from protocols import topics
from protocols.meeting_days import DAY_STARTS_AT, MEETING_TZ, meeting_date
from protocols.payloads import Change, ChangeBody, MeetingEntry, MeetingUpsert, Snapshot
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until
from tests.gate.gate_helpers import World, build_world

API_TOKEN = "e2e-organiser-token"
STARTUP_TIMEOUT_S = 60.0
"""Ceiling (unscaled) for a central process to answer after it was spawned; a loaded machine needs many
seconds to import Flask and the app, a quiet one about one."""
INGEST_CLIENT_ID = "vaora-central-ingest-e2e"
"""The MQTT client id the fixture gives ``vaora-central ingest`` (``VAORA_MQTT_CLIENT_ID``; unset, it is unique per
process), so tests can wait on its subscription in the broker's log."""
INGEST_SHARE_GROUP = "vaora-ingest"
"""The default ``VAORA_MQTT_SHARE_GROUP``: the ingest subscribes through ``$share/vaora-ingest/...``."""
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Central:
    """A running central: its base URL, environment, database file and processes."""

    url: str
    env: dict[str, str]
    database_path: Path
    processes: list[subprocess.Popen]
    mail: MailCatcher | None = None
    leader: requests.Session | None = None

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
    """Central on SQLite as the units run it: `vaora-central serve`, `ingest` and `deliver` as separate processes."""
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
        "VAORA_MQTT_CLIENT_ID": INGEST_CLIENT_ID,
    }
    log = tmp_path / "central.log"
    subscriptions_from = broker.log_position()
    subprocess.run([sys.executable, "-m", "central.cli", "init-db"], env=env, cwd=REPO, check=True,
                   capture_output=True, timeout=scaled(STARTUP_TIMEOUT_S))
    server = _spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
    ingest_log = tmp_path / "ingest.log"
    ingest = _spawn(["ingest"], env, ingest_log)
    deliver = _spawn(["deliver", "--interval", "0.2"], env, tmp_path / "deliver.log")
    running = Central(f"http://127.0.0.1:{port}", env, database_path, [server, ingest, deliver], mail)
    try:
        ready = f"{running.url}/api/v1/openapi.json"
        wait_until(lambda: _answers(ready, server, log), timeout=STARTUP_TIMEOUT_S, interval=0.1,
                   message=lambda: f"central did not answer at {ready}:\n{log_tail(log)}")
        # Ready means the ingest worker listens too: a check-in published before its SUBSCRIBE would be lost.
        try:
            broker.wait_subscribed(INGEST_CLIENT_ID, topics.shared(INGEST_SHARE_GROUP, topics.ALL_GATE_CHECKINS),
                                   since=subscriptions_from,
                                   timeout=STARTUP_TIMEOUT_S)
        except TimeoutError as error:
            pytest.fail(f"{error}\ningest (rc={ingest.poll()}):\n{log_tail(ingest_log)}")
        yield running
    finally:
        stop_processes(running.processes)


# ----- one delegate's way: the office's API, the code e-mail, a gate on a serial pty ---------------------------

RELAY, GREEN, RED = 17, 27, 22
UNLOCK_SECONDS = 0.5


def qr_text_of(message: EmailMessage) -> str:
    """Decode the inline QR image of a code e-mail, as a phone camera or scanner would."""
    images = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1, "the code e-mail carries exactly one inline QR image"
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(images[0].get_payload(decode=True))))
    assert len(results) == 1
    return results[0].text


def high_periods(pin) -> list[float]:
    """Durations, in seconds, of every completed period the mock pin spent high.

    gpiozero's MockPin records each change with the time elapsed since the previous change.
    """
    periods, high = [], False
    for state in pin.states:
        if high and not state.state:
            periods.append(state.timestamp)
        high = bool(state.state)
    return periods


LEADER = "lanhdao"
LEADER_PASSWORD = "mat-khau-lanh-dao-e2e"


def leader_session(central: Central) -> requests.Session:
    """A session of the leader who approves invitations (the approver account is made on first use, written to
    central's SQLite file from the test process)."""
    if central.leader is None:
        from argon2 import PasswordHasher, profiles

        from central.auth import users
        from central.auth.passwords import use_hasher
        from central.core.db import database, open_database

        use_hasher(PasswordHasher.from_parameters(profiles.CHEAPEST))
        open_database(f"sqlite:///{central.database_path}")
        with database.connection_context():
            users.create_user({"username": LEADER, "password": LEADER_PASSWORD, "role": "approver",
                               "full_name": "Phó Chủ tịch UBND"}, actor="test", now=datetime.now(UTC))
        central.leader = approval.log_in(central.url, LEADER, LEADER_PASSWORD, timeout=scaled(30))
    return central.leader


def approve(central: Central, invitation_id: int) -> dict[str, Any]:
    """The leader approves a draft (numbered and sent at once); returns the approved invitation."""
    return approval.approve(leader_session(central), central.url, invitation_id, timeout=scaled(30))


def one_meeting_day(now: datetime) -> tuple[datetime, datetime]:
    """A meeting starting in 30 minutes for 2.5 hours, kept within one meeting day (04:00 to 04:00 Vietnam time,
    :mod:`protocols.meeting_days`): a meeting across 04:00 has two days, and the dashboard reloads its state on each
    arrival of such a meeting (which day counts is the server's rule), which a test run between 00:30 and 04:00
    Vietnam time would otherwise meet. Shortened to end before the next day, or moved to start just after it
    (still within the two hours before the start in which codes open)."""
    start, end = now + timedelta(minutes=30), now + timedelta(hours=3)
    if meeting_date(start) == meeting_date(end):
        return start, end
    next_day = datetime.combine(meeting_date(start) + timedelta(days=1), DAY_STARTS_AT, MEETING_TZ)
    if next_day - start >= timedelta(minutes=45):
        return start, next_day - timedelta(minutes=5)
    start = next_day + timedelta(minutes=5)
    return start, start + timedelta(hours=2, minutes=30)


def invite(central: Central, title: str, organisation: str, scheme: str = "compact") -> dict[str, Any]:
    """The office creates a meeting at site hq (:func:`one_meeting_day`: starting in 30 minutes, for 2.5 hours) and
    drafts the invitation of ``organisation``, the leader approves it, and the organisation's office receives it by
    e-mail; returns the approved invitation plus ``meeting_id`` and, from that e-mail, ``secret`` and
    ``registration_url``."""
    starts_at, ends_at = one_meeting_day(datetime.now(UTC))
    meeting = central.api("POST", "/api/v1/meetings", json={
        "title": title, "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(), "venue": "Hội trường A", "site_id": "hq",
        "scheme": scheme})
    assert meeting.status_code == 201, meeting.text
    office = "vanthu@donvi.example.vn"
    created = central.api("POST", "/api/v1/organisations", json={"name": organisation, "office_email": office})
    assert created.status_code == 201, created.text
    draft = central.api("POST", "/api/v1/invitations",
                        json={"meeting_id": meeting.json()["id"], "organisation_id": created.json()["id"]})
    assert draft.status_code == 201, draft.text
    assert draft.json()["status"] == "draft" and "secret" not in draft.json()
    approved = approve(central, draft.json()["id"])
    assert central.mail is not None
    wait_until(lambda: any(office in str(m.get("X-RcptTo", "")) for m in central.mail.messages), timeout=30)
    letters = [m for m in central.mail.messages if office in str(m.get("X-RcptTo", ""))]
    link = approval.registration_link([approval.mail_text(m) for m in letters], approved["number"])
    return {**approved, "meeting_id": meeting.json()["id"], "secret": link.secret, "registration_url": link.link}


def invite_to(central: Central, mail: MailCatcher, meeting_id: int, organisation: str, office: str) -> dict[str, Any]:
    """The office drafts the invitation of ``organisation`` (its office e-mail ``office``) to meeting ``meeting_id``,
    the leader approves it, and the organisation's office receives it by e-mail; returns the invitation's
    ``number`` and, from that e-mail, its ``secret`` (what a delegate's registration needs)."""
    created = central.api("POST", "/api/v1/organisations", json={"name": organisation, "office_email": office})
    assert created.status_code == 201, created.text
    draft = central.api("POST", "/api/v1/invitations",
                        json={"meeting_id": meeting_id, "organisation_id": created.json()["id"]})
    assert draft.status_code == 201, draft.text
    approved = approve(central, draft.json()["id"])
    wait_until(lambda: any(office in str(m.get("X-RcptTo", "")) for m in mail.messages), timeout=30)
    letters = [approval.mail_text(m) for m in mail.messages if office in str(m.get("X-RcptTo", ""))]
    link = approval.registration_link(letters, approved["number"])
    return {"number": approved["number"], "secret": link.secret}


def setup_meeting(central: Central, mail: MailCatcher, scheme: str, email: str) -> dict:
    """Office creates a meeting and invitation; the organisation registers a delegate; the mail arrives."""
    invitation = invite(central, f"Họp giao ban ({scheme})", f"Sở Tư pháp {scheme}", scheme)
    number, secret = invitation["number"], invitation["secret"]
    assert number.endswith("/GM-UBND")
    already = len(mail.messages)
    delegate = central.api(
        "POST",
        f"/api/v1/invitations/{number}/delegates",
        headers={"X-Invitation-Secret": secret},
        json={"name": "Nguyễn Thị Hoà", "position": "Phó Giám đốc", "email": email},
    )
    assert delegate.status_code == 201, delegate.text
    message = mail.wait_for(already + 1, timeout=30)[-1]
    assert email in message["To"]
    return {"meeting_id": invitation["meeting_id"], "delegate_id": delegate.json()["id"], "code": qr_text_of(message)}


def start_gate(central: Central, broker, tmp_path: Path, device: str) -> tuple[Gate, MockFactory]:
    """Register a gate at central and start it on simulated pins with a serial scanner on ``device``."""
    response = central.api(
        "POST", "/api/v1/gates", json={"gate_id": "lobby-1", "site_id": "hq", "name": "Cổng chính 1"}
    )
    assert response.status_code == 201, response.text
    config = parse_config(
        {
            "gate": {"id": "lobby-1", "site": "hq", "fail_mode": "secure", "data_dir": str(tmp_path / "gate")},
            "central": {"url": central.url, "token": response.json()["token"], "timeout": 5},
            "mqtt": {"host": broker.host, "port": broker.port, "resend_seconds": 2},
            "scanner": {"type": "serial", "device": device, "baudrate": 9600, "terminator": "cr"},
            "pins": {"relay": RELAY, "green_led": GREEN, "red_led": RED},
            "turnstile": {"unlock_seconds": UNLOCK_SECONDS},
            "status": {"enabled": True, "port": 0},
        }
    )
    factory = MockFactory()
    gate = Gate(config, pin_factory=factory)
    gate.start()
    assert gate.scanner.connected.wait(scaled(10)), "the serial scanner opened the pty"
    wait_until(lambda: gate.transport.is_connected, timeout=30)
    return gate, factory


def scan(gate: Gate, master: int, text: str, before: int):
    """Type ``text`` on the scanner's wire and wait until the gate has handled it."""
    os.write(master, text.encode("utf-8") + b"\r")
    assert gate.wait_for_scans(before + 1, timeout=scaled(10)), "the gate handled the scan"
    return gate.recent[0]  # newest first


@pytest.fixture
def lobby_gate(central: Central, broker: LocalBroker, tmp_path: Path,
               scanner_pty: tuple[int, str]) -> Iterator[Callable[[], tuple[Gate, MockFactory]]]:
    """``start() -> (gate, pin factory)``: gate ``lobby-1`` registered at ``central`` and started on simulated pins,
    its serial scanner on ``scanner_pty`` (type on the master end); stopped at teardown. Start it once the
    meeting's delegates exist: it loads central's snapshot as it starts."""
    started: list[Gate] = []

    def start() -> tuple[Gate, MockFactory]:
        gate, factory = start_gate(central, broker, tmp_path, scanner_pty[1])
        started.append(gate)
        return gate, factory

    yield start
    for gate in started:
        gate.stop()


# ----- gates as real processes (``python -m gate.cli``) -----------------------------------------------------------


def gate_config_toml(data_dir: Path, broker: LocalBroker, *, gate_id: str = "g1", site: str = "hq",
                     central_url: str = "http://127.0.0.1:9", token: str = "unused", timeout: float = 1.0) -> str:
    """A simulated gate (MockFactory pins, stdin scanner) on ``broker``; by default its central is unreachable
    (fast refusal), or give the ``central_url`` and the gate's ``token``."""
    return f"""
[gate]
id = "{gate_id}"
site = "{site}"
simulate = true
data_dir = "{data_dir}"
[central]
url = "{central_url}"
token = "{token}"
timeout = {timeout}
[mqtt]
host = "{broker.host}"
port = {broker.port}
resend_seconds = 1
[scanner]
type = "stdin"
debounce_ms = 0
[pins]
relay = 17
green_led = 27
red_led = 22
[turnstile]
unlock_seconds = 0.2
[status]
enabled = false
"""


def spawn_gate(config: Path, log: Path) -> subprocess.Popen:
    """Start ``python -m gate.cli --config <config>`` with its output in ``log`` and its stdin a pipe (the scanner)."""
    with log.open("ab") as handle:
        return subprocess.Popen([sys.executable, "-m", "gate.cli", "--config", str(config)], cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.PIPE,
                                stdout=handle, stderr=subprocess.STDOUT)


def wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until the gate process logged ``text``; fail at once if it exited (unlike ``wait_until``, which
    would only notice at the timeout), with the log's tail. ``timeout`` is scaled."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise AssertionError(f"gate exited rc={process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.01)
    raise AssertionError(f"{text!r} not logged:\n{log.read_text(errors='replace')[-3000:]}")


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


def _mirror_meeting(entry: MeetingEntry) -> None:
    """Store the meeting a change describes as central's own row (its main hall's site, a remote point per other
    site), so central knows which sites' streams get its delegates' changes, as it does for a meeting it holds."""
    from central.meetings.models import Meeting, MeetingVenue, Venue

    fields = {"title": entry.title, "starts_at": entry.starts_at, "ends_at": entry.ends_at, "venue": entry.venue,
              "site_id": entry.site_id, "scheme": entry.scheme.value, "status": entry.status,
              "entry_policy": entry.entry_policy, "created_at": datetime.now(UTC)}
    if Meeting.get_or_none(Meeting.id == entry.id) is None:
        Meeting.create(id=entry.id, **fields)
    else:
        Meeting.update(**fields).where(Meeting.id == entry.id).execute()
    MeetingVenue.delete().where(MeetingVenue.meeting == entry.id).execute()
    for site in entry.gate_sites[1:]:
        venue, _ = Venue.get_or_create(name=f"Điểm cầu {site}", defaults={"kind": "remote", "site_id": site})
        MeetingVenue.create(meeting=entry.id, venue=venue)


@pytest.fixture
def change_log(tmp_path: Path) -> Iterator[Callable[[ChangeBody], Change]]:
    """Central's change log in its own SQLite database; returns ``store(body) -> Change``, the way central stores
    a change (a meeting upsert also stores the meeting, so its delegates' changes go to its sites' streams)."""
    open_database(f"sqlite:///{tmp_path / 'central.db'}")
    migrate()

    def store(body: ChangeBody) -> Change:
        with database.connection_context(), database.atomic():
            if isinstance(body, MeetingUpsert):
                _mirror_meeting(body.meeting)
            return append_change(body, datetime.now(UTC))

    yield store
    if not database.is_closed():
        database.close()


@pytest.fixture
def feed(broker: LocalBroker, change_log: Callable[[ChangeBody], Change]) -> Iterator[ChangeFeed]:
    """Central's change feed, publishing the change log to the broker."""
    changefeed = ChangeFeed(broker.host, broker.port, client_id=f"feed-{uuid.uuid4().hex[:6]}")
    changefeed.start()
    yield changefeed
    changefeed.stop()
