"""The gate's MQTT client comes from the shared factory with the gate's settings: stable id, persistent session,
the retained offline status as last will, TLS files from the config."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

import gate.transport as transport_module
from central.messaging import certs
from gate.transport import (
    RECONNECT_FAST_S,
    RECONNECT_JITTER,
    RECONNECT_REFUSED_S,
    MqttTransport,
    gate_client_id,
)
from protocols import topics
from protocols.mqtt import ClientSettings, TlsFiles, make_client
from protocols.payloads import GateStatus, decode
from tests.conftest import wait_until


@pytest.fixture
def settings_seen(monkeypatch: pytest.MonkeyPatch) -> list[ClientSettings]:
    seen: list[ClientSettings] = []

    def recording_make_client(settings: ClientSettings, **kwargs: Any) -> mqtt.Client:
        seen.append(settings)
        return make_client(ClientSettings(client_id=settings.client_id, persistent=settings.persistent), **kwargs)

    monkeypatch.setattr(transport_module, "make_client", recording_make_client)
    return seen


def test_the_gate_client_is_built_by_the_shared_factory(settings_seen: list[ClientSettings], tmp_path: Path) -> None:
    tls = TlsFiles(tmp_path / "ca.pem")
    MqttTransport("g1", "broker.local", 8883, username="gate-g1", password="s3cret", software_version="1.2",
                  tls=tls)
    (settings,) = settings_seen
    assert settings.client_id == gate_client_id("g1") == "vaora-gate-g1"
    assert settings.persistent and (settings.username, settings.password) == ("gate-g1", "s3cret")
    assert settings.tls == tls
    assert settings.will is not None and settings.will.topic == topics.gate_status("g1")
    assert settings.will.retain and settings.will.qos == 1
    will = decode(GateStatus, settings.will.payload)
    assert (will.gate_id, will.state, will.software_version) == ("g1", "offline", "1.2")


def test_a_plain_connection_has_no_tls(settings_seen: list[ClientSettings]) -> None:
    MqttTransport("g2", "localhost")
    assert settings_seen[0].tls is None


@pytest.mark.parametrize(("days_left", "level", "words"), [
    (60, logging.INFO, "valid until"), (10, logging.WARNING, "in 10 days"), (-1, logging.ERROR, "expired"),
])
def test_the_client_certificate_end_is_logged_at_start(settings_seen: list[ClientSettings], tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture, days_left: int, level: int,
                                                        words: str) -> None:
    issued_at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    certs.create_site_ca(tmp_path, now=issued_at)
    issued = certs.issue_gate(tmp_path, "g1", now=issued_at, days=90)
    now = issued.not_after - timedelta(days=days_left, hours=1 if days_left > 0 else -1)
    with caplog.at_level(logging.INFO, logger="gate.transport"):
        MqttTransport("g1", "broker.local", 8883, clock=lambda: now,
                      tls=TlsFiles(tmp_path / "ca.crt", issued.cert_file, issued.key_file))
    (record,) = [r for r in caplog.records if "client certificate" in r.getMessage()]
    assert record.levelno == level and words in record.getMessage()


def test_reconnects_fast_while_unreachable_and_slowly_once_the_broker_refused_the_gate(
    broker_factory: Any,
) -> None:
    """An unreachable broker is retried about every second (no cost to it); a broker that answered and refused
    the gate (credentials) is retried slowly, since each attempt costs it a handshake and a password check."""
    transport = MqttTransport("g1", "127.0.0.1", 1, rng=random.Random(7))
    first, ceiling = transport.reconnect_delays
    assert RECONNECT_FAST_S[0] <= first <= RECONNECT_FAST_S[0] * (1 + RECONNECT_JITTER)
    assert RECONNECT_FAST_S[1] <= ceiling <= RECONNECT_FAST_S[1] * (1 + RECONNECT_JITTER)
    others = {MqttTransport("g1", "127.0.0.1", 1).reconnect_delays for _ in range(20)}
    assert len(others) > 1  # spread across a fleet

    locked = broker_factory(allow_anonymous=False)
    refused = MqttTransport("g1", locked.host, locked.port)
    refused.start()
    try:
        wait_until(lambda: refused.reconnect_delays[0] >= RECONNECT_REFUSED_S[0])
        assert not refused.is_connected
    finally:
        refused.stop()
