"""A private ``redis-server`` process on 127.0.0.1 and a free port, without persistence, for tests and benchmarks.

``LocalRedis`` starts ``redis-server --port <free> --bind 127.0.0.1 --save '' --appendonly no`` in a directory it
owns, waits until the server answers ``PING`` and stops it on ``stop()`` (or at exit). It never touches a Redis the
machine already runs. :func:`find_redis_server` says where the binary is (Debian's ``redis-server`` package), or
None when it is not installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from devtools.ports import PortOwner
from devtools.processes import stop_processes
from devtools.timeouts import scaled

_BIND_FAILURE_MARKERS = ("Address already in use", "Could not create server TCP listening socket")


class RedisError(RuntimeError):
    """``redis-server`` could not be started; the message carries the tail of its log."""


def find_redis_server() -> str | None:
    """The path of ``redis-server`` (on PATH, else ``/usr/bin/redis-server``), or None when not installed."""
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None


def _pings(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class LocalRedis(PortOwner):
    """A ``redis-server`` process owned by the caller; ``url`` is its ``redis://`` URL (database 0)."""

    port_error = RedisError

    def __init__(self, directory: Path | str, *, host: str = "127.0.0.1", port: int | None = None,
                 start_timeout: float = 30.0) -> None:
        super().__init__(host, port)
        self.directory = Path(directory)
        self.log_path = self.directory / "redis.log"
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://host:port/0``."""
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> LocalRedis:
        """Start the server and wait until it answers PING; ``RedisError`` with its log tail otherwise."""
        executable = find_redis_server()
        if executable is None:
            raise RedisError("redis-server not found (Debian package redis-server; run scripts/bootstrap.sh)")
        self.directory.mkdir(parents=True, exist_ok=True)

        def launch(port: int) -> None:
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    [executable, "--port", str(port), "--bind", self.host, "--save", "", "--appendonly", "no",
                     "--dir", str(self.directory), "--protected-mode", "yes"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + scaled(self.start_timeout)
            while not _pings(self.host, port):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = self.log_path.read_text(errors="replace")[-2000:]
                    raise RedisError(f"redis-server did not answer on {self.host}:{port}:\n{tail}")
                time.sleep(0.05)

        self._bind_with_retries(launch, lambda error: any(m in str(error) for m in _BIND_FAILURE_MARKERS))
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        process, self._process = self._process, None
        if process is not None:
            stop_processes([process], timeout=10)

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
