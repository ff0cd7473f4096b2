"""A site over TLS only, as an operator builds it: the certificates come from ``vaora-central site-ca``,
``broker-cert``, ``central-cert`` and ``gate-cert``, the ACL from ``broker-config``, Mosquitto runs the shipped
``systemd/mosquitto/vaora-tls.conf`` (paths and port adapted), and central's web server and ingest worker and the
gates run as real processes, connected by ``mqtts://`` URLs.

A scan at the gate becomes a check-in stored by central, and central's ack comes back to the gate (its outbox
row is marked delivered); central's change feed reaches the gate; a command published by central's web-side
publisher reaches the gate and its answer is stored. A gate holding another gate's certificate is, to the broker,
that other gate: its own topics are refused.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from central.config import CentralConfig
from central.core.db import database, open_database
from central.gates import commands as gate_commands
from central.messaging.publish import MqttPublisher
from devtools.ports import free_port
from tests.conftest import scaled, wait_until

from .conftest import API_TOKEN, REPO, STARTUP_TIMEOUT_S, _answers, _spawn, log_tail, stop_processes

SHIPPED = REPO / "systemd" / "mosquitto" / "vaora-tls.conf"
TIMEOUT_S = 30.0


@dataclass
class Site:
    """A running TLS site: broker port, the certificate directory, central's URL, environment and database."""

    port: int
    pki: Path
    url: str
    env: dict[str, str]
    database_path: Path
    tokens: dict[str, str]
    broker_log: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``vaora-central ARGS`` as the operator would."""
        return subprocess.run([sys.executable, "-m", "central.cli", *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=scaled(STARTUP_TIMEOUT_S))


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Central (web + ingest) and Mosquitto's TLS listener, with gates lobby-1 and lobby-2 registered."""
    root = tmp_path_factory.mktemp("tls-site")
    pki = root / "mosquitto"
    port, web_port = free_port(), free_port()
    database_path = root / "central.db"
    env = {
        **os.environ, "PYTHONPATH": str(REPO),
        "VAORA_DATABASE_URL": f"sqlite:///{database_path}",
        "VAORA_API_TOKEN": API_TOKEN,
        "VAORA_SIGNING_KEY_FILE": str(root / "signing-key.pem"),
        "VAORA_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
        "VAORA_SMTP_HOST": "127.0.0.1", "VAORA_SMTP_PORT": "9",
    }
    for name in ("VAORA_MQTT_HOST", "VAORA_MQTT_PORT"):
        env.pop(name, None)
    running = Site(port, pki, f"http://127.0.0.1:{web_port}", env, database_path, {}, root / "mosquitto.log")
    processes: list[subprocess.Popen] = []
    try:
        for args in (["site-ca", str(pki)], ["broker-cert", str(pki), "127.0.0.1", "localhost"],
                     ["central-cert", str(pki)], ["init-db"]):
            done = running.cli(*args)
            assert done.returncode == 0, done.stderr
        env.update({"VAORA_MQTT_URL": f"mqtts://127.0.0.1:{port}", "VAORA_MQTT_CA_FILE": str(pki / "ca.crt"),
                    "VAORA_MQTT_CERT_FILE": str(pki / "certs" / "vaora-central.crt"),
                    "VAORA_MQTT_KEY_FILE": str(pki / "certs" / "vaora-central.key")})
        web_log = root / "web.log"
        server = _spawn(["serve", "--host", "127.0.0.1", "--port", str(web_port)], env, web_log)
        processes.append(server)
        wait_until(lambda: _answers(f"{running.url}/api/v1/openapi.json", server, web_log),
                   timeout=STARTUP_TIMEOUT_S, interval=0.1, message=lambda: log_tail(web_log))
        for gate_id in ("lobby-1", "lobby-2"):
            response = requests.post(f"{running.url}/api/v1/gates", timeout=scaled(30),
                                     headers={"Authorization": f"Bearer {API_TOKEN}"},
                                     json={"gate_id": gate_id, "site_id": "hq", "name": f"Cổng {gate_id}"})
            assert response.status_code == 201, response.text
            running.tokens[gate_id] = response.json()["token"]
            issued = running.cli("gate-cert", str(pki), gate_id)
            assert issued.returncode == 0, issued.stderr
        acl = running.cli("broker-config", str(pki))
        assert acl.returncode == 0, acl.stderr

        text = SHIPPED.read_text(encoding="utf-8")
        text = text.replace("/etc/mosquitto/vaora/", f"{pki}/").replace("/var/lib/mosquitto/", f"{root}/")
        text = text.replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
        text += f"log_dest file {running.broker_log}\nlog_type all\n"
        if os.geteuid() == 0:
            text = "user root\n" + text
        (root / "mosquitto.conf").write_text(text, encoding="utf-8")
        broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c",
                                   str(root / "mosquitto.conf")])
        processes.append(broker)
        wait_until(lambda: _listening(port), timeout=10, interval=0.05,
                   message=lambda: log_tail(running.broker_log))

        ingest_log = root / "ingest.log"
        ingest = _spawn(["ingest"], env, ingest_log)
        processes.append(ingest)
        wait_until(lambda: "ingest subscribed" in log_tail(ingest_log, 100_000) or ingest.poll() is not None,
                   timeout=STARTUP_TIMEOUT_S, interval=0.1)
        assert ingest.poll() is None, log_tail(ingest_log)
        yield running
    finally:
        stop_processes(processes)


