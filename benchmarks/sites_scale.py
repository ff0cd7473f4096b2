"""Issue 16, point 5, measured in one run: raw MQTT pass-through against ingest (one and two workers, SQLite and
PostgreSQL), direct and across a site→core bridge, and the live dashboard's publish→SSE latency with 200 viewers
over two web processes on PostgreSQL; plus the per-message CPU costs a capacity estimate needs.

Everything runs in one invocation on the same machine state, from the existing benchmarks' parts:

- the brokers of a path: ``bridge_cost.mqtt_path`` (the core with the generated password file and ACL; bridged, a
  site broker with the bridge ``broker-config --site`` renders, checked by a probe);
- raw pass-through: ``bridge_cost.Counter``, one plain paho subscriber (QoS 1) at the core, while ``--gates``
  simulated gates (``spawn`` processes, one paho client each, ``ingest_rate.start_publishers``) publish
  ``--checkins`` pre-encoded check-ins at QoS 1 as fast as their broker takes them;
- ingest: ``ingest_workers.run``, one or two ``vaora-central ingest`` processes in the share group, a fresh SQLite
  file or PostgreSQL database each run, the same publishers; its rate over the raw rate of the same path is the
  ratio. Raw is measured before and after the ingest runs of its path and their mean is the denominator;
- heartbeats: the same single ingest process taking ``--heartbeats`` gate heartbeats (one write transaction
  each, as central stores them), for their CPU cost;
- the dashboard: ``dashboard_latency``'s seeded central (``vaora-central serve`` with ``VAORA_WEB_WORKERS=2`` on one
  port, one ingest, PostgreSQL so the web processes are woken by LISTEN/NOTIFY), ``--viewers`` staff viewers holding
  the meeting's event stream from ``--viewer-processes`` client processes, check-ins published at ``--rate`` per
  second for ``--seconds``. Each viewer records the epoch its web process announced in ``hello`` (one per
  process) and the server side counts the established connections held by each gunicorn worker (``/proc``; the
  benchmark's own logged-in session may hold one more while its keep-alive lasts).

CPU seconds (``/proc/<pid>/stat``) of the ingest processes, the Mosquitto processes, the PostgreSQL backends of the
run's database and the web processes are read before and after each measured window, so a per-message cost holds
on a loaded machine where the wall-clock rates do not.

With ``--split-cores`` the paths are measured a second time, in the same run, with the gates' publisher processes
on CPU 0 and the server side (brokers, the raw subscriber, ingest processes, PostgreSQL) on CPU 1
(``benchmarks/_affinity.py``): in the field the gates are other machines, and on 2 shared cores the publishers
otherwise take part of the core the ingest needs.

    python benchmarks/sites_scale.py [--checkins 20000] [--gates 10] [--heartbeats 3000] [--viewers 200]
                                     [--viewer-processes 4] [--rate 50] [--seconds 20]
                                     [--parts paths,heartbeats,dashboard] [--split-cores] [--json FILE] [--logs DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import bridge_cost, ingest_workers  # noqa: E402
from benchmarks._affinity import split_cores  # noqa: E402
from benchmarks._cputime import children, connections_by_pid, cpu_by_pid, cpu_used, postgres_backends  # noqa: E402
from benchmarks.dashboard_latency import central_stack, gate_client, login, publish_paced, seed  # noqa: E402
from benchmarks.ingest_rate import drop_database, fresh_database, prepare_database  # noqa: E402
from central.core.db import database, open_database  # noqa: E402
from central.gates.models import CheckIn, Gate  # noqa: E402
from devtools.processes import stop_processes  # noqa: E402
from protocols import payloads, topics  # noqa: E402

PATHS = (False, True)  # direct, bridged
INGEST_CASES = (("sqlite", 1), ("sqlite", 2), ("postgres", 1), ("postgres", 2))
TARGET_INGEST_RATIO = 0.5
TARGET_BRIDGE_COST = 0.2
TARGET_P99_MS = 300.0


# ----- raw and ingest ----------------------------------------------------------------------------------------


def path_name(bridged: bool) -> str:
    """The path's name in the report."""
    return "site → bridge → core" if bridged else "gates → core"


