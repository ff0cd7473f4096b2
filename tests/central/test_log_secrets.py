"""Secrets stay out of logs: a whole registration journey (meeting, draft invitation approved by a leader, sent by
e-mail and by the ``log`` SMS backend, the registration page opened from its link, a delegate registered on the
page and through the API, the codes mailed by ``vaora-central deliver``) against the real server, whose every log
line (gunicorn's access log included) must hold neither the invitation's secret, nor the delegate's code, nor the
API token; the same journey in-process, caplog holding none of them; and the redaction rule itself."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database, open_database
from devtools.mailcatcher import MailCatcher
from protocols.codes.compact import format_compact
from protocols.logs import REDACTED, RedactSecrets, StructuredFormatter, redact_secrets
from tests.central.staff import PASSWORD, csrf, make_users, page_token
from tests.central.test_server import PASSWORD as ADMIN_PASSWORD
from tests.central.test_server import TOKEN, log_in, serving
from tests.conftest import scaled, wait_until

from .conftest import API_TOKEN, AUTH, Clock

REPO = Path(__file__).resolve().parents[2]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "central.cli", *args], env=env, cwd=REPO, text=True,
                          capture_output=True, timeout=scaled(60), check=False)


@pytest.fixture
def central(tmp_path: Path, mail: MailCatcher) -> Iterator[tuple[str, dict[str, str], Path]]:
    """``vaora-central serve`` (one worker) on a free port, SMS through the ``log`` backend, its output in a file;
    stopped with SIGTERM so that its last lines are written."""
    settings = {"VAORA_SMTP_HOST": mail.host, "VAORA_SMTP_PORT": str(mail.port),
                "VAORA_MAIL_FROM": "vanphong@ubnd.example.vn", "VAORA_SMS_BACKEND": "log", "VAORA_WEB_WORKERS": "1"}
    with serving(tmp_path, settings=settings, graceful=True) as (base, _server, env, log_path):
        yield base, env, log_path
    database.close()


def _secret_of(mail: MailCatcher) -> tuple[str, str]:
    """The registration link of the invitation e-mail and its secret."""
    (message,) = [m for m in mail.wait_for(1) if "Thư mời" in (m["Subject"] or "")]
    html = message.get_body(("html",)).get_content()
    link = re.search(r'https?://[^"\s<]+\?secret=([^"&\s<]+)', html)
    assert link, html[:500]
    return link.group(0), link.group(1)


def test_a_registration_journey_leaves_no_secret_in_the_servers_logs(
    central: tuple[str, dict[str, str], Path], mail: MailCatcher
) -> None:
    base, env, log_path = central
    api = {"Authorization": f"Bearer {TOKEN}"}
    open_database(env["VAORA_DATABASE_URL"])
    make_users(datetime.now(UTC))  # chuyenvien (organiser), lanhdao (approver), ...
    database.close()

    # The organiser's meeting and organisation, an invitation drafted and approved by the leader.
    starts = datetime.now(UTC) + timedelta(days=2)
    meeting = requests.post(f"{base}/api/v1/meetings", headers=api, timeout=10, json={
        "title": "Giao ban quý", "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "venue": "Phòng họp 1", "site_id": "hq"})
    assert meeting.status_code == 201, meeting.text
    org = requests.post(f"{base}/api/v1/organisations", headers=api, timeout=10, json={
        "name": "Sở Tài chính", "office_email": "vp@example.vn", "leader_phone": "0912345678",
        "leader_name": "Ông Lê Văn C"})
    assert org.status_code == 201, org.text
    drafted = requests.post(f"{base}/api/v1/invitations/drafts", headers=api, timeout=10,
                            json={"meeting_id": meeting.json()["id"], "organisation_ids": [org.json()["id"]]})
    assert drafted.status_code == 201, drafted.text
    leader = log_in(base, "lanhdao", PASSWORD)
    token = csrf(leader.get(f"{base}/meetings/", timeout=10).text)
    approved = leader.post(f"{base}/api/v1/invitations/{drafted.json()[0]['id']}/approve", timeout=30,
                           headers={"X-CSRFToken": token})
    assert approved.status_code == 200, approved.text
    number = approved.json()["number"]
    assert {d["channel"]: d["status"] for d in approved.json()["deliveries"]} == {"email": "sent", "sms": "sent"}
    link, secret = _secret_of(mail)

    # The organisation opens its link (the old form redirects to /dang-ky/...?s=) and registers on the page.
    office = requests.Session()
    page = office.get(link.replace(f"http://127.0.0.1:{base.rsplit(':', 1)[1]}", base), timeout=10)
    assert page.status_code == 200 and "Đăng ký đại biểu" in page.text and f"s={secret}" in page.url
    added = office.post(f"{base}/dang-ky/{number}/dai-bieu", params={"s": secret}, timeout=30,
                        headers={"Referer": page.url},
                        data={"csrf_token": csrf(page.text), "name": "Nguyễn Văn An", "position": "Phó Giám đốc",
                              "email": "an.nguyen@example.vn", "phone": "0987654321"})
    assert added.status_code == 200 and "Nguyễn Văn An" in added.text, added.text[:500]
    by_api = requests.post(f"{base}/api/v1/invitations/{number}/delegates", timeout=30,
                           headers={"X-Invitation-Secret": secret},
                           json={"name": "Trần Thị Bình", "email": "binh.tran@example.vn"})
    assert by_api.status_code == 201, by_api.text
    sent = office.post(f"{base}/dang-ky/{number}/gui-mail", params={"s": secret}, timeout=30,
                       data={"csrf_token": csrf(added.text)})
    assert sent.status_code == 200, sent.text[:300]
    assert office.get(f"{base}/dang-ky/{number}/tien-do", params={"s": secret}, timeout=10).status_code == 200
    assert office.get(f"{base}/dang-ky/{number}", params={"s": "sai-" + secret[:6]}, timeout=10).status_code == 404

    # The delivery worker mails the delegates their codes.
    delivered = _cli(env, "deliver", "--once")
    assert delivered.returncode == 0, delivered.stderr
    wait_until(lambda: len(mail.messages) >= 3, timeout=scaled(20), message="the delegates' codes were not mailed")
    open_database(env["VAORA_DATABASE_URL"])
    from central.registration.models import Delegate

    with database.connection_context():
        codes = [d.code for d in Delegate.select() if d.code]
    database.close()
    assert len(codes) == 2

    stopped = requests.get(f"{base}/healthz", timeout=5)  # one more line after the journey
    assert stopped.status_code in (200, 503)
    logs = log_path.read_text(encoding="utf-8") + delivered.stdout + delivered.stderr
    assert "sms (log only)" in logs and f"?secret={REDACTED}" in logs
    assert f"/dang-ky/{number.replace('/', '%2F')}" in logs or f"/dang-ky/{number}" in logs
    assert f"s={REDACTED}" in logs  # the access log's request lines and Referers
    for value in (secret, *codes, *(format_compact(code) for code in codes), TOKEN, PASSWORD, ADMIN_PASSWORD):
        assert value not in logs, f"{value[:4]}... is in the logs"


@pytest.fixture
def world(app: Flask, client: FlaskClient, clock: Clock) -> dict[str, Any]:
    """Accounts, a meeting and an organisation with a leader's phone (the SMS goes to the log sender)."""
    from .staff import setup_meeting

    make_users(clock())
    return setup_meeting(app, client, orgs=1)


