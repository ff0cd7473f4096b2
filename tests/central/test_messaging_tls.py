"""Central's MQTT TLS settings: validated at load, and the ingest worker acknowledging over the TLS listener."""

from __future__ import annotations

import queue
import uuid
from pathlib import Path
from typing import Any

import pytest

from central.config import CentralConfig, ConfigError
from central.messaging.broker_auth import CENTRAL_USERNAME
from central.messaging.ingest import IngestWorker
from protocols import topics
from protocols.mqtt import ClientSettings, TlsFiles, make_client
from protocols.payloads import Ack, CheckIn, Direction, Outcome, decode_acks, encode
from protocols.reasons import Reason

from . import test_broker_tls
from .conftest import START, Api, Clock

TIMEOUT = 10.0
tls_broker = test_broker_tls.tls_broker  # the shipped TLS listener with a throw-away site CA


def test_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        CentralConfig.from_mapping({"VAORA_MQTT_CA_FILE": str(tmp_path / "nope.crt")})
    assert set(caught.value.errors) == {"VAORA_MQTT_CA_FILE"}
    assert "nope.crt" in caught.value.errors["VAORA_MQTT_CA_FILE"]


def test_key_without_certificate_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("ca")
    (tmp_path / "central.key").write_text("key")
    with pytest.raises(ConfigError) as caught:
        CentralConfig.from_mapping({"VAORA_MQTT_CA_FILE": str(tmp_path / "ca.crt"),
                                    "VAORA_MQTT_KEY_FILE": str(tmp_path / "central.key")})
    assert set(caught.value.errors) == {"VAORA_MQTT_KEY_FILE"}
    assert "VAORA_MQTT_CERT_FILE" in caught.value.errors["VAORA_MQTT_KEY_FILE"]


def test_tls_files_and_client_id_come_from_the_environment(tmp_path: Path) -> None:
    assert CentralConfig.from_mapping({}).mqtt_tls is None
    assert CentralConfig.from_mapping({}).mqtt_client_id == "vaora-central-ingest"
    for name in ("ca.crt", "central.crt", "central.key"):
        (tmp_path / name).write_text(name)
    config = CentralConfig.from_mapping({
        "VAORA_MQTT_CA_FILE": str(tmp_path / "ca.crt"), "VAORA_MQTT_CERT_FILE": str(tmp_path / "central.crt"),
        "VAORA_MQTT_KEY_FILE": str(tmp_path / "central.key"), "VAORA_MQTT_CLIENT_ID": "ingest-hq-1",
    })
    assert config.mqtt_tls == TlsFiles(tmp_path / "ca.crt", tmp_path / "central.crt", tmp_path / "central.key")
    assert config.mqtt_client_id == "ingest-hq-1"
    with pytest.raises(ConfigError) as caught:
        CentralConfig.from_mapping({"VAORA_MQTT_CLIENT_ID": "a/b"})
    assert set(caught.value.errors) == {"VAORA_MQTT_CLIENT_ID"}


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
