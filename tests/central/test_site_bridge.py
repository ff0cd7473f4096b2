"""A site broker bridged to a core broker with the files ``broker-config --site`` generates, over a password or a
TLS (client certificate) bridge, on real Mosquitto processes: a gate's check-in at the site reaches central at
the core, central's ack and the site's changes reach the gate at the site, and another site's acks and changes
(and the legacy global change stream, off by default) never cross the bridge."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from central.messaging import certs
from central.messaging.broker_auth import CENTRAL_USERNAME, GateAccount, provision, render_acl
from central.messaging.site_broker import BRIDGE_FILE, parse_core_addresses, provision_site, render_bridge
from devtools.broker import LocalBroker
from devtools.ports import free_port
from protocols import topics
from tests.conftest import wait_until

GATES = [GateAccount("lobby-1", "hq"), GateAccount("lobby-2", "hq"), GateAccount("annex-1", "annex")]


class Client:
    """A connected MQTT client that records what it receives (topic, payload)."""

    def __init__(self, port: int, username: str, password: str, client_id: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.username_pw_set(username, password)
        self.client.on_connect = lambda *_: self.connected.set()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, message: self.received.append((message.topic, message.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_until(self.connected.is_set, message=f"{username} did not connect")

    def subscribe(self, topic_filter: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic_filter, qos=1)
        wait_until(self.subscribed.is_set)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(timeout=10)

    def got(self, topic: str, payload: bytes | None = None) -> bool:
        return any(t == topic and (payload is None or p == payload) for t, p in list(self.received))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    opened: list[Client] = []

    def open_client(*args: object) -> Client:
        opened.append(Client(*args))  # type: ignore[arg-type]
        return opened[-1]

    yield open_client
    for client in opened:
        client.close()


def _secured(files: Path, bridge: str = "") -> str:
    return f"password_file {files / 'passwd'}\nacl_file {files / 'acl'}\n{bridge}"


def test_the_bridge_file_has_the_core_pair_and_one_line_per_topic_and_direction(tmp_path: Path):
    text = render_bridge("hq", ["core-a:1883", "core-b:1883"], password="pw")
    assert "address core-a:1883 core-b:1883" in text
    assert "cleansession false" in text and "round_robin false" in text
    assert "remote_username site-hq" in text and "remote_password pw" in text
    assert f"topic {topics.ALL_GATE_CHECKINS} out 1" in text and f"topic {topics.ALL_GATE_ACKS} in 1" in text
    assert f"topic {topics.ALL_GATE_COMMANDS} in 1" in text and f"topic {topics.site_changes('hq')} in 1" in text
    # The site's own change stream only: another site's delegates never cross; the legacy global stream only while
    # VAORA_LEGACY_CHANGE_STREAM=1 (old gates at the site read it).
    assert topics.CHANGES not in text and topics.ALL_SITE_CHANGES not in text
    assert f"topic {topics.CHANGES} in 1" in render_bridge("hq", ["core-a:1883"], password="pw", legacy_changes=True)
    assert "lobby" not in text  # no line per gate: the core's ACL is what keeps a bridge to its own site
    tls = render_bridge("hq", ["core-a:8883"], tls_dir=Path("/etc/mosquitto/vaora"))
    assert "bridge_certfile /etc/mosquitto/vaora/certs/site-hq.crt" in tls and "remote_password" not in tls


def test_bad_core_addresses_and_unknown_sites_are_refused(tmp_path: Path):
    assert parse_core_addresses("core-a:8883, core-b:8883") == ["core-a:8883", "core-b:8883"]
    for bad in ("", "core-a", "core-a:0", "core-a:http", ":1883", "core a:1883"):
        with pytest.raises(ValueError):
            parse_core_addresses(bad)
    with pytest.raises(ValueError, match="no registered gate"):
        provision_site(tmp_path, "elsewhere", GATES, ["core-a:1883"])
    with pytest.raises(ValueError):
        provision_site(tmp_path, "hq/#", GATES, ["core-a:1883"])


def test_the_core_acl_gives_each_bridge_only_its_own_gates():
    acl = render_acl(GATES)
    bridge = acl.split("user site-hq\n", 1)[1].split("\n\n", 1)[0]
    assert f"topic write {topics.gate_checkins('lobby-2')}" in bridge
    assert f"topic read {topics.gate_acks('lobby-1')}" in bridge
    assert "annex-1" not in bridge
    assert f"topic read {topics.site_changes('hq')}" in bridge and "annex" not in bridge
    assert topics.CHANGES not in acl, "nobody but central reads the legacy global stream while it is off"
    gate = acl.split("user gate-lobby-1\n", 1)[1].split("\n\n", 1)[0]
    assert f"topic read {topics.site_changes('hq')}" in gate and "changes" not in gate.replace(
        topics.site_changes("hq"), "")
    legacy = render_acl(GATES, legacy_changes=True)
    assert legacy.count(f"topic read {topics.CHANGES}") == len(GATES) + 2  # every gate, and each site's bridge
    assert "user site-" not in render_acl(GATES, bridges=False)


def _core_tls_listener(core_files: Path, port: int) -> str:
    """A TLS listener as in systemd/mosquitto/vaora-tls.conf (certificate common name = user name), with the site
    CA and broker certificate made by the project's own commands (``site-ca``, ``broker-cert``)."""
    now = datetime.now(UTC)
    certs.create_site_ca(core_files, now=now)
    certs.issue_broker(core_files, ["127.0.0.1"], now=now)
    return (f"listener {port} 127.0.0.1\ncafile {core_files / 'ca.crt'}\ncertfile {core_files / 'server.crt'}\n"
            f"keyfile {core_files / 'server.key'}\nrequire_certificate true\nuse_identity_as_username true\n"
            "tls_version tlsv1.2\n")


