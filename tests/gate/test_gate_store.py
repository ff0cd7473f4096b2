"""GateStore on real SQLite: pragmas, atomic snapshot replacement (scans answered meanwhile, a failing source
changes nothing), a 10,000-delegate load, the outbox, and a gate process free of ORM/psycopg/central imports."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from gate.store import GateStore
from gate.store.reference import SQL_DELEGATE_BY_HASH
from protocols.codes import compact_hash, generate_compact, public_key_to_text
from protocols.payloads import CheckIn, DelegateEntry, Direction, KeyEntry, Outcome, Snapshot, encode
from protocols.reasons import Reason
from tests.gate.gate_helpers import NOW, World, build_world


def big_snapshot(n: int, seq: int = 1) -> tuple[Snapshot, list[str]]:
    world = build_world(1)
    codes = [generate_compact() for _ in range(n)]
    delegates = [
        DelegateEntry(id=10_000 + i, meeting_id=1, name=f"Đại biểu {i}", organisation="UBND quận",
                      position="",
                      code_hash=compact_hash(code), valid_from=NOW - timedelta(hours=1),
                      valid_until=NOW + timedelta(hours=3))
        for i, code in enumerate(codes)
    ]
    snapshot = world.snapshot.model_copy(update={"delegates": delegates, "seq": seq})
    return snapshot, codes


def test_pragmas_durable_wal(tmp_path: Path) -> None:
    cache = GateStore(tmp_path)
    assert cache.path == tmp_path / "gate-cache.sqlite3"
    assert cache.pragma("journal_mode") == "wal"
    assert cache.pragma("synchronous") == 2
    assert cache.pragma("foreign_keys") == 1
    assert cache.pragma("busy_timeout") == 5000
    cache.close()


def test_snapshot_load_and_lookups(tmp_path: Path, world: World) -> None:
    cache = GateStore(tmp_path)
    assert (cache.seq, cache.synced_at) == (0, None)
    cache.load_snapshot(world.snapshot, NOW)
    assert cache.seq == 42 and cache.synced_at == NOW
    found = cache.lookup_code_hash(compact_hash(world.codes[2]))
    assert found is not None and (found.id, found.meeting_id, found.name) == (2, 1, "Nguyễn Văn 2")
    assert found.valid_from.tzinfo is not None
    assert cache.lookup_code_hash(compact_hash(generate_compact())) is None
    assert cache.delegate(1, 9001).revoked is True  # type: ignore[union-attr]
    assert cache.delegate(2, 1) is None
    meeting = cache.meeting(4)
    assert meeting is not None and meeting.site_id == "other"
    assert meeting.starts_at == world.snapshot.meetings[3].starts_at
    assert cache.meeting(99) is None
    assert set(cache.public_keys()) == {7}


def test_cache_stores_only_hashes_of_compact_codes(tmp_path: Path, world: World) -> None:
    cache = GateStore(tmp_path)
    cache.load_snapshot(world.snapshot, NOW)
    cache.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for code in world.codes.values():
        assert code.encode() not in raw
    assert compact_hash(world.codes[1]).encode() in raw


def test_new_snapshot_replaces_old_data_and_survives_reopen(tmp_path: Path, world: World) -> None:
    cache = GateStore(tmp_path)
    cache.load_snapshot(world.snapshot, NOW)
    other = build_world(2)
    assert other.signing_key is not None
    revoked_text = public_key_to_text(other.signing_key.public_key())
    revoked_key = KeyEntry(key_id=9, public_key=revoked_text, revoked=True)
    keys = [*other.snapshot.keys, revoked_key]
    later = NOW + timedelta(minutes=5)
    cache.load_snapshot(other.snapshot.model_copy(update={"seq": 50, "keys": keys}), later)
    assert cache.lookup_code_hash(compact_hash(world.codes[1])) is None
    assert cache.lookup_code_hash(compact_hash(other.codes[1])) is not None
    assert set(cache.public_keys()) == {7}, "revoked keys are not trusted"
    cache.close()
    reopened = GateStore(tmp_path)
    assert reopened.seq == 50 and reopened.synced_at == NOW + timedelta(minutes=5)
    assert reopened.lookup_code_hash(compact_hash(other.codes[2])) is not None
    assert set(reopened.public_keys()) == {7}
    reopened.close()


def test_ten_thousand_delegates_load_and_are_found(tmp_path: Path) -> None:
    # How fast is measured by benchmarks/snapshot_load.py (BENCHMARKS.md), not asserted here.
    snapshot, codes = big_snapshot(10_000)
    cache = GateStore(tmp_path)
    cache.load_snapshot(snapshot, NOW)
    assert cache.delegate_count() == 10_000
    found = cache.lookup_code_hash(compact_hash(codes[9_876]))
    assert found is not None and found.id == 19_876
    assert all(cache.lookup_code_hash(compact_hash(code)) is not None for code in codes[:500])
    with sqlite3.connect(cache.path) as plain:  # lookups use the code_hash index, not a scan of 10,000 rows
        plan = " ".join(str(row[-1]) for row in plain.execute(f"EXPLAIN QUERY PLAN {SQL_DELEGATE_BY_HASH}", ("x",)))
    assert "USING" in plan and "INDEX" in plan and "SCAN" not in plan, plan
    cache.close()


def test_two_caches_in_one_process_are_independent(tmp_path: Path, world: World) -> None:
    a, b = GateStore(tmp_path / "a"), GateStore(tmp_path / "b")
    a.load_snapshot(world.snapshot, NOW)
    assert a.lookup_code_hash(compact_hash(world.codes[1])) is not None
    assert b.lookup_code_hash(compact_hash(world.codes[1])) is None
    a.close()
    b.close()


def checkin(allowed: bool = True) -> CheckIn:
    return CheckIn(id=uuid.uuid4(), gate_id="g1", site_id="hq", direction=Direction.IN, scanned_at=NOW,
                   allowed=allowed, reason=Reason.OK if allowed else Reason.UNKNOWN_CODE,
                   outcome=Outcome.ENTERED if allowed else Outcome.REFUSED)


def test_outbox_lifecycle(tmp_path: Path) -> None:
    cache = GateStore(tmp_path)
    first, second = checkin(), checkin(False)
    cache.add_checkin(first, encode(first), NOW)
    cache.add_checkin(second, encode(second), NOW + timedelta(seconds=1))
    assert cache.outbox_pending() == 2
    due = cache.outbox_due(NOW, resend_after_s=30)
    assert [r.checkin_id for r in due] == [str(first.id), str(second.id)]
    assert CheckIn.model_validate_json(due[0].payload) == first

    cache.mark_sent(str(first.id), NOW)
    assert [r.checkin_id for r in cache.outbox_due(NOW + timedelta(seconds=10), 30)] == [str(second.id)]
    assert str(first.id) in [r.checkin_id for r in cache.outbox_due(NOW + timedelta(seconds=30), 30)]

    assert cache.mark_delivered(str(first.id), NOW) is True
    assert cache.mark_delivered(str(first.id), NOW) is False
    assert cache.mark_delivered(str(uuid.uuid4()), NOW) is None
    row = cache.outbox_row(str(first.id))
    assert row is not None and row.attempts == 1 and row.delivered_at == NOW
    assert cache.outbox_pending() == 1
    cache.close()
    assert GateStore(tmp_path).outbox_pending() == 1, "the outbox survives a restart"


class SlowSource:
    """A snapshot source that yields ``world``'s entries, calling ``midway()`` half-way (then maybe failing)."""

    def __init__(self, snapshot: Snapshot, midway: Callable[[], None], fail: bool = False) -> None:
        self.snapshot = snapshot
        self.seq = snapshot.seq
        self.generated_at = snapshot.generated_at
        self.midway = midway
        self.fail = fail

    def entries(self) -> Iterator[object]:
        entries = [*self.snapshot.meetings, *self.snapshot.delegates, *self.snapshot.keys]
        for index, entry in enumerate(entries):
            if index == len(entries) // 2:
                self.midway()
                if self.fail:
                    raise ValueError("stream broke")
            yield entry


