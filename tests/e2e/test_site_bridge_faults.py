"""Faults on a bridged site, with the product's processes: a site broker started with the bridge file
``vaora-central broker-config --site`` writes, a core broker with the core's files, a TCP relay between them (the
wide-area link, which a test cuts), two ``vaora-central ingest`` processes at the core, and in-process gates (their
own SQLite outboxes) at the site broker. The fleet page is central's app on the same database.

- A bridge with a wrong password: the site broker's log names the refusal and the fleet page shows the site
  offline, never connected; with the password fixed the page shows it connected. Bad payloads published on the
  bridge-state topic change nothing.
- The link cut for :data:`CUT_S` seconds: the gates keep admitting, their check-ins are held in the site broker
  (the bridge's queue) and in the gates' outboxes, the page shows the site offline with its gates by their last
  known state; once the link is back every check-in is stored exactly once and the gates' outboxes drain.
- A check-in delivered through two paths (the bridge's queue after the reconnect, and the gate re-publishing it
  from its outbox) is stored once: central answers the first ``stored`` and the second ``duplicate``.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from flask.testing import FlaskClient

from central.app import create_app
from central.core.db import database
from central.core.states import SiteLinkState
from central.gates.models import CheckIn, SiteLink
from central.messaging.broker_auth import CENTRAL_USERNAME, site_username
from central.messaging.site_broker import BRIDGE_FILE
from devtools.broker import LocalBroker
from gate.app import Gate
from gate.scanners import ScanEvent
from gate.store import GateStore
from protocols import topics
from protocols.payloads import Ack, decode, decode_acks
from protocols.payloads import CheckIn as CheckInPayload
from protocols.reasons import Reason
from tests.central.staff import login, make_users
from tests.conftest import scaled, wait_until
from tests.gate.gate_helpers import World, build_world

from .conftest import INGEST_SHARE_GROUP, log_tail, stop_processes
from .relay import Relay
from .test_faults import central_counts, central_db, start_silent_gate, wait_delivered  # noqa: F401
from .test_ingest_active_active import spawn_ingest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(scaled(900))]

CUT_S = 60.0
"""How long the wide-area link stays cut (the issue's 60 s: its length is the point, so this one is a sleep)."""
RESEND_S = 5.0
"""The gates' re-publish interval: each check-in is re-published into the site broker's queue during the cut."""
SITE = "hq"
GATE_IDS = ("gate-0", "gate-1", "gate-2")
BANNER = 'id="fleet-site-offline"'


@dataclass
class BridgedSite:
    """The topology of one test (see the module docstring) and the handles to stop it."""

    tmp_path: Path
    core_files: Path
    core: LocalBroker
    relay: Relay
    world: World
    site: LocalBroker | None = None
    ingests: dict[str, tuple[subprocess.Popen[bytes], Path]] = field(default_factory=dict)
    gates: dict[str, Gate] = field(default_factory=dict)
    page: FlaskClient | None = None

    def bridge_text(self) -> str:
        return (self.core_files / "sites" / SITE / BRIDGE_FILE).read_text()

    def start_site(self, bridge: str) -> LocalBroker:
        """The site broker: anonymous for the test gates (as in test_site_bridge_ingest), the bridge as given."""
        self.site = LocalBroker(self.tmp_path / "site", max_queued_messages=100_000, extra_config=bridge)
        self.site.start()
        return self.site

    def start_ingests(self) -> None:
        since = self.core.log_position()
        credentials = {"VAORA_MQTT_USERNAME": CENTRAL_USERNAME,
                       "VAORA_MQTT_PASSWORD_FILE": str(self.core_files / "secrets" / f"{CENTRAL_USERNAME}.password")}
        self.ingests = {name: spawn_ingest(name, self.tmp_path, self.core, credentials)
                        for name in ("ingest-a", "ingest-b")}
        for name, (process, log) in self.ingests.items():
            try:  # the bridge-state subscription is the last of the worker's list: all of them are in place
                self.core.wait_subscribed(name, topics.ALL_SITE_BRIDGE_STATES, since=since, timeout=60)
                self.core.wait_subscribed(name, topics.shared(INGEST_SHARE_GROUP, topics.ALL_GATE_CHECKINS),
                                          since=since, timeout=60)
            except TimeoutError as error:
                pytest.fail(f"{error}\n{name} (rc={process.poll()}):\n{log_tail(log)}")

    def open_gate(self, gate_id: str, *, seed: bool) -> Gate:
        """Start gate ``gate_id`` at the site broker (its outbox and cache in its own folder, kept between
        starts); ``seed`` loads the world's snapshot first (an open meeting at the site, unlimited entries)."""
        assert self.site is not None
        data_dir = self.tmp_path / gate_id
        if seed:
            cache = GateStore(data_dir)
            cache.load_snapshot(self.world.snapshot, datetime.now(UTC))
            cache.close()
        gate = start_silent_gate(gate_id, data_dir, self.site, RESEND_S, site=SITE)
        assert gate.transport.wait_connected(scaled(10))
        self.gates[gate_id] = gate
        return gate

    def stop_gates(self) -> None:
        for gate in self.gates.values():
            gate.stop()
        self.gates = {}

    def link(self) -> SiteLink | None:
        with database.connection_context():
            return SiteLink.get_or_none(SiteLink.site_id == SITE)

    def wait_link(self, state: SiteLinkState, timeout: float = 120) -> None:
        def reached() -> bool:
            row = self.link()
            return row is not None and row.state == state

        wait_until(reached, timeout=timeout, interval=0.1, message=lambda: (
            f"site link {self.link() and self.link().state}, wanted {state}\n" + self.logs()))

    def fleet_page(self) -> str:
        assert self.page is not None
        response = self.page.get("/cong/")
        assert response.status_code == 200
        return response.get_data(as_text=True)

    def logs(self) -> str:
        parts = [f"--- {name}\n{log_tail(log, 1500)}" for name, (_, log) in self.ingests.items()]
        if self.site is not None:
            parts.append(f"--- site broker\n{self.site.log_tail(30)}")
        return "\n".join(parts)


def banner(page: str) -> str:
    """The page's site-offline banner (empty when every site is connected)."""
    return page.split(BANNER, 1)[1].split(">", 1)[1].split("</div>", 1)[0]


def gate_row(page: str, gate_id: str) -> str:
    return page.split(f'data-gate="{gate_id}"', 1)[1].split("</tr>", 1)[0]


@pytest.fixture
def bridged(tmp_path: Path, central_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[BridgedSite]:  # noqa: F811
    """The operator's steps: register the gates, write the core's and the site's broker files with the CLI
    (which registers the site as never connected), start the core, the relay (the bridge's address) and two
    ingest processes. The site broker is started by the test, with the bridge file it chooses."""
    from central.cli import main

    database_url = f"sqlite:///{tmp_path / 'central.db'}"
    monkeypatch.setenv("VAORA_DATABASE_URL", database_url)
    monkeypatch.setenv("VAORA_API_TOKEN", "t" * 32)
    monkeypatch.setenv("VAORA_SIGNING_KEY_FILE", str(tmp_path / "signing-key.pem"))
    for gate_id in GATE_IDS:
        assert main(["add-gate", gate_id, "--site", SITE]) == 0
    core_files = tmp_path / "vaora"
    assert main(["broker-config", str(core_files)]) == 0
    core = LocalBroker(tmp_path / "core", allow_anonymous=False, max_queued_messages=100_000,
                       extra_config=f"password_file {core_files / 'passwd'}\nacl_file {core_files / 'acl'}\n")
    core.start()
    relay = Relay("127.0.0.1", core.port)
    relay.start()
    assert main(["broker-config", str(core_files), "--site", SITE, "--core", f"127.0.0.1:{relay.port}"]) == 0
    world = build_world(20, now=datetime.now(UTC), site=SITE)
    open_meeting = world.snapshot.meetings[0].model_copy(update={"entry_policy": "unlimited"})
    world.snapshot = world.snapshot.model_copy(update={"meetings": [open_meeting, *world.snapshot.meetings[1:]]})
    topology = BridgedSite(tmp_path, core_files, core, relay, world)
    app = create_app({
        "VAORA_DATABASE_URL": database_url, "VAORA_API_TOKEN": "t" * 32,
        "VAORA_SIGNING_KEY_FILE": str(tmp_path / "signing-key.pem"), "VAORA_SMTP_HOST": "127.0.0.1",
        "VAORA_SMTP_PORT": 9, "VAORA_PUBLIC_URL": "http://vaora.example.vn", "VAORA_DATA_DIR": str(tmp_path / "data"),
        "TESTING": True,
    })
    make_users(datetime.now(UTC))
    topology.page = app.test_client()
    assert login(topology.page, "chuyenvien").status_code == 302
    try:
        topology.start_ingests()
        yield topology
    finally:
        topology.stop_gates()
        stop_processes((process for process, _ in topology.ingests.values()), timeout=20)
        if topology.site is not None:
            topology.site.stop()
        relay.close()
        core.stop()


class CoreWatcher:
    """Central's account at the core, subscribed without a share group to one gate's check-ins (every copy the
    bridge delivers, whichever ingest process gets it) and acks (every answer central publishes)."""

    def __init__(self, site: BridgedSite, gate_id: str) -> None:
        self.checkins: list[str] = []
        self.acks: list[Ack] = []
        self.gate_id = gate_id
        password = (site.core_files / "secrets" / f"{CENTRAL_USERNAME}.password").read_text().strip()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"core-watch-{uuid.uuid4().hex[:6]}")
        self.client.username_pw_set(CENTRAL_USERNAME, password)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(site.core.host, site.core.port)
        self.client.loop_start()
        self.client.subscribe([(topics.gate_checkins(gate_id), 1), (topics.gate_acks(gate_id), 1)])
        assert subscribed.wait(scaled(10))

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == topics.gate_acks(self.gate_id):
            self.acks.extend(decode_acks(message.payload))
        else:
            self.checkins.append(str(decode(CheckInPayload, message.payload).id))

    def copies(self, checkin_id: str) -> int:
        return self.checkins.count(checkin_id)

    def answers(self, checkin_id: str) -> list[str]:
        return [ack.status for ack in list(self.acks) if str(ack.checkin_id) == checkin_id]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_a_bridge_with_a_wrong_password_is_named_in_the_site_log_and_shown_offline(bridged: BridgedSite):
    # Provisioned, not yet heard: offline from the start.
    page = bridged.fleet_page()
    assert f"Mất kết nối trạm (site offline): {SITE}" in banner(page)
    assert "chưa từng kết nối tới trung tâm" in banner(page)

    right = bridged.bridge_text()
    wrong = right.replace("remote_password ", "remote_password wrong-")
    assert wrong != right
    site = bridged.start_site(wrong)
    site.wait_for_log("Connection Refused: not authorised\n", timeout=60)
    site.wait_for_log(f"Client vaora-bridge-{SITE} closed its connection", timeout=60)
    assert bridged.link().state == SiteLinkState.NEVER
    page = bridged.fleet_page()
    assert f"Mất kết nối trạm (site offline): {SITE}" in banner(page)
    assert "Kiểm tra nhật ký (log) của máy chủ MQTT tại trạm" in banner(page)
    assert all("Trạm mất kết nối" in gate_row(page, gate_id) for gate_id in GATE_IDS)

    # The operator fixes the password and restarts the site broker: the page shows the site connected.
    site.extra_config = right
    site.restart()
    bridged.wait_link(SiteLinkState.CONNECTED)
    page = bridged.fleet_page()
    assert banner(page).strip() == "" and "Trạm đã kết nối" in page
    assert not any("Trạm mất kết nối" in gate_row(page, gate_id) for gate_id in GATE_IDS)

    # The bridge's own account may write its state topic at the core: payloads other than "1"/"0" change nothing.
    since = {name: log.stat().st_size for name, (_, log) in bridged.ingests.items()}
    before = bridged.link()
    password = (bridged.core_files / "secrets" / f"{site_username(SITE)}.password").read_text().strip()
    rogue = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rogue-bridge-state")
    rogue.username_pw_set(site_username(SITE), password)
    rogue.connect(bridged.core.host, bridged.core.port)
    rogue.loop_start()
    bad = [b"2", b"", b"offline", b"0 "]
    try:
        for payload in bad:
            rogue.publish(topics.site_bridge_state(SITE), payload, qos=1).wait_for_publish(timeout=scaled(10))
    finally:
        rogue.loop_stop()
        rogue.disconnect()

    def ignored(name: str) -> int:
        text = bridged.ingests[name][1].read_bytes()[since[name]:].decode(errors="replace")
        return text.count("ignored site bridge state")

    for name in bridged.ingests:  # each process subscribes itself (no share group) and ignores each one once
        wait_until(lambda name=name: ignored(name) == len(bad), timeout=60, message=bridged.logs)
    after = bridged.link()
    assert (after.state, after.changed_at, after.connected_at) == (before.state, before.changed_at,
                                                                   before.connected_at)
    assert banner(bridged.fleet_page()).strip() == ""


def scan(gate: Gate, code: str) -> tuple[bool, str]:
    decision, checkin = gate.handle_scan(ScanEvent(code, Reason.OK, "test", time.monotonic()))
    assert checkin is not None
    return decision.allowed, str(checkin.id)


def stored(checkin_ids: set[str]) -> int:
    with database.connection_context():
        return CheckIn.select().where(CheckIn.checkin_id.in_([uuid.UUID(i) for i in checkin_ids])).count()


def undelivered(gates: dict[str, Gate]) -> set[str]:
    return {row.checkin_id for gate in gates.values() for row in gate.cache.outbox_rows() if row.delivered_at is None}


def test_a_60_s_cut_loses_nothing_and_stores_nothing_twice(bridged: BridgedSite):
    bridged.start_site(bridged.bridge_text())
    bridged.wait_link(SiteLinkState.CONNECTED)
    for gate_id in GATE_IDS:
        bridged.open_gate(gate_id, seed=True)
    codes = list(bridged.world.codes.values())[:10]  # delegates of the open meeting (none revoked or expired)
    scanned: dict[str, bool] = {}  # check-in id -> admitted
    stop = threading.Event()
    lock = threading.Lock()

    def drive(gate: Gate, offset: int) -> None:
        turn = offset
        while not stop.wait(0.5):
            allowed, checkin_id = scan(gate, codes[turn % len(codes)])
            turn += 1
            with lock:
                scanned[checkin_id] = allowed

    threads = [threading.Thread(target=drive, args=(gate, index), daemon=True)
               for index, gate in enumerate(bridged.gates.values())]
    for thread in threads:
        thread.start()
    try:
        # Before the cut, check-ins cross the bridge and their acks come back.
        wait_until(lambda: central_counts()[0] >= 10, timeout=120, interval=0.2, message=bridged.logs)

        bridged.relay.cut()
        cut_at = time.monotonic()
        with lock:
            before_cut = set(scanned)
        bridged.wait_link(SiteLinkState.DISCONNECTED)  # the core published the bridge's last will
        page = bridged.fleet_page()
        assert f"Mất kết nối trạm (site offline): {SITE}" in banner(page)
        for gate_id in GATE_IDS:
            row = gate_row(page, gate_id)  # the last known state, never the "online" badge
            assert "Trạm mất kết nối" in row and "Lần cuối: " in row and "badge-open" not in row
        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
        stop.set()
        for thread in threads:
            thread.join(scaled(10))
        during = {checkin_id: allowed for checkin_id, allowed in scanned.items() if checkin_id not in before_cut}
        assert len(during) >= CUT_S, "the gates kept scanning through the cut"
        assert all(during.values()), "the gates kept admitting through the cut"
        assert stored(set(during)) == 0, "nothing crossed the cut link"
        assert set(during) <= undelivered(bridged.gates), "the gates' outboxes hold what they scanned during the cut"

        # Every check-in has reached the site broker at least once (its bridge queue holds it); then the gates
        # stop, so what reaches central next comes from the site broker alone.
        wait_until(lambda: all(row.attempts >= 1 for gate in bridged.gates.values()
                               for row in gate.cache.outbox_rows()), timeout=60, interval=0.2)
        total = len(scanned)
        bridged.stop_gates()
        bridged.relay.restore()
        bridged.wait_link(SiteLinkState.CONNECTED)
        wait_until(lambda: central_counts()[0] >= total, timeout=300, interval=0.5,
                   message=lambda: f"stored {central_counts()} of {total}\n{bridged.logs()}")
        assert central_counts() == (total, total), "held in the site broker, each stored once"

        # The gates come back: their outboxes re-publish what was never acknowledged, and drain.
        for gate_id in GATE_IDS:
            bridged.open_gate(gate_id, seed=False)
        wait_delivered(list(bridged.gates.values()), timeout=300)
        assert central_counts() == (total, total), f"{total} scanned: 0 lost, 0 stored twice"
        print(f"{total} check-ins, {len(during)} of them scanned during the {CUT_S:.0f} s cut: "
              f"stored {central_counts()[0]} (distinct {central_counts()[1]})")
        page = bridged.fleet_page()
        assert banner(page).strip() == "" and "Trạm đã kết nối" in page
    finally:
        stop.set()


def test_a_checkin_delivered_by_the_bridge_and_re_published_by_the_gate_is_stored_once(bridged: BridgedSite):
    bridged.start_site(bridged.bridge_text())
    bridged.wait_link(SiteLinkState.CONNECTED)
    core = CoreWatcher(bridged, GATE_IDS[0])
    try:
        gate = bridged.open_gate(GATE_IDS[0], seed=True)
        bridged.relay.cut()
        bridged.wait_link(SiteLinkState.DISCONNECTED)
        allowed, checkin_id = scan(gate, bridged.world.codes[1])
        assert allowed
        # Path 1: published to the site broker, where the bridge's queue holds it (the gate's stop re-publishes
        # what is unacknowledged once more: that copy waits in the queue too).
        wait_until(lambda: any(row.checkin_id == checkin_id and row.attempts >= 1
                               for row in gate.cache.outbox_rows()), timeout=30, interval=0.1)
        bridged.stop_gates()
        kept = GateStore(bridged.tmp_path / GATE_IDS[0])
        try:
            queued = next(row.attempts for row in kept.outbox_rows()
                          if row.checkin_id == checkin_id and row.delivered_at is None)
        finally:
            kept.close()
        bridged.relay.restore()
        # The bridge delivers every queued copy after the reconnect; central answers each (at the core), and
        # stores the check-in once. The answers went down to a gate that was away: it still holds the check-in.
        wait_until(lambda: len(core.answers(checkin_id)) >= queued, timeout=120, interval=0.1,
                   message=lambda: f"copies {core.copies(checkin_id)} answers {core.answers(checkin_id)}\n"
                                   + bridged.logs())
        assert core.copies(checkin_id) == queued
        assert stored({checkin_id}) == 1

        # Path 2: the gate, back, re-publishes it from its outbox; central answers "duplicate" and the outbox
        # drains.
        gate = bridged.open_gate(GATE_IDS[0], seed=False)
        wait_delivered([gate], timeout=120)
        row = next(row for row in gate.cache.outbox_rows() if row.checkin_id == checkin_id)
        assert row.attempts > queued, "the gate re-published it"
        wait_until(lambda: len(core.answers(checkin_id)) >= row.attempts, timeout=60, interval=0.1,
                   message=lambda: f"answers {core.answers(checkin_id)}")
        answers = core.answers(checkin_id)
        assert answers.count("stored") == 1 and answers.count("duplicate") == len(answers) - 1 >= queued, answers
        assert stored({checkin_id}) == 1 and central_counts() == (1, 1)
    finally:
        core.close()