@pytest.mark.slow
@pytest.mark.parametrize("tls", [False, True], ids=["password", "tls"])
def test_a_checkin_crosses_the_bridge_up_and_its_ack_comes_down(tmp_path: Path, broker_factory, clients, tls: bool):
    core_files = tmp_path / "vaora"
    credentials = provision(core_files, GATES)
    tls_port = free_port()
    core: LocalBroker = broker_factory(allow_anonymous=False, extra_config=_secured(core_files) + (
        _core_tls_listener(core_files, tls_port) if tls else ""))
    # The pair's second member is down: the bridge uses the first and would fail over to the second.
    pair = [f"127.0.0.1:{tls_port if tls else core.port}", f"127.0.0.1:{free_port()}"]
    output = tmp_path / "site-hq"
    site_files = provision_site(core_files, "hq", GATES, pair, output=output, install_dir=output, tls=tls,
                                now=datetime.now(UTC))
    expected = ["acl", "passwd", "secrets", BRIDGE_FILE] + (["ca.crt", "certs"] if tls else [])
    assert sorted(p.name for p in site_files.directory.iterdir()) == sorted(expected)
    assert site_files.bridge_file.stat().st_mode & 0o077 == 0
    assert "annex-1" not in (site_files.directory / "acl").read_text()
    # A witness account at the site that may read every gate's acks, to show which ones crossed the bridge.
    subprocess.run(["mosquitto_passwd", "-b", str(site_files.directory / "passwd"), "witness", "w"], check=True)
    with (site_files.directory / "acl").open("a", encoding="utf-8") as acl:
        acl.write(f"\nuser witness\ntopic read {topics.ALL_GATE_ACKS}\ntopic read {topics.ALL_SITE_CHANGES}\n"
                  f"topic read {topics.CHANGES}\n")
    site: LocalBroker = broker_factory(allow_anonymous=False,
                                       extra_config=_secured(site_files.directory, site_files.bridge_file.read_text()))

    central = clients(core.port, CENTRAL_USERNAME, credentials[CENTRAL_USERNAME], "central")
    central.subscribe(topics.site_bridge_state("hq"))
    wait_until(lambda: central.got(topics.site_bridge_state("hq"), b"1"), timeout=30,
               message=lambda: site.log_tail())  # the bridge announces itself at the core, retained
    central.subscribe(topics.ALL_GATE_CHECKINS)

    gate = clients(site.port, "gate-lobby-1", credentials["gate-lobby-1"], "gate-lobby-1")
    gate.subscribe(topics.gate_acks("lobby-1"))
    witness = clients(site.port, "witness", "w", "witness")
    witness.subscribe(topics.ALL_GATE_ACKS)
    # The bridge's subscriptions at the core are in place once a message published at the core comes down.
    wait_until(lambda: (central.publish(topics.gate_acks("lobby-1"), b"probe"), gate.got(
        topics.gate_acks("lobby-1"), b"probe"))[1], timeout=30, interval=0.5)

    gate.publish(topics.gate_checkins("lobby-1"), b'{"id": "c-1"}')
    wait_until(lambda: central.got(topics.gate_checkins("lobby-1"), b'{"id": "c-1"}'), timeout=30,
               message=lambda: site.log_tail())

    central.publish(topics.gate_acks("annex-1"), b"ack for another site")
    central.publish(topics.gate_acks("lobby-1"), b'{"ack": "c-1"}')
    wait_until(lambda: gate.got(topics.gate_acks("lobby-1"), b'{"ack": "c-1"}'), timeout=30)
    wait_until(lambda: witness.got(topics.gate_acks("lobby-1"), b'{"ack": "c-1"}'))
    assert not witness.got(topics.gate_acks("annex-1"))  # published first, on the same core: never bridged

    # The change streams: only hq's own crosses the bridge (a witness at the site listening to every site's
    # stream and to the legacy global one sees nothing else).
    gate.subscribe(topics.site_changes("hq"))
    witness.subscribe(topics.ALL_SITE_CHANGES)
    witness.subscribe(topics.CHANGES)
    central.publish(topics.site_changes("annex"), b"annex delegate")
    central.publish(topics.CHANGES, b"every site's delegate")
    central.publish(topics.site_changes("hq"), b"hq delegate")
    wait_until(lambda: gate.got(topics.site_changes("hq"), b"hq delegate"), timeout=30)
    wait_until(lambda: witness.got(topics.site_changes("hq"), b"hq delegate"))
    assert not witness.got(topics.site_changes("annex")) and not witness.got(topics.CHANGES)


