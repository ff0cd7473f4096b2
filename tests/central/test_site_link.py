"""A site's link to central (its site broker's bridge) against a real Mosquitto and central's real ingest workers:
the retained ``vaora/v1/sites/<site>/bridge`` state reaches the database through each worker's own (not shared)
subscription, the fleet page names a site offline, with its gates shown by their last known state and not as
online, ``/metrics`` and the fleet's JSON carry it, and bad payloads or site ids change nothing."""

from __future__ import annotations

import html
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database, write_transaction
from central.core.states import SiteLinkState
from central.gates import site_links
from central.gates.models import SiteLink
from central.messaging.ingest import IngestWorker
from central.web.filters import iso_localtime
from devtools.broker import LocalBroker
from protocols import topics
from tests.conftest import scaled, wait_until
from tests.mqtt_clients import MqttClient

from .conftest import Api, Clock, gates_at_two_sites, heard_from
from .staff import login, make_users

SHARE_GROUP = "vaora-ingest"
BANNER = 'id="fleet-site-offline"'


@pytest.fixture
def workers(app: Flask, broker: LocalBroker, clock: Clock) -> Iterator[Callable[[], IngestWorker]]:
    """Start ingest workers in the default share group (as ``vaora-central ingest`` does) on the test's clock."""
    started: list[IngestWorker] = []

    def start() -> IngestWorker:
        worker = IngestWorker(broker.host, broker.port, client_id=f"ingest-{uuid.uuid4().hex[:8]}", clock=clock,
                              share_group=SHARE_GROUP)
        worker.start()
        assert worker.connected.wait(scaled(30))
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


class Publisher(MqttClient):
    """Publishes at the broker as a site broker's bridge does (QoS 1, retained)."""

    def __init__(self, broker: LocalBroker) -> None:
        super().__init__(client_id=f"bridge-sim-{uuid.uuid4().hex[:6]}")
        connected = threading.Event()
        self.client.on_connect = lambda *_: connected.set()
        self.connect(broker.host, broker.port)
        assert connected.wait(scaled(10))

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(timeout=scaled(10))


@pytest.fixture
def bridge(broker: LocalBroker) -> Iterator[Publisher]:
    with Publisher(broker) as publisher:
        yield publisher


def link(site_id: str) -> SiteLink | None:
    with database.connection_context():
        return SiteLink.get_or_none(SiteLink.site_id == site_id)


def wait_state(site_id: str, state: SiteLinkState) -> SiteLink:
    def reached() -> SiteLink | None:
        row = link(site_id)
        return row if row is not None and row.state == state else None

    return wait_until(reached, timeout=30, interval=0.05, message=lambda: f"{site_id}: {link(site_id)}")


def organiser(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client, "chuyenvien").status_code == 302
    return client


def gate_row(page: str, gate_id: str) -> str:
    return page.split(f'data-gate="{gate_id}"', 1)[1].split("</tr>", 1)[0]


def banner(page: str) -> str:
    return page.split(BANNER, 1)[1].split(">", 1)[1].split("</div>", 1)[0]


def site_link_metric(client: FlaskClient, site_id: str) -> float | None:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'vaora_site_link_up{{site="{site_id}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def fleet(app: Flask, api: Api, clock: Clock) -> None:
    """Users, gate g1 at site hq (heard a moment ago: online) and gate r1 at site st (gates on the core)."""
    make_users(clock.now)
    gates_at_two_sites(api, clock.now)
    heard_from("r1", clock.now)


def test_a_site_link_is_shown_on_the_fleet_page_its_json_and_the_metrics(app: Flask, fleet: None, clock: Clock,
                                                                        workers, bridge: Publisher) -> None:
    workers()
    workers()  # two processes' worth: each subscribes to the bridge state itself and writes the same row
    client = organiser(app)
    # No site broker yet: the gates connect to the core, and nothing says "site offline".
    page = client.get("/cong/").text
    assert banner(page).strip() == "" and "Trực tuyến" in gate_row(page, "g1")
    assert [s["bridged"] for s in client.get("/cong/trang-thai.json").get_json()["sites"]] == [False, False]

    # broker-config --site hq registers the site: never connected, so offline from the start.
    with database.connection_context(), write_transaction():
        assert site_links.register_site("hq", clock.now)
        assert not site_links.register_site("hq", clock.now)  # once
    page = client.get("/cong/").text
    assert "Mất kết nối trạm (site offline): hq" in banner(page)
    assert "chưa từng kết nối tới trung tâm" in banner(page)
    assert "Kiểm tra nhật ký (log) của máy chủ MQTT tại trạm" in banner(page)
    g1 = gate_row(page, "g1")
    assert "Trạm mất kết nối" in g1 and "Lần cuối: Trực tuyến" in g1 and "badge-open" not in g1
    assert "Trực tuyến" in gate_row(page, "r1")  # st has no site broker: its gate is as it was
    state = client.get("/cong/trang-thai.json").get_json()
    hq = next(s for s in state["sites"] if s["site_id"] == "hq")
    assert hq == {"site_id": "hq", "gates": 1, "bridged": True, "state": "never", "offline": True,
                  "since": clock.now.isoformat(), "connected_at": None}
    g1_state = next(g for g in state["gates"] if g["gate_id"] == "g1")
    assert g1_state["online"] is False and g1_state["site_offline"] is True and g1_state["state"] == "online"
    assert site_link_metric(client, "hq") == 0.0

    # The bridge connects: Mosquitto publishes "1", retained.
    clock.now += timedelta(minutes=1)
    bridge.publish(topics.site_bridge_state("hq"), b"1")
    connected = wait_state("hq", SiteLinkState.CONNECTED)
    assert connected.changed_at == connected.connected_at == clock.now
    page = client.get("/cong/").text
    assert banner(page).strip() == "" and "Trạm đã kết nối" in page
    assert "Trực tuyến" in gate_row(page, "g1") and "Trạm mất kết nối" not in gate_row(page, "g1")
    assert site_link_metric(client, "hq") == 1.0

    # The bridge drops: its last will "0" at the core. The page says since when, in both languages.
    clock.now += timedelta(minutes=1)
    bridge.publish(topics.site_bridge_state("hq"), b"0")
    gone = wait_state("hq", SiteLinkState.DISCONNECTED)
    assert gone.changed_at == clock.now and gone.connected_at == connected.connected_at
    page = client.get("/cong/").text
    shown = iso_localtime(clock.now.isoformat())
    assert "Mất kết nối trạm (site offline): hq" in banner(page) and f"từ {shown}" in banner(page)
    assert "Lần cuối: Trực tuyến" in gate_row(page, "g1")
    assert site_link_metric(client, "hq") == 0.0
    english = client.get("/cong/?lang=en").text
    assert "Site offline: hq" in english and f"since {shown}" in english
    assert "Check the site broker's log" in html.unescape(english)


