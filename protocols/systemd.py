"""systemd service notifications (sd_notify) without a dependency: READY=1, WATCHDOG=1, STOPPING=1, STATUS=; shared by
the gate and central's long-running workers (ingest, delivery).

Messages go as one datagram to the unix socket named in ``$NOTIFY_SOCKET`` (a leading "@" names an abstract
socket). Without that variable (not run by systemd) every call is a no-op returning False.
"""

from __future__ import annotations

import os
import socket


def notify(message: str, environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """Send ``message`` (e.g. "READY=1" or "STATUS=...") to systemd; True if it was sent."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode("utf-8"), target)
    except OSError:
        return False
    return True


def watchdog_interval(environ: os._Environ[str] | dict[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``$WATCHDOG_USEC``), or None when no watchdog is set
    (or ``$WATCHDOG_PID`` names another process)."""
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None