def measure_path(bridged: bool, checkins: int, gates: int, log: list[str], split: bool = False) -> dict[str, Any]:
    """Raw pass-through, the four ingest cases, raw again, on one path (with ``split``, the gates on one core and
    the server side on the other); returns the rows."""
    if split:
        with split_cores():
            row = measure_path(bridged, checkins, gates, log)
        return {**row, "split": True}
    raws = [bridge_cost.run(bridged, checkins, gates)]
    log.append(f"raw {path_name(bridged)}: {raws[-1]['rate']}/s")
    ingests = []
    for kind, workers in INGEST_CASES:
        row = ingest_workers.run(kind, workers, checkins, gates, bridged)
        ingests.append(row)
        log.append(f"ingest {kind} x{workers} {path_name(bridged)}: {row['rate']:.0f}/s")
    raws.append(bridge_cost.run(bridged, checkins, gates))
    log.append(f"raw {path_name(bridged)} again: {raws[-1]['rate']}/s")
    return {"bridged": bridged, "raws": raws, "ingests": ingests}


def measure_heartbeats(kind: str, heartbeats: int, gates: int) -> dict[str, Any]:
    """One ingest process on a fresh ``kind`` database takes ``heartbeats`` heartbeats (published at QoS 1 from one
    client, in order per gate, so the last of each gate is stored last); returns the rate and CPU seconds."""
    per_gate = heartbeats // gates
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        url = fresh_database(kind, directory)
        processes = []
        try:
            gate_ids = prepare_database(url, gates)
            with bridge_cost.mqtt_path(directory, False, gate_ids, heartbeats) as (core, _):
                processes = ingest_workers.start_ingest(1, url, core, directory)
                messages = [(topics.gate_heartbeat(gate_id), heartbeat_payload(gate_id, seq))
                            for seq in range(1, per_gate + 1) for gate_id in gate_ids]
                client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-heartbeats")
                client.max_inflight_messages_set(1000)
                client.connect("127.0.0.1", core.port)
                client.loop_start()
                with database.connection_context():
                    own = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0] if kind == "postgres" else 0
                    pids = [processes[0].pid]

                    def backends() -> list[int]:
                        return postgres_backends(url.rsplit("/", 1)[1], exclude=[own]) if kind == "postgres" else []

                    before = (cpu_by_pid(pids), cpu_by_pid(backends()))
                    started = time.perf_counter()
                    infos = [client.publish(topic, body, qos=1) for topic, body in messages]
                    for info in infos:
                        info.wait_for_publish(120)
                    deadline = time.monotonic() + 300
                    done = 0
                    while time.monotonic() < deadline:
                        done = Gate.select().where(Gate.cache_seq == per_gate).count()
                        if done == gates:
                            break
                        time.sleep(0.05)
                    seconds = time.perf_counter() - started
                    after = (cpu_by_pid(pids), cpu_by_pid(backends()))
                client.loop_stop()
                client.disconnect()
                stop_processes(processes, timeout=ingest_workers.INGEST_STOP_S)
            if done != gates:
                raise RuntimeError(f"only {done} of {gates} gates' last heartbeat stored")
            return {"db": kind, "heartbeats": per_gate * gates, "seconds": seconds,
                    "rate": per_gate * gates / seconds, "ingest_cpu_s": cpu_used(before[0], after[0]),
                    "db_cpu_s": cpu_used(before[1], after[1])}
        finally:
            stop_processes(processes, timeout=ingest_workers.INGEST_STOP_S)
            database.close()
            drop_database(url)


def heartbeat_payload(gate_id: str, seq: int) -> bytes:
    """A heartbeat as a gate sends it (the cache sequence ``seq``)."""
    return payloads.encode(payloads.Heartbeat(
        gate_id=gate_id, sent_at=datetime.now(UTC), cache_seq=seq, outbox_pending=0, software_version="1.16.0",
        mode="normal", fail_mode="secure", clock_offset_s=0.012))


# ----- the dashboard -----------------------------------------------------------------------------------------


