"""The several-sites topology with the product's own processes: gates at a site broker, bridged with the file
``broker-config --site`` generates to a core broker (passwords and ACLs as generated), two ``vaora-central
ingest`` processes at the core sharing the check-ins. Every check-in is stored once and every gate's outbox
empties, so each Ack found its way back across the bridge to the gate that sent the check-in."""

from __future__ import annotations

import threading

import pytest

from central.messaging.broker_auth import CENTRAL_USERNAME, GateAccount, provision
from central.messaging.site_broker import provision_site
from devtools.broker import LocalBroker
from protocols import topics
from tests.conftest import scaled, wait_until

from .conftest import INGEST_SHARE_GROUP, log_tail, stop_processes
from .test_faults import central_counts, central_db, drive, make_gates, wait_delivered  # noqa: F401 (fixture)
from .test_ingest_active_active import spawn_ingest, stored_ids

pytestmark = [pytest.mark.slow, pytest.mark.timeout(scaled(600))]


def test_checkins_from_a_bridged_site_are_stored_once_and_acknowledged(tmp_path, central_db):  # noqa: F811
    accounts = [GateAccount(f"gate-{index}", "hq") for index in range(3)]
    core_files = tmp_path / "vaora"
    provision(core_files, accounts)
    core = LocalBroker(tmp_path / "core", allow_anonymous=False, max_queued_messages=100_000,
                       extra_config=f"password_file {core_files / 'passwd'}\nacl_file {core_files / 'acl'}\n")
    core.start()
    bridge = provision_site(core_files, "hq", accounts, [f"127.0.0.1:{core.port}"]).bridge_file.read_text()
    # The test gates connect without a password, so the site broker here is anonymous; the bridge and the core
    # are as generated.
    site = LocalBroker(tmp_path / "site", max_queued_messages=100_000, extra_config=bridge)
    site.start()
    gates = []
    ingests = {}
    stop = threading.Event()
    sent = [0] * len(accounts)
    try:
        core.wait_for_log("as site-hq", timeout=60)
        since = core.log_position()
        credentials = {"VAORA_MQTT_USERNAME": CENTRAL_USERNAME,
                       "VAORA_MQTT_PASSWORD_FILE": str(core_files / "secrets" / f"{CENTRAL_USERNAME}.password")}
        ingests = {name: spawn_ingest(name, tmp_path, core, credentials) for name in ("ingest-a", "ingest-b")}
        for name, (process, log) in ingests.items():
            try:
                core.wait_subscribed(name, topics.shared(INGEST_SHARE_GROUP, topics.ALL_GATE_CHECKINS), since=since,
                                     timeout=60)
            except TimeoutError as error:
                pytest.fail(f"{error}\n{name} (rc={process.poll()}):\n{log_tail(log)}")
        gates = make_gates(len(accounts), site, tmp_path, resend_seconds=1)
        for gate in gates:
            assert gate.transport.wait_connected(scaled(10))
        threads = drive(gates, 10.0, stop, sent)
        # Load until both ingest processes have stored some of it.
        logs = [log for _, log in ingests.values()]
        wait_until(lambda: all(len(stored_ids(log)) >= 20 for log in logs), timeout=120, interval=0.2,
                   message=lambda: "\n".join(log_tail(log) for log in logs) + site.log_tail())
        stop.set()
        for thread in threads:
            thread.join()
        wait_delivered(gates, timeout=120)  # the outboxes emptied: every Ack came back across the bridge
        total = sum(sent)
        rows, distinct = central_counts()
        assert rows == distinct == total, f"sent {total}, stored {rows} ({distinct} distinct)"
    finally:
        stop.set()
        for gate in gates:
            gate.stop()
        stop_processes((process for process, _ in ingests.values()), timeout=20)
        site.stop()
        core.stop()
