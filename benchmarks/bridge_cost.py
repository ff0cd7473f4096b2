"""What a site→core bridge costs: raw MQTT pass-through, gates straight to the core against gates at a site broker
bridged to the core with the file ``vaora-central broker-config --site`` generates.

Each run: fresh Mosquitto processes with the shipped persistence settings (``benchmarks/_gate_fixture.py``), the
core with the generated ACL (the bridge account limited to its site's gates, as in production), simulated gates
(``spawn`` processes, one paho client each, from ``ingest_rate.py``) publishing pre-encoded check-ins at QoS 1 as
fast as their broker takes them, and one plain paho subscriber at the core (QoS 1) counting them. The rate is
check-ins received at the core per second, from the first publish to the last arrival; every one must arrive.
Direct and bridged runs alternate within one invocation so the machine's noise falls on both alike; the report
gives each run and the ratio of the medians (bridged / direct).

    python benchmarks/bridge_cost.py [--checkins 20000] [--gates 10] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ingest_rate import start_publishers
from central.messaging.broker_auth import GateAccount, provision, site_username
from central.messaging.site_broker import render_bridge
from protocols import topics

if TYPE_CHECKING:
    from devtools.broker import LocalBroker

PROBE = b"probe"
ANONYMOUS_RULES = ("# benchmark only: the simulated gates and the counter connect without a password\n"
                   f"topic readwrite {topics.ROOT}/#\n")


class Counter:
    """A plain subscriber at the core: counts check-ins and notes when the last expected one arrived."""

    def __init__(self, port: int, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.probes = 0
        self.finished_at = 0.0
        self.done = threading.Event()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-counter")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topics.ALL_GATE_CHECKINS, qos=1)
        if not subscribed.wait(30):
            raise RuntimeError("the counter could not subscribe at the core")

    def _on_message(self, _client, _userdata, message) -> None:
        if message.payload == PROBE:
            self.probes += 1
            return
        self.count += 1
        if self.count == self.expected:
            self.finished_at = time.perf_counter()
            self.done.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@contextmanager
def mqtt_path(directory: Path, bridged: bool, gate_ids: list[str], total: int,
              ) -> Iterator[tuple[LocalBroker, LocalBroker]]:
    """The brokers of one run: ``(core, the broker the gates publish to)``, the same one when not ``bridged``.

    The core has the generated password file and ACL (plus anonymous read/write for the benchmark's own clients);
    bridged, a site broker carries the bridge ``broker-config --site`` renders, and a probe published at the site
    has reached a subscriber at the core before this yields (the probe subscriber is gone by then, and every
    probe sent before the one that arrived has arrived too: one connection, in order). Both stop on exit.
    """
    from benchmarks._gate_fixture import shipped_broker

    accounts = [GateAccount(gate_id, "hq") for gate_id in gate_ids]
    credentials = provision(directory / "vaora", accounts)
    acl = directory / "vaora" / "acl"
    acl.write_text(ANONYMOUS_RULES + acl.read_text(encoding="utf-8"), encoding="utf-8")
    secured = f"password_file {directory / 'vaora' / 'passwd'}\nacl_file {acl}\n"
    core = shipped_broker(directory / "core", secured,
                          max_queued_messages=total * 2)
    site = None
    try:
        if bridged:
            bridge = render_bridge("hq", [f"127.0.0.1:{core.port}"], password=credentials[site_username("hq")])
            site = shipped_broker(directory / "site", bridge,
                                  max_queued_messages=total * 2)
            _probe_bridge(core, site, gate_ids[0])
        yield core, site or core
    finally:
        if site is not None:
            site.stop()
        core.stop()


def _probe_bridge(core: LocalBroker, site: LocalBroker, gate_id: str) -> None:
    """Publish probes at the site until one reaches a subscriber at the core (the bridge is up and subscribed)."""
    arrived = threading.Event()
    subscribed = threading.Event()
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-probe-listener")
    listener.on_message = lambda *_: arrived.set()
    listener.on_subscribe = lambda *_: subscribed.set()
    listener.connect("127.0.0.1", core.port)
    listener.loop_start()
    listener.subscribe(topics.gate_checkins(gate_id), qos=1)
    probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-probe")
    probe.connect("127.0.0.1", site.port)
    probe.loop_start()
    try:
        if not subscribed.wait(30):
            raise RuntimeError("the probe listener could not subscribe at the core")
        deadline = time.monotonic() + 60
        while not arrived.is_set() and time.monotonic() < deadline:
            probe.publish(topics.gate_checkins(gate_id), PROBE, qos=1).wait_for_publish(10)
            arrived.wait(0.2)
        if not arrived.is_set():
            raise RuntimeError("no probe crossed the bridge in 60 s")
    finally:
        for client in (probe, listener):
            client.loop_stop()
            client.disconnect()


def run(bridged: bool, total: int, gates: int) -> dict[str, float | int | str]:
    """One measured run, direct or through a bridge; returns the figures (``broker_cpu_s``: CPU seconds of the
    Mosquitto processes, core and site, from the first publish to the last arrival)."""
    from benchmarks._cputime import cpu_seconds

    gate_ids = [f"bench-{i}" for i in range(gates)]
    with tempfile.TemporaryDirectory() as tmp, mqtt_path(Path(tmp), bridged, gate_ids, total) as (core, publish_to):
        brokers = [pid for pid in {core.pid, publish_to.pid} if pid is not None]
        counter = Counter(core.port, total)
        try:
            before = cpu_seconds(brokers)
            procs, done, started = start_publishers(publish_to.port, gate_ids, total // gates)
            if not counter.done.wait(600):
                raise RuntimeError(f"only {counter.count} of {total} check-ins reached the core")
            broker_cpu = cpu_seconds(brokers) - before
            for _ in procs:
                done.acquire()
            for proc in procs:
                proc.join()
            seconds = counter.finished_at - started
        finally:
            counter.close()
    return {"path": "site → bridge → core" if bridged else "gates → core", "checkins": total,
            "received": counter.count, "seconds": round(seconds, 2), "rate": round(total / seconds),
            "broker_cpu_s": round(broker_cpu, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkins", type=int, default=20000)
    parser.add_argument("--gates", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2, help="runs of each path (alternating)")
    args = parser.parse_args()
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"## Bridge cost, raw pass-through ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n")
    print(f"- command: `.venv/bin/python benchmarks/bridge_cost.py --checkins {args.checkins} --gates {args.gates} "
          f"--runs {args.runs}`")
    print(f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, load average at start "
          f"{load}\n")
    print("| path | check-ins | received | seconds | check-ins/s |\n| --- | ---: | ---: | ---: | ---: |")
    rates: dict[bool, list[int]] = {False: [], True: []}
    for _ in range(args.runs):
        for bridged in (False, True):
            row = run(bridged, args.checkins, args.gates)
            rates[bridged].append(int(row["rate"]))
            print(f"| {row['path']} | {row['checkins']} | {row['received']} | {row['seconds']} | {row['rate']} |",
                  flush=True)
    direct, bridged_rate = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"\nmedian check-ins/s: direct {direct:.0f}, bridged {bridged_rate:.0f}; ratio bridged / direct "
          f"{bridged_rate / direct:.2f}")


if __name__ == "__main__":
    main()
