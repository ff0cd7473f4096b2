"""The one way vaora builds a paho-mqtt 2.x client: gate, ingest, change feed and central's publisher alike.

:func:`make_client` takes a :class:`ClientSettings` and returns a configured, unconnected
``paho.mqtt.client.Client``: protocol 3.1.1 with the version-2 callback API, the client id, a persistent
session when asked for (a gate and the ingest worker resume their QoS 1 queues; a publisher does not), the
credentials, an optional last will, TLS from CA/certificate/key files, and reconnect backoff with jitter.

Jitter: paho's reconnect delay doubles from a minimum up to a maximum and is the same for every client, so a
fleet of gates that lost the broker together would knock on it together. Each client here starts its doubling
from a minimum drawn at random between ``reconnect_min_s`` and twice that, which spreads the whole sequence.

Building a client does no I/O (the socket opens on ``connect``/``connect_async``); the TLS files are read when
the client is made, so a missing or unreadable file fails at start-up, not at the first reconnect.

Brokers are named by ``host``/``port`` or by a URL (:func:`parse_broker_url`): ``mqtt://host[:1883]`` is plain TCP,
``mqtts://host[:8883]`` is TLS (against the given CA file, else the system's trust store). Configurations check
their TLS files with :func:`check_tls_files`, which names the file (CA, certificate or key) that cannot be used.
"""

from __future__ import annotations

import os
import random
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

PLAIN_PORT = 1883
TLS_PORT = 8883
URL_SCHEMES = {"mqtt": False, "mqtts": True}
"""URL scheme -> whether the connection uses TLS."""


@dataclass(frozen=True)
class TlsFiles:
    """The files of a TLS connection: the CA that signed the broker's certificate (None: the system's trust
    store), and optionally this client's own certificate and key (for brokers that map client certificates to
    identities; the key may sit in the certificate file)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class BrokerAddress:
    """Where a client connects: host, port and whether the connection uses TLS."""

    host: str
    port: int
    tls: bool


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://host[:port]`` or ``mqtts://host[:port]`` (default ports 1883 and 8883).

    Credentials, paths, queries and fragments are refused (the password comes from a file, never from a URL).
    Raises ``ValueError`` with an operator-facing message.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a broker URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        raise ValueError(f"{url!r}: the scheme must be mqtt:// (plain) or mqtts:// (TLS)")
    if not parts.hostname:
        raise ValueError(f"{url!r}: no broker host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{url!r}: no user or password in the URL (use the password file)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: only scheme, host and port are allowed")
    if port == 0:
        raise ValueError(f"{url!r}: port must be 1..65535")
    tls = URL_SCHEMES[scheme]
    return BrokerAddress(parts.hostname, port or (TLS_PORT if tls else PLAIN_PORT), tls)


@dataclass(frozen=True)
class LastWill:
    """What the broker publishes for the client when its connection drops without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class ClientSettings:
    """Everything :func:`make_client` needs. ``persistent`` keeps the session (and its queued QoS 1 messages)
    across reconnects; it needs a stable ``client_id``."""

    client_id: str
    username: str | None = None
    password: str | None = None
    persistent: bool = False
    will: LastWill | None = None
    tls: TlsFiles | None = None
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30


def process_client_id(role: str) -> str:
    """A client id unique to this process on this host, e.g. ``vaora-central-web-host1-4242``.

    For clients with no session to resume (a web process that only publishes): two processes must never share
    an id, or the broker disconnects one whenever the other connects.
    """
    host = "".join(ch for ch in socket.gethostname() if ch.isalnum() or ch in "-_")[:24] or "host"
    return f"vaora-{role}-{host}-{os.getpid()}"


def jittered_min_delay(minimum: int, rng: random.Random | None = None) -> int:
    """Return this client's first reconnect delay: uniform in ``[minimum, 2 * minimum]`` whole seconds."""
    draw = (rng or random).randint(minimum, 2 * minimum) if minimum > 0 else 0
    return max(draw, minimum)