class Viewer(threading.Thread):
    """One dashboard viewer holding the meeting's event stream as a browser's EventSource does: on a 503 (the
    worker holds its most streams) it retries, on an end it reconnects with ``Last-Event-ID``."""

    def __init__(self, url: str, cookies: dict[str, str], stop: Any, received_total: Any, connected: Any) -> None:
        super().__init__(daemon=True)
        self.url, self.cookies, self.stop = url, cookies, stop
        self.received_total, self.connected_total = received_total, connected
        self.received: dict[str, float] = {}
        self.epochs: list[str] = []
        self.refused = 0
        self.reconnects = 0
        self.resets = 0
        self.events = 0
        self.ends: dict[str, int] = {}

    def run(self) -> None:
        session = requests.Session()
        session.cookies.update(self.cookies)
        last_id: str | None = None
        while not self.stop.is_set():
            try:
                with session.get(self.url, stream=True, timeout=30,
                                 headers={"Last-Event-ID": last_id} if last_id else {}) as response:
                    if response.status_code == 503:
                        self.refused += 1
                        self.stop.wait(1.0)
                        continue
                    response.raise_for_status()
                    last_id = self._read(response) or last_id
                    why = "stream ended"
            except (requests.RequestException, OSError, AttributeError) as error:
                response_ = getattr(error, "response", None)
                why = f"HTTP {response_.status_code}" if response_ is not None else type(error).__name__
            if not self.stop.is_set():
                self.reconnects += 1
                self.ends[why] = self.ends.get(why, 0) + 1

    def _read(self, response: requests.Response) -> str | None:
        """Read the stream until it ends or the run stops; returns the last event id seen."""
        kind = last_id = None
        for raw in response.iter_lines():
            if self.stop.is_set():
                break
            line = raw.decode("utf-8")
            if line.startswith("id: "):
                last_id = line[4:]
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                if kind == "checkins":
                    now = time.perf_counter()
                    self.events += 1
                    new = 0
                    for item in json.loads(line[6:]):
                        if item["uuid"] not in self.received:
                            self.received[item["uuid"]] = now
                            new += 1
                    with self.received_total.get_lock():
                        self.received_total.value += new
                elif kind == "hello":
                    self.epochs.append(json.loads(line[6:])["epoch"])
                    if len(self.epochs) == 1:
                        with self.connected_total.get_lock():
                            self.connected_total.value += 1
                elif kind == "reset":
                    self.resets += 1
        return last_id


def viewer_process(url: str, cookies: dict[str, str], count: int, stop: Any, received_total: Any, connected: Any,
                   results: Any) -> None:
    """A client process holding ``count`` viewers until ``stop``; puts their records on ``results``."""
    viewers = [Viewer(url, cookies, stop, received_total, connected) for _ in range(count)]
    for viewer in viewers:
        viewer.start()
    stop.wait()
    for viewer in viewers:
        viewer.join(10)
    results.put([{"received": v.received, "epochs": v.epochs, "refused": v.refused, "reconnects": v.reconnects,
                  "resets": v.resets, "events": v.events, "ends": v.ends} for v in viewers])


