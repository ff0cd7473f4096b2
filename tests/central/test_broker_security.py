"""The shipped Mosquitto config with generated passwords and ACLs, on a real Mosquitto process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from central.messaging.broker_auth import CENTRAL_USERNAME, GateAccount, provision, render_acl
from devtools.ports import free_port
from protocols import topics
from tests.mqtt_clients import MqttClient

SHIPPED = Path(__file__).resolve().parents[2] / "systemd" / "mosquitto" / "vaora.conf"
GATES = [GateAccount("lobby-1", "hq"), GateAccount("lobby-2", "hq"), GateAccount("annex-1", "annex")]


class Broker:
    """Mosquitto started with the shipped config; only file locations and the port are changed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.credentials = provision(directory / "vaora", GATES)
        text = SHIPPED.read_text(encoding="utf-8")
        text = text.replace("/etc/mosquitto/vaora/", f"{directory / 'vaora'}/")
        text = text.replace("/var/lib/mosquitto/", f"{directory}/")
        text = text.replace("listener 1883\n", f"listener {self.port} 127.0.0.1\n")
        text += f"log_dest file {directory / 'mosquitto.log'}\n"
        if os.geteuid() == 0:
            text = "user root\n" + text  # the packaged service drops to the mosquitto user instead
        self.config = directory / "mosquitto.conf"
        self.config.write_text(text, encoding="utf-8")
        executable = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([executable, "-c", str(self.config)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            try:
                probe.connect("127.0.0.1", self.port)
                probe.disconnect()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError((directory / "mosquitto.log").read_text())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Session(MqttClient):
    """A connected MQTT v5 client that records what it receives and the reason codes it gets."""

    def __init__(self, port: int, username: str | None, password: str | None, **options: object) -> None:
        super().__init__(protocol=mqtt.MQTTv5, **options)
        self.received: list[tuple[str, bytes]] = []
        self.connack: ReasonCode | None = None
        self.suback: list[ReasonCode] = []
        self.puback: dict[int, ReasonCode] = {}
        self.events = threading.Condition()
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.connect("127.0.0.1", port)
        self.wait(lambda: self.connack is not None)

    def _notify(self) -> None:
        with self.events:
            self.events.notify_all()

    def _on_connect(self, _c, _u, _f, reason_code, _p) -> None:
        self.connack = reason_code
        self._notify()

    def _on_subscribe(self, _c, _u, _mid, reason_codes, _p) -> None:
        self.suback = list(reason_codes)
        self._notify()

    def _on_publish(self, _c, _u, mid, reason_code, _p) -> None:
        self.puback[mid] = reason_code
        self._notify()

    def _on_message(self, _c, _u, message) -> None:
        self.received.append((message.topic, message.payload))
        self._notify()

    def wait(self, predicate, timeout: float = 5.0) -> bool:
        with self.events:
            return self.events.wait_for(predicate, timeout)

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self.suback = []
        self.client.subscribe(topic, qos=1)
        assert self.wait(lambda: self.suback)
        return self.suback

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1)
        assert self.wait(lambda: info.mid in self.puback)
        return self.puback[info.mid]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path)
    yield broker
    broker.stop()


@pytest.fixture
def sessions(secured: Broker) -> Iterator:
    opened: list[Session] = []

    def open_session(username: str | None, password: str | None = None, **options: object) -> Session:
        if username is not None and password is None:
            password = secured.credentials[username]
        session = Session(secured.port, username, password, **options)
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


def test_anonymous_and_wrong_password_are_refused(sessions):
    anonymous = sessions(None)
    assert anonymous.connack.is_failure
    wrong = sessions("gate-lobby-1", "not-the-password")
    assert wrong.connack.is_failure


def test_gate_writes_its_own_topics_and_central_reads_everything(sessions):
    central = sessions(CENTRAL_USERNAME)
    assert not central.connack.is_failure
    assert not central.subscribe(f"{topics.ROOT}/#")[0].is_failure
    gate = sessions("gate-lobby-1")
    assert not gate.connack.is_failure
    for topic in (topics.gate_checkins("lobby-1"), topics.gate_status("lobby-1"), topics.site_checkins("hq")):
        assert not gate.publish(topic, b"{}").is_failure
    assert central.wait(lambda: len(central.received) == 3)


def test_broker_keeps_sending_to_an_ingest_that_has_not_acknowledged_yet(sessions):
    """Mosquitto sends a client at most ``max_inflight_messages`` QoS 1 messages before their PUBACKs (its
    default: 20); the shipped config raises it for central's ingest, and the scale benchmarks run with it."""
    central = sessions(CENTRAL_USERNAME, manual_ack=True)  # receives, never acknowledges
    central.subscribe(topics.ALL_GATE_CHECKINS)
    gate = sessions("gate-lobby-1")
    for n in range(150):
        assert not gate.publish(topics.gate_checkins("lobby-1"), b"%d" % n).is_failure
    assert central.wait(lambda: len(central.received) == 150), len(central.received)


def test_gate_cannot_publish_to_another_gates_topic(sessions):
    central = sessions(CENTRAL_USERNAME)
    central.subscribe(f"{topics.ROOT}/#")
    gate = sessions("gate-lobby-1")
    for topic in (
        topics.gate_checkins("lobby-2"),
        topics.gate_acks("lobby-1"),  # only central acknowledges
        topics.gate_commands("lobby-1"),  # only central commands
        topics.site_checkins("annex"),  # not its site
        topics.CHANGES,
    ):
        assert gate.publish(topic, b'{"forged": true}').is_failure, topic
    time.sleep(0.3)
    assert central.received == []