def make_client(settings: ClientSettings, *, rng: random.Random | None = None) -> mqtt.Client:
    """Return an unconnected paho client configured from ``settings`` (see the module docstring)."""
    if settings.persistent and not settings.client_id:
        raise ValueError("a persistent session needs a stable client id")
    if settings.reconnect_max_s < settings.reconnect_min_s:
        raise ValueError("reconnect_max_s must not be below reconnect_min_s")
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        clean_session=not settings.persistent,
        protocol=mqtt.MQTTv311,
    )
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.will is not None:
        will = settings.will
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    if settings.tls is not None:
        client.tls_set_context(tls_context(settings.tls))
    minimum = jittered_min_delay(settings.reconnect_min_s, rng)
    client.reconnect_delay_set(minimum, max(minimum, settings.reconnect_max_s))
    return client


def tls_context(files: TlsFiles) -> ssl.SSLContext:
    """A client TLS context that verifies the broker against ``files.ca_file`` (or the system's trust store;
    hostname included) and, when given, presents the client certificate. Raises ``OSError``/``ssl.SSLError``
    on a bad file (:func:`check_tls_files` says which one)."""
    cafile = str(files.ca_file) if files.ca_file is not None else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if files.cert_file is not None:
        context.load_cert_chain(str(files.cert_file), str(files.key_file) if files.key_file else None)
    elif files.key_file is not None:
        raise ValueError("a TLS key file needs its certificate file")
    return context


def _read(path: Path) -> tuple[bytes | None, str | None]:
    try:
        return path.read_bytes(), None
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"


def check_tls_files(files: TlsFiles) -> list[tuple[str, str]]:
    """Every problem of ``files`` as ``(field, message)``, ``field`` one of ``ca_file``, ``cert_file``,
    ``key_file``: a file that cannot be read, is not PEM of the right kind (CA certificates; a certificate; an
    unencrypted private key, in ``key_file`` or else in ``cert_file``), a key that is not the certificate's, or
    a key without its certificate. An empty list means :func:`tls_context` can use them."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    problems: list[tuple[str, str]] = []
    if files.ca_file is not None:
        data, error = _read(files.ca_file)
        if error:
            problems.append(("ca_file", error))
        elif data is not None:
            try:
                x509.load_pem_x509_certificates(data)
            except ValueError:
                problems.append(("ca_file", f"{files.ca_file} holds no PEM certificate"))
    if files.key_file is not None and files.cert_file is None:
        problems.append(("key_file", "a key needs its certificate (cert_file)"))
        return problems
    if files.cert_file is None:
        return problems
    cert_data, error = _read(files.cert_file)
    if error or cert_data is None:
        problems.append(("cert_file", error or "unreadable"))
        return problems
    try:
        certificate = x509.load_pem_x509_certificate(cert_data)
    except ValueError:
        problems.append(("cert_file", f"{files.cert_file} holds no PEM certificate"))
        return problems
    key_field, key_path = ("key_file", files.key_file) if files.key_file is not None else ("cert_file", files.cert_file)
    if files.key_file is not None:
        key_data, error = _read(files.key_file)
        if error or key_data is None:
            problems.append(("key_file", error or "unreadable"))
            return problems
    else:
        key_data = cert_data
        if b"PRIVATE KEY-----" not in cert_data:
            problems.append(("key_file", f"required: {files.cert_file} holds no private key"))
            return problems
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        problems.append((key_field, f"{key_path}: the key is encrypted; give an unencrypted key readable only by "
                                    "this service"))
        return problems
    except (ValueError, UnsupportedAlgorithm):
        problems.append((key_field, f"{key_path} holds no usable PEM private key"))
        return problems
    public = key.public_key()
    if public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo):
        problems.append((key_field, f"{key_path} is not the key of the certificate {files.cert_file}"))
    return problems


def certificate_expiry(files: TlsFiles) -> datetime | None:
    """When the client certificate of ``files`` stops being valid (aware UTC), or None without a readable one."""
    if files.cert_file is None:
        return None
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(files.cert_file.read_bytes()).not_valid_after_utc
    except (OSError, ValueError):
        return None