def measure_dashboard(args: argparse.Namespace) -> dict[str, Any]:
    """Publish → SSE latency with ``args.viewers`` viewers over two web processes on PostgreSQL."""
    from benchmarks._gate_fixture import percentile, shipped_broker

    total = int(args.rate * args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = fresh_database("postgres", work)
        broker = shipped_broker(work / "mosquitto", "", max_queued_messages=total * 2)
        try:
            meeting_id, people = seed(url, args.gates, 200)
            pooled = url.replace("postgresql://", "postgresql+pool://", 1)  # as README's production settings
            with central_stack(work, pooled, broker, {"VAORA_WEB_WORKERS": "2"}) as central:
                session = login(central.url)
                events = f"{central.url}/meetings/{meeting_id}/truc-tiep/su-kien?keepalive=1"
                ctx = multiprocessing.get_context("spawn")
                stop, results = ctx.Event(), ctx.Queue()
                received_total, connected = ctx.Value("q", 0), ctx.Value("i", 0)
                shares = [args.viewers // args.viewer_processes + (1 if n < args.viewers % args.viewer_processes
                                                                    else 0) for n in range(args.viewer_processes)]
                procs = [ctx.Process(target=viewer_process, args=(events, session.cookies.get_dict(), share, stop,
                                                                  received_total, connected, results))
                         for share in shares]
                for proc in procs:
                    proc.start()
                deadline = time.monotonic() + 180
                while connected.value < args.viewers and time.monotonic() < deadline:
                    time.sleep(0.2)
                workers = children(central.serve.pid)
                held = connections_by_pid(workers, central.port)
                gate_ids = [f"bench-g{n:02d}" for n in range(args.gates)]
                gates = [gate_client(broker.port, gate_id) for gate_id in gate_ids]
                time.sleep(1.0)  # the gates are connected
                web = [central.serve.pid, *workers]
                clients = [proc.pid for proc in procs if proc.pid is not None]
                before = (cpu_by_pid(web), cpu_by_pid([central.ingest.pid]), cpu_by_pid(clients))
                wall_minus_perf = time.time() - time.perf_counter()
                window_start = time.perf_counter()
                published, elapsed = publish_paced(gates, gate_ids, meeting_id, people, args.rate, total)
                deadline = time.monotonic() + 60
                while received_total.value < args.viewers * total and time.monotonic() < deadline:
                    time.sleep(0.1)
                after = (cpu_by_pid(web), cpu_by_pid([central.ingest.pid]), cpu_by_pid(clients))
                window = time.perf_counter() - window_start
                stop.set()
                records = [record for _ in procs for record in results.get(timeout=120)]
                for proc in procs:
                    proc.join(30)
                for gate in gates:
                    gate.loop_stop()
                    gate.disconnect()
            open_database(url)
            with database.connection_context():
                received_at = {str(row.checkin_id): row.received_at.timestamp() - wall_minus_perf
                               for row in CheckIn.select(CheckIn.checkin_id, CheckIn.received_at)}
            stored = len(received_at)
            database.close()
        finally:
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log_file in work.glob("*.log"):
                    shutil.copy(log_file, args.logs / f"dashboard-{log_file.name}")
            broker.stop()
            database.close()
            drop_database(url)
    latencies = [(record["received"][key] - at) * 1000 for record in records
                 for key, at in published.items() if key in record["received"]]
    to_ingest = [(received_at[key] - at) * 1000 for key, at in published.items() if key in received_at]
    to_viewer = [(record["received"][key] - received_at[key]) * 1000 for record in records
                 for key in published if key in record["received"] and key in received_at]
    epochs = {record["epochs"][0] for record in records if record["epochs"]}
    per_epoch = {epoch: sum(1 for r in records if r["epochs"] and r["epochs"][0] == epoch) for epoch in epochs}
    return {
        "viewers": args.viewers, "connected": connected.value, "checkins": total, "stored": stored,
        "rate_achieved": total / elapsed,
        "complete": sum(1 for r in records if all(key in r["received"] for key in published)),
        "missing_pairs": sum(1 for r in records for key in published if key not in r["received"]),
        "p50": percentile(latencies, 50), "p90": percentile(latencies, 90), "p99": percentile(latencies, 99),
        "max": max(latencies) if latencies else float("nan"),
        "viewers_per_epoch": sorted(per_epoch.values(), reverse=True),
        "connections_per_worker": {str(pid): count for pid, count in held.items()},
        "refused": sum(r["refused"] for r in records), "reconnects": sum(r["reconnects"] for r in records),
        "resets": sum(r["resets"] for r in records), "events": sum(r["events"] for r in records),
        "ends": {why: sum(r["ends"].get(why, 0) for r in records) for why in {w for r in records for w in r["ends"]}},
        "to_ingest_p50": percentile(to_ingest, 50), "to_ingest_p99": percentile(to_ingest, 99),
        "to_viewer_p50": percentile(to_viewer, 50), "to_viewer_p99": percentile(to_viewer, 99),
        "web_cpu_s": cpu_used(before[0], after[0]), "ingest_cpu_s": cpu_used(before[1], after[1]),
        "client_cpu_s": cpu_used(before[2], after[2]), "window_s": window,
    }


# ----- sizes on the wire -------------------------------------------------------------------------------------