def test_the_same_state_twice_changes_nothing_and_a_late_worker_keeps_the_time(app: Flask, fleet: None,
                                                                              clock: Clock, workers,
                                                                              bridge: Publisher) -> None:
    with database.connection_context(), write_transaction():
        assert site_links.record_bridge_state("hq", SiteLinkState.DISCONNECTED, clock.now)
        assert not site_links.record_bridge_state("hq", SiteLinkState.DISCONNECTED, clock.now + timedelta(hours=1))
    assert link("hq").changed_at == clock.now
    bridge.publish(topics.site_bridge_state("hq"), b"0")  # retained at the broker, as the core keeps the will
    since = clock.now
    clock.now += timedelta(hours=2)
    workers()  # a worker (re)started later gets the retained "0" again ...
    bridge.publish(topics.site_bridge_state("marker"), b"1")  # ... before this, in order on its one writer
    wait_state("marker", SiteLinkState.CONNECTED)
    row = link("hq")
    assert row.state == SiteLinkState.DISCONNECTED and row.changed_at == since  # "offline since" is not reset


BAD_PAYLOADS = [b"", b"2", b"connected", b"1 ", b" 0", b"1\n", b"true", b"\xff\xfe", b"01", b"1" * 5000]
BAD_TOPICS = ["vaora/v1/sites/HQ/bridge", "vaora/v1/sites/h%q/bridge", f"vaora/v1/sites/{'x' * 33}/bridge",
              "vaora/v1/sites/-hq/bridge"]


def test_bad_payloads_and_site_ids_on_the_bridge_topic_change_nothing(app: Flask, fleet: None, clock: Clock,
                                                                      workers, bridge: Publisher,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="central.messaging.ingest")
    worker = workers()
    bridge.publish(topics.site_bridge_state("hq"), b"1")
    before = wait_state("hq", SiteLinkState.CONNECTED)
    clock.now += timedelta(minutes=5)
    for payload in BAD_PAYLOADS:
        bridge.publish(topics.site_bridge_state("hq"), payload, retain=False)
        bridge.publish(topics.site_bridge_state("hq"), payload, retain=False)  # the same again: logged once
    for topic in BAD_TOPICS:
        bridge.publish(topic, b"0")
    bridge.publish(topics.site_bridge_state("marker"), b"0")  # after every bad one, on the worker's one writer
    wait_state("marker", SiteLinkState.DISCONNECTED)
    after = link("hq")
    assert (after.state, after.changed_at, after.connected_at) == (before.state, before.changed_at,
                                                                   before.connected_at)
    with database.connection_context():
        assert sorted(row.site_id for row in SiteLink.select()) == ["hq", "marker"]
    ignored = [r.getMessage() for r in caplog.records if "ignored site bridge state" in r.getMessage()]
    assert len(ignored) == len(BAD_PAYLOADS) + len(BAD_TOPICS), ignored
    assert sum("reason=invalid site id" in line for line in ignored) == len(BAD_TOPICS)
    assert all(len(line) < 600 for line in ignored)  # a 5000-byte payload is not written out whole
    assert worker.connected.is_set()
    # Still listening: a good state after the bad ones is stored.
    bridge.publish(topics.site_bridge_state("hq"), b"0")
    wait_state("hq", SiteLinkState.DISCONNECTED)


def test_the_cli_registers_a_provisioned_site_as_never_connected(tmp_path: Path, database_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from central.cli import main
    from central.core.db import open_database

    monkeypatch.setenv("VAORA_DATABASE_URL", database_url)
    monkeypatch.setenv("VAORA_API_TOKEN", "t" * 32)
    monkeypatch.setenv("VAORA_SIGNING_KEY_FILE", str(tmp_path / "key.pem"))
    assert main(["add-gate", "lobby-1", "--site", "hq"]) == 0
    directory = tmp_path / "vaora"
    assert main(["broker-config", str(directory), "--site", "annex", "--core", "core-a:1883"]) == 2  # no gate
    assert main(["broker-config", str(directory), "--site", "hq", "--core", "core-a:1883"]) == 0
    assert main(["broker-config", str(directory), "--site", "hq", "--core", "core-a:1883"]) == 0  # again: kept
    open_database(database_url)
    try:
        with database.connection_context():
            rows: list[Any] = list(SiteLink.select())
            assert [(row.site_id, row.state, row.connected_at) for row in rows] == [("hq", "never", None)]
            assert site_links.offline_sites() == {"hq"}
    finally:
        database.close()
