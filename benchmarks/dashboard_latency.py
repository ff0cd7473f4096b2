"""Dashboard latency: from a gate's publish to the event reaching connected dashboard clients (issue #6, point 6).

Real parts: a private Mosquitto, central's ingest worker and web server as processes (``vaora-central ingest`` and
``vaora-central serve``, SQLite), ``--gates`` simulated gates (one paho client each, publishing check-in payloads
at QoS 1 exactly as gates do) producing ``--rate`` check-ins per second together, and ``--clients`` dashboard
clients holding the meeting's server-sent event stream open (logged in as staff, like the browser page).

For every (client, check-in) pair the latency is the time from just before the gate's publish to the moment the
client parsed the event naming that check-in (same machine, one monotonic clock). The run reports p50/p90/p99/max,
whether every client received every check-in, and the dashboard's state request time while under load.

    python benchmarks/dashboard_latency.py [--seconds 30] [--rate 100] [--gates 50] [--clients 20]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from central.core.db import database, open_database  # noqa: E402
from central.gates.models import CheckIn, Gate  # noqa: E402
from central.invitations.models import Invitation, Organisation  # noqa: E402
from central.meetings.models import Meeting  # noqa: E402
from central.migrations import migrate  # noqa: E402
from central.registration.models import Delegate  # noqa: E402
from devtools.broker import LocalBroker  # noqa: E402
from devtools.ports import free_port, wait_for_http  # noqa: E402
from devtools.processes import stop_processes  # noqa: E402
from protocols import payloads, topics  # noqa: E402

PASSWORD = "mat-khau-do-hieu-nang-2026"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
TARGET_P99_MS = 300.0


def database_url(database: Path | str) -> str:
    """The URL of ``database``: a SQLite file's path, or already a URL (PostgreSQL)."""
    return database if isinstance(database, str) else f"sqlite:///{database}"


def seed(target: Path | str, gates: int, delegates: int) -> tuple[int, list[int]]:
    """Meeting, organisation, invitation, delegates and gates, written straight to central's database (a SQLite
    file's path or a database URL)."""
    open_database(database_url(target))
    migrate()
    now = datetime.now(UTC)
    with database.connection_context():
        meeting = Meeting.create(title="Hội nghị đo hiệu năng", starts_at=now + timedelta(minutes=30),
                                        ends_at=now + timedelta(hours=3), venue="Hội trường A", site_id="hq",
                                        created_at=now)
        org = Organisation.create(name="Sở Tài chính")
        invitation = Invitation.create(meeting=meeting, organisation=org, number="1/TM-UBND", year=now.year,
                                              seq=1, created_at=now)
        people = []
        for n in range(delegates):
            code = uuid.uuid4().hex
            people.append(Delegate.create(
                invitation=invitation, meeting=meeting, name=f"Đại biểu số {n + 1}", email=f"db{n}@example.vn",
                code=code, credential=code, valid_from=now - timedelta(hours=1), valid_until=now + timedelta(hours=3),
                created_at=now).id)
        for n in range(gates):
            Gate.create(gate_id=f"bench-g{n:02d}", site_id="hq", name=f"Cổng {n}", token_hash="x" * 64)
    database.close()
    return meeting.id, people


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "central.cli", *args], env=env, cwd=REPO,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def login(url: str) -> requests.Session:
    session = requests.Session()
    token = CSRF.search(session.get(f"{url}/login", timeout=10).text).group(1)
    response = session.post(f"{url}/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token},
                            timeout=10, allow_redirects=False)
    assert response.status_code == 302, response.status_code
    return session


class Client(threading.Thread):
    """One dashboard: holds the event stream and notes when each check-in (by UUID) arrived."""

    def __init__(self, url: str, session: requests.Session) -> None:
        super().__init__(daemon=True)
        self.url, self.session = url, session
        self.received: dict[str, float] = {}
        self.connected = threading.Event()
        self.response: requests.Response | None = None

    def run(self) -> None:
        self.response = self.session.get(self.url, stream=True, timeout=60)
        kind = None
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    kind = line[7:]
                    if kind == "hello":
                        self.connected.set()
                elif line.startswith("data: ") and kind == "checkins":
                    now = time.perf_counter()
                    for item in json.loads(line[6:]):
                        self.received.setdefault(item["uuid"], now)
        except (requests.RequestException, AttributeError, OSError):
            return  # the server went away at the end of the run


def gate_client(port: int, gate_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=gate_id, clean_session=False)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


@dataclass
class Central:
    """Central's running processes: the web address, ``vaora-central serve`` (the gunicorn arbiter) and ingest."""

    url: str
    port: int
    serve: subprocess.Popen
    ingest: subprocess.Popen


