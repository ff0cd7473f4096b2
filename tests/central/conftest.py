"""Fixtures for central: an app on the ``database_url`` backend, a frozen clock, API helpers.

Fixtures build small to large: organisation and meeting, then invitation, then delegate.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient

from central.app import create_app
from central.core.db import database
from central.gates.checkins import record_heartbeat
from central.outbound.mail import SmtpMailSender
from devtools.approval import RegistrationLink, mail_text, registration_link
from devtools.mailcatcher import MailCatcher
from devtools.ports import free_port
from protocols import payloads
from protocols.reasons import Reason

from ..conftest import wait_until

API_TOKEN = "test-api-token-0123456789"
START = datetime(2025, 3, 10, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội


class Clock:
    """A settable clock passed to the app as ``clock=``."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def booked_ahead(clock: Clock, days: int = 7) -> Iterator[None]:
    """Run the block at ``days`` before the clock's time, then put it back: a meeting with remote points is
    booked at least 3 working days before its day (``central.meetings.booking``), and the fixtures' meetings start
    two days (a weekend) after the frozen now, so a fixture books such a meeting a week ahead."""
    now = clock.now
    clock.now = now - timedelta(days=days)
    try:
        yield
    finally:
        clock.now = now


class _RefusingHandler:
    """An SMTP server that refuses every recipient for good (550)."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        return "550 5.1.1 mailbox unavailable"


@contextmanager
def refusing_mail_server(app: Flask) -> Iterator[None]:
    """Within the block, the app sends mail to a real SMTP server (aiosmtpd) that refuses every recipient (550)."""
    port = free_port()
    refusing = Controller(_RefusingHandler(), hostname="127.0.0.1", port=port)
    refusing.start()
    try:
        app.extensions["vaora"].mail_sender = SmtpMailSender("127.0.0.1", port)
        yield
    finally:
        refusing.stop()


@pytest.fixture
def clock() -> Clock:
    """The app's clock, frozen two days before the meeting."""
    return Clock(START - timedelta(days=2))


def served_config(tmp_path: Path, mail: MailCatcher) -> dict[str, Any]:
    """The ``VAORA_*`` mapping for central served on a free port to a browser: SQLite under ``tmp_path``, the mail
    catcher, and an http public address (served over http here, a Secure cookie would not come back)."""
    return {
        "VAORA_DATABASE_URL": f"sqlite:///{tmp_path}/central.db",
        "VAORA_SMTP_HOST": mail.host,
        "VAORA_SMTP_PORT": mail.port,
        "VAORA_MAIL_FROM": "vanphong@ubnd.example.vn",
        "VAORA_API_TOKEN": API_TOKEN,
        "VAORA_SIGNING_KEY_FILE": str(tmp_path / "key.pem"),
        "VAORA_PUBLIC_URL": "http://vaora.example.vn",
        "VAORA_DATA_DIR": str(tmp_path / "data"),
        "TESTING": True,
    }


@pytest.fixture
def central_config(database_url: str, tmp_path: Path, mail: MailCatcher) -> dict[str, Any]:
    """The ``VAORA_*`` mapping for a test app: the backend under test, the mail catcher, a temp key file."""
    return {
        "VAORA_DATABASE_URL": database_url,
        "VAORA_SMTP_HOST": mail.host,
        "VAORA_SMTP_PORT": mail.port,
        "VAORA_MAIL_FROM": "vanphong@ubnd.example.vn",
        "VAORA_API_TOKEN": API_TOKEN,
        "VAORA_SIGNING_KEY_FILE": str(tmp_path / "keys" / "signing-key.pem"),
        "VAORA_PUBLIC_URL": "https://vaora.example.vn",
        "VAORA_DATA_DIR": str(tmp_path / "data"),
        "TESTING": True,
    }


@pytest.fixture
def app(central_config: dict[str, Any], clock: Clock) -> Iterator[Flask]:
    """A central app on the backend under test."""
    application = create_app(central_config, clock=clock)
    yield application
    if not database.is_closed():
        database.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def db(app: Flask) -> Iterator[None]:
    """An open connection in the test thread, for calling services directly."""
    database.connect(reuse_if_open=True)
    yield
    if not database.is_closed():
        database.close()


AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
APPROVER = "lanhdao-duyet"
"""The leader account :meth:`Api.approve` approves with (created on first use, password :data:`staff.PASSWORD`)."""


