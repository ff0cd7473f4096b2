"""A gate's snapshot: authenticated by its own token, carries hashes (never compact codes) and the keys."""

from __future__ import annotations

import json
from datetime import timedelta

from central import models
from central.db import database
from protocols.payloads import Snapshot, decode

from .conftest import START, Api, Clock


def test_snapshot_needs_the_gates_own_token(api: Api, client) -> None:
    token = api.gate("g1")
    other = api.gate("g2")
    assert client.get("/api/v1/gates/g1/snapshot").status_code == 401
    bad = client.get("/api/v1/gates/g1/snapshot", headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401 and bad.get_json()["error"] == "unauthorized"
    others = client.get("/api/v1/gates/g1/snapshot", headers={"Authorization": f"Bearer {other}"})
    assert others.status_code == 401
    unknown = client.get("/api/v1/gates/nope/snapshot", headers={"Authorization": f"Bearer {token}"})
    assert unknown.status_code == 401
    assert api.post("/api/v1/gates", {"gate_id": "g1", "site_id": "hq"}).status_code == 400


def test_snapshot_carries_hashes_not_codes(api: Api, client, clock: Clock) -> None:
    meeting = api.meeting(site_id="hq")
    api.meeting(site_id="branch")
    over = api.meeting(site_id="hq", ends_at=(clock.now + timedelta(hours=1)).isoformat(),
                       starts_at=(clock.now - timedelta(hours=1)).isoformat())
    invitation = api.invitation(meeting_id=meeting["id"])
    delegate_id = api.register(invitation).get_json()["id"]
    clock.now += timedelta(hours=2)  # the short meeting is over now
    token = api.gate("g1", site_id="hq")

    response = client.get("/api/v1/gates/g1/snapshot", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    snapshot = decode(Snapshot, response.data)
    assert [m.id for m in snapshot.meetings] == [meeting["id"]]
    assert over["id"] not in [m.id for m in snapshot.meetings]
    with database.connection_context():
        row = models.Delegate.get_by_id(delegate_id)
        last_seq = models.Change.select().order_by(models.Change.seq.desc()).first().seq
    [entry] = snapshot.delegates
    assert entry.code_hash == row.code_hash and entry.name == "Nguyễn Văn An"
    assert entry.organisation == "Sở Tài chính"
    assert entry.valid_from == START - timedelta(minutes=120)
    assert row.code not in response.get_data(as_text=True)
    assert snapshot.seq == last_seq > 0
    assert len(snapshot.keys) == 1 and not snapshot.keys[0].revoked
    assert json.loads(response.data)["v"] == 1
