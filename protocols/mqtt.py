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
"""

from __future__ import annotations

import os
import random
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class TlsFiles:
    """The files of a TLS connection: the CA that signed the broker's certificate, and optionally this
    client's own certificate and key (for brokers that map client certificates to identities)."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None


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
    """A client TLS context that verifies the broker against ``files.ca_file`` (hostname included) and, when
    given, presents the client certificate. Raises ``OSError``/``ssl.SSLError`` naming a bad file."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files.ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if files.cert_file is not None:
        context.load_cert_chain(str(files.cert_file), str(files.key_file) if files.key_file else None)
    elif files.key_file is not None:
        raise ValueError("a TLS key file needs its certificate file")
    return context
