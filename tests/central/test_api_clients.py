"""API clients: one token each, with scopes. The token is shown once and stored hashed; each scope opens its
routes and nothing else; a revoked token is refused; every change is audited; the page is the administrators';
the CLI creates, lists and revokes; a meeting create with an ``Idempotency-Key`` or an ``external_id`` makes one
meeting; a database of the previous migration upgrades. Runs on SQLite and PostgreSQL (``database_url``).
"""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import peewee
import pytest
from flask import Flask
from flask.testing import FlaskClient

import central.migrations as migrations
from central.cli import main
from central.clients import services as clients
from central.clients.models import ApiClient
from central.clients.scopes import ATTENDANCE_READ, ENDPOINT_SCOPES, INVITATIONS_DRAFT, MEETINGS_CREATE
from central.core.db import database, open_database
from central.core.models import AuditEntry
from central.meetings import services as meetings
from central.meetings.models import IdempotencyRecord, Meeting

from .conftest import AUTH, START, Api, Clock
from .staff import csrf, login, make_users, post_form

MEETING = {
    "title": "Họp giao ban tháng 3 (từ văn bản 125/UBND-VP)",
    "starts_at": START.isoformat(),
    "ends_at": (START + timedelta(hours=3)).isoformat(),
    "venue": "Phòng họp số 1",
    "site_id": "hq",
}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _client(app: Flask, clock: Clock, name: str, *scopes: str) -> str:
    """Create a client through the service and return its token."""
    with database.connection_context():
        return clients.create_client({"name": name, "scopes": list(scopes)}, actor="admin", now=clock()).token


def _meeting_count() -> int:
    with database.connection_context():
        return Meeting.select().count()


def test_every_endpoint_a_scope_names_exists(app: Flask) -> None:
    """A renamed route would silently close its scope; the mapping names only routes the app has."""
    assert set(ENDPOINT_SCOPES) <= set(app.view_functions)


# ----- the page: token shown once, stored hashed, listed, revoked, audited, administrators only ---------------


@pytest.fixture
def staff(app: Flask, clock: Clock) -> None:
    """One account per role."""
    make_users(clock())


def test_the_admin_page_shows_the_token_once_stores_its_hash_and_revokes(
    app: Flask, client: FlaskClient, staff: None, clock: Clock
) -> None:
    login(client, "admin")
    page = client.get("/admin/api-clients/")
    assert page.status_code == 200
    assert "Ứng dụng kết nối" in page.text

    created = post_form(client, "/admin/api-clients/", "/admin/api-clients/",
                        {"name": "ioffice", "scopes": [MEETINGS_CREATE, INVITATIONS_DRAFT]})
    assert created.status_code == 201, created.text
    assert created.headers["Cache-Control"] == "no-store"
    token = created.text.split('<p><code>')[1].split("</code>")[0]
    assert token.startswith("vaora_") and len(token) >= 6 + 43  # 32 random bytes, URL-safe base64

    listed = client.get("/admin/api-clients/")
    assert token not in listed.text  # never shown again
    assert token[:14] in listed.text  # its public prefix tells it apart
    assert "Tạo cuộc họp" in listed.text and "Tạo dự thảo thư mời" in listed.text
    with database.connection_context():
        row = ApiClient.get(ApiClient.name == "ioffice")
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        stored = database.execute_sql('SELECT * FROM "api_client"').fetchall()
        assert not any(token in str(value) for value in stored[0])
        assert row.scope_set == {MEETINGS_CREATE, INVITATIONS_DRAFT}
        assert row.created_by == "admin"
        entry = AuditEntry.get(AuditEntry.action == "api_client.create")
        assert entry.actor == "admin" and entry.target == f"api_client:{row.id}"
        assert token not in entry.details

    assert client.post("/api/v1/meetings", json=MEETING, headers=_bearer(token)).status_code == 201

    # Revoking needs the form's CSRF token.
    assert client.post(f"/admin/api-clients/{row.id}/revoke").status_code in {302, 400}
    assert client.get("/api/v1/meetings", headers=_bearer(token)).status_code == 200
    revoked = post_form(client, "/admin/api-clients/", f"/admin/api-clients/{row.id}/revoke", {})
    assert revoked.status_code == 302
    answer = client.post("/api/v1/meetings", json=MEETING, headers=_bearer(token))
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "unauthorized"
    assert "Đã thu hồi" in client.get("/admin/api-clients/").text
    with database.connection_context():
        entry = AuditEntry.get(AuditEntry.action == "api_client.revoke")
        assert entry.actor == "admin" and entry.target == f"api_client:{row.id}"