@contextmanager
def central_stack(work: Path, target: Path | str, broker: LocalBroker,
                  env_extra: dict[str, str] | None = None) -> Iterator[Central]:
    """``vaora-central serve`` and ``ingest`` on ``target`` (already seeded: a SQLite path or a URL) and
    ``broker``, with an administrator ``bench`` (password :data:`PASSWORD`), ``env_extra`` added to their
    environment (e.g. ``VAORA_WEB_WORKERS``); stops both on exit."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "VAORA_DATABASE_URL": database_url(target),
           "VAORA_MQTT_HOST": broker.host, "VAORA_MQTT_PORT": str(broker.port),
           "VAORA_SIGNING_KEY_FILE": str(work / "signing-key.pem"), "VAORA_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "VAORA_LOG_LEVEL": "WARNING", **(env_extra or {})}
    secret = work / "password"
    secret.write_text(PASSWORD)
    subprocess.run([sys.executable, "-m", "central.cli", "create-admin", "bench", "--password-file", str(secret)],
                   env=env, cwd=REPO, check=True, capture_output=True)
    processes = [spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env, work / "serve.log"),
                 spawn(["ingest"], env, work / "ingest.log")]
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{url}/login", timeout=30, process=processes[0])
        except RuntimeError:
            raise RuntimeError((work / "serve.log").read_text()[-2000:]) from None
        yield Central(url, port, processes[0], processes[1])
    finally:
        stop_processes(processes)


@contextmanager
def central_processes(work: Path, database_path: Path | str, broker: LocalBroker) -> Iterator[str]:
    """:func:`central_stack` yielding only the web address."""
    with central_stack(work, database_path, broker) as central:
        yield central.url


def publish_paced(gates: list[mqtt.Client], gate_ids: list[str], meeting_id: int, people: list[int], rate: float,
                  total: int) -> tuple[dict[str, float], float]:
    """Publish ``total`` check-ins of ``meeting_id`` at ``rate`` per second in all, round robin over the gates'
    clients, at QoS 1 as gates do; returns each check-in's UUID with the ``perf_counter`` just before its publish,
    and the seconds the publishing took."""
    published: dict[str, float] = {}
    interval = 1.0 / rate
    start = time.perf_counter()
    for n in range(total):
        target = start + n * interval
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        gate_id = gate_ids[n % len(gates)]
        checkin_id = uuid.uuid4()
        body = payloads.encode(payloads.CheckIn(
            id=checkin_id, gate_id=gate_id, site_id="hq", direction="in", scanned_at=datetime.now(UTC),
            allowed=True, reason="ok", outcome="entered", meeting_id=meeting_id,
            delegate_id=people[n % len(people)], scheme="compact", credential=uuid.uuid4().hex))
        published[str(checkin_id)] = time.perf_counter()
        gates[n % len(gates)].publish(topics.gate_checkins(gate_id), body, qos=1)
    return published, time.perf_counter() - start


def run(args: argparse.Namespace) -> dict:
    """One measured run: central's processes on a seeded SQLite, gates publishing, dashboards listening."""
    from benchmarks._gate_fixture import percentile  # (kept off the import block central's renames touch)

    work = Path(tempfile.mkdtemp(prefix="vaora-dash-bench-"))
    broker = LocalBroker(work / "mosquitto").start()
    try:
        database_path = work / "central.db"
        meeting_id, people = seed(database_path, args.gates, args.delegates)
        with central_processes(work, database_path, broker) as url:
            session = login(url)
            state_url = f"{url}/meetings/{meeting_id}/truc-tiep/trang-thai.json"
            cursor = session.get(state_url, timeout=10).json()["cursor"]
            clients = [Client(f"{url}/meetings/{meeting_id}/truc-tiep/su-kien?after={cursor}", login(url))
                       for _ in range(args.clients)]
            for client in clients:
                client.start()
            for client in clients:
                assert client.connected.wait(20), "a dashboard client could not connect"

            gates = [gate_client(broker.port, f"bench-g{n:02d}") for n in range(args.gates)]
            time.sleep(1.0)  # ingest subscribed, gates connected
            total = int(args.rate * args.seconds)
            state_times: list[float] = []
            stop_probe = threading.Event()

            def probe() -> None:  # an organiser (re)loading the dashboard state while the load runs
                while not stop_probe.is_set():
                    started = time.perf_counter()
                    session.get(state_url, timeout=30).raise_for_status()
                    state_times.append(time.perf_counter() - started)
                    stop_probe.wait(1.0)

            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
            gate_ids = [f"bench-g{n:02d}" for n in range(args.gates)]
            published, elapsed = publish_paced(gates, gate_ids, meeting_id, people, args.rate, total)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and any(len(c.received) < total for c in clients):
                time.sleep(0.2)
            stop_probe.set()
            prober.join(35)

            latencies = [(c.received[k] - t) * 1000 for c in clients for k, t in published.items() if k in c.received]
            complete = sum(1 for c in clients if all(k in c.received for k in published))
            missing = sum(1 for c in clients for k in published if k not in c.received)
            open_database(f"sqlite:///{database_path}")
            with database.connection_context():
                stored = CheckIn.select().count()
            for gate in gates:
                gate.loop_stop()
                gate.disconnect()
            # The streams end when the server stops (closing them from here would wait for the next keepalive).
            return {
                "checkins": total, "gates": args.gates, "clients": args.clients, "rate_target": args.rate,
                "rate_achieved": round(total / elapsed, 1), "stored": stored,
                "clients_with_every_event": complete, "missing_pairs": missing,
                "p50_ms": round(percentile(latencies, 50), 1), "p90_ms": round(percentile(latencies, 90), 1),
                "p99_ms": round(percentile(latencies, 99), 1), "max_ms": round(max(latencies), 1),
                "mean_ms": round(statistics.fmean(latencies), 1),
                "state_request_p50_ms": round(percentile(state_times, 50) * 1000, 1) if state_times else None,
                "state_request_max_ms": round(max(state_times) * 1000, 1) if state_times else None,
                "target_p99_met": percentile(latencies, 99) <= TARGET_P99_MS,
            }
    finally:
        broker.stop()


def main() -> None:
    """Parse options, run, print the machine and the figures (JSON)."""
    from benchmarks._gate_fixture import header

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=100.0, help="check-ins per second, all gates together")
    parser.add_argument("--gates", type=int, default=50)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--delegates", type=int, default=200)
    args = parser.parse_args()
    result = run(args)
    print("\n".join(header("Live dashboard latency", None)))
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