def mqtt_publish_bytes(topic: str, payload: bytes, qos: int) -> int:
    """The bytes of an MQTT 3.1.1 PUBLISH packet (fixed header with its remaining length, topic, packet id at
    QoS > 0, payload), plus the 4-byte PUBACK at QoS 1."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + len(payload)
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3
    return 1 + length_bytes + remaining + (4 if qos == 1 else 0)


def wire_sizes() -> dict[str, dict[str, int]]:
    """Payload and MQTT packet sizes of real messages, encoded as the gate and central encode them."""
    import uuid

    from protocols.codes import compact_hash, generate_compact

    now = datetime.now(UTC)
    gate_id, site_id = "cong-chinh-01", "so-ke-hoach"
    checkin = payloads.CheckIn(
        id=uuid.uuid4(), gate_id=gate_id, site_id=site_id, direction="in", scanned_at=now, allowed=True, reason="ok",
        outcome="entered", meeting_id=1234, delegate_id=56789, scheme="compact",
        credential=compact_hash(generate_compact()), completed_at=now, clock_offset_s=0.012)
    ack = payloads.Ack(checkin_id=checkin.id, gate_id=gate_id, status="stored", sent_at=now, gate_time=now)
    heartbeat = payloads.Heartbeat(gate_id=gate_id, sent_at=now, cache_seq=4821, outbox_pending=0,
                                   software_version="1.16.0", mode="normal", fail_mode="secure", clock_offset_s=0.012)
    status = payloads.GateStatus(gate_id=gate_id, state="online", since=now, software_version="1.16.0",
                                 mode="normal", fail_mode="secure")
    messages = {
        "check-in (gate → core)": (topics.gate_checkins(gate_id), payloads.encode(checkin), 1),
        "site check-in (gate → other gates of the site)": (topics.site_checkins(site_id),
                                                           payloads.encode_site_checkin(checkin), 1),
        "ack (core → gate, QoS 0)": (topics.gate_acks(gate_id), payloads.encode(ack), 0),
        "heartbeat (gate → core, QoS 0)": (topics.gate_heartbeat(gate_id), payloads.encode(heartbeat), 0),
        "status (retained, on connect/change)": (topics.gate_status(gate_id), payloads.encode(status), 1),
    }
    return {name: {"payload": len(body), "mqtt": mqtt_publish_bytes(topic, body, qos)}
            for name, (topic, body, qos) in messages.items()}


# ----- the report --------------------------------------------------------------------------------------------


def share(cpu_s: float, seconds: float, cores: int = 2) -> str:
    """CPU seconds used over the core-seconds ``cores`` cores offered in ``seconds``, as a percentage ("-" for a
    window too short to time: a tiny run's raw pass-through can round to 0.0 s)."""
    return f"{cpu_s / (cores * seconds):.0%}" if seconds > 0 else "-"


def path_lines(paths: list[dict[str, Any]], split: bool) -> list[str]:
    """The raw and ingest table of ``paths`` (measured on shared cores, or with ``split`` cores) and the ratios."""
    cores = 1 if split else 2
    where = "the server's core" if split else "2 cores"
    lines = ["Gates on CPU 0; brokers, raw subscriber, ingest and PostgreSQL on CPU 1 (`--split-cores`):" if split
             else "Everything on the same 2 cores (publishers, brokers, subscriber or ingest, PostgreSQL):", ""]
    lines += ["| path | what | check-ins | stored / received | distinct | seconds | check-ins/s | "
              "ratio ingest / raw | CPU ms per check-in: ingest / Mosquitto / PostgreSQL | these processes' share of "
              f"{where} |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    raw_means: dict[bool, float] = {}
    for path in paths:
        name = path_name(path["bridged"])
        raw = statistics.fmean(r["rate"] for r in path["raws"])
        raw_means[path["bridged"]] = raw
        for n, r in enumerate(path["raws"]):
            broker_ms = r["broker_cpu_s"] / r["checkins"] * 1000
            lines.append(f"| {name} | raw pass-through ({'before' if n == 0 else 'after'}) | {r['checkins']} | "
                         f"{r['received']} | - | {r['seconds']} | {r['rate']} | - | - / {broker_ms:.3f} / - | "
                         f"{share(r['broker_cpu_s'], r['seconds'], cores)} |")
        for r in path["ingests"]:
            per = [r[key] / r["checkins"] * 1000 for key in ("ingest_cpu_s", "broker_cpu_s", "db_cpu_s")]
            db_ms = f"{per[2]:.3f}" if r["db"] == "postgres" else "(in ingest)"
            lines.append(f"| {name} | ingest, {r['db']}, {r['workers']} worker{'s' if r['workers'] > 1 else ''} | "
                         f"{r['checkins']} | {r['stored']} | {r['distinct']} | {r['seconds']:.2f} | "
                         f"{r['rate']:.0f} | {r['rate'] / raw:.2f} | {per[0]:.3f} / {per[1]:.3f} / {db_ms} | "
                         f"{share(r['ingest_cpu_s'] + r['broker_cpu_s'] + r['db_cpu_s'], r['seconds'], cores)} |")
    lines.append("")
    if len(raw_means) == 2:
        cost = 1 - raw_means[True] / raw_means[False]
        lines.append(f"Raw pass-through (mean of before and after): direct {raw_means[False]:.0f}/s, bridged "
                     f"{raw_means[True]:.0f}/s: the bridge costs {cost:.0%} of raw (goal ≤ {TARGET_BRIDGE_COST:.0%}).")
        for kind, workers in INGEST_CASES:
            rates = {p["bridged"]: next(r["rate"] for r in p["ingests"] if (r["db"], r["workers"]) == (kind, workers))
                     for p in paths}
            lines.append(f"- ingest {kind}, {workers} worker(s): direct {rates[False]:.0f}/s "
                         f"({rates[False] / raw_means[False]:.2f} of raw), bridged {rates[True]:.0f}/s "
                         f"({rates[True] / raw_means[True]:.2f} of raw); the bridge costs this ingest "
                         f"{1 - rates[True] / rates[False]:.0%}")
        lines.append("")
    return lines


def report(args: argparse.Namespace, paths: list[dict[str, Any]], heartbeats: list[dict[str, Any]],
           dash: dict[str, Any] | None, load_start: str, load_end: str, started: str, minutes: float) -> list[str]:
    """The Markdown block."""
    from benchmarks._gate_fixture import command_line, cpu_model

    lines = [f"- command: `{command_line(None)}`",
             f"- date: {started} (`date -u` at start), {minutes:.1f} minutes; machine: {os.cpu_count()} CPUs "
             f"({cpu_model()}); load average at start {load_start}, at end {load_end}", ""]
    for split in (False, True):
        group = [path for path in paths if path.get("split", False) == split]
        if group:
            lines += path_lines(group, split)
    if heartbeats:
        lines += ["| heartbeats, 1 ingest worker, direct | heartbeats | seconds | heartbeats/s | "
                  "CPU ms per heartbeat: ingest / PostgreSQL |", "| --- | ---: | ---: | ---: | --- |"]
        for h in heartbeats:
            db_ms = f"{h['db_cpu_s'] / h['heartbeats'] * 1000:.3f}" if h["db"] == "postgres" else "(in ingest)"
            lines.append(f"| {h['db']} | {h['heartbeats']} | {h['seconds']:.2f} | {h['rate']:.0f} | "
                         f"{h['ingest_cpu_s'] / h['heartbeats'] * 1000:.3f} / {db_ms} |")
        lines.append("")
    if dash:
        per_event = dash["web_cpu_s"] / dash["events"] * 1000 if dash["events"] else float("nan")
        ends = ", ".join(f"{why} {n}" for why, n in sorted(dash["ends"].items())) or "none"
        together = share(dash["web_cpu_s"] + dash["ingest_cpu_s"] + dash["client_cpu_s"], dash["window_s"])
        lines += [
            "Dashboard, PostgreSQL (`postgresql+pool://`, 16 connections per process), `VAORA_WEB_WORKERS=2` (one "
            "gunicorn address, two worker processes), "
            f"{dash['viewers']} viewers from {args.viewer_processes} client processes, {dash['checkins']} check-ins "
            f"at {dash['rate_achieved']:.1f}/s from {args.gates} gates (one ingest):", "",
            "| viewers connected | on each web process (hello epochs) | connections held per worker pid (/proc) | "
            "stored | viewers with every event | missing pairs | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |",
            "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {dash['connected']} | {' + '.join(map(str, dash['viewers_per_epoch']))} | "
            f"{', '.join(f'{pid}: {n}' for pid, n in dash['connections_per_worker'].items())} | {dash['stored']} | "
            f"{dash['complete']} / {dash['viewers']} | {dash['missing_pairs']} | {dash['p50']:.1f} | "
            f"{dash['p90']:.1f} | {dash['p99']:.1f} | {dash['max']:.1f} |", "",
            f"- p99 goal ≤ {TARGET_P99_MS:.0f} ms: {'met' if dash['p99'] <= TARGET_P99_MS else 'NOT met'}.",
            f"- where the time goes: publish → stored by ingest (its `received_at`) p50 {dash['to_ingest_p50']:.1f} / "
            f"p99 {dash['to_ingest_p99']:.1f} ms; stored → viewer parsed the event p50 {dash['to_viewer_p50']:.1f} / "
            f"p99 {dash['to_viewer_p99']:.1f} ms.",
            f"- streams: {dash['refused']} answers 503 (a worker at its stream cap; the viewer retried), "
            f"{dash['reconnects']} reconnects with Last-Event-ID ({ends}), {dash['resets']} resets; "
            f"{dash['events']} `checkins` events parsed in all.",
            f"- CPU over the {dash['window_s']:.1f} s window: web processes {dash['web_cpu_s']:.2f} s "
            f"({dash['web_cpu_s'] / dash['checkins'] * 1000:.2f} ms per check-in, {per_event:.3f} ms per event per "
            f"viewer), ingest {dash['ingest_cpu_s']:.2f} s, the viewers' own client processes "
            f"{dash['client_cpu_s']:.2f} s; together {together} of 2 cores.", ""]
    lines += ["Wire sizes of real messages (compact JSON as encoded by `protocols.payloads`; MQTT 3.1.1 packet with "
              "topic, packet id and PUBACK at QoS 1):", "", "| message | payload bytes | MQTT bytes |",
              "| --- | ---: | ---: |"]
    lines += [f"| {name} | {size['payload']} | {size['mqtt']} |" for name, size in wire_sizes().items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run everything once and print the Markdown block (and the raw figures as JSON to ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkins", type=int, default=20000, help="check-ins per raw or ingest case")
    parser.add_argument("--gates", type=int, default=10, help="simulated gates (publisher processes)")
    parser.add_argument("--heartbeats", type=int, default=3000, help="heartbeats per database (0: none)")
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--viewer-processes", type=int, default=4)
    parser.add_argument("--rate", type=float, default=50.0, help="dashboard check-ins per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="dashboard publishing time")
    parser.add_argument("--parts", default="paths,heartbeats,dashboard",
                        help="comma-separated: paths (raw and ingest), heartbeats, dashboard")
    parser.add_argument("--split-cores", action="store_true",
                        help="measure the paths again with the gates on CPU 0 and the server side on CPU 1")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--logs", type=Path, help="copy the dashboard run's central logs into this folder")
    args = parser.parse_args(argv)
    load_start = load_average()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    began = time.monotonic()
    log: list[str] = []
    parts = set(args.parts.split(","))
    layouts = (False, True) if args.split_cores else (False,)
    paths = [measure_path(bridged, args.checkins, args.gates, log, split) for split in layouts for bridged in PATHS
             if "paths" in parts]
    print("\n".join(log), file=sys.stderr, flush=True)
    heartbeats = [measure_heartbeats(kind, args.heartbeats, args.gates) for kind in ("sqlite", "postgres")
                  if args.heartbeats and "heartbeats" in parts]
    dash = measure_dashboard(args) if "dashboard" in parts else None
    lines = report(args, paths, heartbeats, dash, load_start, load_average(), started,
                   (time.monotonic() - began) / 60)
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"paths": paths, "heartbeats": heartbeats, "dashboard": dash},
                                        default=str, indent=1), encoding="utf-8")
    return 0


def load_average() -> str:
    """The 1/5/15-minute load averages."""
    from benchmarks._gate_fixture import load_average as machine_load

    return machine_load()


if __name__ == "__main__":
    sys.exit(main())
