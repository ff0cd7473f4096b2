"""A meeting in the main hall (site hq) with a remote point ("điểm cầu") at site st, and a real gate at each.

Central (web, ingest with the change feed, mail delivery), Mosquitto and both gates run as separate processes
(``python -m gate.cli``, simulated pins, a stdin scanner). The meeting starts in 30 minutes, so with a remote point
it is booked by the leader with a reason (the booking rule). One delegate registers before the gates start (the
remote gate gets them in its snapshot), one after (the remote gate gets them from the change stream). Each is
scanned at a different site's gate, and the dashboard counts one at the main hall and one at the remote point.
"""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools import approval
from devtools.broker import LocalBroker
from devtools.mailcatcher import MailCatcher
from tests.conftest import scaled, wait_until

from .conftest import (
    Central,
    gate_config_toml,
    invite_to,
    leader_session,
    log_tail,
    qr_text_of,
    spawn_gate,
    stop_processes,
    wait_for_line,
)

MAIN = "Hội trường tầng 2"
REMOTE = "Điểm cầu huyện Sơn Tịnh"
ADMIN, ADMIN_PASSWORD = "quantri", "mat-khau-quan-tri-e2e"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|<meta name="csrf-token" content="([^"]+)"')


def csrf_of(session: requests.Session, url: str) -> str:
    """The CSRF token of a page the session may open."""
    match = _CSRF.search(session.get(url, timeout=scaled(30)).text)
    assert match, f"no CSRF token at {url}"
    return match.group(1) or match.group(2)


def admin_session(central: Central) -> requests.Session:
    """An administrator's session (the account is written to central's SQLite file from the test process, as
    ``leader_session`` makes the leader's)."""
    from argon2 import PasswordHasher, profiles

    from central.auth import users
    from central.auth.passwords import use_hasher
    from central.core.db import database, open_database

    use_hasher(PasswordHasher.from_parameters(profiles.CHEAPEST))
    open_database(f"sqlite:///{central.database_path}")
    with database.connection_context():
        users.create_user({"username": ADMIN, "password": ADMIN_PASSWORD, "role": "administrator",
                           "full_name": "Quản trị"}, actor="test", now=datetime.now(UTC))
    return approval.log_in(central.url, ADMIN, ADMIN_PASSWORD, timeout=scaled(30))


