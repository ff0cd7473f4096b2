"""A stand-in for systemd's notify socket, for tests of the units' processes (the gate, central's workers)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path


class NotifySocket:
    """A unix datagram socket standing in for systemd's notify socket; collects messages with arrival times."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def pings(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        return [at for at, msg in list(self.messages) if msg == "WATCHDOG=1" and since <= at <= until]

    def texts(self) -> list[str]:
        return [msg for _, msg in list(self.messages)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
