"""A private Mosquitto process with its own config, port and persistence, for tests and the demo.

``LocalBroker`` writes a config file into a directory it owns, starts ``mosquitto -c`` on 127.0.0.1 and a
free port, and can stop, kill and restart it on the same port, so tests can inject broker faults. The
persistence file is saved after every change, so QoS-1 messages queued for persistent sessions survive even
``kill()`` (SIGKILL).

Mosquitto 2.0, started as root, drops privileges to the ``mosquitto`` user, which then cannot write the log
and persistence files in a root-owned temporary directory; the generated config therefore says ``user root``
when the effective uid is 0. Run as any other user, Mosquitto keeps that user (no ``user`` line needed).

Every timeout here (start-up, ``wait_for_log``, ``wait_persisted``, ``stop``) is stretched by
``VAORA_TEST_TIMEOUT_SCALE`` (:func:`devtools.timeouts.scaled`): callers pass the unscaled ceiling.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path
from types import TracebackType

from devtools.ports import PortOwner
from devtools.timeouts import scaled

logger = logging.getLogger(__name__)

DEFAULT_EXECUTABLE = "/usr/sbin/mosquitto"
_BIND_FAILURE_MARKERS = ("Address already in use", "Error: Unable to listen", "Error opening listener")
_LIVE_BROKERS: weakref.WeakSet[LocalBroker] = weakref.WeakSet()


class BrokerError(RuntimeError):
    """The Mosquitto process could not be started; the message carries the tail of its log."""


def _bind_failed(error: Exception) -> bool:
    return isinstance(error, BrokerError) and any(marker in str(error) for marker in _BIND_FAILURE_MARKERS)


def find_mosquitto() -> str:
    """Return the path of the ``mosquitto`` binary: the one on PATH, else ``/usr/sbin/mosquitto``."""
    found = shutil.which("mosquitto")
    if found:
        return found
    if Path(DEFAULT_EXECUTABLE).exists():
        return DEFAULT_EXECUTABLE
    raise BrokerError("mosquitto not found on PATH nor at /usr/sbin/mosquitto (run scripts/bootstrap.sh)")


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 20, since: int = 0) -> str:
    try:
        with path.open("rb") as file:
            file.seek(since)
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class LocalBroker(PortOwner):
    """A Mosquitto broker process owned by the caller.

    ``directory`` receives ``mosquitto.conf``, ``mosquitto.log``, ``mosquitto.stderr`` and ``data/`` (the
    persistence location). ``port=None`` picks a free port at the first ``start()`` and keeps it for every
    restart. ``extra_config`` is appended verbatim (e.g. ``password_file ...`` / ``acl_file ...`` lines);
    pass ``allow_anonymous=False`` with it rather than a second ``allow_anonymous`` line. ``start_timeout`` is
    the (unscaled) ceiling for one start, including a restart's retries on a lingering port.
    """

    port_error = BrokerError

    def __init__(
        self,
        directory: Path | str,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        allow_anonymous: bool = True,
        extra_config: str = "",
        max_queued_messages: int = 1000,
        executable: str | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        super().__init__(host, port)
        self.directory = Path(directory).resolve()
        self.allow_anonymous = allow_anonymous
        self.extra_config = extra_config
        self.max_queued_messages = max_queued_messages
        self.executable = executable or find_mosquitto()
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._started_once = False
        self._run_log_start = 0
        self._run_stderr_start = 0

    # -- paths and config -------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        """The generated ``mosquitto.conf``."""
        return self.directory / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        """Mosquitto's own log file."""
        return self.directory / "mosquitto.log"

    @property
    def stderr_path(self) -> Path:
        """Where the process's stdout/stderr go (errors raised before the log file is open)."""
        return self.directory / "mosquitto.stderr"

    @property
    def persistence_dir(self) -> Path:
        """Mosquitto's ``persistence_location`` (holds ``mosquitto.db``)."""
        return self.directory / "data"

    def config_text(self) -> str:
        """Return the config file this broker runs with (the port must be known)."""
        if self._port is None:
            raise BrokerError("port not chosen yet; call start() first")
        lines = [
            "# generated by devtools.broker; rewritten at every start",
            "per_listener_settings false",
            f"listener {self._port} {self._host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            "persistence_file mosquitto.db",
            # Save the database after every change, so SIGKILL loses no queued QoS-1 message.
            "autosave_on_changes true",
            "autosave_interval 1",
            f"max_queued_messages {self.max_queued_messages}",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            # One line per subscription ("<client id> <qos> <filter>"): tests wait on it, see wait_subscribed.
            "log_type subscribe",
            "log_type unsubscribe",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if os.geteuid() == 0:
            lines.insert(1, "user root")
        text = "\n".join(lines) + "\n"
        if self.extra_config.strip():
            text += "# extra config\n" + self.extra_config.strip() + "\n"
        return text

    # -- properties (host and port: PortOwner) ----------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The process id while the process exists, else None."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the Mosquitto process is alive."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the current run's broker log and stderr, for error messages."""
        parts = (
            _tail(self.log_path, lines, self._run_log_start),
            _tail(self.stderr_path, lines, self._run_stderr_start),
        )
        return "\n".join(part for part in parts if part)

    def log_position(self) -> int:
        """The current size of the broker log; pass it to ``wait_for_log(since=...)``."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, since: int = 0) -> str:
        """The broker log from byte offset ``since`` on."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(since)
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, text: str, since: int = 0, timeout: float = 10.0) -> None:
        """Wait until ``text`` appears in the log after offset ``since``; ``TimeoutError`` otherwise.

        E.g. ``wait_for_log("Client gate-g1 disconnected", since=mark)`` with ``mark = log_position()``.
        """
        deadline = time.monotonic() + scaled(timeout)
        while text not in self.log_since(since):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in the broker log within {scaled(timeout):.1f}s:\n{self.log_tail()}")
            time.sleep(0.02)

    def wait_subscribed(self, client_id: str, topic_filter: str, since: int = 0, timeout: float = 10.0) -> None:
        """Wait until the broker has taken client ``client_id``'s subscription to ``topic_filter`` (logged when
        the broker handles the SUBSCRIBE, just before its SUBACK); ``TimeoutError`` otherwise.

        For processes whose MQTT client the caller cannot reach (e.g. ``vaora-central ingest``): once this
        returns, what is published to a matching topic reaches that client.
        """
        deadline = time.monotonic() + scaled(timeout)
        pattern = re.compile(rf"^\S+ {re.escape(client_id)} \d {re.escape(topic_filter)}$", re.MULTILINE)
        while not pattern.search(self.log_since(since)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{client_id} not subscribed to {topic_filter!r} within {scaled(timeout):.1f}s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.02)

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> LocalBroker:
        """Start Mosquitto and wait until its port accepts connections.

        Raises ``BrokerError`` with the log tail when the process exits or does not listen within
        ``start_timeout`` seconds. A port that turns out to be taken is replaced by another free one,
        unless the port was given or the broker already ran (a restart keeps its port).
        """
        if self.running:
            return self
        self._bind_with_retries(self._launch, _bind_failed, keep_port=self._started_once)
        self._started_once = True
        _LIVE_BROKERS.add(self)
        return self

    def _launch(self, _port: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        # Logs are appended across restarts; this run's part starts at these offsets.
        self._run_log_start = self.log_position()
        self._run_stderr_start = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0
        with self.stderr_path.open("ab") as err:
            self._process = subprocess.Popen(
                [self.executable, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        deadline = time.monotonic() + scaled(self.start_timeout)
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise BrokerError(
                    f"mosquitto exited with code {code} on port {self._port}:\n{self.log_tail()}"
                )
            if _port_accepts(self._host, self.port) and self._log_says_running():
                logger.info("broker started port=%s pid=%s", self._port, self._process.pid)
                return
            time.sleep(0.02)
        self._process.kill()
        self._process.wait()
        self._process = None
        raise BrokerError(
            f"mosquitto did not listen on port {self._port} within {scaled(self.start_timeout):.1f}s:\n"
            f"{self.log_tail()}"
        )

    def _log_says_running(self) -> bool:
        # Another process could hold the port; only this run's "running" line proves we are listening.
        return " running" in self.log_since(self._run_log_start)

    def wait_persisted(self, payload: bytes, timeout: float = 10.0) -> None:
        """Wait until the persistence file on disk holds ``payload`` (a message body); ``TimeoutError`` else.

        Mosquitto acknowledges a QoS-1 publish before it saves its database, so ``kill()`` right after the
        PUBACK can lose a queued message, as a real crash would. Tests that need the message to survive a
        kill call this first. (The file is replaced atomically at each save, so reading it is safe.)
        """
        database = self.persistence_dir / "mosquitto.db"
        deadline = time.monotonic() + scaled(timeout)
        while True:
            try:
                if payload in database.read_bytes():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{payload!r} not persisted to {database} within {scaled(timeout):.1f}s")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM, Mosquitto saves its database) and wait; SIGKILL after ``timeout``."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=scaled(timeout))
            except subprocess.TimeoutExpired:
                logger.warning("broker ignored SIGTERM, killing pid=%s", process.pid)
                process.kill()
                process.wait()
        self._process = None
        _LIVE_BROKERS.discard(self)

    def kill(self) -> None:
        """Kill at once (SIGKILL), as a crash or power cut would, and reap the process."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait()
        self._process = None
        _LIVE_BROKERS.discard(self)

    def restart(self) -> LocalBroker:
        """Stop (if running) and start again on the same port, with the same persistence."""
        self.stop()
        deadline = time.monotonic() + scaled(self.start_timeout)
        while True:
            try:
                return self.start()
            except BrokerError as error:
                # The old socket may linger for a moment after a kill; retry the same port briefly.
                if "Address already in use" in str(error) and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalBroker(host={self._host!r}, port={self._port!r}, pid={self.pid!r})"


@atexit.register
def _kill_leftover_brokers() -> None:
    """Never leave a Mosquitto process behind when the interpreter exits."""
    for broker in list(_LIVE_BROKERS):
        broker.kill()
