"""An MQTT client for tests on a real broker, shared by ``tests/central`` and ``tests/e2e``.

:class:`MqttClient` holds a paho client (callback API version 2) that a subclass sets up (callbacks, account)
before :meth:`MqttClient.connect`, which connects and runs the client's network loop in its own thread;
:meth:`MqttClient.close` stops the loop and disconnects. It is a context manager, so a fixture reads
``with Publisher(broker) as publisher: yield publisher``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class MqttClient:
    """A paho client for one test; ``options`` go to :class:`paho.mqtt.client.Client` (``protocol``, ...)."""

    def __init__(self, client_id: str = "", **options: Any) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, **options)

    def connect(self, host: str, port: int) -> None:
        """Connect to the broker at ``host``:``port`` and start the network loop (callbacks run in its thread)."""
        self.client.connect(host, port)
        self.client.loop_start()

    def close(self) -> None:
        """Stop the network loop, then disconnect."""
        self.client.loop_stop()
        self.client.disconnect()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