def wait_for_log(log: Path, pattern: str, process: subprocess.Popen[bytes], timeout: float = 60.0,
                 count: int = 1) -> None:
    """Wait until the gate process logged ``count`` lines matching the regular expression ``pattern``
    (``wait_for_line`` for a fixed text); fail at once if it exited."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if len(re.findall(pattern, log.read_text(errors="replace"))) >= count:
            return
        if process.poll() is not None:
            raise AssertionError(f"gate exited rc={process.returncode}:\n{log_tail(log)}")
        time.sleep(0.02)
    raise AssertionError(f"{pattern!r} not logged:\n{log_tail(log)}")


def register(central: Central, mail: MailCatcher, invitation: dict[str, Any], name: str, email: str) -> str:
    """The organisation registers a delegate; returns the code from the QR of their e-mail."""
    already = len(mail.messages)
    answer = central.api("POST", f"/api/v1/invitations/{invitation['number']}/delegates",
                         headers={"X-Invitation-Secret": invitation["secret"]},
                         json={"name": name, "position": "Chuyên viên", "email": email})
    assert answer.status_code == 201, answer.text
    wait_until(lambda: any(email in str(m["To"]) for m in mail.messages[already:]), timeout=30)
    return qr_text_of(next(m for m in mail.messages[already:] if email in str(m["To"])))


@pytest.mark.slow
def test_two_gates_at_two_sites_admit_one_meeting_and_the_dashboard_counts_per_venue(
        central: Central, broker: LocalBroker, mail: MailCatcher, tmp_path: Path) -> None:
    admin = admin_session(central)
    token = csrf_of(admin, f"{central.url}/admin/venues")
    halls = {}
    for body in ({"name": MAIN, "kind": "main", "site_id": "hq"},
                 {"name": REMOTE, "kind": "remote", "site_id": "st"}):
        made = admin.post(f"{central.url}/api/v1/venues", json=body, headers={"X-CSRFToken": token},
                          timeout=scaled(30))
        assert made.status_code == 201, made.text
        halls[body["name"]] = made.json()["id"]

    now = datetime.now(UTC)
    meeting_body = {"title": "Hội nghị trực tuyến tổng kết năm", "starts_at": (now + timedelta(minutes=30)).isoformat(),
                    "ends_at": (now + timedelta(hours=3)).isoformat(), "main_venue_id": halls[MAIN],
                    "remote_venue_ids": [halls[REMOTE]]}
    late = central.api("POST", "/api/v1/meetings", json=meeting_body)
    assert late.status_code == 409 and late.json()["reason"] == "booking_too_late", late.text
    leader = leader_session(central)
    created = leader.post(f"{central.url}/api/v1/meetings", timeout=scaled(30),
                          headers={"X-CSRFToken": csrf_of(leader, f"{central.url}/meetings/")},
                          json={**meeting_body, "booking_override_reason": "Chủ tịch UBND chỉ đạo họp gấp"})
    assert created.status_code == 201, created.text
    meeting = created.json()
    assert meeting["sites"] == ["hq", "st"]

    invitation = invite_to(central, mail, meeting["id"], "Sở Y tế", "vanthu@syt.example.vn")
    first_code = register(central, mail, invitation, "Nguyễn Văn An", "an@syt.example.vn")

    gates: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for gate_id, site in (("hoitruong-1", "hq"), ("diemcau-1", "st")):
            registered = central.api("POST", "/api/v1/gates", json={"gate_id": gate_id, "site_id": site})
            assert registered.status_code == 201, registered.text
            config = tmp_path / f"{gate_id}.toml"
            config.write_text(gate_config_toml(tmp_path / gate_id, broker, gate_id=gate_id, site=site,
                                               central_url=central.url, token=registered.json()["token"],
                                               timeout=5.0), encoding="utf-8")
            log = tmp_path / f"{gate_id}.log"
            gates[gate_id] = (spawn_gate(config, log), log)
        for process, log in gates.values():
            wait_for_log(log, r"snapshot loaded seq=\d+ meetings=1 delegates=1", process)
            wait_for_line(log, "gate started", process)
            # Its first connection has no broker session, so the gate fetches the snapshot once more (changes may
            # have gone by unseen); registered before that second load, a delegate would arrive in the snapshot
            # instead of on the change stream this test is about.
            wait_for_log(log, r"snapshot loaded seq=\d+ meetings=1 delegates=1", process, count=2)

        # Registered after the gates loaded their snapshots: the remote gate learns them from the change stream.
        remote_process, remote_log = gates["diemcau-1"]
        second_code = register(central, mail, invitation, "Trần Thị Bình", "binh@syt.example.vn")
        wait_for_log(remote_log, r"change applied seq=\d+ kind=delegate_upsert", remote_process)

        main_process, main_log = gates["hoitruong-1"]
        assert main_process.stdin is not None and remote_process.stdin is not None
        main_process.stdin.write(first_code.encode() + b"\n")
        main_process.stdin.flush()
        remote_process.stdin.write(second_code.encode() + b"\n")
        remote_process.stdin.flush()
        wait_for_log(main_log, r"scan decided .* allowed=True reason=ok", main_process)
        wait_for_log(remote_log, r"scan decided .* allowed=True reason=ok", remote_process)

        dashboard = f"{central.url}/meetings/{meeting['id']}/truc-tiep/trang-thai.json"

        def counted() -> dict[str, Any] | None:
            state: dict[str, Any] = leader.get(dashboard, timeout=scaled(30)).json()
            return state if state["present"] == 2 else None

        state = wait_until(counted, timeout=30, interval=0.1, message="both check-ins reached the dashboard")
        assert state["by_venue"] == [{"venue": MAIN, "present": 1}, {"venue": REMOTE, "present": 1}]
        assert {(a["name"], a["site_id"]) for a in state["arrivals"]} == {
            ("Nguyễn Văn An", "hq"), ("Trần Thị Bình", "st")}
        assert {g["gate_id"] for g in state["gates"]} == {"hoitruong-1", "diemcau-1"}
    finally:
        stop_processes((process for process, _ in gates.values()), timeout=15)
