"""The site's MQTT certificates: ``vaora-central site-ca``, ``broker-cert``, ``central-cert`` and ``gate-cert``.

The TLS connections made with them (shipped ``vaora-tls.conf``, real gate and ingest processes) are in
``tests/e2e/test_tls_gate.py``; here: what the files hold, their modes, and the refusals.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from central.cli import main
from central.core.errors import ConflictError, InvalidInputError
from central.messaging import certs
from central.messaging.broker_auth import GateAccount, render_acl
from devtools.ports import free_port
from protocols.mqtt import TlsFiles, check_tls_files, tls_context
from tests.conftest import scaled, wait_until

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SHIPPED = Path(__file__).resolve().parents[2] / "systemd" / "mosquitto" / "vaora-tls.conf"


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def common_name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def signed_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def test_the_site_ca_is_made_once_with_a_private_key(tmp_path: Path) -> None:
    made = certs.create_site_ca(tmp_path / "site", now=NOW)
    assert made.created and mode(made.key_file) == 0o600
    ca = load(made.cert_file)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.not_valid_after_utc == NOW + timedelta(days=certs.CA_DAYS)
    before = (made.cert_file.read_bytes(), made.key_file.read_bytes())
    kept = certs.create_site_ca(tmp_path / "site", now=NOW + timedelta(days=1))
    assert not kept.created
    assert (kept.cert_file.read_bytes(), kept.key_file.read_bytes()) == before
    assert certs.revoked_serials(tmp_path / "site") == set()  # the empty list the shipped crlfile needs
    (tmp_path / "site" / certs.CRL_NAME).unlink()  # a CA made before revocation lists: site-ca adds one
    certs.create_site_ca(tmp_path / "site", now=NOW + timedelta(days=2))
    crl = x509.load_pem_x509_crl((tmp_path / "site" / certs.CRL_NAME).read_bytes())
    assert crl.is_signature_valid(ca.public_key()) and crl.next_update_utc == ca.not_valid_after_utc


def test_a_gate_certificate_names_the_gate_as_the_broker_user(tmp_path: Path) -> None:
    site = tmp_path / "site"
    certs.create_site_ca(site, now=NOW)
    issued = certs.issue_gate(site, "lobby-1", now=NOW)
    assert (issued.cert_file, issued.key_file) == (site / "certs" / "gate-lobby-1.crt",
                                                   site / "certs" / "gate-lobby-1.key")
    certificate = load(issued.cert_file)
    assert common_name(certificate) == "gate-lobby-1"  # = broker_auth.gate_username, the ACL's user
    assert signed_by(certificate, load(site / "ca.crt"))
    assert certificate.not_valid_after_utc == NOW + timedelta(days=certs.CLIENT_DAYS)
    assert certificate.not_valid_before_utc == NOW - certs.BACKDATE
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert mode(issued.key_file) == 0o600 and mode(site / "certs") == 0o700
    assert check_tls_files(TlsFiles(site / "ca.crt", issued.cert_file, issued.key_file)) == []
    # renewal: a new key and certificate under the same names
    old_key = issued.key_file.read_bytes()
    renewed = certs.issue_gate(site, "lobby-1", now=NOW + timedelta(days=80), days=30)
    assert renewed.key_file.read_bytes() != old_key
    assert load(renewed.cert_file).not_valid_after_utc == NOW + timedelta(days=110)


def test_the_broker_certificate_covers_its_names(tmp_path: Path) -> None:
    site = tmp_path / "site"
    certs.create_site_ca(site, now=NOW)
    issued = certs.issue_broker(site, ["mqtt.hq.example", "10.0.0.5"], now=NOW)
    assert (issued.cert_file, issued.key_file) == (site / "server.crt", site / "server.key")
    certificate = load(issued.cert_file)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mqtt.hq.example"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert signed_by(certificate, load(site / "ca.crt"))
    assert common_name(load(certs.issue_central(site, now=NOW).cert_file)) == "vaora-central"


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(ConflictError, match="site-ca"):
        certs.issue_gate(tmp_path / "empty", "lobby-1", now=NOW)
    certs.create_site_ca(tmp_path / "site", now=NOW)
    with pytest.raises(InvalidInputError) as caught:
        certs.issue_gate(tmp_path / "site", "Lobby 1", now=NOW)
    assert set(caught.value.fields) == {"gate_id"}
    with pytest.raises(InvalidInputError) as caught:
        certs.issue_gate(tmp_path / "site", "lobby-1", now=NOW, days=0)
    assert set(caught.value.fields) == {"days"}
    with pytest.raises(InvalidInputError):
        certs.issue_broker(tmp_path / "site", ["bad host/name"], now=NOW)


def test_the_commands(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "mosquitto"
    monkeypatch.setenv("VAORA_DATABASE_URL", database_url)
    assert main(["gate-cert", str(site), "lobby-1"]) == 2  # no database schema yet either
    assert main(["init-db"]) == 0
    assert main(["add-gate", "lobby-1", "--site", "hq"]) == 0
    capsys.readouterr()
    assert main(["gate-cert", str(site), "lobby-1"]) == 2
    assert "site-ca" in capsys.readouterr().err
    assert main(["site-ca", str(site)]) == 0
    assert (site / "ca.crt").exists() and mode(site / "ca.key") == 0o600
    assert main(["site-ca", str(site)]) == 0
    assert "kept" in capsys.readouterr().out
    assert main(["broker-cert", str(site), "127.0.0.1", "localhost"]) == 0
    assert main(["central-cert", str(site)]) == 0
    assert main(["gate-cert", str(site), "lobby-1"]) == 0
    out = capsys.readouterr().out
    assert f"gate-lobby-1: {site / 'certs' / 'gate-lobby-1.crt'}" in out
    assert common_name(load(site / "certs" / "gate-lobby-1.crt")) == "gate-lobby-1"
    assert main(["gate-cert", str(site), "lobby-9"]) == 2
    assert "unknown_gate" in capsys.readouterr().err
    assert not (site / "certs" / "gate-lobby-9.crt").exists()
    assert main(["gate-cert", str(site), "lobby-1", "--days", "9999"]) == 2


# ----- revocation, on the shipped TLS listener ------------------------------------------------------------------

CONNECT = bytes([0x10, 0x13, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x3C, 0x00, 0x07]) + b"revoked"
"""An MQTT 3.1.1 CONNECT with a clean session and client id ``revoked``."""
CONNACK_ACCEPTED = bytes([0x20, 0x02, 0x00, 0x00])


def start_broker(site: Path, tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """Mosquitto on the shipped ``vaora-tls.conf``, its paths pointed at ``site`` and a free port."""
    port = free_port()
    text = SHIPPED.read_text(encoding="utf-8").replace("/etc/mosquitto/vaora/", f"{site}/")
    text = text.replace("/var/lib/mosquitto/", f"{tmp_path}/")
    text = text.replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
    text += f"log_dest file {tmp_path / 'mosquitto.log'}\n"
    if os.geteuid() == 0:
        text = "user root\n" + text
    (tmp_path / "mosquitto.conf").write_text(text, encoding="utf-8")
    process = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c",
                                str(tmp_path / "mosquitto.conf")])

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            assert process.poll() is None, (tmp_path / "mosquitto.log").read_text(errors="replace")
            return False

    wait_until(listening, timeout=10, interval=0.05)
    return process, port


def connack(port: int, site: Path, name: str) -> bytes | str:
    """What the broker answers a CONNECT from the holder of ``certs/<name>``: the CONNACK, or the TLS failure."""
    context = tls_context(TlsFiles(site / "ca.crt", site / "certs" / f"{name}.crt", site / "certs" / f"{name}.key"))
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(10)) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as connection:
                connection.sendall(CONNECT)
                return connection.recv(4) or "closed"
        except (ssl.SSLError, ConnectionResetError) as exc:
            return str(exc)


def test_a_revoked_gate_certificate_is_refused_by_the_broker(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    assert main(["site-ca", str(site)]) == 0
    assert main(["broker-cert", str(site), "127.0.0.1"]) == 0
    (site / "acl").write_text(render_acl([GateAccount("lobby-1", "hq")]), encoding="utf-8")
    stolen = certs.issue_gate(site, "lobby-1", now=datetime.now(UTC))
    broker, port = start_broker(site, tmp_path)
    try:
        assert connack(port, site, "gate-lobby-1") == CONNACK_ACCEPTED
    finally:
        broker.terminate()
        broker.wait(10)
    assert main(["revoke-gate-cert", str(site), "lobby-1"]) == 0
    assert "restart mosquitto" in capsys.readouterr().out
    assert certs.revoked_serials(site) == {load(stolen.cert_file).serial_number}
    broker, port = start_broker(site, tmp_path)
    try:
        refused = connack(port, site, "gate-lobby-1")  # the TLS alert ("certificate revoked") or just EOF
        assert refused != CONNACK_ACCEPTED
        log = tmp_path / "mosquitto.log"
        wait_until(lambda: "certificate verify failed" in log.read_text(errors="replace"),
                   message=lambda: log.read_text(errors="replace"))
        assert main(["revoke-gate-cert", str(site), "lobby-2"]) == 2  # no certificate of that gate
        # the gate's replacement: same name and CA, a new serial, accepted by the same broker
        certs.issue_gate(site, "lobby-1", now=datetime.now(UTC))
        assert connack(port, site, "gate-lobby-1") == CONNACK_ACCEPTED
    finally:
        broker.terminate()
        broker.wait(10)