def test_scans_are_answered_from_the_old_data_while_a_snapshot_loads(tmp_path: Path, world: World) -> None:
    cache = GateStore(tmp_path)
    cache.load_snapshot(world.snapshot, NOW)
    newer = build_world(4)
    seen: list[object] = []

    def scan_from_another_thread() -> None:
        # The gate's scan thread: it must not wait for the load (the lock is not held while staging).
        worker = threading.Thread(target=lambda: seen.append(cache.lookup_code_hash(compact_hash(world.codes[1]))))
        worker.start()
        worker.join(timeout=2)
        assert not worker.is_alive(), "a scan waited for the snapshot load"

    cache.load_snapshot(SlowSource(newer.snapshot.model_copy(update={"seq": 50}), scan_from_another_thread),
                        NOW + timedelta(minutes=1))
    assert seen and seen[0] is not None and seen[0].id == 1  # type: ignore[attr-defined]
    assert cache.seq == 50 and cache.lookup_code_hash(compact_hash(world.codes[1])) is None
    assert cache.lookup_code_hash(compact_hash(newer.codes[1])) is not None
    cache.close()


def test_a_source_failing_half_way_changes_nothing(tmp_path: Path, world: World) -> None:
    cache = GateStore(tmp_path)
    cache.load_snapshot(world.snapshot, NOW)
    newer = build_world(4)
    with pytest.raises(ValueError, match="stream broke"):
        cache.load_snapshot(SlowSource(newer.snapshot.model_copy(update={"seq": 50}), lambda: None, fail=True),
                            NOW + timedelta(minutes=1))
    assert cache.seq == 42 and cache.synced_at == NOW
    assert cache.delegate_count() == len(world.snapshot.delegates)
    assert cache.lookup_code_hash(compact_hash(world.codes[1])) is not None
    assert cache.lookup_code_hash(compact_hash(newer.codes[1])) is None
    assert cache.pragma("integrity_check") == "ok"
    assert cache.staging_files() == [], "the scratch file is removed"
    cache.close()