def test_the_cli_writes_a_site_brokers_files(tmp_path: Path, database_url: str, monkeypatch):
    from central.cli import main

    monkeypatch.setenv("VAORA_DATABASE_URL", database_url)
    monkeypatch.setenv("VAORA_API_TOKEN", "t" * 32)
    monkeypatch.setenv("VAORA_SIGNING_KEY_FILE", str(tmp_path / "key.pem"))
    for account in GATES:
        assert main(["add-gate", account.gate_id, "--site", account.site_id]) == 0
    directory = tmp_path / "vaora"
    assert main(["broker-config", str(directory), "--site", "hq"]) == 2  # no --core
    assert main(["broker-config", str(directory), "--site", "hq", "--core", "core-a"]) == 2  # no port
    assert main(["broker-config", str(directory), "--site", "nowhere", "--core", "core-a:1883"]) == 2
    assert main(["broker-config", str(directory), "--site", "hq", "--core", "core-a:1883,core-b:1883"]) == 0
    bridge = (directory / "sites" / "hq" / BRIDGE_FILE).read_text()
    assert "address core-a:1883 core-b:1883" in bridge
    assert f"topic {topics.site_changes('hq')} in 1" in bridge and topics.CHANGES not in bridge
    monkeypatch.setenv("VAORA_LEGACY_CHANGE_STREAM", "1")  # while gates older than the per-site streams remain
    assert main(["broker-config", str(directory), "--site", "hq", "--core", "core-a:1883,core-b:1883",
                 "--output", str(tmp_path / "hq-legacy")]) == 0
    assert f"topic {topics.CHANGES} in 1" in (tmp_path / "hq-legacy" / BRIDGE_FILE).read_text()
    assert f"topic read {topics.CHANGES}" in (tmp_path / "hq-legacy" / "acl").read_text()
    monkeypatch.delenv("VAORA_LEGACY_CHANGE_STREAM")
    assert main(["broker-config", str(directory)]) == 0
    # The bridge authenticates at the core with the password the core was given.
    password = (directory / "secrets" / "site-hq.password").read_text().strip()
    assert f"remote_password {password}" in bridge and "site-hq:" in (directory / "passwd").read_text()
    # --tls: refused without the CA, then a certificate for the bridge instead of a password.
    assert main(["broker-config", str(tmp_path / "no-ca"), "--site", "hq", "--core", "core-a:8883", "--tls"]) == 2
    assert main(["site-ca", str(directory)]) == 0
    assert main(["broker-config", str(directory), "--site", "hq", "--core", "core-a:8883", "--tls",
                 "--output", str(tmp_path / "hq-tls")]) == 0
    tls_bridge = (tmp_path / "hq-tls" / BRIDGE_FILE).read_text()
    assert "bridge_certfile /etc/mosquitto/vaora/certs/site-hq.crt" in tls_bridge
    assert "remote_password" not in tls_bridge
    assert (tmp_path / "hq-tls" / "certs" / "site-hq.key").stat().st_mode & 0o077 == 0


@pytest.mark.slow
def test_the_bridge_fails_over_to_the_second_core_and_a_wrong_password_is_logged(tmp_path: Path, broker_factory,
                                                                                 clients):
    core_files = tmp_path / "vaora"
    credentials = provision(core_files, GATES)
    core_a: LocalBroker = broker_factory(allow_anonymous=False, extra_config=_secured(core_files))
    core_b: LocalBroker = broker_factory(allow_anonymous=False, extra_config=_secured(core_files))
    site_files = provision_site(core_files, "hq", GATES, [f"127.0.0.1:{core_a.port}", f"127.0.0.1:{core_b.port}"])
    site: LocalBroker = broker_factory(allow_anonymous=False,
                                       extra_config=_secured(site_files.directory, site_files.bridge_file.read_text()))
    central_b = clients(core_b.port, CENTRAL_USERNAME, credentials[CENTRAL_USERNAME], "central-b")
    central_b.subscribe(topics.ALL_GATE_CHECKINS)
    core_a.wait_for_log("as site-hq", timeout=30)  # the first address is preferred
    core_a.stop()  # core-a goes away: the bridge moves to core-b
    gate = clients(site.port, "gate-lobby-1", credentials["gate-lobby-1"], "gate-lobby-1")
    gate.publish(topics.gate_checkins("lobby-1"), b'{"id": "c-2"}')
    wait_until(lambda: central_b.got(topics.gate_checkins("lobby-1"), b'{"id": "c-2"}'), timeout=60,
               message=lambda: site.log_tail())

    # A bridge with a wrong password is refused by the core, and the site broker's log says so.
    wrong = site_files.bridge_file.read_text().replace("remote_password ", "remote_password wrong-")
    other: LocalBroker = broker_factory(allow_anonymous=False, extra_config=_secured(site_files.directory, wrong))
    other.wait_for_log("Connection Refused: not authorised\n", timeout=30)
    other.wait_for_log("Client vaora-bridge-hq closed its connection", timeout=30)  # the bridge, by its local id
    assert "Connecting bridge (step 2) vaora-site-hq" in other.log_since(0)
