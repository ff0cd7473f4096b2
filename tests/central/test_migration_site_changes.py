"""Migration m0012 on a database that already has a change log: the changes the feed had published on the old global
stream count for every site (one ``*`` row at the feed's cursor, which is also every site's first ``prev``), the
ones it had not get their exact sites. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import central.migrations as migrations
from central.core.db import database, open_database
from central.core.models import Change, ChangeSite
from central.meetings.models import Meeting, MeetingVenue, Venue
from central.messaging.changefeed import ChangeFeed
from central.messaging.models import FeedCursor, SiteFeedCursor

AT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def _change(kind: str, body: dict[str, Any]) -> None:
    Change.create(at=AT, kind=kind, body=json.dumps({"kind": kind, **body}))


def test_the_existing_change_log_gets_its_sites(empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    everything = migrations.discover()
    open_database(empty_database_url)
    monkeypatch.setattr(migrations, "discover", lambda: [m for m in everything if m.name < "0012"])
    migrations.migrate()
    with database.connection_context(), database.atomic():
        remote = Venue.create(name="Điểm cầu Sơn Tịnh", kind="remote", site_id="st")
        held = Meeting.create(title="Họp", starts_at=AT, ends_at=AT + timedelta(hours=2), venue="Hội trường",
                              site_id="hq", created_at=AT)
        MeetingVenue.create(meeting=held, venue=remote)
        delegate = {"id": 5, "meeting_id": held.id, "name": "An", "organisation": "Sở", "valid_from": AT.isoformat(),
                    "valid_until": AT.isoformat()}
        _change("key_add", {"key": {"key_id": 1, "public_key": "A" * 43 + "="}})    # 1: published
        _change("delegate_upsert", {"delegate": delegate})                         # 2: published
        FeedCursor.create(name="mqtt", seq=2)
        _change("delegate_revoke", {"meeting_id": held.id, "delegate_id": 5})      # 3: stored while the feed was down
        _change("meeting_upsert", {"meeting": {"id": 99, "title": "Khác", "scheme": "compact",
                                               "starts_at": AT.isoformat(), "ends_at": AT.isoformat(),
                                               "site_id": "annex", "venue": "Phòng", "status": "open"}})  # 4
        _change("key_revoke", {"key_id": 1})                                        # 5
        _change("delegate_revoke", {"meeting_id": 12345, "delegate_id": 1})         # 6: a meeting central lacks
    monkeypatch.setattr(migrations, "discover", lambda: everything)
    assert "0012_site_change_streams" in migrations.migrate()
    with database.connection_context():
        rows = sorted(ChangeSite.select(ChangeSite.seq, ChangeSite.site_id).tuples())
        assert rows == [(2, "*"), (3, "hq"), (3, "st"), (4, "annex"), (5, "*"), (6, "*")]
        assert [(row.site_id, row.seq) for row in SiteFeedCursor.select()] == [("*", 2)]
    feed = ChangeFeed("127.0.0.1", 1)
    assert feed.load_cursor() == 2
    assert (feed.prev_for("hq", 3), feed.prev_for("st", 3)) == (2, 2), \
        "a gate that had not followed the global stream to the cursor loads a snapshot"
    database.close()
