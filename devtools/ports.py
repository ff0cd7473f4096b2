"""Free TCP ports for the servers that tests and the demo start themselves, and the port handling they share.

``free_port()`` asks the OS for a port nobody listens on; ``wait_for_http()`` waits until a server started on one
answers. ``PortOwner`` is the part of ``LocalBroker`` and
``MailCatcher`` that owns a host and a port: the port is given, or chosen at the first start and kept for every
restart, and a start that loses its chosen port to another process (between the choice and the bind) tries again
on a new one.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from collections.abc import Callable

import requests

logger = logging.getLogger(__name__)

START_ATTEMPTS = 5
"""Binds tried on fresh free ports before a start gives up (only when the port was not given)."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago (the OS picks it; never a fixed port).

    Another process may take the port between this call and its use; callers that start a server on it
    retry with a new port when the bind fails.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, *, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Return once ``url`` answers HTTP at all (any status: a server that answers is up). Raise
    ``RuntimeError`` when ``process`` (the server) exits first or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server stopped at start (exit {process.returncode})")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:  # not listening yet, or listening while its workers still boot
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.2)


def ensure_bindable(host: str, port: int) -> None:
    """Raise ``OSError`` at once when something already listens on ``host:port``.

    For servers that notice a failed bind only after a start-up timeout (aiosmtpd's ``Controller`` waits its
    whole ``ready_timeout``); a port taken after this check is still caught by that slower path.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no obstacle
        sock.bind((host, port))


class PortOwner:
    """A server of ours listening on ``host`` and ``port`` (``None``: a free one, chosen at the first start).

    Subclasses set ``port_error`` (raised when the port is read before it is known) and call
    :meth:`_bind_with_retries` from their ``start()``.
    """

    port_error: type[Exception] = RuntimeError

    def __init__(self, host: str, port: int | None) -> None:
        self._host = host
        self._port = port
        self._port_given = port is not None

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The server's port (known after the first ``start()`` or when given)."""
        if self._port is None:
            raise self.port_error("port not chosen yet; call start() first")
        return self._port

    def _bind_with_retries(self, launch: Callable[[int], None], bind_failed: Callable[[Exception], bool],
                           *, keep_port: bool = False) -> None:
        """Run ``launch(port)``, choosing a free port first if none is set. When it raises an error that
        ``bind_failed`` recognises, try again on a new free port, up to :data:`START_ATTEMPTS` times; not when
        the port was given or ``keep_port`` (e.g. a restart, which must come back on the same port)."""
        attempts = 1 if (self._port_given or keep_port) else START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            if self._port is None:
                self._port = free_port(self._host)
            try:
                launch(self._port)
                return
            except Exception as error:
                if attempt < attempts and bind_failed(error):
                    logger.info("port taken meanwhile, retrying on another port=%s", self._port)
                    self._port = None
                    continue
                raise
