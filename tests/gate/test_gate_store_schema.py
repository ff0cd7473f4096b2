"""The store's schema migrations: a gate database made before ``PRAGMA user_version`` upgrades in place, keeps its
data and gets the latest version; a database newer than the code is refused with a clear error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gate.store import DB_FILENAME, LATEST_VERSION, CommandStore, GateStore, SchemaTooNewError
from gate.store.schema import Migration, migrate, user_version
from protocols.codes import compact_hash, generate_compact
from protocols.payloads import Direction
from tests.gate.gate_helpers import NOW

UNVERSIONED_SQL = Path(__file__).with_name("data") / "cache_unversioned.sql"
CODE = generate_compact()


def unversioned_database(directory: Path) -> Path:
    """A gate database with the tables and rows the unversioned cache wrote (user_version 0)."""
    path = directory / DB_FILENAME
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(UNVERSIONED_SQL.read_text())
    at = NOW.timestamp()
    conn.execute("INSERT INTO meetings VALUES (1, 'Họp giao ban', 'compact', ?, ?, 'hq', 'Hội trường', "
                 "'scheduled', 'single')", (at - 3600, at + 3600))
    conn.execute("INSERT INTO delegates (meeting_id, delegate_id, name, organisation, position, code_hash, "
                 "valid_from, valid_until, revoked) VALUES (1, 7, 'Nguyễn Văn A', 'Sở Tài chính', '', ?, ?, ?, 0)",
                 (compact_hash(CODE), at - 3600, at + 3600))
    conn.execute("INSERT INTO meta VALUES ('seq', '42')")
    conn.execute("INSERT INTO outbox (checkin_id, payload, created_at, attempts) VALUES ('c1', x'7b7d', ?, 0)",
                 (at,))
    conn.execute("INSERT INTO consumed (credential, checkin_id, at, entered, inside, gate_id) "
                 "VALUES ('cred', 'c0', ?, 1, 1, 'g1')", (at,))
    conn.execute("INSERT INTO command_state VALUES ('mode', 'lockdown')")
    conn.close()
    return path


def test_an_unversioned_database_upgrades_in_place_and_keeps_its_data(tmp_path: Path) -> None:
    path = unversioned_database(tmp_path)
    store = GateStore(tmp_path)
    try:
        assert store.pragma("user_version") == LATEST_VERSION
        meeting = store.meeting(1)
        assert meeting is not None and meeting.title == "Họp giao ban"
        delegate = store.lookup_code_hash(compact_hash(CODE))
        assert delegate is not None and (delegate.meeting_id, delegate.id) == (1, 7)
        assert store.seq == 42
        assert store.outbox_pending() == 1 and store.outbox_row("c1") is not None
        assert store.has_entered("cred") and store.is_inside("cred")
        assert store.last_entry_at("cred") == NOW, "step 3 takes an old entry's time from its latest passage"
        assert store.record_passage("cred", "c2", NOW, Direction.OUT, "g2")
        assert store.last_entry_at("cred") == NOW, "going out keeps the time of the entry"
    finally:
        store.close()
    commands = CommandStore(path)
    try:
        assert commands.get_state("mode") == "lockdown"
    finally:
        commands.close()


def test_opening_an_up_to_date_database_again_changes_nothing(tmp_path: Path) -> None:
    GateStore(tmp_path).close()
    store = GateStore(tmp_path)
    try:
        assert store.pragma("user_version") == LATEST_VERSION
    finally:
        store.close()


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNewError, match=rf"version {LATEST_VERSION + 1} is newer .*knows \({LATEST_VERSION}\)"):
        GateStore(tmp_path)


def test_a_failing_step_leaves_the_version_of_the_last_good_step(tmp_path: Path) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("disk full")

    conn = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    steps = (Migration(1, "a table", lambda c: c.execute("CREATE TABLE kept (x)") and None),
             Migration(2, "broken", broken))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, steps)
    assert user_version(conn) == 1
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"kept"}
    conn.close()


def test_a_version_3_database_gets_the_meeting_sites_column_and_decides_as_before(tmp_path: Path) -> None:
    """A gate database of schema 3 (before ``meetings.sites``) upgrades to the latest: its cached meetings read as
    held at their ``site_id`` alone, and a change naming a remote point's site is stored and read back."""
    from gate.decision import decide
    from gate.store.schema import MIGRATIONS
    from protocols.payloads import Change, MeetingUpsert

    path = unversioned_database(tmp_path)
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, MIGRATIONS[:3]) == 3
    assert "sites" not in {row[1] for row in conn.execute('PRAGMA table_info("meetings")')}
    conn.close()
    store = GateStore(tmp_path)
    try:
        assert store.pragma("user_version") == LATEST_VERSION
        meeting = store.meeting(1)
        assert meeting is not None and meeting.sites is None and meeting.gate_sites == ("hq",)
        assert decide(CODE, store, NOW, "hq").allowed
        assert decide(CODE, store, NOW, "st").reason.value == "unknown_code"
        remote = meeting.model_copy(update={"sites": ["hq", "st"], "status": "open"})
        store.apply_change(Change(seq=43, at=NOW, body=MeetingUpsert(meeting=remote)), NOW)
        reread = store.meeting(1)
        assert reread is not None and reread.gate_sites == ("hq", "st")
        assert decide(CODE, store, NOW, "st").allowed
    finally:
        store.close()
