"""A gate's snapshot: authenticated by its own token, carries hashes (never compact codes) and the keys."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from central.core.db import database
from central.core.models import Change
from central.registration.models import Delegate
from gate.store import GateStore
from gate.sync import SnapshotStream, SyncError, SyncFailure, fetch_snapshot
from protocols.codes import compact_hash
from protocols.payloads import (
    SNAPSHOT_STREAM_MEDIA_TYPE,
    DelegateEntry,
    KeyEntry,
    MeetingEntry,
    Snapshot,
    SnapshotEnd,
    SnapshotHeader,
    decode,
)

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
    assert api.post("/api/v1/gates", {"gate_id": "g1", "site_id": "hq"}).status_code == 409  # already registered


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
        row = Delegate.get_by_id(delegate_id)
        last_seq = Change.select().order_by(Change.seq.desc()).first().seq
    [entry] = snapshot.delegates
    assert entry.code_hash == row.code_hash and entry.name == "Nguyễn Văn An"
    assert entry.organisation == "Sở Tài chính"
    assert entry.valid_from == START - timedelta(minutes=120)
    assert row.code not in response.get_data(as_text=True)
    assert snapshot.seq == last_seq > 0
    assert len(snapshot.keys) == 1 and not snapshot.keys[0].revoked
    assert json.loads(response.data)["v"] == 1


def test_streamed_snapshot_has_the_same_content_line_by_line(api: Api, client, clock: Clock) -> None:
    meeting = api.meeting(site_id="hq")
    for index in range(3):
        organisation = api.organisation(f"Sở số {index}")
        registered = api.register(api.invitation(meeting_id=meeting["id"], organisation_id=organisation["id"]),
                                  email=f"daibieu{index}@example.vn")
        assert registered.status_code == 201, registered.get_json()
    token = api.gate("g1", site_id="hq")
    auth = {"Authorization": f"Bearer {token}"}
    whole = decode(Snapshot, client.get("/api/v1/gates/g1/snapshot", headers=auth).data)

    streamed = client.get("/api/v1/gates/g1/snapshot", headers={**auth, "Accept": SNAPSHOT_STREAM_MEDIA_TYPE})
    assert streamed.status_code == 200 and streamed.mimetype == SNAPSHOT_STREAM_MEDIA_TYPE
    lines = streamed.data.split(b"\n")
    assert lines[-1] == b"", "every line ends with a newline"
    header = decode(SnapshotHeader, lines[0])
    assert (header.seq, header.meetings, header.delegates, header.keys) == (whole.seq, 1, 3, 1)
    assert [decode(MeetingEntry, line) for line in lines[1:2]] == whole.meetings
    assert [decode(DelegateEntry, line) for line in lines[2:5]] == whole.delegates
    assert [decode(KeyEntry, line) for line in lines[5:6]] == whole.keys
    assert decode(SnapshotEnd, lines[6]).seq == whole.seq and len(lines) == 8
    # Without asking for the stream (an older gate) the answer is still one JSON document.
    assert client.get("/api/v1/gates/g1/snapshot", headers=auth).mimetype == "application/json"
    refused = client.get("/api/v1/gates/g1/snapshot",
                         headers={"Authorization": "Bearer wrong", "Accept": SNAPSHOT_STREAM_MEDIA_TYPE})
    assert refused.status_code == 401


def test_a_gate_loads_the_streamed_snapshot_from_central_over_http(app, api: Api, tmp_path: Path) -> None:
    meeting = api.meeting(site_id="hq")
    delegate_id = api.register(api.invitation(meeting_id=meeting["id"])).get_json()["id"]
    token = api.gate("g1", site_id="hq")
    with database.connection_context():
        code = Delegate.get_by_id(delegate_id).code
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cache = GateStore(tmp_path / "gate")
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        with pytest.raises(SyncError) as refused:
            fetch_snapshot(url, "g1", "wrong-token", timeout=10)
        assert refused.value.reason is SyncFailure.UNAUTHORISED
        stream = fetch_snapshot(url, "g1", token, timeout=10)
        assert isinstance(stream, SnapshotStream), "the gate gets the line stream, not one document"
        cache.load_snapshot(stream, datetime.now(UTC))
    finally:
        server.shutdown()
        thread.join(timeout=10)
    found = cache.lookup_code_hash(compact_hash(code))
    assert found is not None and (found.id, found.meeting_id, found.name) == (delegate_id, meeting["id"],
                                                                            "Nguyễn Văn An")
    assert cache.meeting(meeting["id"]) is not None and cache.seq == stream.seq > 0
    assert len(cache.public_keys()) == 1
    cache.close()
