"""A change stream per site (issue 16, point 3), with real processes: a change for site hq is applied at hq's gate
and never seen at st's.

Central (web, ingest with the change feed, mail delivery), Mosquitto with the passwords and ACL that
``broker-config`` generates (no anonymous access; central, each gate and a spy connect with their own accounts) and
two gates (``python -m gate.cli``, simulated pins, a stdin scanner) at sites hq and st run as separate processes.
A meeting is held only in hq's main hall; a delegate registered after both gates loaded their snapshots is applied
at hq's gate from hq's stream, and hq's gate admits the code. st's gate never receives it: its cache lacks the
delegate and refuses the code, and a client logged in with st's gate account, subscribed to ``#``, to hq's stream
and to the legacy global stream, receives nothing of it (the ACL lets it read st's stream only). Then st becomes a
remote point of the meeting, and st's gate learns the meeting and the delegate from its own stream and admits them;
removed again, st's gate forgets them.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from central.messaging.broker_auth import CENTRAL_USERNAME, GateAccount, provision
from devtools.broker import LocalBroker
from devtools.mailcatcher import MailCatcher
from protocols import topics
from tests.conftest import scaled, wait_until

from .conftest import Central, gate_config_toml, invite_to, leader_session, spawn_gate, wait_for_line
from .test_remote_points import admin_session, csrf_of, register, wait_for_log

MAIN = "Hội trường tầng 2"
REMOTE = "Điểm cầu huyện Sơn Tịnh"
GATES = [GateAccount("hoitruong-1", "hq"), GateAccount("diemcau-1", "st")]


@pytest.fixture
def broker_files(tmp_path: Path) -> Path:
    """The core broker's passwd, acl and secrets/ for central and the two gates, as ``broker-config`` writes them."""
    directory = tmp_path / "broker-files"
    provision(directory, GATES)
    return directory


@pytest.fixture
def broker(broker_factory: Callable[..., LocalBroker], broker_files: Path,
           monkeypatch: pytest.MonkeyPatch) -> LocalBroker:
    """Mosquitto with the generated passwords and ACL; central's processes log in as ``vaora-central``."""
    monkeypatch.setenv("VAORA_MQTT_USERNAME", CENTRAL_USERNAME)
    monkeypatch.setenv("VAORA_MQTT_PASSWORD_FILE", str(broker_files / "secrets" / f"{CENTRAL_USERNAME}.password"))
    monkeypatch.delenv("VAORA_LEGACY_CHANGE_STREAM", raising=False)
    return broker_factory(allow_anonymous=False, extra_config=f"password_file {broker_files / 'passwd'}\n"
                                                             f"acl_file {broker_files / 'acl'}\n")


