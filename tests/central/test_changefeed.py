"""The change feed publishes the change log in order, within a second, and resumes from its cursor."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest

from central.core.changes import append_change
from central.core.db import database, open_database
from central.messaging.changefeed import ChangeFeed
from central.migrations import migrate
from devtools.broker import LocalBroker
from protocols import topics
from protocols.payloads import Change, DelegateRevoke, decode

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[None]:
    open_database(database_url)
    migrate()
    yield
    database.close()


def revoke(delegate_id: int) -> Change:
    with database.connection_context(), database.atomic():
        return append_change(DelegateRevoke(meeting_id=1, delegate_id=delegate_id), NOW)


class Gate:
    """A gate-like subscriber of the change stream that records sequence numbers and arrival times."""

    def __init__(self, broker: LocalBroker) -> None:
        self.changes: queue.Queue[tuple[Change, float]] = queue.Queue()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = lambda _c, _u, m: self.changes.put((decode(Change, m.payload), time.monotonic()))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(topics.CHANGES, qos=1)
        assert ready.wait(5)

    def take(self, count: int, timeout: float = 5.0) -> list[tuple[Change, float]]:
        return [self.changes.get(timeout=timeout) for _ in range(count)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_changes_reach_a_subscribed_gate_in_order_within_a_second(db, broker):
    gate = Gate(broker)
    feed = ChangeFeed(broker.host, broker.port, client_id="feed-test")
    feed.start()
    try:
        made = []
        for delegate_id in range(1, 6):
            made.append((revoke(delegate_id), time.monotonic()))
        received = gate.take(5)
        assert [c.seq for c, _ in received] == [c.seq for c, _ in made] == [1, 2, 3, 4, 5]
        assert [c.body.delegate_id for c, _ in received] == [1, 2, 3, 4, 5]
        assert max(arrived - stored for (_, arrived), (_, stored) in zip(received, made, strict=True)) < 1.0
    finally:
        feed.stop()
        gate.close()


def test_restart_resumes_from_the_cursor(db, broker):
    gate = Gate(broker)
    feed = ChangeFeed(broker.host, broker.port, client_id="feed-test")
    feed.start()
    revoke(1)
    assert [c.seq for c, _ in gate.take(1)] == [1]
    feed.stop()
    revoke(2)
    revoke(3)  # stored while the feed is down
    feed = ChangeFeed(broker.host, broker.port, client_id="feed-test")
    feed.start()
    try:
        assert [c.seq for c, _ in gate.take(2)] == [2, 3]
        with pytest.raises(queue.Empty):
            gate.changes.get(timeout=0.5)  # seq 1 is not published again
    finally:
        feed.stop()
        gate.close()


def test_changes_made_while_the_broker_is_down_are_published_after_it_returns(db, broker):
    feed = ChangeFeed(broker.host, broker.port, client_id="feed-test")
    feed.start()
    try:
        gate = Gate(broker)
        revoke(1)
        assert [c.seq for c, _ in gate.take(1)] == [1]
        gate.close()
        broker.kill()
        revoke(2)
        time.sleep(0.5)
        broker.restart()
        gate = Gate(broker)
        assert [c.seq for c, _ in gate.take(1, timeout=40)] == [2]
        gate.close()
    finally:
        feed.stop()


def test_a_hole_in_the_sequence_is_waited_for_then_skipped(db, broker):
    clock = [0.0]
    feed = ChangeFeed(broker.host, broker.port, client_id="feed-test", hole_timeout=2.0, monotonic=lambda: clock[0])
    feed.load_cursor()
    feed.client.connect(broker.host, broker.port)
    feed.client.loop_start()
    deadline = time.monotonic() + 5
    while not feed.client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        revoke(1)
        revoke(2)
        revoke(3)
        with database.connection_context():
            database.execute_sql("DELETE FROM change WHERE seq = 2")  # as if seq 2's transaction rolled back
        assert feed.publish_pending() == 1 and feed.published_seq == 1
        clock[0] = 1.0
        assert feed.publish_pending() == 0, "a hole younger than the timeout is waited for"
        clock[0] = 2.5
        assert feed.publish_pending() == 1 and feed.published_seq == 3
    finally:
        feed.client.loop_stop()
        feed.client.disconnect()
