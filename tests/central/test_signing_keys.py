"""Signing keys: rotation (the old key keeps verifying its codes), revocation (every online gate refuses the
key's codes within a second, over a real Mosquitto and the real change feed), the CLI, the admin page, audit."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.cli import main
from central.core import keys
from central.core.changes import changes_since
from central.core.context import CentralContext
from central.core.db import database, open_database
from central.core.errors import ConflictError, NotFoundError
from central.core.models import AuditEntry
from central.core.signing import find_private_key, key_dir
from central.messaging.changefeed import ChangeFeed
from central.registration.models import Delegate
from devtools.broker import LocalBroker
from gate.decision import decide
from gate.follow import ChangeFollower
from gate.store import GateStore
from gate.transport import MqttTransport
from protocols.codes import read_signed_claims
from protocols.payloads import Snapshot, decode
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until

from .conftest import START, Api, Clock
from .staff import csrf, login, make_users, post_form

PAGE = "/admin/khoa-ky"


def signed_code(api: Api, meeting_id: int, email: str) -> tuple[int, str]:
    """Register a delegate of a signed meeting; return their id and code."""
    organisation = api.organisation(f"Sở {email}")
    response = api.register(api.invitation(meeting_id=meeting_id, organisation_id=organisation["id"]), email=email)
    assert response.status_code == 201, response.get_json()
    delegate_id = response.get_json()["id"]
    with database.connection_context():
        return delegate_id, Delegate.get_by_id(delegate_id).code


def key_of(code: str) -> int:
    claims = read_signed_claims(code)
    assert claims is not None
    return claims.key_id


def gate_store(client: FlaskClient, token: str, path: Path) -> GateStore:
    """A gate's cache loaded from central's snapshot (as the gate fetches it)."""
    response = client.get("/api/v1/gates/g1/snapshot", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    store = GateStore(path)
    store.load_snapshot(decode(Snapshot, response.data), START)
    return store


def audit_rows(action: str) -> list[dict[str, Any]]:
    with database.connection_context():
        return [{"actor": row.actor, **json.loads(row.details)}
                for row in AuditEntry.select().where(AuditEntry.action == action).order_by(AuditEntry.id)]


def test_rotation_signs_with_the_new_key_everywhere_and_the_old_key_keeps_verifying(
        app: Flask, client: FlaskClient, api: Api, clock: Clock, tmp_path: Path) -> None:
    meeting_id = api.meeting(scheme="signed")["id"]
    first_id, first = signed_code(api, meeting_id, "a@example.vn")
    context: CentralContext = app.extensions["vaora"]
    other_worker = CentralContext(config=context.config, mail_sender=context.mail_sender, clock=clock)
    with database.connection_context():
        assert other_worker.signing_key().key_id == key_of(first) == 1
        rotated = keys.rotate(context.config.signing_key_file, "quantri", clock())
        assert other_worker.signing_key().key_id == rotated.key_id == 2, "another process signs with it at once"
    second_id, second = signed_code(api, meeting_id, "b@example.vn")
    assert key_of(second) == 2

    store = gate_store(client, api.gate("g1"), tmp_path / "gate")
    try:
        for delegate_id, code in ((first_id, first), (second_id, second)):
            decision = decide(code, store, START, "hq")
            assert (decision.allowed, decision.delegate_id) == (True, delegate_id), "the retired key still verifies"
    finally:
        store.close()
    with database.connection_context():
        states = {row.key_id: keys.state_of(row) for row in keys.all_keys()}
        assert states == {1: "retired", 2: "active"}
        assert [c.body.kind for c in changes_since(0) if c.body.kind.startswith("key_")] == ["key_add", "key_add"]
    assert audit_rows("signing_key.rotate") == [{"actor": "quantri", "key_id": 2, "retired": 1}]


def test_revoking_the_active_key_rotates_first_and_is_refused_twice(app: Flask, api: Api, db: None,
                                                                     clock: Clock) -> None:
    context: CentralContext = app.extensions["vaora"]
    key_file = context.config.signing_key_file
    assert context.signing_key().key_id == 1
    keys.revoke(key_file, 1, "quantri", clock())
    assert context.signing_key().key_id == 2, "a revoked key never signs again"
    with pytest.raises(ConflictError):
        keys.revoke(key_file, 1, "quantri", clock())
    with pytest.raises(NotFoundError):
        keys.revoke(key_file, 99, "quantri", clock())
    first = find_private_key(key_file, keys.get_key(1).public_key)
    assert first is not None
    with pytest.raises(ConflictError):  # the first key file cannot bring the revoked key back
        keys.register_signing_key(first, clock())
    assert [(c.body.kind, getattr(c.body, "key_id", None)) for c in changes_since(0)] == [
        ("key_add", None), ("key_add", None), ("key_revoke", 1)]
    assert audit_rows("signing_key.revoke") == [{"actor": "quantri", "key_id": 1, "replaced_by": 2}]


def test_the_cli_lists_rotates_and_revokes(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VAORA_DATABASE_URL", database_url)
    monkeypatch.setenv("VAORA_SIGNING_KEY_FILE", str(tmp_path / "signing-key.pem"))
    assert main(["init-db"]) == 0
    assert main(["signing-key", "rotate"]) == 0
    assert main(["signing-key", "rotate"]) == 0
    assert main(["signing-key", "revoke", "1"]) == 0
    capsys.readouterr()
    assert main(["signing-key", "revoke", "1"]) == 2
    assert "refused" in capsys.readouterr().err
    assert main(["signing-key", "list"]) == 0
    listed = [line.split("\t")[:2] for line in capsys.readouterr().out.strip().splitlines()
              if not line.startswith("ts=")]  # the log lines
    assert listed == [["2", "active"], ["1", "revoked"]]
    assert sorted(p.stat().st_mode & 0o777 for p in key_dir(tmp_path / "signing-key.pem").glob("*.pem")) == [
        0o600, 0o600]
    open_database(database_url)
    assert [row["actor"] for row in audit_rows("signing_key.rotate") + audit_rows("signing_key.revoke")] == [
        "cli"] * 3
    database.obj.close()


def test_the_admin_page_is_for_administrators_with_csrf_and_a_confirmation(
        app: Flask, client: FlaskClient, api: Api, clock: Clock) -> None:
    make_users(clock())
    with database.connection_context():
        app.extensions["vaora"].signing_key()
    login(client, "chuyenvien")
    assert client.get(PAGE).status_code == 403
    assert client.post(f"{PAGE}/xoay").status_code in (400, 403)
    client = app.test_client()  # another browser
    login(client, "admin")
    page = client.get(PAGE)
    assert page.status_code == 200 and "Khóa ký mã" in page.text and "Đang ký mã" in page.text
    assert 'data-confirm="Thu hồi khóa ký số 1?' in page.text
    assert client.post(f"{PAGE}/xoay").status_code in (302, 303, 400)  # no CSRF token: nothing happens
    with database.connection_context():
        assert len(keys.all_keys()) == 1
    assert post_form(client, PAGE, f"{PAGE}/xoay", {}).status_code in (302, 303)
    assert post_form(client, PAGE, f"{PAGE}/1/thu-hoi", {}).status_code in (302, 303)
    with database.connection_context():
        assert {row.key_id: keys.state_of(row) for row in keys.all_keys()} == {1: "revoked", 2: "active"}
    assert [row["actor"] for row in audit_rows("signing_key.revoke")] == ["admin"]
    english = client.get(f"{PAGE}?lang=en").text
    assert "Signing keys" in english and "Revoked" in english


def test_a_revoked_keys_codes_are_refused_by_an_online_gate_within_a_second(
        app: Flask, client: FlaskClient, api: Api, clock: Clock, broker: LocalBroker, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    make_users(clock())
    meeting_id = api.meeting(scheme="signed")["id"]
    _, code = signed_code(api, meeting_id, "a@example.vn")
    store = gate_store(client, api.gate("g1"), tmp_path / "gate")
    follower = ChangeFollower(store, lambda: None, clock=lambda: START)
    transport = MqttTransport("g1", broker.host, broker.port, site_id="hq")
    transport.on_change = follower.handle_payload
    feed = ChangeFeed(broker.host, broker.port, client_id="feed-keys-test")
    transport.start()
    feed.start()
    try:
        assert transport.wait_subscribed(scaled(10))
        wait_until(lambda: feed.published_seq >= store.seq, message="the feed caught up with the snapshot")
        assert decide(code, store, START, "hq").allowed
        login(client, "admin")
        token = csrf(client.get(PAGE).text)
        started = time.monotonic()
        assert client.post(f"{PAGE}/1/thu-hoi", data={"csrf_token": token}).status_code in (302, 303)
        wait_until(lambda: decide(code, store, START, "hq").reason is Reason.UNKNOWN_KEY, timeout=1.0,
                   message="the gate still admits the revoked key's code")
        elapsed = time.monotonic() - started
    finally:
        feed.stop()
        transport.stop()
        store.close()
    with capsys.disabled():
        print(f"\nkey revocation reached the gate in {elapsed * 1000:.0f} ms")
    reopened = GateStore(tmp_path / "gate")  # after a restart: the revocation was stored, not only in memory
    try:
        assert decide(code, reopened, START + timedelta(minutes=1), "hq").reason is Reason.UNKNOWN_KEY
    finally:
        reopened.close()


def test_a_key_registered_before_short_keys_gets_one_when_next_loaded_and_gates_learn_it(
        app: Flask, client: FlaskClient, api: Api, clock: Clock, tmp_path: Path) -> None:
    """A key row from before migration m0009 (no short key): the next signing load derives it, sends a
    ``key_add``, and the short code issued then verifies at a gate loaded from the snapshot."""
    from central.core.models import SigningKey
    from protocols.codes import signed_version

    context: CentralContext = app.extensions["vaora"]
    meeting_id = api.meeting(scheme="signed")["id"]
    signed_code(api, meeting_id, "first@example.vn")
    with database.connection_context():
        SigningKey.update(short_public_key=None).execute()
        before = [c.body.kind for c in changes_since(0)].count("key_add")
        fresh_worker = CentralContext(config=context.config, mail_sender=context.mail_sender, clock=clock)
        assert fresh_worker.signing_key().key_id == 1
        assert SigningKey.get(SigningKey.key_id == 1).short_public_key is not None
        assert [c.body.kind for c in changes_since(0)].count("key_add") == before + 1
    delegate_id, code = signed_code(api, meeting_id, "second@example.vn")
    assert signed_version(code) == 2
    store = gate_store(client, api.gate("g1"), tmp_path / "gate")
    try:
        assert set(store.short_public_keys()) == {1}
        decision = decide(code, store, START, "hq")
        assert (decision.allowed, decision.delegate_id) == (True, delegate_id)
    finally:
        store.close()
