"""Ingest active/active on real processes: two ``vaora-central ingest`` processes share the gates' messages
through ``$share/vaora-ingest/...`` on one Mosquitto, and either can die.

Four gates (in-process, simulated pins, their own SQLite outboxes that re-publish a check-in every 10 s until
central's Ack) scan under load. Both ingest processes store part of the load (each logs the check-ins it
stored). One hangs (SIGSTOP) while the broker deals it its share, and is then SIGKILLed mid-load. The survivor
takes over the dead one's share at once: the first five check-ins each gate scans after the kill (about half of
them the dead one's turn) are all acknowledged within 5 s, which the gates' 10 s re-publishing could not achieve,
so the broker gave them to the survivor. What the dead one had received and not acknowledged comes back through
that re-publishing, and in the end every check-in is stored exactly once (0 lost, 0 stored twice).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devtools.broker import LocalBroker
from protocols import topics
from tests.conftest import scaled, wait_until

from .conftest import INGEST_SHARE_GROUP, REPO, log_tail, stop_processes
from .test_faults import central_counts, central_db, drive, make_gates, wait_delivered  # noqa: F401 (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(scaled(600))]

TAKEOVER_S = 5.0
"""The issue's bound: from the kill until the survivor has stored the check-ins the dead one would have got."""
RESEND_S = 10.0
"""The gates' re-publish interval: longer than the bound, so only the broker's dealing can meet it."""
HELD = 12
"""Check-ins left unacknowledged (the hung victim's) before it is killed."""
AFTER_KILL = 5
"""Check-ins per gate, scanned after the kill, that must all be acknowledged within the bound."""
STORED = re.compile(r"checkin ([0-9a-f-]{36}) gate=\S+ stored")