def test_a_repeated_delegate_keeps_its_last_entry(tmp_path: Path, world: World) -> None:
    first = world.snapshot.delegates[0]
    renamed = first.model_copy(update={"name": "Tên mới", "revoked": True})
    snapshot = world.snapshot.model_copy(update={"delegates": [*world.snapshot.delegates, renamed]})
    cache = GateStore(tmp_path)
    cache.load_snapshot(snapshot, NOW)
    assert cache.delegate_count() == len(world.snapshot.delegates)
    found = cache.delegate(first.meeting_id, first.id)
    assert found is not None and found.name == "Tên mới" and found.revoked
    cache.close()


def test_a_gate_process_loads_no_orm_no_psycopg_and_no_central_code() -> None:
    probe = ("import sys, gate.app, gate.scanners.serial, gate.scanners.hid; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'peewee', 'psycopg', 'psycopg2', 'central'}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_delivered_rows_older_than_the_cutoff_are_pruned(tmp_path: Path) -> None:
    store = GateStore(tmp_path)
    old, recent, pending = checkin(), checkin(), checkin()
    for row in (old, recent, pending):
        store.add_checkin(row, encode(row), NOW)
    store.mark_delivered(str(old.id), NOW)
    store.mark_delivered(str(recent.id), NOW + timedelta(hours=2))
    assert store.prune_delivered(NOW + timedelta(hours=1)) == 1
    assert store.outbox_row(str(old.id)) is None
    assert store.outbox_row(str(recent.id)) is not None
    assert store.outbox_row(str(pending.id)) is not None, "an undelivered row is never pruned"
    assert store.prune_delivered(NOW + timedelta(days=30)) == 1
    assert store.outbox_pending() == 1
    store.close()