@dataclass
class GateProcess:
    """A ``vaora-gate`` process: stdin scanner, simulated pins, its log and data directory."""

    process: subprocess.Popen
    log: Path
    data_dir: Path

    def logged(self, text: str) -> bool:
        """True once the gate logged ``text``; fails at once if the process exited."""
        content = self.log.read_text(errors="replace")
        if text in content:
            return True
        assert self.process.poll() is None, f"gate exited rc={self.process.returncode}:\n{content[-3000:]}"
        return False

    def scan(self, text: str) -> None:
        """Type one code on the gate's (stdin) scanner."""
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        self.process.stdin.flush()

    def outbox(self) -> list[tuple[str, float | None, int]]:
        """The gate's outbox rows: (check-in id, delivered at, attempts), read from its SQLite file."""
        path = self.data_dir / "gate-cache.sqlite3"
        if not path.exists():
            return []
        with sqlite3.connect(path, timeout=5) as connection:
            return connection.execute("SELECT checkin_id, delivered_at, attempts FROM outbox").fetchall()


def gate_config(site: Site, gate_id: str, certificate_of: str, data_dir: Path) -> str:
    """A simulated gate reaching the broker by ``mqtts://`` with the certificate of gate ``certificate_of``."""
    certs = site.pki / "certs"
    return f"""
[gate]
id = "{gate_id}"
site = "hq"
simulate = true
data_dir = "{data_dir}"
[central]
url = "{site.url}"
token = "{site.tokens[gate_id]}"
timeout = 5.0
[mqtt]
url = "mqtts://127.0.0.1:{site.port}"
ca_file = "{site.pki / 'ca.crt'}"
cert_file = "{certs / f'gate-{certificate_of}.crt'}"
key_file = "{certs / f'gate-{certificate_of}.key'}"
resend_seconds = 1
heartbeat_seconds = 1
[scanner]
type = "stdin"
debounce_ms = 0
[status]
enabled = false
"""


@pytest.fixture
def start_gate(site: Site, tmp_path: Path) -> Iterator:
    """``start(gate_id, certificate_of) -> GateProcess``, started and connected; stopped at teardown."""
    started: list[GateProcess] = []

    def start(gate_id: str, certificate_of: str) -> GateProcess:
        data_dir = tmp_path / gate_id
        config = tmp_path / f"{gate_id}.toml"
        config.write_text(gate_config(site, gate_id, certificate_of, data_dir), encoding="utf-8")
        log = tmp_path / f"{gate_id}.log"
        with log.open("ab") as handle:
            process = subprocess.Popen([sys.executable, "-m", "gate.cli", "--config", str(config)], cwd=REPO,
                                       env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.PIPE,
                                       stdout=handle, stderr=subprocess.STDOUT)
        gate = GateProcess(process, log, data_dir)
        started.append(gate)
        wait_until(lambda: gate.logged("gate started") and gate.logged("mqtt connected"), timeout=TIMEOUT_S,
                   message=lambda: log_tail(log))
        return gate

    yield start
    stop_processes([gate.process for gate in started])


def stored_checkins(site: Site) -> dict[str, str]:
    """Central's stored check-ins: check-in id (hex) -> gate id, read from its SQLite file."""
    with sqlite3.connect(site.database_path, timeout=5) as connection:
        rows = connection.execute("SELECT c.checkin_id, g.gate_id FROM check_in c JOIN gate g ON g.id = c.gate_id")
        return {checkin_id.replace("-", ""): gate_id for checkin_id, gate_id in rows}