def test_the_page_refuses_a_bad_name_or_no_scope(client: FlaskClient, staff: None) -> None:
    login(client, "admin")
    answer = post_form(client, "/admin/api-clients/", "/admin/api-clients/", {"name": "Văn phòng!"})
    assert answer.status_code == 400
    assert "Chọn ít nhất một quyền" in answer.text
    assert "vaora_" not in answer.text
    with database.connection_context():
        assert ApiClient.select().count() == 0


@pytest.mark.parametrize(("username", "own_page"), [("chuyenvien", "/meetings/"), ("lanhdao", "/meetings/"),
                                                     ("baove", "/ban-tiep-don/")])
def test_only_administrators_open_the_page(client: FlaskClient, staff: None, username: str, own_page: str,
                                           app: Flask, clock: Clock) -> None:
    _client(app, clock, "ioffice", MEETINGS_CREATE)
    login(client, username)
    assert client.get("/admin/api-clients/").status_code == 403
    token = csrf(client.get(own_page).text)
    assert client.post("/admin/api-clients/1/revoke", data={"csrf_token": token}).status_code == 403
    with database.connection_context():
        assert ApiClient.get_by_id(1).revoked_at is None


# ----- scopes ---------------------------------------------------------------------------------------------


@pytest.fixture
def world(api: Api) -> dict[str, Any]:
    """A meeting and an organisation, made with the operator's token."""
    return {"meeting": api.meeting(), "organisation": api.organisation(),
            "other_organisation": api.organisation("Sở Xây dựng")}


def _calls(world: dict[str, Any]) -> dict[str, tuple[str, str, Any]]:
    meeting_id = world["meeting"]["id"]
    return {
        "create meeting": ("POST", "/api/v1/meetings", MEETING),
        "read attendance": ("GET", f"/api/v1/meetings/{meeting_id}/attendance", None),
        "draft invitations": ("POST", "/api/v1/invitations/drafts",
                              {"meeting_id": meeting_id, "organisation_ids": [world["organisation"]["id"]]}),
        "create invitation": ("POST", "/api/v1/invitations",  # a draft too (issue 12)
                              {"meeting_id": meeting_id, "organisation_id": world["other_organisation"]["id"]}),
    }


OUT_OF_EVERY_SCOPE = [
    ("PATCH", "/api/v1/meetings/{meeting_id}", {"title": "Đổi tên"}),
    ("POST", "/api/v1/meetings/{meeting_id}/status", {"status": "cancelled"}),
    ("POST", "/api/v1/gates", {"gate_id": "g9", "site_id": "hq"}),
    ("POST", "/api/v1/organisations", {"name": "Sở Nội vụ"}),
    ("GET", "/api/v1/audit", None),
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/venues", {"name": "Hội trường B", "kind": "main", "site_id": "hq"}),
]