def test_gate_subscribed_to_everything_reads_only_its_own_topics(sessions):
    """Mosquitto 2.0 grants the SUBACK for ``#`` but filters every delivery through the read ACL.

    So a gate that subscribes to ``#`` (or to another gate's topics) receives only what it may read.
    """
    central = sessions(CENTRAL_USERNAME)
    spy = sessions("gate-lobby-1")
    other = sessions("gate-lobby-2")
    spy.subscribe("#")
    spy.subscribe(topics.gate_acks("lobby-2"))
    assert not central.publish(topics.gate_acks("lobby-2"), b"ack-for-2").is_failure
    assert not central.publish(topics.gate_commands("lobby-2"), b"open-2").is_failure
    assert not other.publish(topics.gate_checkins("lobby-2"), b"checkin-2").is_failure
    assert not other.publish(topics.site_checkins("hq"), b"site-hq").is_failure
    assert not central.publish(topics.gate_acks("lobby-1"), b"ack-for-1").is_failure
    assert spy.wait(lambda: len(spy.received) >= 2)
    time.sleep(0.3)
    assert sorted(payload for _, payload in spy.received) == [b"ack-for-1", b"site-hq"]


def test_a_gate_reads_only_its_own_sites_change_stream(sessions):
    """Issue 16, point 3: another site's changes (its delegates' names and code hashes) never reach a gate, whatever
    it subscribes to; the legacy global stream neither, while it is off (the default)."""
    central = sessions(CENTRAL_USERNAME)
    spy = sessions("gate-annex-1")
    spy.subscribe("#")
    spy.subscribe(topics.site_changes("hq"))
    spy.subscribe(topics.CHANGES)
    for topic, payload in ((topics.site_changes("hq"), b"hq delegate"), (topics.CHANGES, b"every delegate"),
                           (topics.site_changes("annex"), b"annex delegate")):
        assert not central.publish(topic, payload).is_failure
    assert spy.wait(lambda: len(spy.received) >= 1)
    time.sleep(0.3)
    assert spy.received == [(topics.site_changes("annex"), b"annex delegate")]
    assert spy.publish(topics.site_changes("annex"), b'{"forged": true}').is_failure, "only central writes it"


def test_provision_keeps_existing_passwords(tmp_path: Path):
    first = provision(tmp_path, GATES[:1])
    second = provision(tmp_path, GATES)
    assert second[CENTRAL_USERNAME] == first[CENTRAL_USERNAME]
    assert second["gate-lobby-1"] == first["gate-lobby-1"]
    assert set(second) == {CENTRAL_USERNAME, "gate-lobby-1", "gate-lobby-2", "gate-annex-1", "site-hq", "site-annex"}
    assert (tmp_path / "secrets" / "gate-lobby-2.password").stat().st_mode & 0o077 == 0
    assert "lobby-2" not in (tmp_path / "passwd").read_text().replace("gate-lobby-2:", "")


def test_acl_refuses_ids_that_would_escape_their_topics():
    with pytest.raises(ValueError):
        render_acl([GateAccount("lobby-1", "hq/#")])
    with pytest.raises(ValueError):
        _ = GateAccount("+", "hq").username


def test_cli_writes_the_broker_files_for_registered_gates(tmp_path: Path, database_url: str):
    env = {**os.environ, "VAORA_DATABASE_URL": database_url, "VAORA_API_TOKEN": "t" * 32,
           "VAORA_SIGNING_KEY_FILE": str(tmp_path / "key.pem")}
    run = [sys.executable, "-m", "central.cli"]
    for gate_id, site in (("lobby-1", "hq"), ("annex-1", "annex")):
        subprocess.run([*run, "add-gate", gate_id, "--site", site], env=env, check=True, capture_output=True)
    result = subprocess.run([*run, "broker-config", str(tmp_path / "vaora")], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    acl = (tmp_path / "vaora" / "acl").read_text()
    assert "user gate-lobby-1" in acl and f"topic readwrite {topics.site_checkins('annex')}" in acl
    users = {line.split(":", 1)[0] for line in (tmp_path / "vaora" / "passwd").read_text().splitlines()}
    assert users == {CENTRAL_USERNAME, "gate-lobby-1", "gate-annex-1", "site-hq", "site-annex"}


def test_only_central_commands_a_gate_and_a_gate_answers_only_for_itself(sessions):
    """Remote gate commands: central writes any gate's command topic; a gate reads only its own commands and
    cannot forge another gate's commands or command results."""
    central = sessions(CENTRAL_USERNAME)
    central.subscribe(topics.ALL_GATE_COMMAND_RESULTS)
    lobby1, lobby2 = sessions("gate-lobby-1"), sessions("gate-lobby-2")
    lobby2.subscribe(topics.gate_commands("lobby-2"))
    for topic in (topics.gate_commands("lobby-2"), topics.gate_command_results("lobby-2")):
        assert lobby1.publish(topic, b'{"forged": true}').is_failure, topic
    assert not central.publish(topics.gate_commands("lobby-2"), b"open-lobby-2").is_failure
    assert lobby2.wait(lambda: len(lobby2.received) == 1)
    assert lobby2.received == [(topics.gate_commands("lobby-2"), b"open-lobby-2")]
    assert not lobby1.publish(topics.gate_command_results("lobby-1"), b"result-1").is_failure
    assert central.wait(lambda: len(central.received) == 1)
    time.sleep(0.3)
    assert central.received == [(topics.gate_command_results("lobby-1"), b"result-1")]
