"""Alarm latency: from a gate reporting a forced door or its emergency input to the alarm reaching an open fleet page
(issue #14, point 4: "within 1 s of the gate reporting them").

Real parts, as in ``benchmarks/dashboard_latency.py``: a private Mosquitto, ``vaora-central ingest`` and
``vaora-central serve`` as processes on SQLite, one paho client publishing as gate ``bench-g00`` does (a
``door_forced`` check-in at QoS 1, or its retained status with ``emergency`` set, which a gate publishes as soon as
the input changes), and ``--clients`` staff clients holding the fleet page's event stream (``/cong/su-kien``) open.
Latency per (client, alarm): from just before the publish to the client parsing the ``alarms`` event that lists
the new alarm (one monotonic clock). Each alarm is acknowledged (the audited route) before the next, so the active
list stays short, as it is in use.

    python benchmarks/alarm_latency.py [--alarms 40] [--clients 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.dashboard_latency import CSRF, central_processes, gate_client, login, seed  # noqa: E402
from devtools.broker import LocalBroker  # noqa: E402
from protocols import payloads, topics  # noqa: E402

TARGET_MS = 1000.0


class FleetClient(threading.Thread):
    """One fleet page: holds the stream and notes when each alarm (by id) first appeared in an ``alarms`` event."""

    def __init__(self, url: str, session: requests.Session) -> None:
        super().__init__(daemon=True)
        self.url, self.session = url, session
        self.ids: dict[int, float] = {}
        self.connected = threading.Event()

    def run(self) -> None:
        response = self.session.get(self.url, stream=True, timeout=120)
        kind = None
        try:
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    kind = line[7:]
                    if kind == "hello":
                        self.connected.set()
                elif line.startswith("data: ") and kind == "alarms":
                    now = time.perf_counter()
                    for alarm in json.loads(line[6:]):
                        self.ids.setdefault(alarm["id"], now)
        except (requests.RequestException, AttributeError, OSError):
            return


def run(args: argparse.Namespace) -> dict:
    """One measured run; returns the figures per kind of alarm."""
    from benchmarks._gate_fixture import percentile

    work = Path(tempfile.mkdtemp(prefix="vaora-alarm-bench-"))
    broker = LocalBroker(work / "mosquitto").start()
    try:
        database_path = work / "central.db"
        seed(database_path, 1, 1)
        with central_processes(work, database_path, broker) as url:
            clients = [FleetClient(f"{url}/cong/su-kien", login(url)) for _ in range(args.clients)]
            for client in clients:
                client.start()
            for client in clients:
                assert client.connected.wait(20), "a fleet client could not connect"
            acker = login(url)
            token = CSRF.search(acker.get(f"{url}/cong/canh-bao", timeout=10).text).group(1)
            gate = gate_client(broker.port, "bench-g00")
            time.sleep(1.0)  # ingest subscribed, the gate connected
            latencies: dict[str, list[float]] = {"door_forced": [], "emergency": []}
            missing = 0
            for n in range(args.alarms):
                kind = "door_forced" if n % 2 == 0 else "emergency"
                known = {alarm_id for client in clients for alarm_id in client.ids}
                if kind == "door_forced":
                    body = payloads.encode(payloads.CheckIn(
                        id=uuid.uuid4(), gate_id="bench-g00", site_id="hq", direction="in",
                        scanned_at=datetime.now(UTC), allowed=False, reason="door_forced", outcome="entered",
                        meeting_id=None, delegate_id=None))
                    topic, retain = topics.gate_checkins("bench-g00"), False
                else:
                    body = payloads.encode(payloads.GateStatus(gate_id="bench-g00", state="online", emergency=True))
                    topic, retain = topics.gate_status("bench-g00"), True
                started = time.perf_counter()
                gate.publish(topic, body, qos=1, retain=retain)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and any(not (set(c.ids) - known) for c in clients):
                    time.sleep(0.005)
                new_ids = set().union(*(set(c.ids) - known for c in clients))
                for client in clients:
                    arrived = [client.ids[i] for i in new_ids if i in client.ids]
                    if arrived:
                        latencies[kind].append((min(arrived) - started) * 1000)
                    else:
                        missing += 1
                if kind == "emergency":  # released, so the next emergency opens a new alarm
                    gate.publish(topics.gate_status("bench-g00"), payloads.encode(payloads.GateStatus(
                        gate_id="bench-g00", state="online", emergency=False)), qos=1, retain=True)
                for alarm_id in new_ids:
                    acker.post(f"{url}/cong/canh-bao/{alarm_id}/xac-nhan", data={"csrf_token": token},
                               headers={"Accept": "application/json"}, timeout=10)
                time.sleep(0.2)
            gate.loop_stop()
            gate.disconnect()
            result: dict = {"alarms": args.alarms, "clients": args.clients, "missing_pairs": missing}
            for kind, values in latencies.items():
                result[kind] = {"n": len(values), "p50_ms": round(percentile(values, 50), 1),
                                "p99_ms": round(percentile(values, 99), 1), "max_ms": round(max(values), 1),
                                "within_1s": sum(1 for v in values if v <= TARGET_MS)} if values else None
            return result
    finally:
        broker.stop()


def main() -> None:
    """Parse options, run, print the machine and the figures (JSON)."""
    from benchmarks._gate_fixture import header

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alarms", type=int, default=40)
    parser.add_argument("--clients", type=int, default=5)
    args = parser.parse_args()
    result = run(args)
    print("\n".join(header("Alarm latency", None)))
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
