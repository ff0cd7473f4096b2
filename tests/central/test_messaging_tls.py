"""Central's MQTT TLS settings: validated at load, and the ingest worker acknowledging over the TLS listener."""

from __future__ import annotations

import queue
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from central.config import CentralConfig, ConfigError
from central.messaging import certs
from central.messaging.broker_auth import CENTRAL_USERNAME
from central.messaging.ingest import IngestWorker
from protocols import topics
from protocols.mqtt import ClientSettings, TlsFiles, make_client
from protocols.payloads import Ack, CheckIn, Direction, Outcome, decode_acks, encode
from protocols.reasons import Reason

from . import test_broker_tls
from .conftest import START, Api, Clock

TIMEOUT = 10.0
NOW = datetime.now(UTC)  # certificates are checked by OpenSSL against the wall clock
tls_broker = test_broker_tls.tls_broker  # the shipped TLS listener with a throw-away site CA


def test_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        CentralConfig.from_mapping({"VAORA_MQTT_CA_FILE": str(tmp_path / "nope.crt")})
    assert set(caught.value.errors) == {"VAORA_MQTT_CA_FILE"}
    assert "nope.crt" in caught.value.errors["VAORA_MQTT_CA_FILE"]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site CA and central's client certificate, made by the certificate commands' functions."""
    directory = tmp_path / "site"
    certs.create_site_ca(directory, now=NOW)
    certs.issue_central(directory, now=NOW)
    certs.issue_gate(directory, "lobby-1", now=NOW)
    return directory


def test_key_without_certificate_is_a_config_error(site: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        CentralConfig.from_mapping({"VAORA_MQTT_CA_FILE": str(site / "ca.crt"),
                                    "VAORA_MQTT_KEY_FILE": str(site / "certs" / "vaora-central.key")})
    assert set(caught.value.errors) == {"VAORA_MQTT_KEY_FILE"}
    assert "VAORA_MQTT_CERT_FILE" in caught.value.errors["VAORA_MQTT_KEY_FILE"]


def test_tls_files_and_client_id_come_from_the_environment(site: Path) -> None:
    assert CentralConfig.from_mapping({}).mqtt_tls is None
    assert CentralConfig.from_mapping({}).ingest_client_id().startswith("vaora-central-ingest-")
    ca, cert, key = site / "ca.crt", site / "certs" / "vaora-central.crt", site / "certs" / "vaora-central.key"
    config = CentralConfig.from_mapping({
        "VAORA_MQTT_CA_FILE": str(ca), "VAORA_MQTT_CERT_FILE": str(cert),
        "VAORA_MQTT_KEY_FILE": str(key), "VAORA_MQTT_CLIENT_ID": "ingest-hq-1",
    })
    assert config.mqtt_tls == TlsFiles(ca, cert, key)
    assert config.mqtt_client_id == config.ingest_client_id() == "ingest-hq-1"
    with pytest.raises(ConfigError) as caught:
        CentralConfig.from_mapping({"VAORA_MQTT_CLIENT_ID": "a/b"})
    assert set(caught.value.errors) == {"VAORA_MQTT_CLIENT_ID"}


def test_unusable_tls_files_are_named_at_load(site: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not PEM\n")
    with pytest.raises(ConfigError) as caught:
        CentralConfig.from_mapping({"VAORA_MQTT_CA_FILE": str(site / "ca.crt"),
                                    "VAORA_MQTT_CERT_FILE": str(site / "certs" / "vaora-central.crt"),
                                    "VAORA_MQTT_KEY_FILE": str(site / "certs" / "gate-lobby-1.key")})
    assert set(caught.value.errors) == {"VAORA_MQTT_KEY_FILE"}
    assert "is not the key of the certificate" in caught.value.errors["VAORA_MQTT_KEY_FILE"]
    with pytest.raises(ConfigError) as caught:
        CentralConfig.from_mapping({"VAORA_MQTT_CA_FILE": str(garbage)})
    assert caught.value.errors == {"VAORA_MQTT_CA_FILE": f"{garbage} holds no PEM certificate"}


def test_an_mqtts_url_gives_host_port_and_tls(site: Path) -> None:
    config = CentralConfig.from_mapping({"VAORA_MQTT_URL": "mqtts://broker.hq.example",
                                         "VAORA_MQTT_CA_FILE": str(site / "ca.crt")})
    assert (config.mqtt_host, config.mqtt_port, config.mqtt_tls) == ("broker.hq.example", 8883,
                                                                     TlsFiles(site / "ca.crt"))
    system = CentralConfig.from_mapping({"VAORA_MQTT_URL": "mqtts://broker.example:9883"})
    assert (system.mqtt_port, system.mqtt_tls) == (9883, TlsFiles())
    plain = CentralConfig.from_mapping({"VAORA_MQTT_URL": "mqtt://10.0.0.5"})
    assert (plain.mqtt_host, plain.mqtt_port, plain.mqtt_tls) == ("10.0.0.5", 1883, None)
    for bad in ("http://broker", "mqtts://u:p@broker", "mqtts://broker/path"):
        with pytest.raises(ConfigError) as caught:
            CentralConfig.from_mapping({"VAORA_MQTT_URL": bad})
        assert set(caught.value.errors) == {"VAORA_MQTT_URL"}
    with pytest.raises(ConfigError) as caught:
        CentralConfig.from_mapping({"VAORA_MQTT_URL": "mqtts://broker", "VAORA_MQTT_PORT": "8883"})
    assert caught.value.errors == {"VAORA_MQTT_URL": "give VAORA_MQTT_URL or VAORA_MQTT_PORT, not both"}


def test_ingest_acknowledges_over_the_tls_listener(
    tls_broker: tuple[int, test_broker_tls.Pki], api: Api, clock: Clock
) -> None:
    port, pki = tls_broker
    api.gate("lobby-1")
    cert, key = pki.issue(CENTRAL_USERNAME)
    config = CentralConfig.from_mapping({
        "VAORA_MQTT_CA_FILE": str(pki.directory / "ca.crt"), "VAORA_MQTT_CERT_FILE": str(cert),
        "VAORA_MQTT_KEY_FILE": str(key), "VAORA_MQTT_CLIENT_ID": f"ingest-{uuid.uuid4().hex[:8]}",
    })
    worker = IngestWorker("127.0.0.1", port, client_id=config.mqtt_client_id, tls=config.mqtt_tls, clock=clock)
    gate_cert, gate_key = pki.issue("gate-lobby-1")
    gate = make_client(ClientSettings("gate-lobby-1", tls=TlsFiles(pki.directory / "ca.crt", gate_cert, gate_key)))
    acks: queue.Queue[Ack] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    gate.on_message = lambda _c, _u, msg: [acks.put(ack) for ack in decode_acks(msg.payload)]
    gate.on_subscribe = lambda *_args: subscribed.put(True)
    worker.start()
    try:
        assert worker.connected.wait(TIMEOUT)
        gate.connect("127.0.0.1", port)
        gate.loop_start()
        gate.subscribe(topics.gate_acks("lobby-1"), qos=1)
        subscribed.get(timeout=TIMEOUT)
        values: dict[str, Any] = {
            "id": uuid.uuid4(), "gate_id": "lobby-1", "site_id": "hq", "direction": Direction.IN,
            "scanned_at": START, "allowed": True, "reason": Reason.OK, "outcome": Outcome.ENTERED,
            "credential": "signed:1:1:1",
        }
        checkin = CheckIn(**values)
        gate.publish(topics.gate_checkins("lobby-1"), encode(checkin), qos=1).wait_for_publish(TIMEOUT)
        ack = acks.get(timeout=TIMEOUT)
        assert (ack.checkin_id, ack.status) == (checkin.id, "stored")
    finally:
        gate.disconnect()
        gate.loop_stop()
        worker.stop()