@pytest.mark.parametrize(("scope", "allowed"), [
    (MEETINGS_CREATE, {"create meeting"}),
    (ATTENDANCE_READ, {"read attendance"}),
    (INVITATIONS_DRAFT, {"draft invitations", "create invitation"}),
])
def test_each_scope_opens_its_routes_and_nothing_else(
    app: Flask, client: FlaskClient, clock: Clock, world: dict[str, Any], scope: str, allowed: set[str]
) -> None:
    token = _client(app, clock, "ioffice", scope)
    for name, (method, url, body) in _calls(world).items():
        answer = client.open(url, method=method, json=body, headers=_bearer(token))
        if name in allowed:
            assert answer.status_code in {200, 201}, (name, answer.get_json())
        else:
            assert answer.status_code == 403, (name, answer.status_code)
            assert answer.get_json()["reason"] == "scope_missing"
    for method, url, body in OUT_OF_EVERY_SCOPE:
        answer = client.open(url.format(meeting_id=world["meeting"]["id"]), method=method, json=body,
                             headers=_bearer(token))
        assert answer.status_code == 403, (method, url, answer.status_code)
    me = client.get("/api/v1/me", headers=_bearer(token)).get_json()
    assert me["username"] == "client:ioffice"
    with database.connection_context():
        assert Meeting.get_by_id(world["meeting"]["id"]).title == "Họp giao ban tháng 3"  # not renamed
        actions = [e.action for e in AuditEntry.select().where(AuditEntry.actor == "client:ioffice")
                   .order_by(AuditEntry.id)]
    # The client's writes, audited under its name: only those its scope allows.
    if scope == MEETINGS_CREATE:
        assert actions == ["meeting.create"]
    elif scope == ATTENDANCE_READ:
        assert actions == []
    else:  # the drafts, then the invitation POST /invitations made
        assert actions[0] == "invitation.draft" and len(actions) == 2 and actions[1].startswith("invitation.")


def test_the_operators_token_still_reaches_everything_it_did(client: FlaskClient, world: dict[str, Any]) -> None:
    for method, url, body in _calls(world).values():
        assert client.open(url, method=method, json=body, headers=AUTH).status_code in {200, 201}
    assert client.post("/api/v1/gates", json={"gate_id": "g9", "site_id": "hq"}, headers=AUTH).status_code == 201


def test_unknown_and_revoked_tokens_are_401_and_last_use_is_recorded_cheaply(
    app: Flask, client: FlaskClient, clock: Clock, world: dict[str, Any]
) -> None:
    token = _client(app, clock, "ioffice", ATTENDANCE_READ)
    url = f"/api/v1/meetings/{world['meeting']['id']}/attendance"
    assert client.get(url, headers=_bearer(token[:-1] + ("A" if token[-1] != "A" else "B"))).status_code == 401

    first_use = clock()
    assert client.get(url, headers=_bearer(token)).status_code == 200
    clock.now = first_use + timedelta(seconds=30)
    assert client.get(url, headers=_bearer(token)).status_code == 200
    with database.connection_context():
        assert ApiClient.get(ApiClient.name == "ioffice").last_used_at == first_use  # no write within the minute
    clock.now = first_use + timedelta(minutes=2)
    assert client.get(url, headers=_bearer(token)).status_code == 200
    with database.connection_context():
        assert ApiClient.get(ApiClient.name == "ioffice").last_used_at == clock.now
        clients.revoke_client("ioffice", actor="admin", now=clock())
    answer = client.get(url, headers=_bearer(token))
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


# ----- the CLI ------------------------------------------------------------------------------------------------


