"""Find a TCP port nobody listens on, for processes that tests and the demo start themselves."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago (the OS picks it; never a fixed port).

    Another process may take the port between this call and its use; callers that start a server on it
    retry with a new port when the bind fails.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