def spawn_ingest(name: str, tmp_path: Path, broker: LocalBroker,
                 extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """``vaora-central ingest`` with the default share group and its own client id; logs each stored check-in.
    ``extra_env`` adds settings (e.g. the broker user name and password file)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VAORA_")}
    env.update({
        "PYTHONPATH": str(REPO),
        "VAORA_DATABASE_URL": f"sqlite:///{tmp_path / 'central.db'}",
        "VAORA_MQTT_HOST": broker.host, "VAORA_MQTT_PORT": str(broker.port),
        "VAORA_SIGNING_KEY_FILE": str(tmp_path / "signing-key.pem"), "VAORA_DATA_DIR": str(tmp_path / "data"),
        "VAORA_MQTT_CLIENT_ID": name,
        **(extra_env or {}),
    })
    log = tmp_path / f"{name}.log"
    process = subprocess.Popen([sys.executable, "-m", "central.cli", "--log-level", "DEBUG", "ingest"], env=env,
                               cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    return process, log


def stored_ids(log: Path) -> set[str]:
    """The check-in ids an ingest process logged as stored."""
    return set(STORED.findall(log.read_text(errors="replace")))


def test_two_ingests_split_the_load_and_the_survivor_of_a_sigkill_takes_over(tmp_path, central_db):  # noqa: F811
    broker = LocalBroker(tmp_path / "broker", max_queued_messages=100_000)
    broker.start()
    gates = make_gates(4, broker, tmp_path, resend_seconds=RESEND_S)
    since = broker.log_position()
    ingests = {name: spawn_ingest(name, tmp_path, broker) for name in ("ingest-a", "ingest-b")}
    stop = threading.Event()
    sent = [0] * len(gates)
    try:
        shared_filter = topics.shared(INGEST_SHARE_GROUP, topics.ALL_GATE_CHECKINS)
        for name, (process, log) in ingests.items():
            try:
                broker.wait_subscribed(name, shared_filter, since=since, timeout=60)
            except TimeoutError as error:
                pytest.fail(f"{error}\n{name} (rc={process.poll()}):\n{log_tail(log)}")
        for gate in gates:
            assert gate.transport.wait_connected(scaled(10))
        threads = drive(gates, 10.0, stop, sent)
        (victim, victim_log), (survivor, survivor_log) = ingests["ingest-a"], ingests["ingest-b"]
        # Mid-load: both have stored part of it (the broker deals the shared subscription to both).
        wait_until(lambda: len(stored_ids(victim_log)) >= 50 and len(stored_ids(survivor_log)) >= 50,
                   timeout=120, interval=0.2,
                   message=lambda: f"a={len(stored_ids(victim_log))} b={len(stored_ids(survivor_log))}")

        # The victim hangs first (SIGSTOP) while the broker keeps dealing it its share, so it dies holding check-ins
        # it received and never acknowledged: they come back only through the gates' re-publishing.
        victim.send_signal(signal.SIGSTOP)

        def held() -> dict[str, object] | None:
            """The gates' outboxes when at least HELD check-ins wait for an ack (read once: the survivor keeps
            acknowledging its share meanwhile, so a count and a later read can disagree)."""
            rows = {row.checkin_id: row.delivered_at for gate in gates for row in gate.cache.outbox_rows()}
            return rows if sum(1 for delivered in rows.values() if delivered is None) >= HELD else None

        before_kill = wait_until(held, timeout=60, interval=0.05)
        log_from = broker.log_position()
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait(timeout=scaled(10))
        # Until the broker has seen the connection close, it may still deal check-ins to the dead member (lost with
        # its clean session: only the gates' re-publishing brings them back). The bound is for what comes after.
        wait_until(lambda: re.search(r"Client ingest-a closed its connection|Socket error on client ingest-a",
                                     broker.log_since(log_from)), timeout=30, interval=0.02,
                   message=lambda: f"the broker did not see ingest-a go:\n{broker.log_tail()}")
        dealt_until_gone = {row.checkin_id for gate in gates for row in gate.cache.outbox_rows()}

        def first_after_kill_acknowledged() -> bool:
            for gate in gates:
                new = [row for row in gate.cache.outbox_rows() if row.checkin_id not in dealt_until_gone][:AFTER_KILL]
                if len(new) < AFTER_KILL or any(row.delivered_at is None for row in new):
                    return False
            return True

        wait_until(first_after_kill_acknowledged, timeout=60, interval=0.05,
                   message=lambda: f"check-ins scanned after the kill still unacknowledged\n{log_tail(survivor_log)}")
        takeover_s = time.monotonic() - killed_at
        assert takeover_s < scaled(TAKEOVER_S), f"the survivor took {takeover_s:.2f} s to take over"

        # The load goes on with the survivor alone, then stops.
        after_kill = len(stored_ids(survivor_log))
        wait_until(lambda: len(stored_ids(survivor_log)) >= after_kill + 50, timeout=60, interval=0.2)
        stop.set()
        for thread in threads:
            thread.join()
        wait_delivered(gates, timeout=120)

        total = sum(sent)
        rows, distinct = central_counts()
        assert rows == distinct == total, f"sent {total}, stored {rows} ({distinct} distinct)"
        by_victim, by_survivor = stored_ids(victim_log), stored_ids(survivor_log)
        assert len(by_victim | by_survivor) == total, "every stored check-in was stored by one of the two"
        assert survivor.poll() is None, log_tail(survivor_log)
        pending_at_kill = [checkin_id for checkin_id, delivered in before_kill.items() if delivered is None]
        republished = sum(1 for gate in gates for row in gate.cache.outbox_rows() if row.attempts >= 2)
        assert len(pending_at_kill) >= HELD and republished >= 1, "the victim died holding check-ins"
        print(f"sent {total}; stored by a {len(by_victim)}, by b {len(by_survivor)}; {len(pending_at_kill)} "
              f"unacknowledged at the kill, {republished} re-published; take-over {takeover_s:.2f} s")
    finally:
        stop.set()
        for gate in gates:
            gate.stop()
        stop_processes((process for process, _ in ingests.values()), timeout=20)
        broker.stop()
