"""The shared MQTT client factory against a real Mosquitto: persistent sessions resume, the last will fires on
a dropped connection, clean sessions forget, bad TLS files fail at start-up, and reconnect delays are spread."""

from __future__ import annotations

import queue
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from protocols import topics
from protocols.mqtt import (
    BrokerAddress,
    ClientSettings,
    TlsFiles,
    jittered_min_delay,
    make_client,
    parse_broker_url,
    process_client_id,
)
from tests.conftest import scaled


class Listener:
    """A plain paho subscriber that collects what arrives, and waits for its SUBACK before returning."""

    def __init__(self, broker, topic: str) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = make_client(ClientSettings(client_id=process_client_id("test-listener")))
        subscribed: queue.Queue[int] = queue.Queue()
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload))
        self.client.on_subscribe = lambda _c, _u, mid, _rc, _p: subscribed.put(mid)
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(topic, qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        subscribed.get(timeout=scaled(10))

    def get(self, timeout: float = 10.0) -> tuple[str, bytes]:
        return self.messages.get(timeout=scaled(timeout))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _connected(client: mqtt.Client, broker) -> mqtt.Client:
    ready: queue.Queue[object] = queue.Queue()
    client.on_connect = lambda _c, _u, flags, rc, _p: ready.put((flags, rc))
    client.connect(broker.host, broker.port)
    client.loop_start()
    flags, rc = ready.get(timeout=scaled(10))
    assert not rc.is_failure, rc
    client.session_present_flag = flags.session_present  # type: ignore[attr-defined]
    return client


def test_a_persistent_session_receives_what_was_published_while_it_was_away(broker):
    topic = topics.gate_acks("g1")
    settings = ClientSettings(client_id="vaora-gate-g1", persistent=True)
    first = _connected(make_client(settings), broker)
    subscribed: queue.Queue[int] = queue.Queue()
    first.on_subscribe = lambda _c, _u, mid, _rc, _p: subscribed.put(mid)
    first.subscribe(topic, qos=1)
    subscribed.get(timeout=scaled(10))
    first.disconnect()
    first.loop_stop()

    publisher = _connected(make_client(ClientSettings(client_id=process_client_id("test-pub"))), broker)
    publisher.publish(topic, b"while-away", qos=1).wait_for_publish(timeout=scaled(10))
    publisher.disconnect()
    publisher.loop_stop()

    got: queue.Queue[bytes] = queue.Queue()
    again = make_client(settings)
    again.on_message = lambda _c, _u, m: got.put(m.payload)
    _connected(again, broker)
    try:
        assert again.session_present_flag
        assert got.get(timeout=scaled(10)) == b"while-away"
    finally:
        again.disconnect()
        again.loop_stop()


def test_a_clean_session_starts_empty(broker):
    settings = ClientSettings(client_id="vaora-central-web-test")
    client = _connected(make_client(settings), broker)
    client.subscribe("vaora/v1/central/changes", qos=1)
    client.disconnect()
    client.loop_stop()
    again = _connected(make_client(settings), broker)
    try:
        assert not again.session_present_flag
    finally:
        again.disconnect()
        again.loop_stop()


def test_the_last_will_is_published_when_the_process_dies(broker, tmp_path: Path):
    listener = Listener(broker, topics.gate_status("g9"))
    script = tmp_path / "will.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from protocols.mqtt import ClientSettings, LastWill, make_client
        client = make_client(ClientSettings(client_id="vaora-gate-g9", persistent=True,
                             will=LastWill("{topics.gate_status('g9')}", b"offline")))
        client.connect("{broker.host}", {broker.port}, keepalive=5)
        client.loop_start()
        client.publish("{topics.gate_status('g9')}", b"online", qos=1, retain=True).wait_for_publish(10)
        print("up", flush=True)
        time.sleep(60)
    """))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[2])
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "up"
        assert listener.get() == (topics.gate_status("g9"), b"online")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=scaled(10))
        assert listener.get(timeout=20) == (topics.gate_status("g9"), b"offline")
    finally:
        process.kill()
        listener.close()


def test_process_client_ids_differ_between_processes():
    here = process_client_id("central-web")
    other = subprocess.run([sys.executable, "-c", "from protocols.mqtt import process_client_id as p;"
                            "print(p('central-web'))"], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    assert here.startswith("vaora-central-web-") and other.startswith("vaora-central-web-")
    assert here != other


def test_reconnect_delays_are_spread_between_clients():
    rng = random.Random(7)
    delays = {jittered_min_delay(2, rng) for _ in range(200)}
    assert delays <= {2, 3, 4} and len(delays) == 3
    assert jittered_min_delay(0) == 0


def test_a_persistent_session_needs_a_client_id():
    with pytest.raises(ValueError, match="stable client id"):
        make_client(ClientSettings(client_id="", persistent=True))


def test_missing_tls_files_fail_when_the_client_is_made(tmp_path: Path):
    with pytest.raises(OSError):
        make_client(ClientSettings(client_id="g", tls=TlsFiles(ca_file=tmp_path / "missing-ca.pem")))


def test_a_key_without_its_certificate_is_refused(tmp_path: Path):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    with pytest.raises(ValueError, match="certificate"):
        make_client(ClientSettings(client_id="g", tls=TlsFiles(ca_file=ca, key_file=key_file)))
    assert make_client(ClientSettings(client_id="g", tls=TlsFiles(ca_file=ca))) is not None


def test_gate_topics_parse_into_gate_and_channel():
    parsed = topics.parse_gate_topic("vaora/v1/gates/lobby-1/command-results")
    assert parsed == topics.GateTopic("lobby-1", topics.GateChannel.COMMAND_RESULTS)
    assert topics.parse_gate_topic("vaora/v1/gates/lobby-1/unknown") is None
    assert topics.parse_gate_topic("vaora/v1/gates/Lobby#/acks") is None
    assert topics.parse_gate_topic("vaora/v1/gates/a/b/checkins") is None
    assert topics.parse_gate_topic(b"vaora/v1/gates/a/acks") is None  # type: ignore[arg-type]


@pytest.mark.parametrize(("url", "address"), [
    ("mqtt://broker", BrokerAddress("broker", 1883, False)),
    ("mqtts://broker", BrokerAddress("broker", 8883, True)),
    ("MQTTS://10.0.0.5:9883/", BrokerAddress("10.0.0.5", 9883, True)),
    ("mqtts://[::1]", BrokerAddress("::1", 8883, True)),
])
def test_broker_urls(url: str, address: BrokerAddress):
    assert parse_broker_url(url) == address


@pytest.mark.parametrize(("url", "words"), [
    ("tcp://broker", "mqtts://"), ("broker:1883", "mqtts://"), ("mqtts://", "no broker host"),
    ("mqtts://gate:secret@broker", "password"), ("mqtts://broker/vaora", "only scheme"),
    ("mqtts://broker?x=1", "only scheme"), ("mqtts://broker:0", "1..65535"), ("mqtts://broker:70000", "broker URL"),
])
def test_bad_broker_urls_are_refused_with_a_reason(url: str, words: str):
    with pytest.raises(ValueError, match=words):
        parse_broker_url(url)


def test_tls_without_a_ca_file_uses_the_system_trust_store():
    client = make_client(ClientSettings(client_id="g", tls=TlsFiles()))
    assert client._ssl_context is not None and client._ssl_context.verify_mode.name == "CERT_REQUIRED"