def test_the_cli_creates_lists_and_revokes(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAORA_DATABASE_URL", database_url)
    monkeypatch.setenv("VAORA_SIGNING_KEY_FILE", str(tmp_path / "key.pem"))
    assert main(["api-client", "create", "--name", "ioffice", "--scope", MEETINGS_CREATE,
                 "--scope", ATTENDANCE_READ]) == 0
    out = capsys.readouterr()
    token = out.out.strip().splitlines()[-1]  # the last line (log lines go to standard output too)
    assert token.startswith("vaora_")
    assert "shown once" in out.err

    assert main(["api-client", "create", "--name", "ioffice", "--scope", MEETINGS_CREATE]) == 2
    assert "đã được dùng" in capsys.readouterr().err
    assert main(["api-client", "create", "--name", "other", "--scope", "meetings:delete"]) == 2
    assert "Quyền không hợp lệ" in capsys.readouterr().err

    assert main(["api-client", "list"]) == 0
    listed = capsys.readouterr().out
    assert "ioffice" in listed and token[:14] in listed and token not in listed
    assert "attendance:read meetings:create" in listed and "active" in listed

    assert main(["api-client", "revoke", "ioffice"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["api-client", "revoke", "ioffice"]) == 2
    assert main(["api-client", "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    open_database(database_url)
    with database.connection_context():
        assert [e.actor for e in AuditEntry.select().where(AuditEntry.action.startswith("api_client."))] == \
            ["cli", "cli"]


# ----- idempotent meeting creation ----------------------------------------------------------------------------


def test_a_retried_create_with_one_key_makes_one_meeting(app: Flask, client: FlaskClient, clock: Clock) -> None:
    token = _client(app, clock, "ioffice", MEETINGS_CREATE)
    headers = {**_bearer(token), "Idempotency-Key": "vb-125-lan-1"}
    first = client.post("/api/v1/meetings", json=MEETING, headers=headers)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    again = client.post("/api/v1/meetings", json=MEETING, headers=headers)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert _meeting_count() == 1

    changed = client.post("/api/v1/meetings", json={**MEETING, "title": "Khác"}, headers=headers)
    assert changed.status_code == 422
    assert changed.get_json()["reason"] == "idempotency_key_reused"
    assert _meeting_count() == 1

    # Keys are per caller: the operator's token with the same key makes its own meeting.
    other = client.post("/api/v1/meetings", json=MEETING, headers={**AUTH, "Idempotency-Key": "vb-125-lan-1"})
    assert other.status_code == 201 and other.get_json()["id"] != first.get_json()["id"]
    bad = client.post("/api/v1/meetings", json=MEETING, headers={**AUTH, "Idempotency-Key": "có dấu"})
    assert bad.status_code == 400
    assert "Idempotency-Key" in bad.get_json()["fields"]
    with database.connection_context():
        assert IdempotencyRecord.select().count() == 2
        assert AuditEntry.select().where(AuditEntry.action == "meeting.create").count() == 2


def test_an_external_id_makes_one_meeting_per_client(app: Flask, client: FlaskClient, clock: Clock) -> None:
    ioffice = _client(app, clock, "ioffice", MEETINGS_CREATE)
    other = _client(app, clock, "qlvb-so", MEETINGS_CREATE)
    body = {**MEETING, "external_id": "VB-2025-0125"}
    first = client.post("/api/v1/meetings", json=body, headers=_bearer(ioffice))
    assert first.status_code == 201
    assert first.get_json()["external_id"] == "VB-2025-0125"
    duplicate = client.post("/api/v1/meetings", json={**body, "title": "Gửi lại"}, headers=_bearer(ioffice))
    assert duplicate.status_code == 409
    assert duplicate.get_json()["reason"] == "duplicate_external_id"
    assert duplicate.get_json()["meeting_id"] == first.get_json()["id"]
    # Another client's document may carry the same id.
    assert client.post("/api/v1/meetings", json=body, headers=_bearer(other)).status_code == 201
    # Only a client has a namespace for document ids.
    refused = client.post("/api/v1/meetings", json=body, headers=AUTH)
    assert refused.status_code == 400
    assert "external_id" in refused.get_json()["fields"]
    assert _meeting_count() == 2
    with database.connection_context():
        meeting = Meeting.get_by_id(first.get_json()["id"])
        assert meeting.api_client.name == "ioffice"


def test_concurrent_creates_with_one_key_make_one_meeting(app: Flask, clock: Clock, db: None) -> None:
    """Eight requests at once with one key (PostgreSQL: truly concurrent; SQLite: serialised by its write lock)."""
    barrier = threading.Barrier(8)
    results: list[Any] = []

    def create() -> None:
        with database.connection_context():
            barrier.wait()
            try:
                results.append(meetings.create_meeting_idempotent(
                    MEETING, clock(), actor="client:ioffice", idempotency_key="k-1").meeting.id)
            except Exception as exc:  # collected and asserted on below
                results.append(exc)

    database.close()
    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1, results
    assert _meeting_count() == 1


def test_a_create_that_loses_the_race_returns_the_winners_meeting(
    app: Flask, clock: Clock, db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving forced: another request with the key commits between this one's lookup and its insert.
    Its insert then violates the unique (actor, key) index, it rolls back, and it returns the winner's meeting."""
    if isinstance(database.obj, peewee.SqliteDatabase):
        pytest.skip("SQLite takes its write lock before the lookup: no other writer can commit in between")
    real = meetings.create_meeting
    winner: list[int] = []
    calls: list[str] = []

    def create_after_a_rival(*args: Any, **kwargs: Any) -> Meeting:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            def rival() -> None:
                with database.connection_context():
                    winner.append(meetings.create_meeting_idempotent(
                        MEETING, clock(), actor="client:ioffice", idempotency_key="k-1").meeting.id)
            thread = threading.Thread(target=rival, name="rival")
            thread.start()
            thread.join()
        return real(*args, **kwargs)

    monkeypatch.setattr(meetings, "create_meeting", create_after_a_rival)
    created = meetings.create_meeting_idempotent(MEETING, clock(), actor="client:ioffice", idempotency_key="k-1")
    assert calls == ["MainThread", "rival"]  # the rival ran inside this request, between lookup and insert
    assert created.replayed
    assert created.meeting.id == winner[0]
    assert Meeting.select().count() == 1


def test_a_create_that_loses_the_external_id_race_names_the_winners_meeting(
    app: Flask, clock: Clock, db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another create with the same external id commits after this one looked for it: the unique index refuses
    this one's row, and the answer names the meeting that won."""
    issued = clients.create_client({"name": "ioffice", "scopes": [MEETINGS_CREATE]}, actor="admin", now=clock())
    client_id = issued.client.id
    body = {**MEETING, "external_id": "VB-7"}
    real = meetings._by_external_id
    winner: list[int] = []

    def look_up_then_lose(api_client_id: int, external_id: str) -> Meeting | None:
        if winner:
            return real(api_client_id, external_id)

        def rival() -> None:
            with database.connection_context():
                winner.append(meetings.create_meeting(body, clock(), actor="client:ioffice",
                                                      api_client_id=client_id).id)
        winner.append(0)  # the rival's own look-up must see the truth
        thread = threading.Thread(target=rival)
        thread.start()
        thread.join()
        return None  # what this request saw before the rival committed

    monkeypatch.setattr(meetings, "_by_external_id", look_up_then_lose)
    with pytest.raises(meetings.DuplicateExternalIdError) as refused:
        meetings.create_meeting(body, clock(), actor="client:ioffice", api_client_id=client_id)
    assert refused.value.meeting_id == winner[1]
    assert Meeting.select().count() == 1


# ----- the migration --------------------------------------------------------------------------------------


def test_a_database_of_the_previous_migration_upgrades(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = [m for m in migrations.discover() if m.name < "0004"]
    db = open_database(empty_database_url)
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "discover", lambda: earlier)
        migrations.migrate()
    p = db.param
    with db.connection_context():
        db.execute_sql(
            'INSERT INTO "meeting" (title, starts_at, ends_at, venue, site_id, scheme, entry_policy, status, '
            f'created_at, agenda, chair, walkin_policy) VALUES ({", ".join([p] * 12)})',
            ("Hội nghị cũ", START.replace(tzinfo=None), (START + timedelta(hours=2)).replace(tzinfo=None),
             "Hội trường A", "hq", "compact", "single", "open", START.replace(tzinfo=None), "", "", "approval"))
    assert migrations.migrate()[0] == "0004_api_clients"

    from central.app import create_app

    token = "t" * 32
    app = create_app({"VAORA_DATABASE_URL": empty_database_url, "VAORA_API_TOKEN": token,
                      "VAORA_SIGNING_KEY_FILE": str(tmp_path / "key.pem"), "VAORA_DATA_DIR": str(tmp_path / "data"),
                      "TESTING": True})
    with database.connection_context():
        old = Meeting.get(Meeting.title == "Hội nghị cũ")
        assert old.external_id is None and old.api_client_id is None
        issued = clients.create_client({"name": "ioffice", "scopes": [MEETINGS_CREATE]}, actor="admin",
                                       now=START)
    test_client = app.test_client()
    answer = test_client.post("/api/v1/meetings", json={**MEETING, "external_id": "VB-1"},
                              headers={**_bearer(issued.token), "Idempotency-Key": "a"})
    assert answer.status_code == 201, answer.get_json()
    assert test_client.get(f"/api/v1/meetings/{old.id}", headers=_bearer(token)).get_json()["external_id"] is None
