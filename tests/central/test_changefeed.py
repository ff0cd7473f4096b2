"""The change feed publishes the change log on each site's stream, in order, within a second, and resumes from its
cursors (issue 16, point 3: a change stream per site).

A subscriber of ``vaora/v1/sites/+/changes`` sees which site got which change: a change reaches only the sites of
its meeting (a key every site), each site's message carries ``prev`` (the site's previous change), and the old
global stream is published only with ``legacy`` (``VAORA_LEGACY_CHANGE_STREAM=1``).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest

from central.core.changes import append_change
from central.core.db import database, open_database
from central.core.models import ChangeSite
from central.gates.models import Gate
from central.meetings.models import Meeting, MeetingVenue, Venue
from central.messaging.changefeed import ChangeFeed
from central.messaging.models import SiteFeedCursor
from central.migrations import migrate
from devtools.broker import LocalBroker
from protocols import topics
from protocols.payloads import Change, DelegateRevoke, KeyRevoke, decode

from ..conftest import wait_until

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[None]:
    open_database(database_url)
    migrate()
    yield
    database.close()


def meeting_at(*sites: str) -> int:
    """A meeting whose main hall is at ``sites[0]`` and with a remote point at each other site; its id."""
    with database.connection_context(), database.atomic():
        meeting = Meeting.create(title="Họp", starts_at=NOW, ends_at=NOW + timedelta(hours=2), venue="Hội trường",
                                 site_id=sites[0], created_at=NOW)
        for site in sites[1:]:
            venue, _ = Venue.get_or_create(name=f"Điểm cầu {site}", defaults={"kind": "remote", "site_id": site})
            MeetingVenue.create(meeting=meeting, venue=venue)
        return int(meeting.id)


def revoke(delegate_id: int, meeting_id: int = 1) -> Change:
    with database.connection_context(), database.atomic():
        return append_change(DelegateRevoke(meeting_id=meeting_id, delegate_id=delegate_id), NOW)


def key_revoked(key_id: int) -> Change:
    with database.connection_context(), database.atomic():
        return append_change(KeyRevoke(key_id=key_id), NOW)


class Listener:
    """A subscriber of some change topics that records (topic, change, raw JSON, arrival time)."""

    def __init__(self, broker: LocalBroker, *filters: str) -> None:
        self.changes: queue.Queue[tuple[str, Change, dict, float]] = queue.Queue()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = lambda _c, _u, m: self.changes.put(
            (m.topic, decode(Change, m.payload), json.loads(m.payload), time.monotonic()))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe([(topic_filter, 1) for topic_filter in filters])
        assert ready.wait(5)

    def take(self, count: int, timeout: float = 5.0) -> list[tuple[str, Change, dict, float]]:
        return [self.changes.get(timeout=timeout) for _ in range(count)]

    def nothing_more(self, wait: float = 0.5) -> bool:
        try:
            self.changes.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def started(broker: LocalBroker) -> Iterator[list[ChangeFeed]]:
    feeds: list[ChangeFeed] = []
    yield feeds
    for feed in feeds:
        feed.stop()


def start_feed(broker: LocalBroker, feeds: list[ChangeFeed], **options) -> ChangeFeed:
    feed = ChangeFeed(broker.host, broker.port, client_id="feed-test", **options)
    feed.start()
    feeds.append(feed)
    return feed


def test_a_sites_changes_reach_its_gates_in_order_within_a_second(db, broker, started):
    meeting = meeting_at("hq")
    gate = Listener(broker, topics.site_changes("hq"))
    start_feed(broker, started)
    try:
        made = []
        for delegate_id in range(1, 6):
            made.append((revoke(delegate_id, meeting), time.monotonic()))
        received = gate.take(5)
        assert [c.seq for _, c, _, _ in received] == [c.seq for c, _ in made] == [1, 2, 3, 4, 5]
        assert [c.prev for _, c, _, _ in received] == [0, 1, 2, 3, 4], "each names the site's previous change"
        assert [c.body.delegate_id for _, c, _, _ in received] == [1, 2, 3, 4, 5]
        assert max(arrived - stored for (_, _, _, arrived), (_, stored) in zip(received, made, strict=True)) < 1.0
    finally:
        gate.close()


def test_a_change_goes_only_to_its_meetings_sites_and_a_key_to_every_site(db, broker, started):
    at_hq, at_annex, at_both = meeting_at("hq"), meeting_at("annex"), meeting_at("hq", "annex")
    with database.connection_context():
        Gate.create(gate_id="far-1", site_id="far", token_hash="x" * 64)  # a site with a gate and no meeting
    spy = Listener(broker, topics.ALL_SITE_CHANGES, topics.CHANGES)
    start_feed(broker, started)
    try:
        revoke(1, at_hq)      # seq 1 -> hq
        revoke(2, at_annex)   # seq 2 -> annex
        revoke(3, at_both)    # seq 3 -> annex, hq
        key_revoked(7)        # seq 4 -> every site: annex, far, hq
        revoke(4, at_hq)      # seq 5 -> hq
        got = spy.take(8)
        assert spy.nothing_more(), "nothing on the legacy global stream, nothing twice"
        by_site = {(topic.split("/")[3], change.seq): change.prev for topic, change, _, _ in got}
        assert by_site == {
            ("hq", 1): 0, ("annex", 2): 0, ("annex", 3): 2, ("hq", 3): 1,
            ("annex", 4): 3, ("far", 4): 0, ("hq", 4): 3, ("hq", 5): 4,
        }
    finally:
        spy.close()


def test_the_legacy_global_stream_is_published_only_when_it_is_on(db, broker, started):
    meeting = meeting_at("hq")
    spy = Listener(broker, topics.CHANGES, topics.site_changes("hq"))
    start_feed(broker, started, legacy=True)
    try:
        revoke(1, meeting)
        revoke(2, meeting)
        got = spy.take(4)
        legacy = [(change.seq, raw) for topic, change, raw, _ in got if topic == topics.CHANGES]
        assert [seq for seq, _ in legacy] == [1, 2]
        assert all("prev" not in raw for _, raw in legacy), "gates older than prev refuse unknown fields"
        assert sorted(c.seq for topic, c, _, _ in got if topic != topics.CHANGES) == [1, 2]
    finally:
        spy.close()


def test_restart_resumes_from_the_cursors_with_the_same_prev(db, broker, started):
    hq, annex = meeting_at("hq"), meeting_at("annex")
    spy = Listener(broker, topics.ALL_SITE_CHANGES)
    feed = start_feed(broker, started)
    try:
        revoke(1, hq)
        assert [(c.seq, c.prev) for _, c, _, _ in spy.take(1)] == [(1, 0)]
        feed.stop()
        started.remove(feed)
        revoke(2, annex)
        revoke(3, hq)  # stored while the feed is down
        start_feed(broker, started)
        got = {(topic.split("/")[3], c.seq): c.prev for topic, c, _, _ in spy.take(2)}
        assert got == {("annex", 2): 0, ("hq", 3): 1}, "hq's prev survives the restart"
        assert spy.nothing_more(), "seq 1 is not published again"
        with database.connection_context():
            assert {row.site_id: row.seq for row in SiteFeedCursor.select()} == {"hq": 3, "annex": 2}
    finally:
        spy.close()


def test_changes_made_while_the_broker_is_down_are_published_after_it_returns(db, broker, started):
    meeting = meeting_at("hq")
    start_feed(broker, started)
    gate = Listener(broker, topics.site_changes("hq"))
    revoke(1, meeting)
    assert [c.seq for _, c, _, _ in gate.take(1)] == [1]
    gate.close()
    broker.kill()
    revoke(2, meeting)
    time.sleep(0.5)
    broker.restart()
    gate = Listener(broker, topics.site_changes("hq"))
    try:
        assert [(c.seq, c.prev) for _, c, _, _ in gate.take(1, timeout=40)] == [(2, 1)]
    finally:
        gate.close()


def connected_feed(broker: LocalBroker, clock: list[float], client_id: str = "feed-test") -> ChangeFeed:
    feed = ChangeFeed(broker.host, broker.port, client_id=client_id, hole_timeout=2.0, monotonic=lambda: clock[0])
    feed.load_cursor()
    feed.client.connect(broker.host, broker.port)
    feed.client.loop_start()
    wait_until(feed.client.is_connected, timeout=5)
    return feed


def test_a_hole_is_waited_for_then_skipped_and_every_site_is_made_to_resync(db, broker):
    hq, annex = meeting_at("hq"), meeting_at("annex")
    clock = [0.0]
    feed = connected_feed(broker, clock)
    spy = Listener(broker, topics.ALL_SITE_CHANGES)
    try:
        revoke(1, hq)
        revoke(2, annex)
        revoke(3, hq)
        revoke(4, annex)
        with database.connection_context():
            database.execute_sql("DELETE FROM change WHERE seq = 2")  # as if seq 2's transaction rolled back
        assert feed.publish_pending() == 1 and feed.published_seq == 1
        clock[0] = 1.0
        assert feed.publish_pending() == 0, "a hole younger than the timeout is waited for"
        clock[0] = 2.5
        assert feed.publish_pending() == 2 and feed.published_seq == 4
        got = {(topic.split("/")[3], c.seq): c.prev for topic, c, _, _ in spy.take(3)}
        # seq 2 could have been for any site: the next message of every site says "after 2", so a gate of hq at 1
        # and one of annex at 0 both load a snapshot instead of missing it.
        assert got == {("hq", 1): 0, ("hq", 3): 2, ("annex", 4): 2}
        with database.connection_context():
            assert SiteFeedCursor.get(SiteFeedCursor.site_id == "*").seq == 2, "kept for the sites' next prev"
    finally:
        spy.close()
        feed.client.loop_stop()
        feed.client.disconnect()


def test_two_feeds_never_lower_the_stored_cursors(db, broker):
    """Two ingest processes each run a feed: one still waiting for a hole the other skipped stores older cursors,
    which must not take the stored ones back (a restarted feed would publish a prev below a change the site got)."""
    hq = meeting_at("hq")
    fast, slow = [0.0], [0.0]
    ahead, behind = connected_feed(broker, fast, "feed-a"), connected_feed(broker, slow, "feed-b")
    try:
        revoke(1, hq)
        revoke(2, hq)
        revoke(3, hq)
        with database.connection_context():
            database.execute_sql("DELETE FROM change WHERE seq = 2")
        assert ahead.publish_pending() == 1
        fast[0] = 5.0
        assert ahead.publish_pending() == 1 and ahead.published_seq == 3
        assert behind.publish_pending() == 1 and behind.published_seq == 1, "still waits for seq 2"
        with database.connection_context():
            assert {row.site_id: row.seq for row in SiteFeedCursor.select()} == {"hq": 3, "*": 2}
        restarted = connected_feed(broker, fast, "feed-c")
        assert restarted.published_seq == 3 and restarted.prev_for("hq", 4) == 3
        restarted.client.loop_stop()
        restarted.client.disconnect()
    finally:
        for feed in (ahead, behind):
            feed.client.loop_stop()
            feed.client.disconnect()


def test_a_change_without_sites_is_published_to_no_site(db, broker):
    clock = [0.0]
    feed = connected_feed(broker, clock)
    spy = Listener(broker, topics.ALL_SITE_CHANGES)
    try:
        with database.connection_context(), database.atomic():
            change = append_change(DelegateRevoke(meeting_id=1, delegate_id=1), NOW)
            ChangeSite.delete().where(ChangeSite.seq == change.seq).execute()
        assert feed.publish_pending() == 1
        assert spy.nothing_more()
    finally:
        spy.close()
        feed.client.loop_stop()
        feed.client.disconnect()