def test_in_process_nothing_logs_a_secret_or_a_code(
    app: Flask, client: FlaskClient, world: dict[str, Any], caplog: pytest.LogCaptureFixture, mail: MailCatcher
) -> None:
    caplog.set_level(logging.INFO)  # what production logs (peewee's query log, at DEBUG, is off: below)
    drafted = client.post("/api/v1/invitations/drafts", headers=AUTH,
                          json={"meeting_id": world["meeting"], "organisation_ids": world["orgs"]})
    assert drafted.status_code == 201
    from .staff import login

    login(client, "lanhdao")
    approved = client.post(f"/api/v1/invitations/{drafted.get_json()[0]['id']}/approve",
                           headers={"X-CSRFToken": page_token(client)})
    assert approved.status_code == 200, approved.get_json()
    ((_phone, sms),) = app.extensions["vaora"].sms_sender.sent
    secret = sms.rsplit("/dk/", 1)[1]  # the SMS's short link: its token opens the invitation like the secret
    number = approved.get_json()["number"]
    registered = client.post(f"/api/v1/invitations/{number}/delegates", headers={"X-Invitation-Secret": secret},
                             json={"name": "Nguyễn Văn An", "email": "an.nguyen@example.vn"})
    assert registered.status_code == 201
    assert client.get(f"/dang-ky/{number}?s={secret}").status_code == 200
    from central.registration.models import Delegate

    with database.connection_context():
        code = Delegate.get_by_id(registered.get_json()["id"]).code
    assert any("sms (log only)" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage()
        for value in (secret, code, API_TOKEN):
            assert value not in text, (record.name, text)


def test_redaction_blanks_query_secrets_tokens_and_bearer_headers() -> None:
    cases = {
        '127.0.0.1 "GET /dang-ky/1%2FTM-UBND?s=Ab_-9z&lang=en HTTP/1.1" 200 "http://h/dang-ky/1?s=Ab_-9z"':
            '127.0.0.1 "GET /dang-ky/1%2FTM-UBND?s=[redacted]&lang=en HTTP/1.1" 200 "http://h/dang-ky/1?s=[redacted]"',
        "Dang ky: https://h.vn/registration/1/TM-UBND?secret=Qw-e_R": "Dang ky: https://h.vn/registration/1/TM-UBND"
                                                                      "?secret=[redacted]",
        "/meetings/documents/3?number=1/TM&secret=abc": "/meetings/documents/3?number=1/TM&secret=[redacted]",
        "/x?token=t1;code=C0DE&key=k#f": "/x?token=[redacted];code=[redacted]&key=[redacted]#f",
        "/login?next=%2Fdang-ky%2F1%3Fs%3Dabc%26x%3D1": "/login?next=%2Fdang-ky%2F1%3Fs%3D[redacted]%26x%3D1",
        "Authorization: Bearer abcdef0123456789": "Authorization: Bearer [redacted]",
        "X-Invitation-Secret: hunter2hunter2": "X-Invitation-Secret: [redacted]",
        'password="p w" token=abc x=1': "password=[redacted] token=[redacted] x=1",
        "status code=200 key_id=3 reason=ok /a?sort=s": "status code=200 key_id=3 reason=ok /a?sort=s",
    }
    for raw, clean in cases.items():
        assert redact_secrets(raw) == clean


def test_every_handler_of_configure_logging_redacts_messages_arguments_extras_and_tracebacks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from protocols.logs import configure_logging

    configure_logging("central")
    (handler,) = logging.getLogger().handlers
    assert any(isinstance(f, RedactSecrets) for f in handler.filters)
    assert isinstance(handler.formatter, StructuredFormatter)
    log = logging.getLogger("central.test")
    log.info('"GET %s HTTP/1.1" 200', "/dang-ky/1?s=bi-mat-1")
    log.info("opened", extra={"url": "/dang-ky/1?secret=bi-mat-2"})
    try:
        raise ValueError("http://h/x?token=bi-mat-3")
    except ValueError:
        log.exception("failed")
    logging.getLogger("peewee").debug("('INSERT ...', ['ABCD-EFGH-JKLM'])")  # every query's parameters
    configure_logging("central", "DEBUG")
    logging.getLogger("peewee").debug("('SELECT ...', ['ABCD-EFGH-JKLM'])")
    out = capsys.readouterr().out
    assert "bi-mat" not in out and out.count(REDACTED) >= 3
    assert "ABCD-EFGH-JKLM" not in out
    assert "exc=" in out and "ValueError" in out
