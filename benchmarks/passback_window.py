"""The double-entry window of anti-passback across a site's gates while the broker is down.

Two gates of one site (in-process ``gate.app.Gate`` with their real MQTT transport and SQLite caches, MockFactory
pins, central unreachable) share used codes through the site's check-in fan-out on a private Mosquitto. The
meetings use the ``single`` entry policy: a code used at gate A must be refused at gate B.

Measured:
- online: from a scan admitted at A to B's decision refusing the same code (B's real ``decide`` over its cache);
- broker stopped for D seconds: whether B still admits a code used at A meanwhile (the double entry), and, after
  the broker is back, how long until both gates are connected again and until B refuses the codes A admitted
  during the outage (A's paho client keeps its QoS 1 fan-out while disconnected and sends it on reconnect);
- the same outage with gate A restarted while the broker is down: whether B ever learns the codes A admitted
  before the restart.

    .venv/bin/python benchmarks/passback_window.py [--outages 2,10,30] [--codes 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpiozero.pins.mock import MockFactory

from benchmarks._gate_fixture import SITE_ID, build_world, header, median, unreachable_central
from devtools.broker import LocalBroker
from gate.app import Gate
from gate.config import parse_config
from gate.decision import decide
from gate.scanners import ScanEvent, Scanner
from gate.store import GateStore
from gate.transport import RECONNECT_FAST_S, RECONNECT_JITTER
from protocols.payloads import Direction, Snapshot
from protocols.reasons import Reason

LEARN_TIMEOUT_S = 60.0


class NoScanner(Scanner):
    """The benchmark calls ``Gate.handle_scan`` itself."""

    def start(self, on_scan: Any) -> None:
        """Nothing to read."""

    def close(self) -> None:
        """Nothing to close."""


def make_gate(gate_id: str, directory: Path, broker: LocalBroker, snapshot: Snapshot | None) -> Gate:
    """A started gate of site ``SITE_ID`` (seeded with ``snapshot`` when given), connected to ``broker``."""
    config = parse_config({
        "gate": {"id": gate_id, "site": SITE_ID, "fail_mode": "secure", "data_dir": str(directory / gate_id)},
        "central": {"url": "http://127.0.0.1:9", "token": "unused", "timeout": 1},
        "mqtt": {"host": broker.host, "port": broker.port},
        "scanner": {"type": "stdin"},
        "pins": {"relay": 17, "green_led": 27, "red_led": 22},
        "turnstile": {"unlock_seconds": 0.2},
        "status": {"enabled": False},
    })
    if snapshot is not None:
        cache = GateStore(config.gate.data_dir)
        cache.load_snapshot(snapshot, datetime.now(UTC))
        cache.close()
    gate = Gate(config, pin_factory=MockFactory(), scanner=NoScanner(), fetch=unreachable_central,
                delivery_poll_s=0.05, flush_timeout=0.1, resync_backoff_s=30, resync_max_backoff_s=60)
    gate.start()
    return gate


def wait_connected(gate: Gate, timeout: float = LEARN_TIMEOUT_S) -> bool:
    transport: Any = gate.transport
    return bool(transport.wait_subscribed(timeout))


@contextmanager
def two_gates(directory: Path, snapshot: Snapshot) -> Iterator[tuple[LocalBroker, dict[str, Gate]]]:
    """A private Mosquitto under ``directory`` and gates ``a`` and ``b`` of one site on it, both connected;
    stopped on exit."""
    broker = LocalBroker(directory / "broker")
    broker.start()
    gates = {name: make_gate(name, directory, broker, snapshot) for name in ("a", "b")}
    try:
        for gate in gates.values():
            if not wait_connected(gate, 10):
                raise RuntimeError("gate did not connect")
        yield broker, gates
    finally:
        for gate in gates.values():
            gate.stop()
        broker.stop()


def admits(gate: Gate, code: str) -> bool:
    """Would ``gate`` admit ``code`` now? (its real decision over its cache; records nothing)"""
    assert gate.cache is not None
    return decide(code, gate.cache, datetime.now(UTC), gate.site_id, Direction.IN).allowed


def use(gate: Gate, code: str) -> None:
    decision, _ = gate.handle_scan(ScanEvent(code, Reason.OK, "bench", time.monotonic()))
    if not decision.allowed:
        raise RuntimeError(f"{gate.gate_id} refused a fresh code: {decision.reason.value}")


def wait_for(predicate: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``predicate`` holds (polled every 2 ms), or None after ``timeout``."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if predicate():
            return time.perf_counter() - started
        time.sleep(0.002)
    return None


def fmt(value: float | None) -> str:
    return "never (60 s)" if value is None else f"{value:.2f}"


def online(gate_a: Gate, gate_b: Gate, codes: list[str]) -> list[float]:
    latencies = []
    for code in codes:
        use(gate_a, code)
        learned = wait_for(lambda c=code: not admits(gate_b, c), 5.0)
        if learned is None:
            raise RuntimeError("B never learned a code used at A while online")
        latencies.append(learned)
    return latencies


def outage(broker: LocalBroker, gates: dict[str, Gate], outage_s: float, codes: list[str], directory: Path,
           restart_a: bool) -> dict[str, Any]:
    """Stop the broker for ``outage_s``; A admits ``codes`` meanwhile (optionally A restarts); measure B."""
    gate_a, gate_b = gates["a"], gates["b"]
    broker.stop()
    down_at = time.perf_counter()
    wait_for(lambda: not gate_a.transport.is_connected and not gate_b.transport.is_connected, 10)  # type: ignore
    for code in codes:
        use(gate_a, code)
    double_entry = sum(admits(gate_b, code) for code in codes)
    if restart_a:
        gate_a.stop()
        gate_a = gates["a"] = make_gate("a", directory, broker, None)
    time.sleep(max(0.0, outage_s - (time.perf_counter() - down_at)))
    broker.restart()
    up_at = time.perf_counter()
    seen: dict[str, float | None] = {"a": None, "b": None, "learned": None}
    while time.perf_counter() - up_at < LEARN_TIMEOUT_S and None in seen.values():
        elapsed = time.perf_counter() - up_at
        for name in ("a", "b"):
            if seen[name] is None and gates[name].transport.is_connected:  # type: ignore[union-attr]
                seen[name] = elapsed
        if seen["learned"] is None and not any(admits(gate_b, code) for code in codes):
            seen["learned"] = elapsed
        time.sleep(0.002)
    learned = sum(not admits(gate_b, code) for code in codes)
    for gate in gates.values():  # the subscriptions settle before the next scenario
        wait_connected(gate)
    learned_all = seen["learned"]
    return {"outage": outage_s, "restart_a": restart_a, "codes": len(codes), "double_entry": double_entry,
            "reconnect_a": seen["a"], "reconnect_b": seen["b"], "learned": learned,
            "learned_after_up": learned_all, "window": None if learned_all is None else up_at - down_at + learned_all}


def main(argv: Sequence[str] | None = None) -> None:
    """Run the scenarios and print a Markdown block for BENCHMARKS.md."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--outages", default="2,10,30", help="broker outages to measure, seconds, comma-separated")
    parser.add_argument("--codes", type=int, default=5, help="codes used at gate A during each outage")
    args = parser.parse_args(argv)
    outages = [float(value) for value in args.outages.split(",") if value]
    world = build_world(2000)
    codes = iter(world.compact_codes)
    lines = header("Anti-passback with the broker down: the double-entry window", argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        with two_gates(directory, world.snapshot) as (broker, gates):
            baseline = online(gates["a"], gates["b"], [next(codes) for _ in range(20)])
            rows = []
            for seconds in outages:
                rows.append(outage(broker, gates, seconds, [next(codes) for _ in range(args.codes)], directory,
                                   restart_a=False))
            rows.append(outage(broker, gates, outages[0], [next(codes) for _ in range(args.codes)], directory,
                               restart_a=True))
    lines += [
        "- two in-process gates `a` and `b` of one site, real `MqttTransport` (reconnect delay "
        f"{RECONNECT_FAST_S[0]:g} s doubling to {RECONNECT_FAST_S[1]:g} s, stretched by up to {RECONNECT_JITTER:.0%} "
        "per gate), "
        "SQLite caches, `single` entry policy; private Mosquitto stopped (SIGTERM) and restarted; "
        "central unreachable",
        f"- online, 20 codes: used at a -> refused at b, median {median(baseline) * 1000:.1f} ms, "
        f"max {max(baseline) * 1000:.1f} ms",
        "",
        "| broker down (s) | gate a restarted while down | codes used at a while down | of them admitted at b "
        "while down | a reconnected after broker up (s) | b reconnected (s) | b refuses them after broker up (s) "
        "| learned | whole window from broker down (s) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['outage']:.0f} | {'yes' if row['restart_a'] else 'no'} | {row['codes']} | "
            f"{row['double_entry']}/{row['codes']} | {fmt(row['reconnect_a'])} | {fmt(row['reconnect_b'])} | "
            f"{fmt(row['learned_after_up'])} | {row['learned']}/{row['codes']} | {fmt(row['window'])} |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
