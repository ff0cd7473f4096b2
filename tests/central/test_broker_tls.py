"""The shipped TLS listener config: per-gate client certificates whose common name is the broker user."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from central.messaging.broker_auth import CENTRAL_USERNAME, GateAccount, render_acl
from devtools.ports import free_port
from protocols import topics

SHIPPED = Path(__file__).resolve().parents[2] / "systemd" / "mosquitto" / "vaora-tls.conf"
NOW = dt.datetime.now(dt.UTC)


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _certificate(common_name: str, key, issuer_name, issuer_key, *, ca: bool = False, server: bool = False):
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


class Pki:
    """A site CA with a server certificate and client certificates issued on demand."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_cert = _certificate("vaora test CA", self.ca_key, None, self.ca_key, ca=True)
        (directory / "ca.crt").write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))
        crl = (x509.CertificateRevocationListBuilder().issuer_name(self.ca_cert.subject).last_update(NOW)
               .next_update(NOW + dt.timedelta(days=1)).sign(self.ca_key, hashes.SHA256()))
        (directory / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))  # the shipped crlfile
        self.issue("server", server=True)

    def issue(self, name: str, *, server: bool = False, signer=None) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        issuer_key = signer or self.ca_key
        issuer_name = (
            self.ca_cert.subject if signer is None else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rogue CA")])
        )
        cert = _certificate(name, key, issuer_name, issuer_key, server=server)
        cert_path, key_path = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
        return cert_path, key_path


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[int, Pki]]:
    vaora = tmp_path / "vaora"
    vaora.mkdir()
    pki = Pki(vaora)
    (vaora / "acl").write_text(render_acl([GateAccount("lobby-1", "hq"), GateAccount("lobby-2", "hq")]))
    port = free_port()
    text = SHIPPED.read_text(encoding="utf-8")
    text = text.replace("/etc/mosquitto/vaora/", f"{vaora}/").replace("/var/lib/mosquitto/", f"{tmp_path}/")
    text = text.replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
    text += f"log_dest file {tmp_path / 'mosquitto.log'}\n"
    if os.geteuid() == 0:
        text = "user root\n" + text
    (tmp_path / "mosquitto.conf").write_text(text)
    process = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(tmp_path / "mosquitto.conf")]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port, pki
    process.terminate()
    process.wait(10)


def _connect(port: int, pki: Pki, cert: tuple[Path, Path] | None) -> tuple[mqtt.Client, list]:
    received: list[tuple[str, bytes]] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    context = ssl.create_default_context(cafile=str(pki.directory / "ca.crt"))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    client.tls_set_context(context)
    client.on_message = lambda _c, _u, message: received.append((message.topic, message.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client, received


def _connected(client: mqtt.Client, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.is_connected():
            return True
        time.sleep(0.05)
    return False


def test_certificate_common_name_is_the_broker_user(tls_broker):
    port, pki = tls_broker
    central, received = _connect(port, pki, pki.issue(CENTRAL_USERNAME))
    gate, _ = _connect(port, pki, pki.issue("gate-lobby-1"))
    try:
        assert _connected(central) and _connected(gate)
        central.subscribe(f"{topics.ROOT}/#", qos=1)
        time.sleep(0.3)
        gate.publish(topics.gate_checkins("lobby-2"), b"forged", qos=1).wait_for_publish(3)
        gate.publish(topics.gate_checkins("lobby-1"), b"own", qos=1).wait_for_publish(3)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not received:
            time.sleep(0.05)
        time.sleep(0.2)
        assert received == [(topics.gate_checkins("lobby-1"), b"own")]
    finally:
        for client in (central, gate):
            client.loop_stop()
            client.disconnect()


@pytest.mark.parametrize("kind", ["no certificate", "certificate from another CA"])
def test_clients_without_a_site_certificate_are_refused(tls_broker, kind):
    port, pki = tls_broker
    cert = (
        None
        if kind == "no certificate"
        else pki.issue("gate-lobby-1-rogue", signer=ec.generate_private_key(ec.SECP256R1()))
    )
    try:
        client, _ = _connect(port, pki, cert)
    except (ssl.SSLError, OSError):
        return  # refused during the handshake
    try:
        assert not _connected(client, timeout=1.5)
    finally:
        client.loop_stop()
        client.disconnect()
