"""The change stream applied to a real SQLite cache: in order, repeats, gaps, out of order, bad payloads;
and the background snapshot refetch with backoff; snapshots streamed in while changes keep being applied.

Both forms of the stream: a site's own (each change with ``prev``, the site's previous change: its ``seq`` jumps
over other sites' changes) and the legacy global one (no ``prev``: ``seq`` by one)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from gate.decision import decide
from gate.follow import ChangeFollower, SnapshotRefresher
from gate.store import ChangeResult, GateStore
from protocols.codes import (
    SignedClaims,
    compact_hash,
    encode_signed,
    generate_compact,
    generate_signing_key,
    public_key_to_text,
)
from protocols.payloads import (
    Change,
    DelegateRevoke,
    DelegateUpsert,
    KeyAdd,
    KeyEntry,
    KeyRevoke,
    MeetingUpsert,
    encode,
)
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until
from tests.gate.gate_helpers import NOW, SITE, World, build_world

LATER = NOW + timedelta(minutes=5)
SEQ = 42  # the world's snapshot seq


@pytest.fixture
def world() -> World:
    return build_world()


@pytest.fixture
def cache(tmp_path: Path, world: World) -> Iterator[GateStore]:
    cache = GateStore(tmp_path / "gate")
    cache.load_snapshot(world.snapshot, NOW)
    yield cache
    cache.close()


class Requests:
    """Counts snapshot requests (what the gate's refresher would get)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def change(seq: int, body: object, prev: int | None = None) -> Change:
    return Change(seq=seq, at=LATER, body=body, prev=prev)  # type: ignore[arg-type]


def replaced(world: World, delegate_id: int = 1) -> tuple[DelegateUpsert, str]:
    """The delegate with a new compact code (e.g. their organisation replaced the person)."""
    old = next(d for d in world.snapshot.delegates if d.id == delegate_id)
    code = generate_compact()
    entry = old.model_copy(update={"name": "Trần Thị Mới", "code_hash": compact_hash(code)})
    return DelegateUpsert(delegate=entry), code


def signed(world: World, attendee_id: int, key_id: int = 7, key: object = None) -> str:
    claims = SignedClaims(key_id=key_id, meeting_id=2, attendee_id=attendee_id,
                          valid_from=NOW - timedelta(hours=1), valid_until=NOW + timedelta(hours=3))
    return encode_signed(claims, key or world.signing_key)  # type: ignore[arg-type]


def test_changes_apply_in_order_and_advance_seq_and_sync_time(cache: GateStore, world: World) -> None:
    upsert, new_code = replaced(world)
    meeting = world.snapshot.meetings[0].model_copy(update={"status": "cancelled"})
    assert cache.apply_change(change(SEQ + 1, upsert), LATER) is ChangeResult.APPLIED
    assert decide(world.codes[1], cache, NOW, SITE).reason is Reason.UNKNOWN_CODE  # the old code is gone
    new = decide(new_code, cache, NOW, SITE)
    assert new.allowed and new.name == "Trần Thị Mới"
    assert cache.seq == SEQ + 1
    assert cache.synced_at == LATER

    assert cache.apply_change(change(SEQ + 2, DelegateRevoke(meeting_id=1, delegate_id=2)), LATER) \
        is ChangeResult.APPLIED
    assert decide(world.codes[2], cache, NOW, SITE).reason is Reason.REVOKED
    assert cache.apply_change(change(SEQ + 3, MeetingUpsert(meeting=meeting)), LATER) is ChangeResult.APPLIED
    assert decide(world.codes[3], cache, NOW, SITE).reason is Reason.MEETING_CANCELLED
    assert cache.seq == SEQ + 3


def test_keys_added_and_revoked_by_changes(cache: GateStore, world: World) -> None:
    new_key = generate_signing_key()
    code = signed(world, 7001, key_id=8, key=new_key)
    assert decide(code, cache, NOW, SITE).reason is Reason.UNKNOWN_KEY
    key_add = KeyAdd(key=KeyEntry(key_id=8, public_key=public_key_to_text(new_key.public_key())))
    cache.apply_change(change(SEQ + 1, key_add), LATER)
    assert decide(code, cache, NOW, SITE).allowed
    cache.apply_change(change(SEQ + 2, KeyRevoke(key_id=7)), LATER)
    assert decide(signed(world, 7001), cache, NOW, SITE).reason is Reason.UNKNOWN_KEY
    assert decide(code, cache, NOW, SITE).allowed
    entries = cache.keys()
    assert {k.key_id: k.revoked for k in entries} == {7: True, 8: False}


def test_revoking_a_delegate_the_gate_never_saw_refuses_their_signed_code(cache: GateStore,
                                                                          world: World) -> None:
    code = signed(world, 7999)  # registered after the snapshot: admitted on the signature alone
    assert decide(code, cache, NOW, SITE).allowed
    cache.apply_change(change(SEQ + 1, DelegateRevoke(meeting_id=2, delegate_id=7999)), LATER)
    assert decide(code, cache, NOW, SITE).reason is Reason.REVOKED


def test_a_repeated_change_is_ignored(cache: GateStore, world: World) -> None:
    revoke = change(SEQ + 1, DelegateRevoke(meeting_id=1, delegate_id=1))
    assert cache.apply_change(revoke, LATER) is ChangeResult.APPLIED
    upsert, _ = replaced(world)  # would un-revoke delegate 1 if it were applied
    unrevoke = change(SEQ + 1, DelegateUpsert(delegate=upsert.delegate))
    assert cache.apply_change(unrevoke, LATER + timedelta(minutes=1)) is ChangeResult.REPEATED
    assert cache.apply_change(change(SEQ, upsert), LATER) is ChangeResult.REPEATED  # covered by the snapshot
    assert decide(world.codes[1], cache, NOW, SITE).reason is Reason.REVOKED
    assert cache.seq == SEQ + 1
    assert cache.synced_at == LATER


def test_a_gap_changes_nothing_and_requests_a_snapshot(cache: GateStore, world: World) -> None:
    requests = Requests()
    follower = ChangeFollower(cache, requests, clock=lambda: LATER)
    assert follower.handle(change(SEQ + 3, DelegateRevoke(meeting_id=1, delegate_id=1))) is ChangeResult.GAP
    assert requests.count == 1
    assert cache.seq == SEQ
    assert decide(world.codes[1], cache, NOW, SITE).allowed  # still deciding from the old cache
    assert cache.synced_at == NOW


def test_out_of_order_changes_are_applied_in_order(cache: GateStore, world: World) -> None:
    requests = Requests()
    follower = ChangeFollower(cache, requests, clock=lambda: LATER)
    upsert, new_code = replaced(world)
    revoke_new = change(SEQ + 2, DelegateRevoke(meeting_id=1, delegate_id=1))
    assert follower.handle(revoke_new) is ChangeResult.GAP  # arrives first: waits for its predecessor
    assert follower.handle(change(SEQ + 1, upsert)) is ChangeResult.APPLIED
    assert cache.seq == SEQ + 2
    assert follower.buffered == 0
    # Applied in seq order: the upsert, then the revoke (not the other way round, which would un-revoke).
    assert decide(new_code, cache, NOW, SITE).reason is Reason.REVOKED


def test_a_snapshot_closes_the_gap_and_buffered_changes_follow_it(cache: GateStore, world: World) -> None:
    requests = Requests()
    follower = ChangeFollower(cache, requests, clock=lambda: LATER)
    follower.handle(change(SEQ + 6, DelegateRevoke(meeting_id=1, delegate_id=3)))
    newer = world.snapshot.model_copy(update={"seq": SEQ + 5})
    assert follower.load_snapshot(newer)
    assert cache.seq == SEQ + 6
    assert decide(world.codes[3], cache, NOW, SITE).reason is Reason.REVOKED
    assert requests.count == 1  # the gap is closed: no further request

    older = world.snapshot.model_copy(update={"seq": SEQ})
    assert not follower.load_snapshot(older)  # never go back
    assert cache.seq == SEQ + 6
    assert decide(world.codes[3], cache, NOW, SITE).reason is Reason.REVOKED


@pytest.mark.parametrize("raw", [b"{not json", b"x" * (1024 * 1024), b"[]", b'{"v": 2, "seq": 43}',
                                 b'{"v": 1, "seq": 43, "at": "2025-06-02T08:05:00Z", "body": {"kind": "drop"}}',
                                 b'{"v": 1, "seq": 0, "at": "2025-06-02T08:05:00Z", '
                                 b'"body": {"kind": "key_revoke", "key_id": 7}}'])
def test_bad_payloads_are_dropped_and_the_next_change_still_applies(
    cache: GateStore, world: World, raw: bytes, caplog: pytest.LogCaptureFixture,
) -> None:
    follower = ChangeFollower(cache, Requests(), clock=lambda: LATER)
    assert follower.handle_payload(raw) is None
    assert follower.dropped == 1
    assert cache.seq == SEQ
    assert "bad change dropped" in caplog.text
    good = encode(change(SEQ + 1, DelegateRevoke(meeting_id=1, delegate_id=1)))
    assert follower.handle_payload(good) is ChangeResult.APPLIED
    assert decide(world.codes[1], cache, NOW, SITE).reason is Reason.REVOKED


# --- a site's own stream: changes with prev -------------------------------------------------------------------


def test_a_sites_change_applies_after_other_sites_changes_it_never_sees(cache: GateStore, world: World) -> None:
    """Changes SEQ+1..SEQ+4 were for other sites: this site's next one says so with ``prev``."""
    upsert, new_code = replaced(world)
    assert cache.apply_change(change(SEQ + 5, upsert, prev=SEQ - 3), LATER) is ChangeResult.APPLIED
    assert decide(new_code, cache, NOW, SITE).allowed and cache.seq == SEQ + 5 and cache.synced_at == LATER
    assert cache.apply_change(change(SEQ + 9, DelegateRevoke(meeting_id=1, delegate_id=1), prev=SEQ + 5),
                              LATER) is ChangeResult.APPLIED
    assert decide(new_code, cache, NOW, SITE).reason is Reason.REVOKED and cache.seq == SEQ + 9


def test_a_sites_change_repeated_or_covered_by_the_snapshot_is_ignored(cache: GateStore, world: World) -> None:
    upsert, _ = replaced(world)
    assert cache.apply_change(change(SEQ, upsert, prev=SEQ - 1), LATER) is ChangeResult.REPEATED
    revoke = change(SEQ + 2, DelegateRevoke(meeting_id=1, delegate_id=1), prev=SEQ)
    assert cache.apply_change(revoke, LATER) is ChangeResult.APPLIED
    assert cache.apply_change(revoke, LATER) is ChangeResult.REPEATED
    # The same change on the legacy stream (a central publishing both during an upgrade) is a repeat too.
    assert cache.apply_change(change(SEQ + 2, DelegateUpsert(delegate=upsert.delegate)), LATER) \
        is ChangeResult.REPEATED
    assert decide(world.codes[1], cache, NOW, SITE).reason is Reason.REVOKED and cache.seq == SEQ + 2


def test_a_missed_sites_change_is_a_gap_and_the_snapshot_closes_it(cache: GateStore, world: World) -> None:
    requests = Requests()
    follower = ChangeFollower(cache, requests, clock=lambda: LATER)
    # The site's change SEQ+3 never arrived (prev says the site had one after the cache's SEQ).
    later = change(SEQ + 7, DelegateRevoke(meeting_id=1, delegate_id=3), prev=SEQ + 3)
    assert follower.handle(later) is ChangeResult.GAP
    assert requests.count == 1 and cache.seq == SEQ
    assert decide(world.codes[3], cache, NOW, SITE).allowed, "still deciding from the old cache"
    assert follower.load_snapshot(world.snapshot.model_copy(update={"seq": SEQ + 4}))
    assert cache.seq == SEQ + 7, "the buffered change follows the snapshot"
    assert decide(world.codes[3], cache, NOW, SITE).reason is Reason.REVOKED
    assert requests.count == 1


def test_a_sites_changes_out_of_order_are_applied_in_order(cache: GateStore, world: World) -> None:
    follower = ChangeFollower(cache, Requests(), clock=lambda: LATER)
    upsert, new_code = replaced(world)
    assert follower.handle(change(SEQ + 8, DelegateRevoke(meeting_id=1, delegate_id=1), prev=SEQ + 3)) \
        is ChangeResult.GAP
    assert follower.handle(change(SEQ + 3, upsert, prev=SEQ - 2)) is ChangeResult.APPLIED
    assert cache.seq == SEQ + 8 and follower.buffered == 0
    assert decide(new_code, cache, NOW, SITE).reason is Reason.REVOKED


def test_a_resync_prev_from_central_after_a_skipped_change_makes_the_gate_load_a_snapshot(
        cache: GateStore, world: World) -> None:
    """Central skipped change SEQ+2 (a hole that never committed in time): every site's next message says "after
    SEQ+2", so a gate at SEQ+1 cannot know whether it missed something of its own, and loads a snapshot."""
    requests = Requests()
    follower = ChangeFollower(cache, requests, clock=lambda: LATER)
    assert follower.handle(change(SEQ + 1, DelegateRevoke(meeting_id=1, delegate_id=2), prev=SEQ - 1)) \
        is ChangeResult.APPLIED
    assert follower.handle(change(SEQ + 3, DelegateRevoke(meeting_id=1, delegate_id=3), prev=SEQ + 2)) \
        is ChangeResult.GAP
    assert requests.count == 1 and cache.seq == SEQ + 1


@pytest.mark.parametrize("raw", [
    b'{"v": 1, "seq": 50, "prev": -1, "at": "2025-06-02T08:05:00Z", "body": {"kind": "key_revoke", "key_id": 7}}',
    b'{"v": 1, "seq": 50, "prev": "43", "at": "2025-06-02T08:05:00Z", "body": {"kind": "key_revoke", "key_id": 7}}',
    b'{"v": 1, "seq": 50, "prev": 4.5, "at": "2025-06-02T08:05:00Z", "body": {"kind": "key_revoke", "key_id": 7}}',
    b'{"v": 1, "seq": 50, "prev": 50, "at": "2025-06-02T08:05:00Z", "body": {"kind": "key_revoke", "key_id": 7}}',
    b'{"v": 1, "seq": 50, "prev": 99, "at": "2025-06-02T08:05:00Z", "body": {"kind": "key_revoke", "key_id": 7}}',
    b'{"v": 1, "seq": -50, "prev": 0, "at": "2025-06-02T08:05:00Z", "body": {"kind": "key_revoke", "key_id": 7}}',
    b'{"v": 1, "seq": 99999999999999999999999, "prev": 0, "at": "2025-06-02T08:05:00Z", '
    b'"body": {"kind": "key_revoke", "key_id": 7}}',
    b'{"v": 1, "seq": 50, "prev": null, "at": "2025-06-02T08:05:00Z", "body": {"kind": "key_revoke", "key_id": 7},'
    b' "prev": [1]}',
], ids=["negative-prev", "text-prev", "fraction-prev", "prev-equals-seq", "prev-after-seq", "negative-seq",
        "seq-beyond-int64", "list-prev"])
def test_a_sites_change_with_a_bad_prev_or_seq_is_dropped_and_counted(
        cache: GateStore, world: World, raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    follower = ChangeFollower(cache, Requests(), clock=lambda: LATER)
    assert follower.handle_payload(raw) is None
    assert follower.dropped == 1 and cache.seq == SEQ
    assert "bad change dropped" in caplog.text
    assert decide(signed(world, 7001), cache, NOW, SITE).allowed, "key 7 still trusted"
    good = encode(change(SEQ + 4, DelegateRevoke(meeting_id=1, delegate_id=1), prev=SEQ - 1))
    assert follower.handle_payload(good) is ChangeResult.APPLIED and cache.seq == SEQ + 4


def test_a_meeting_that_left_the_gates_site_is_dropped_with_its_delegates(cache: GateStore, world: World) -> None:
    """A remote point removed: its site's gates get the meeting without their site, and forget its delegates' names
    and code hashes at once, as their next snapshot would; added back, the meeting and its delegates return."""
    follower = ChangeFollower(cache, Requests(), clock=lambda: LATER, site_id=SITE)
    meeting = next(m for m in world.snapshot.meetings if m.id == 1)
    delegate = next(d for d in world.snapshot.delegates if d.meeting_id == 1)
    code = world.codes[delegate.id]
    elsewhere = meeting.model_copy(update={"site_id": "other", "sites": None})
    assert follower.handle(change(SEQ + 3, MeetingUpsert(meeting=elsewhere), prev=SEQ)) is ChangeResult.APPLIED
    assert cache.meeting(1) is None and cache.delegate(1, delegate.id) is None
    assert decide(code, cache, NOW, SITE).reason is Reason.UNKNOWN_CODE
    assert cache.meeting(2) is not None, "the other meetings stay"

    back = meeting.model_copy(update={"site_id": "other", "sites": ["other", SITE]})
    assert follower.handle(change(SEQ + 5, MeetingUpsert(meeting=back), prev=SEQ + 3)) is ChangeResult.APPLIED
    assert follower.handle(change(SEQ + 6, DelegateUpsert(delegate=delegate), prev=SEQ + 5)) is ChangeResult.APPLIED
    assert decide(code, cache, NOW, SITE).allowed


def test_a_sites_change_on_the_wire_carries_prev_and_the_legacy_one_does_not() -> None:
    revoke = DelegateRevoke(meeting_id=1, delegate_id=1)
    assert b'"prev":41' in encode(change(SEQ, revoke, prev=41))
    assert b"prev" not in encode(change(SEQ, revoke)), "gates older than the field refuse unknown fields"


def test_changes_survive_a_restart_of_the_cache(tmp_path: Path, world: World) -> None:
    cache = GateStore(tmp_path / "gate")
    cache.load_snapshot(world.snapshot, NOW)
    cache.apply_change(change(SEQ + 1, KeyRevoke(key_id=7)), LATER)
    cache.close()
    reopened = GateStore(tmp_path / "gate")
    try:
        assert reopened.seq == SEQ + 1
        assert reopened.synced_at == LATER
        assert decide(signed(world, 7001), reopened, NOW, SITE).reason is Reason.UNKNOWN_KEY
    finally:
        reopened.close()


def test_refresher_retries_with_backoff_until_central_answers() -> None:
    attempts = 0
    pauses: list[float] = []
    done = threading.Event()

    def refresh() -> bool:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            return False
        done.set()
        return True

    def pause(seconds: float) -> bool:  # the refresher's clock: records each wait instead of sleeping it
        pauses.append(seconds)
        return False

    refresher = SnapshotRefresher(refresh, initial_backoff_s=0.1, max_backoff_s=1.0, min_interval_s=0.5,
                                  pause=pause)
    refresher.start()
    try:
        refresher.request()
        assert done.wait(scaled(5.0))
        assert wait_until(lambda: len(pauses) == 3, timeout=scaled(5.0))
        # after each failure the backoff (doubling), after the success the minimum interval; then it waits
        # for the next request: no fourth attempt
        assert pauses == [0.1, 0.2, 0.5]
        assert attempts == 3
        assert refresher.successes == 1
        assert not refresher.pending
    finally:
        refresher.stop()


def test_refresher_backoff_is_capped() -> None:
    pauses: list[float] = []
    refresher = SnapshotRefresher(lambda: False, initial_backoff_s=1.0, max_backoff_s=4.0,
                                  pause=lambda s: pauses.append(s) or len(pauses) >= 6)
    refresher.start()
    try:
        refresher.request()
        assert wait_until(lambda: len(pauses) >= 6, timeout=scaled(5.0))
        assert pauses[:6] == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    finally:
        refresher.stop()


def test_refresher_never_blocks_the_requester() -> None:
    release = threading.Event()
    refresher = SnapshotRefresher(lambda: release.wait(scaled(30.0)), min_interval_s=0.0)
    refresher.start()
    requester = threading.Thread(target=lambda: [refresher.request() for _ in range(100)])
    try:
        refresher.request()
        assert wait_until(lambda: refresher.attempts == 1, timeout=scaled(5.0))  # the refresh now blocks
        requester.start()
        requester.join(timeout=scaled(5.0))
        assert not requester.is_alive() and not release.is_set()  # all 100 returned while the refresh hung
        assert refresher.pending
    finally:
        release.set()
        refresher.stop()


class StreamingSnapshot:
    """A snapshot source that runs ``during()`` half-way through its entries (a long download)."""

    def __init__(self, world: World, seq: int, during: object) -> None:
        self.snapshot = world.snapshot.model_copy(update={"seq": seq})
        self.seq, self.generated_at = seq, self.snapshot.generated_at
        self.during = during

    def entries(self) -> Iterator[object]:
        entries = [*self.snapshot.meetings, *self.snapshot.delegates, *self.snapshot.keys]
        for index, entry in enumerate(entries):
            if index == len(entries) // 2:
                self.during()  # type: ignore[operator]
            yield entry


def _on_network_thread(follower: ChangeFollower, item: Change) -> ChangeResult | None:
    """Hand a change to the follower from another thread (paho's), which must not wait for the download."""
    results: list[ChangeResult] = []
    worker = threading.Thread(target=lambda: results.append(follower.handle(item)))
    worker.start()
    worker.join(timeout=2)
    assert not worker.is_alive(), "the change waited for the snapshot download"
    return results[0] if results else None


def test_changes_are_applied_while_a_snapshot_streams_in(cache: GateStore, world: World) -> None:
    follower = ChangeFollower(cache, Requests(), clock=lambda: LATER)
    upsert, new_code = replaced(world, delegate_id=3)
    newer = build_world()
    during: list[object] = []

    def one_change() -> None:
        during.append(_on_network_thread(follower, change(SEQ + 1, upsert)))
        during.append(decide(new_code, cache, NOW, SITE).allowed)  # applied at once, mid-download

    assert follower.load_snapshot(StreamingSnapshot(newer, SEQ + 5, one_change))  # type: ignore[arg-type]
    assert during == [ChangeResult.APPLIED, True]
    assert cache.seq == SEQ + 5, "the snapshot (newer than the change) was swapped in"
    assert decide(newer.codes[1], cache, NOW, SITE).allowed


def test_a_snapshot_overtaken_by_changes_while_streaming_is_discarded(cache: GateStore, world: World) -> None:
    follower = ChangeFollower(cache, Requests(), clock=lambda: LATER)
    upsert, new_code = replaced(world, delegate_id=3)

    def two_changes() -> None:
        assert _on_network_thread(follower, change(SEQ + 1, upsert)) is ChangeResult.APPLIED
        assert _on_network_thread(follower, change(SEQ + 2, DelegateRevoke(meeting_id=1, delegate_id=2))) \
            is ChangeResult.APPLIED

    stale = StreamingSnapshot(build_world(), SEQ + 1, two_changes)
    assert not follower.load_snapshot(stale)  # type: ignore[arg-type]
    assert cache.seq == SEQ + 2, "never goes back to an older snapshot"
    assert decide(new_code, cache, NOW, SITE).allowed
    assert decide(world.codes[2], cache, NOW, SITE).reason is Reason.REVOKED
    assert cache.staging_files() == []


def test_an_attempt_cut_short_by_the_gates_stop_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    """The gate closes its store while a slow attempt is still running (its join timed out on a loaded
    machine): the attempt's failure is the shutdown's, logged at debug, and the thread ends."""
    entered, release = threading.Event(), threading.Event()

    def refresh() -> bool:
        entered.set()
        release.wait(scaled(30.0))
        raise sqlite3.ProgrammingError("Cannot operate on a closed database.")

    refresher = SnapshotRefresher(refresh, min_interval_s=0.0)
    refresher.start()
    thread = refresher._thread
    refresher.request()
    assert entered.wait(scaled(5.0))
    refresher._stop.set()  # what stop() does first; the attempt then fails as the store closes
    release.set()
    assert thread is not None
    thread.join(scaled(5.0))
    assert not thread.is_alive()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
