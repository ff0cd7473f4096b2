"""The web process's one MQTT link: a process-wide paho client that publishes gate commands.

:func:`get_publisher` returns a lazily connected :class:`MqttPublisher` for the app's (or a config's) broker
settings (``VAORA_MQTT_URL`` or ``HOST`` / ``PORT``, ``USERNAME`` / ``PASSWORD_FILE`` / ``CA_FILE`` / ``CERT_FILE`` /
``KEY_FILE``, central's credentials). The client is built by :func:`protocols.mqtt.make_client` (clean session,
a per-process id), runs paho's network thread (``loop_start``) and reconnects on its own (1..30 s backoff, with
jitter). Anything that only needs to publish takes a :class:`CommandPublisher`, so tests can inject a recorder
instead.

Publishers made by :func:`get_publisher` are stopped by :func:`close_publishers`, which runs at interpreter
exit (``atexit``) so no paho network thread outlives the process's logging; tests call it in their teardown.

Nothing else in the web process talks MQTT.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from central.config import CentralConfig
from protocols.mqtt import ClientSettings, TlsFiles, make_client, process_client_id

log = logging.getLogger(__name__)

CONNECT_WAIT_S = 3.0


class PublishError(RuntimeError):
    """The message could not be handed to the broker (not connected, queue full, ...)."""


class CommandPublisher(Protocol):
    """What services need to send a message: publish ``payload`` on ``topic`` with ``qos``.

    Raises :class:`PublishError` when the message could not be handed to the broker.
    """

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Publish one message."""


class MqttPublisher:
    """A paho client connected in the background with central's credentials; thread-safe ``publish``."""

    def __init__(self, host: str, port: int, username: str | None = None, password: str | None = None,
                 *, client_id: str | None = None, tls: TlsFiles | None = None, keepalive: int = 30,
                 connect_wait_s: float = CONNECT_WAIT_S) -> None:
        self.host = host
        self.port = port
        self.connect_wait_s = connect_wait_s
        self._connected = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        # A clean session with a per-process id: the web process only publishes, it has nothing to resume.
        self.client = make_client(ClientSettings(client_id=client_id or process_client_id("central-web"),
                                                 username=username, password=password, persistent=False,
                                                 tls=tls))
        self.keepalive = keepalive
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    @property
    def is_connected(self) -> bool:
        """True while connected to the broker."""
        return self._connected.is_set()

    def start(self) -> None:
        """Connect in the background (idempotent)."""
        with self._lock:
            if self._started:
                return
            self._started = True
            self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
            self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """Start if needed and block until connected or ``timeout`` passed; return whether connected."""
        self.start()
        return self._connected.wait(timeout)

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Publish one message; waits up to ``connect_wait_s`` for a first connection.

        Raises :class:`PublishError` when not connected (a command to be executed later by a reconnecting
        web client would reach the gate too late to be useful; the caller reports the failure instead).
        """
        if not self.wait_connected(self.connect_wait_s):
            raise PublishError(f"not connected to the broker at {self.host}:{self.port}")
        info = self.client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise PublishError(f"publish refused rc={info.rc} ({mqtt.error_string(info.rc)})")

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        with self._lock:
            if not self._started:
                return
            self._started = False
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
            self._connected.clear()

    # ----- paho callbacks (network thread)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any = None) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("web mqtt connect refused host=%s port=%d reason=%s", self.host, self.port, reason_code)
            return
        self._connected.set()
        log.info("web mqtt connected host=%s port=%d", self.host, self.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any = None) -> None:
        self._connected.clear()
        log.info("web mqtt disconnected reason=%s", reason_code)


_publishers: dict[tuple[str, int, str | None, TlsFiles | None], MqttPublisher] = {}
_publishers_lock = threading.Lock()


def _config_of(app_or_config: Any) -> CentralConfig:
    if isinstance(app_or_config, CentralConfig):
        return app_or_config
    extensions = getattr(app_or_config, "extensions", None)
    if extensions is not None and "vaora" in extensions:
        return extensions["vaora"].config
    raise TypeError(f"expected a Flask app or a CentralConfig, got {type(app_or_config).__name__}")


def get_publisher(app_or_config: Any = None) -> CommandPublisher:
    """The process-wide publisher for the broker of ``app_or_config`` (a Flask app or a CentralConfig).

    Without an argument, the current Flask app is used. A publisher injected into ``app.extensions``
    under ``"vaora_publisher"`` (tests) wins. The real client is created and connected on first use.
    """
    if app_or_config is None:
        from flask import current_app

        app_or_config = current_app._get_current_object()  # type: ignore[attr-defined]
    extensions = getattr(app_or_config, "extensions", None)
    if extensions is not None and extensions.get("vaora_publisher") is not None:
        return extensions["vaora_publisher"]
    config = _config_of(app_or_config)
    key = (config.mqtt_host, config.mqtt_port, config.mqtt_username, config.mqtt_tls)
    with _publishers_lock:
        publisher = _publishers.get(key)
        if publisher is None:
            publisher = MqttPublisher(config.mqtt_host, config.mqtt_port, config.mqtt_username,
                                      config.mqtt_password, tls=config.mqtt_tls)
            _publishers[key] = publisher
    publisher.start()
    return publisher


def close_publishers() -> None:
    """Stop every process-wide publisher (tests, shutdown)."""
    with _publishers_lock:
        publishers = list(_publishers.values())
        _publishers.clear()
    for publisher in publishers:
        try:
            publisher.stop()
        except Exception:
            log.exception("closing an mqtt publisher failed")


atexit.register(close_publishers)