class Spy:
    """An MQTT client logged in with a gate's account, subscribed to everything it could hope to read."""

    def __init__(self, broker: LocalBroker, username: str, password: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"spy-{username}")
        self.client.username_pw_set(username, password)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe([("#", 1), (topics.site_changes("hq"), 1), (topics.CHANGES, 1)])
        assert subscribed.wait(scaled(10))

    def _on_message(self, _client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received.append((message.topic, bytes(message.payload)))

    def topics_seen(self) -> set[str]:
        with self.lock:
            return {topic for topic, _ in self.received}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def cached_delegates(data_dir: Path) -> list[str]:
    """The names of the delegates in a gate's cache (read from its SQLite file while it runs)."""
    with sqlite3.connect(f"file:{data_dir / 'gate-cache.sqlite3'}?mode=ro", uri=True) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM delegates ORDER BY name")]


def scan(process: subprocess.Popen[bytes], code: str) -> None:
    assert process.stdin is not None
    process.stdin.write(code.encode() + b"\n")
    process.stdin.flush()


@pytest.mark.slow
def test_a_change_for_one_site_is_applied_at_its_gate_and_never_seen_at_another(
        central: Central, broker: LocalBroker, broker_files: Path, mail: MailCatcher, tmp_path: Path) -> None:
    admin = admin_session(central)
    token = csrf_of(admin, f"{central.url}/admin/venues")
    halls = {}
    for body in ({"name": MAIN, "kind": "main", "site_id": "hq"}, {"name": REMOTE, "kind": "remote", "site_id": "st"}):
        made = admin.post(f"{central.url}/api/v1/venues", json=body, headers={"X-CSRFToken": token},
                          timeout=scaled(30))
        assert made.status_code == 201, made.text
        halls[body["name"]] = made.json()["id"]

    now = datetime.now(UTC)
    created = central.api("POST", "/api/v1/meetings", json={
        "title": "Họp giao ban Sở Y tế", "starts_at": (now + timedelta(minutes=30)).isoformat(),
        "ends_at": (now + timedelta(hours=3)).isoformat(), "main_venue_id": halls[MAIN]})
    assert created.status_code == 201, created.text
    meeting = created.json()
    assert meeting["sites"] == ["hq"]
    invitation = invite_to(central, mail, meeting["id"], "Sở Y tế", "vanthu@syt.example.vn")

    secrets = broker_files / "secrets"
    spy = Spy(broker, "gate-diemcau-1", (secrets / "gate-diemcau-1.password").read_text().strip())
    gates: dict[str, tuple[subprocess.Popen[bytes], Path, Path]] = {}
    try:
        for account in GATES:
            since = broker.log_position()
            registered = central.api("POST", "/api/v1/gates", json={"gate_id": account.gate_id,
                                                                     "site_id": account.site_id})
            assert registered.status_code == 201, registered.text
            data_dir = tmp_path / account.gate_id
            text = gate_config_toml(data_dir, broker, gate_id=account.gate_id, site=account.site_id,
                                    central_url=central.url, token=registered.json()["token"], timeout=5.0)
            text = text.replace("resend_seconds = 1\n", f'resend_seconds = 1\nusername = "{account.username}"\n'
                                f'password_file = "{secrets / (account.username + ".password")}"\n')
            config = tmp_path / f"{account.gate_id}.toml"
            config.write_text(text, encoding="utf-8")
            log = tmp_path / f"{account.gate_id}.log"
            gates[account.gate_id] = (spawn_gate(config, log), log, data_dir)
            broker.wait_subscribed(f"vaora-gate-{account.gate_id}", topics.site_changes(account.site_id),
                                   since=since, timeout=60)
        for process, log, _ in gates.values():
            wait_for_line(log, "gate started", process)
        (main, main_log, main_dir), (remote, remote_log, remote_dir) = gates["hoitruong-1"], gates["diemcau-1"]
        # Twice: at start, and again on the first connection, which has no broker session (see test_remote_points).
        wait_for_log(main_log, r"snapshot loaded seq=\d+ meetings=1 delegates=0", main, count=2)
        wait_for_log(remote_log, r"snapshot loaded seq=\d+ meetings=0 delegates=0", remote, count=2)

        # Registered after both gates loaded their snapshots: only hq's stream carries it.
        code = register(central, mail, invitation, "Nguyễn Văn An", "an@syt.example.vn")
        wait_for_log(main_log, r"change applied seq=\d+ kind=delegate_upsert", main)
        scan(main, code)
        wait_for_log(main_log, r"scan decided .* allowed=True reason=ok", main)
        assert cached_delegates(main_dir) == ["Nguyễn Văn An"]

        # st's gate: nothing in its cache, the code refused, and st's account cannot read hq's stream. A probe the
        # spy publishes after hq's gate applied the change arrives, so the spy was listening all along.
        scan(remote, code)
        wait_for_log(remote_log, r"scan decided .* allowed=False reason=unknown_code", remote)
        assert cached_delegates(remote_dir) == []
        assert "change applied" not in remote_log.read_text(errors="replace")
        spy.client.publish(topics.site_checkins("st"), b"probe", qos=1)
        wait_until(lambda: topics.site_checkins("st") in spy.topics_seen(), timeout=30)
        seen = spy.topics_seen()
        assert topics.site_changes("hq") not in seen and topics.CHANGES not in seen, seen
        assert not any("hoitruong" in topic for topic in seen), seen

        # st becomes a remote point: its own stream brings the meeting and the delegate, and its gate admits them.
        leader = leader_session(central)
        moved = leader.patch(f"{central.url}/api/v1/meetings/{meeting['id']}", timeout=scaled(30),
                             headers={"X-CSRFToken": csrf_of(leader, f"{central.url}/meetings/")},
                             json={"remote_venue_ids": [halls[REMOTE]],
                                   "booking_override_reason": "Chủ tịch UBND chỉ đạo họp trực tuyến"})
        assert moved.status_code == 200, moved.text
        wait_for_log(remote_log, r"change applied seq=\d+ kind=meeting_upsert", remote)
        wait_for_log(remote_log, r"change applied seq=\d+ kind=delegate_upsert", remote)
        assert cached_delegates(remote_dir) == ["Nguyễn Văn An"]
        scan(remote, code)
        wait_for_log(remote_log, r"scan decided .* allowed=True reason=ok", remote)
        assert topics.site_changes("st") in spy.topics_seen(), "st's own stream reaches st's account"
        assert topics.site_changes("hq") not in spy.topics_seen()

        # The remote point removed again: st's gate forgets the meeting's delegate at once; hq's keeps it.
        removed = leader.patch(f"{central.url}/api/v1/meetings/{meeting['id']}", timeout=scaled(30),
                               headers={"X-CSRFToken": csrf_of(leader, f"{central.url}/meetings/")},
                               json={"remote_venue_ids": []})
        assert removed.status_code == 200, removed.text
        wait_until(lambda: cached_delegates(remote_dir) == [], timeout=30,
                   message=lambda: remote_log.read_text(errors="replace")[-3000:])
        assert cached_delegates(main_dir) == ["Nguyễn Văn An"]
    finally:
        spy.close()
        for process, _, _ in gates.values():
            process.terminate()
        for process, _, _ in gates.values():
            try:
                process.wait(timeout=scaled(15))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
