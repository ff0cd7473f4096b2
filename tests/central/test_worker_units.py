"""Central's long-running workers as their units run them (``Type=notify``, ``WatchdogSec``): ``vaora-central
ingest`` and ``vaora-central deliver`` as real processes, with a stand-in for systemd's notify socket, a real
Mosquitto and a real SMTP catcher. Each says READY=1 once it works, then feeds the watchdog, records its beat for
``/healthz``, and says STOPPING=1 and exits 0 on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from central.core.beats import INGEST
from central.core.db import database, open_database
from central.core.models import WorkerBeat
from devtools.broker import LocalBroker
from devtools.mailcatcher import MailCatcher
from tests.conftest import scaled, wait_until
from tests.notify import NotifySocket

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.close()


@pytest.fixture
def worker_env(database_url: str, broker: LocalBroker, mail: MailCatcher, tmp_path: Path,
               notify_socket: NotifySocket) -> dict[str, str]:
    """What the units' EnvironmentFile and systemd give a worker: the config, NOTIFY_SOCKET, WATCHDOG_USEC."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("VAORA_", "WATCHDOG_"))}
    env.update({
        "VAORA_DATABASE_URL": database_url, "VAORA_MQTT_HOST": broker.host, "VAORA_MQTT_PORT": str(broker.port),
        "VAORA_SMTP_HOST": mail.host, "VAORA_SMTP_PORT": str(mail.port),
        "VAORA_SIGNING_KEY_FILE": str(tmp_path / "signing-key.pem"), "VAORA_DATA_DIR": str(tmp_path / "data"),
        "VAORA_MQTT_CLIENT_ID": f"ingest-{tmp_path.name[-20:]}",
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000",  # a ping every 0.5 s
    })
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "central.cli", *args], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _beats(database_url: str) -> list[str]:
    open_database(database_url)
    with database.connection_context():
        return [row.name for row in WorkerBeat.select()]


def _stop(process: subprocess.Popen[str], notify_socket: NotifySocket) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=scaled(20))
    assert process.returncode == 0, output
    assert notify_socket.texts()[-1] == "STOPPING=1"
    return output


@pytest.mark.parametrize(
    ("command", "beat"),
    [(["ingest"], lambda name: name == INGEST),
     (["deliver", "--interval", "0.2"], lambda name: name.startswith("deliver-"))],
    ids=["ingest", "deliver"],
)
def test_the_worker_is_ready_feeds_the_watchdog_beats_and_stops_on_sigterm(
    command: list[str], beat: object, worker_env: dict[str, str], notify_socket: NotifySocket, database_url: str,
) -> None:
    process = _run(worker_env, *command)
    try:
        wait_until(lambda: "READY=1" in notify_socket.texts(), timeout=scaled(30),
                   message=f"{command[0]} never said READY=1")
        ready_at = next(at for at, text in notify_socket.messages if text == "READY=1")
        wait_until(lambda: len(notify_socket.pings(since=ready_at)) >= 3, timeout=scaled(30),
                   message=f"{command[0]} does not feed the watchdog")
        wait_until(lambda: any(beat(name) for name in _beats(database_url)),  # type: ignore[operator]
                   timeout=scaled(30), message=f"{command[0]} recorded no beat for /healthz")
        output = _stop(process, notify_socket)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "Traceback" not in output


@pytest.mark.parametrize("command", ["ingest", "deliver"])
@pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True)  # its own never-migrated file
def test_a_worker_refuses_an_unmigrated_database_without_saying_ready(
    command: str, worker_env: dict[str, str], notify_socket: NotifySocket, tmp_path: Path,
) -> None:
    """A schema that is not current stops the unit at once (exit 2, naming the fix); systemd never sees READY."""
    process = _run({**worker_env, "VAORA_DATABASE_URL": f"sqlite:///{tmp_path}/never-migrated.db"}, command)
    output, _ = process.communicate(timeout=scaled(30))
    assert process.returncode == 2, output
    assert "vaora-central migrate" in output
    assert "READY=1" not in notify_socket.texts()