def test_checkins_flow_and_acks_return_over_tls_with_per_gate_certificates(site: Site, start_gate) -> None:
    gate = start_gate("lobby-1", "lobby-1")
    gate.scan("NOTAVALIDCODE1")
    (checkin_id, _, _), = wait_until(gate.outbox, timeout=TIMEOUT_S, message=lambda: log_tail(gate.log))
    wait_until(lambda: gate.outbox()[0][1] is not None, timeout=TIMEOUT_S,
               message=lambda: f"no ack came back:\n{log_tail(gate.log)}")
    wait_until(lambda: gate.logged(f"check-in delivered checkin_id={checkin_id} status=stored"),
               message=lambda: log_tail(gate.log))
    assert stored_checkins(site)[checkin_id.replace("-", "")] == "lobby-1"

    # central's change feed (in the ingest process) reaches the gate over TLS: a new meeting arrives as a change
    now = datetime.now(UTC)
    meeting = requests.post(f"{site.url}/api/v1/meetings", timeout=scaled(30),
                            headers={"Authorization": f"Bearer {API_TOKEN}"},
                            json={"title": "Họp qua TLS", "starts_at": (now + timedelta(minutes=30)).isoformat(),
                                  "ends_at": (now + timedelta(hours=3)).isoformat(), "venue": "Hội trường A",
                                  "site_id": "hq"})
    assert meeting.status_code == 201, meeting.text
    wait_until(lambda: gate.logged("change applied seq=") and gate.logged("kind=meeting_upsert"), timeout=TIMEOUT_S,
               message=lambda: log_tail(gate.log))

    # central's web-side publisher (the one gate commands use) over TLS, from the same configuration
    config = CentralConfig.from_env(site.env)
    assert config.mqtt_tls is not None and (config.mqtt_host, config.mqtt_port) == ("127.0.0.1", site.port)
    open_database(config.database_url)
    database.connect(reuse_if_open=True)
    publisher = MqttPublisher(config.mqtt_host, config.mqtt_port, tls=config.mqtt_tls)
    try:
        row = gate_commands.issue("lobby-1", "resync", "truong-ca", publisher=publisher)
        answered = gate_commands.wait(row.command_id, timeout=scaled(TIMEOUT_S))
        assert (answered.status, answered.reason) == ("ok", None)
    finally:
        publisher.stop()
        database.close()


def test_a_gate_with_another_gates_certificate_is_refused_its_topics(site: Site, start_gate) -> None:
    """lobby-2 presenting lobby-1's certificate is gate-lobby-1 to the broker: its check-ins on lobby-2's topic are
    dropped (nothing reaches central, the outbox keeps re-publishing) and nothing on lobby-2's command topic is
    delivered to it. Meanwhile the real lobby-1 is served as usual."""
    impostor = start_gate("lobby-2", "lobby-1")
    impostor.scan("NOTAVALIDCODE2")
    (refused_id, _, _), = wait_until(impostor.outbox, timeout=TIMEOUT_S, message=lambda: log_tail(impostor.log))
    wait_until(lambda: any("Denied PUBLISH from vaora-gate-lobby-2 (d0, q1, r0, m" in line
                           and "'vaora/v1/gates/lobby-2/checkins'" in line
                           for line in site.broker_log.read_text(errors="replace").splitlines()),
               timeout=TIMEOUT_S, message=lambda: log_tail(site.broker_log))
    # published, and re-published after resend_seconds: no ack came back
    wait_until(lambda: impostor.outbox()[0][2] >= 2, timeout=TIMEOUT_S, message=lambda: log_tail(impostor.log))

    honest = start_gate("lobby-1", "lobby-1")
    config = CentralConfig.from_env(site.env)
    open_database(config.database_url)
    database.connect(reuse_if_open=True)
    publisher = MqttPublisher(config.mqtt_host, config.mqtt_port, tls=config.mqtt_tls)
    try:
        # central's command to lobby-2 first, then one to lobby-1: once lobby-1 answered, the broker has long
        # handled the first, and it delivered it to nobody (the impostor may not read lobby-2's commands)
        to_impostor = gate_commands.issue("lobby-2", "resync", "truong-ca", publisher=publisher)
        answered = gate_commands.wait(gate_commands.issue("lobby-1", "resync", "truong-ca", publisher=publisher)
                                      .command_id, timeout=scaled(TIMEOUT_S))
        assert answered.status == "ok"
        honest.scan("NOTAVALIDCODE3")
        wait_until(lambda: honest.outbox() and honest.outbox()[0][1] is not None, timeout=TIMEOUT_S,
                   message=lambda: log_tail(honest.log))
        assert f"command_id={to_impostor.command_id}" not in impostor.log.read_text(errors="replace")
    finally:
        publisher.stop()
        database.close()
    stored = stored_checkins(site)
    assert stored[honest.outbox()[0][0].replace("-", "")] == "lobby-1"
    assert refused_id.replace("-", "") not in stored
    assert impostor.outbox()[0][1] is None, "no ack reached the impostor"
