"""The site's MQTT certificates: ``vaora-central site-ca``, ``broker-cert``, ``central-cert`` and ``gate-cert``.

The TLS connections made with them (shipped ``vaora-tls.conf``, real gate and ingest processes) are in
``tests/e2e/test_tls_gate.py``; here: what the files hold, their modes, and the refusals.
"""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from central.cli import main
from central.core.errors import ConflictError, InvalidInputError
from central.messaging import certs
from protocols.mqtt import TlsFiles, check_tls_files

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


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
