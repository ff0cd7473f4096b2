"""The site's MQTT certificates: a site CA, the broker's server certificate and one client certificate per gate
(and one for central), for the TLS listener of ``systemd/mosquitto/vaora-tls.conf``.

Everything lives in one directory, the broker's (``/etc/mosquitto/vaora``), under the names that config uses:

* ``ca.crt`` / ``ca.key``: the site CA (ECDSA P-256, :data:`CA_DAYS` days), made once by :func:`create_site_ca`;
  the key is mode 0600 and never leaves that host;
* ``server.crt`` / ``server.key``: the broker's certificate for its host names and addresses (:data:`BROKER_DAYS`);
* ``certs/gate-<gate id>.crt`` / ``.key``: a gate's client certificate (:data:`CLIENT_DAYS` days, short on
  purpose: a lost gate's certificate stops working on its own). Its common name is the gate's broker user name,
  which ``use_identity_as_username`` turns into the identity the ACL of ``broker-config`` checks, so a gate can
  use no other gate's topics. Central's is ``certs/vaora-central.crt``;
* ``ca.crl``: the certificates revoked before their end (:func:`revoke`, a stolen gate), signed by the CA and
  valid as long as the CA (so it never lapses and locks every client out); made empty with the CA.

Re-issuing a certificate (renewal) overwrites the old files with a new key; the CA stays. Time is passed in
(``now=``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from central.core.errors import ConflictError, InvalidInputError
from central.messaging.broker_auth import CENTRAL_USERNAME, gate_username
from protocols.reasons import Reason

CA_DAYS = 3650
BROKER_DAYS = 397
CLIENT_DAYS = 90
MAX_DAYS = 825
"""The longest validity :func:`issue_client` and :func:`issue_broker` accept."""
BACKDATE = dt.timedelta(minutes=5)
"""Certificates start this long before ``now``, for clocks a little behind."""
CA_NAME = "vaora site CA"
CRL_NAME = "ca.crl"


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate written to disk: its common name, files and end of validity."""

    common_name: str
    cert_file: Path
    key_file: Path
    not_after: dt.datetime
    created: bool = True
    """False when :func:`create_site_ca` found the CA already there and kept it."""


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` created with mode 0600 (never readable by others, not even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _days(days: int, limit: int) -> dt.timedelta:
    if not 1 <= days <= limit:
        raise InvalidInputError({"days": f"phải từ 1 đến {limit} ngày (must be 1..{limit} days)"})
    return dt.timedelta(days=days)


def _utc(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return now.astimezone(dt.UTC)


def create_site_ca(directory: Path, *, now: dt.datetime, days: int = CA_DAYS) -> IssuedCertificate:
    """Create the site CA in ``directory`` (``ca.crt``, ``ca.key`` mode 0600), or keep the one already there.

    An existing CA is never replaced: every certificate it signed would stop working at once.
    """
    cert_file, key_file = directory / "ca.crt", directory / "ca.key"
    if key_file.exists() or cert_file.exists():
        certificate, key = _load_ca(directory)
        if not (directory / CRL_NAME).exists():  # a CA made before revocation lists existed
            _write_crl(directory, certificate, key, [], now=_utc(now))
        return IssuedCertificate(CA_NAME, cert_file, key_file, certificate.not_valid_after_utc, created=False)
    start = _utc(now)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(CA_NAME)).issuer_name(_name(CA_NAME)).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - BACKDATE).not_valid_after(start + _days(days, CA_DAYS * 3))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    _write_private(key_file, _key_pem(key))
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    cert_file.chmod(0o644)
    _write_crl(directory, certificate, key, [], now=start)
    return IssuedCertificate(CA_NAME, cert_file, key_file, certificate.not_valid_after_utc)


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_file, key_file = directory / "ca.crt", directory / "ca.key"
    if not key_file.exists() or not cert_file.exists():
        raise ConflictError(Reason.MALFORMED, f"Chưa có CA của điểm trong {directory} (no site CA: run "
                                              f"`vaora-central site-ca {directory}` first)")
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConflictError(Reason.MALFORMED, f"{key_file} is not an EC key made by site-ca")
    return certificate, key


def _issue(directory: Path, common_name: str, cert_file: Path, key_file: Path, *, now: dt.datetime,
           lifetime: dt.timedelta, server_names: list[x509.GeneralName] | None = None) -> IssuedCertificate:
    ca_certificate, ca_key = _load_ca(directory)
    start = _utc(now)
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(start + lifetime, ca_certificate.not_valid_after_utc)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(ca_certificate.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - BACKDATE).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(server_names), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    _write_private(key_file, _key_pem(key))
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    cert_file.chmod(0o644)
    return IssuedCertificate(common_name, cert_file, key_file, certificate.not_valid_after_utc)


def issue_client(directory: Path, common_name: str, *, now: dt.datetime, days: int = CLIENT_DAYS) -> IssuedCertificate:
    """Issue a client certificate ``certs/<common_name>.crt`` (key ``.key``, mode 0600) from the site CA."""
    lifetime = _days(days, MAX_DAYS)
    certs = directory / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    certs.chmod(0o700)
    return _issue(directory, common_name, certs / f"{common_name}.crt", certs / f"{common_name}.key", now=now,
                  lifetime=lifetime)


def issue_gate(directory: Path, gate_id: str, *, now: dt.datetime, days: int = CLIENT_DAYS) -> IssuedCertificate:
    """Issue gate ``gate_id``'s client certificate: common name ``gate-<gate id>``, its broker user name."""
    try:
        common_name = gate_username(gate_id)
    except ValueError:
        raise InvalidInputError({"gate_id": f"mã cổng không hợp lệ: {gate_id!r}"}) from None
    return issue_client(directory, common_name, now=now, days=days)


def issue_central(directory: Path, *, now: dt.datetime, days: int = CLIENT_DAYS) -> IssuedCertificate:
    """Issue central's client certificate (common name ``vaora-central``) for ingest, change feed and web."""
    return issue_client(directory, CENTRAL_USERNAME, now=now, days=days)


def issue_broker(directory: Path, hosts: list[str], *, now: dt.datetime, days: int = BROKER_DAYS) -> IssuedCertificate:
    """Issue the broker's ``server.crt`` / ``server.key`` for ``hosts`` (DNS names or IP addresses: the names
    clients connect to, checked by their TLS)."""
    lifetime = _days(days, MAX_DAYS)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not host or any(ch.isspace() or ch in "/:@" for ch in host):
                raise InvalidInputError({"hosts": f"tên máy không hợp lệ: {host!r}"}) from None
            names.append(x509.DNSName(host))
    if not names:
        raise InvalidInputError({"hosts": "cần ít nhất một tên máy hoặc địa chỉ IP của broker"})
    return _issue(directory, hosts[0], directory / "server.crt", directory / "server.key", now=now,
                  lifetime=lifetime, server_names=names)


def _write_crl(directory: Path, ca_certificate: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
               revoked: list[x509.RevokedCertificate], *, now: dt.datetime) -> Path:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_certificate.subject)
        .last_update(now - BACKDATE)
        .next_update(ca_certificate.not_valid_after_utc)
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca_key, hashes.SHA256())
    path = directory / CRL_NAME
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o644)
    return path


def revoked_serials(directory: Path) -> set[int]:
    """Serial numbers in the site's revocation list (empty without one)."""
    path = directory / CRL_NAME
    if not path.exists():
        return set()
    return {entry.serial_number for entry in x509.load_pem_x509_crl(path.read_bytes())}


def revoke(directory: Path, common_name: str, *, now: dt.datetime) -> int:
    """Add the current certificate of ``common_name`` (``certs/<common_name>.crt``) to ``ca.crl``; return its
    serial number. The broker refuses it once it reloads the list (restart Mosquitto). A new certificate for the
    same name (``gate-cert``) is not affected."""
    cert_file = directory / "certs" / f"{common_name}.crt"
    if not cert_file.exists():
        raise ConflictError(Reason.MALFORMED, f"Không có chứng chỉ {cert_file} (no such certificate)")
    ca_certificate, ca_key = _load_ca(directory)
    serial = x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number
    start = _utc(now)
    path = directory / CRL_NAME
    entries = list(x509.load_pem_x509_crl(path.read_bytes())) if path.exists() else []
    if serial not in {entry.serial_number for entry in entries}:
        entries.append(x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(start).build())
    _write_crl(directory, ca_certificate, ca_key, entries, now=start)
    return serial


def revoke_gate(directory: Path, gate_id: str, *, now: dt.datetime) -> int:
    """Revoke gate ``gate_id``'s current certificate (a lost or stolen gate); see :func:`revoke`."""
    try:
        common_name = gate_username(gate_id)
    except ValueError:
        raise InvalidInputError({"gate_id": f"mã cổng không hợp lệ: {gate_id!r}"}) from None
    return revoke(directory, common_name, now=now)