class Api:
    """Calls the JSON API the way an organiser, a leader, an invited organisation and a gate installer would.

    ``mail`` is the SMTP catcher the app sends to (for invitation links that went out by e-mail only).
    """

    def __init__(self, client: FlaskClient, mail: MailCatcher | None = None) -> None:
        self.client = client
        self.mail = mail
        self._approver: FlaskClient | None = None

    def post(self, url: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        """POST JSON with the API token and return the response."""
        return self.client.post(url, json=body, headers={**AUTH, **(headers or {})})

    def get(self, url: str) -> Any:
        """GET with the API token and return the response."""
        return self.client.get(url, headers=AUTH)

    def meeting(self, scheme: str = "compact", site_id: str = "hq", **extra: Any) -> dict[str, Any]:
        """Create a meeting and return its JSON."""
        body = {
            "title": "Họp giao ban tháng 3",
            "starts_at": START.isoformat(),
            "ends_at": (START + timedelta(hours=3)).isoformat(),
            "venue": "Phòng họp số 1",
            "site_id": site_id,
            "scheme": scheme,
            **extra,
        }
        response = self.post("/api/v1/meetings", body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def organisation(self, name: str = "Sở Tài chính") -> dict[str, Any]:
        """Create an organisation (its leader's phone receives the invitation SMS) and return its JSON."""
        response = self.post("/api/v1/organisations", {"name": name, "leader_phone": "0912345678"})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def draft(self, meeting_id: int, organisation_id: int) -> dict[str, Any]:
        """Create an invitation as the organiser (API token): a draft, without number or secret."""
        response = self.post("/api/v1/invitations", {"meeting_id": meeting_id, "organisation_id": organisation_id})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def approver(self) -> FlaskClient:
        """A client of its own logged in as the leader :data:`APPROVER` (the account is made on first use)."""
        from central.auth import users
        from central.auth.models import User

        from .staff import PASSWORD, cheap_hashing, login

        with database.connection_context():
            if User.get_or_none(User.username == APPROVER) is None:
                cheap_hashing()
                users.create_user({"username": APPROVER, "password": PASSWORD, "role": "approver",
                                   "full_name": "Lãnh đạo duyệt"}, actor="test",
                                  now=self.client.application.extensions["vaora"].clock())
        if self._approver is None:
            self._approver = self.client.application.test_client()
        assert login(self._approver, APPROVER).status_code == 302
        return self._approver

    def approve(self, invitation_id: int) -> Any:
        """Approve a draft as the leader through the session API (numbered and sent); returns the response."""
        from .staff import page_token

        approver = self.approver()
        token = page_token(approver, "/invitations/")
        return approver.post(f"/api/v1/invitations/{invitation_id}/approve", headers={"X-CSRFToken": token})

    def received_link(self, number: str) -> RegistrationLink:
        """The registration link of invitation ``number`` as the organisation received it: from the SMS the app
        sent (its SMS sender keeps what it sent) or, failing that, from the e-mail."""
        sent = getattr(self.client.application.extensions["vaora"].sms_sender, "sent", [])
        texts = [text for _phone, text in sent]
        if self.mail is not None:
            texts += [mail_text(message) for message in self.mail.messages]
        return registration_link(texts, number)

    def _wait_for_link(self, number: str) -> RegistrationLink:
        """:meth:`received_link`, waiting for it while an app's mail-queue worker thread is still sending."""

        def found() -> RegistrationLink | None:
            try:
                return self.received_link(number)
            except LookupError:
                return None

        return wait_until(found, timeout=30, message=f"no registration link for invitation {number} was sent")

    def invitation(self, meeting_id: int | None = None, organisation_id: int | None = None) -> dict[str, Any]:
        """Create an invitation the official way (making a meeting and organisation when not given): the organiser
        drafts it, the leader approves it (numbered and sent), and the secret is read from the message the
        organisation received. Returns the approved invitation plus ``secret`` and ``registration_url``."""
        meeting_id = meeting_id or self.meeting()["id"]
        organisation_id = organisation_id or self.organisation()["id"]
        draft = self.draft(meeting_id, organisation_id)
        approved = self.approve(draft["id"])
        assert approved.status_code == 200, approved.get_json()
        body = approved.get_json()
        assert "secret" not in body
        received = self._wait_for_link(body["number"])
        return {**body, "secret": received.secret, "registration_url": received.link}

    def register(self, invitation: dict[str, Any], secret: str | None = None, **fields: Any) -> Any:
        """Register a delegate with the invitation's secret; returns the response."""
        body = {"name": "Nguyễn Văn An", "position": "Phó Giám đốc", "email": "an.nguyen@example.vn"}
        body.update(fields)
        return self.client.post(
            f"/api/v1/invitations/{invitation['number']}/delegates",
            json=body,
            headers={"X-Invitation-Secret": invitation["secret"] if secret is None else secret},
        )

    def gate(self, gate_id: str = "g1", site_id: str = "hq") -> str:
        """Register a gate and return its token."""
        response = self.post("/api/v1/gates", {"gate_id": gate_id, "site_id": site_id, "name": "Cổng chính"})
        assert response.status_code == 201, response.get_json()
        return response.get_json()["token"]


@pytest.fixture
def api(client: FlaskClient, mail: MailCatcher) -> Api:
    """API helper over the test client."""
    return Api(client, mail)


def heard_from(gate_id: str, now: datetime, **fields: Any) -> None:
    """Central records a heartbeat gate ``gate_id`` sent at ``now`` (cache and outbox empty, ``vaora-gate 1.4.2``;
    ``fields`` add to it, e.g. ``fail_mode``): the gate is online."""
    with database.connection_context():
        beat = payloads.Heartbeat(gate_id=gate_id, sent_at=now, cache_seq=0, outbox_pending=0,
                                  software_version="vaora-gate 1.4.2", **fields)
        assert record_heartbeat(beat, gate_id, now) == Reason.OK


def gates_at_two_sites(api: Api, now: datetime) -> None:
    """Gate g1 at site hq, heard at ``now`` (online, fail mode secure), and gate r1 at site st, registered only."""
    api.gate("g1", "hq")
    api.gate("r1", "st")
    heard_from("g1", now, fail_mode="secure")
