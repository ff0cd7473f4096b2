"""Schema migrations: the models and the migrations agree, a database of an earlier commit upgrades with its data
kept, a failing migration leaves the database as it was, and the commands refuse an out-of-date database.

Runs on SQLite and PostgreSQL (``empty_database_url``). The earlier schema is a frozen copy of commit 1b32f2a's
(``frozen/``), the database this issue found breaking ``broker-config`` with ``no such column: t1.mode``.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import peewee
import pytest

import central.migrations as migrations
from central.cli import main
from central.core.db import database, open_database
from central.migrations import MIGRATION_TABLE, Migration, MigrationError, migrate, pending
from central.schema import all_models

FROZEN = Path(__file__).with_name("frozen")
WHEN = datetime(2026, 11, 26, 9, 0)


def _engine(db: peewee.Database) -> str:
    return "sqlite" if isinstance(db, peewee.SqliteDatabase) else "postgresql"


def _shape(db: peewee.Database) -> dict[str, Any]:
    """Tables → columns (name, null) and indexes (name, unique, columns): what must agree across engines."""
    shape: dict[str, Any] = {}
    for table in sorted(set(db.get_tables()) - {MIGRATION_TABLE}):
        columns = sorted((c.name, c.null) for c in db.get_columns(table))
        indexes = sorted((i.name, i.unique, tuple(i.columns)) for i in db.get_indexes(table)
                         if not i.name.endswith("_pkey") and not i.name.startswith("sqlite_autoindex"))
        shape[table] = {"columns": columns, "indexes": indexes}
    return shape


def _load(db: peewee.Database, sql_file: Path) -> None:
    text = "\n".join(line for line in sql_file.read_text(encoding="utf-8").splitlines() if not line.startswith("--"))
    for statement in (s.strip() for s in text.split(";")):
        if statement:
            db.execute_sql(statement)


def test_the_migrations_build_exactly_what_the_models_describe(empty_database_url: str, tmp_path: Path) -> None:
    """A model changed without its migration fails here: both schemas are compared table by table."""
    reference = peewee.SqliteDatabase(str(tmp_path / "from-models.db"))
    with reference.bind_ctx(all_models(), bind_refs=False, bind_backrefs=False), reference.connection_context():
        reference.create_tables(all_models())
        expected = _shape(reference)
    db = open_database(empty_database_url)
    assert migrate() == [m.name for m in migrations.discover()]
    with db.connection_context():
        assert _shape(db) == expected
    assert pending() == []
    assert migrate() == []  # a second run has nothing to do


def _seed_old_database(db: peewee.Database) -> None:
    """A meeting with one invitation, one delegate, one gate and two check-ins, in the schema of 1b32f2a."""
    p = db.param
    rows: list[tuple[str, tuple[Any, ...]]] = [
        ('INSERT INTO "meeting" (id, title, starts_at, ends_at, venue, site_id, scheme, entry_policy, status, '
         'created_at, agenda, chair) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
         ("Hội nghị tổng kết năm 2025", WHEN, WHEN + timedelta(hours=3), "Hội trường A", "hq", "compact", "single",
          "scheduled", WHEN - timedelta(days=3), "", "")),
        ('INSERT INTO "organisation" (id, name, leader_name) VALUES (1, ?, ?)', ("Sở Tài chính", "")),
        ('INSERT INTO "invitation" (id, meeting_id, organisation_id, number, year, seq, created_at, status, comment, '
         'drafted_by, approved_by) VALUES (1, 1, 1, ?, 2026, 1, ?, ?, ?, ?, ?)',
         ("1/TM-UBND", WHEN - timedelta(days=2), "sent", "", "vanthu", "lanhdao")),
        ('INSERT INTO "delegate" (id, invitation_id, meeting_id, name, position, email, code, code_hash, credential, '
         'valid_from, valid_until, mail_status, created_at) VALUES (1, 1, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
         ("Nguyễn Văn An", "Chuyên viên", "an@example.vn", "K7Q2M9XR4T", "ab" * 32, "d-1", WHEN - timedelta(hours=2),
          WHEN + timedelta(hours=3), "sent", WHEN - timedelta(days=1))),
        ('INSERT INTO "gate" (id, gate_id, name, site_id, direction, token_hash, state, emergency) '
         'VALUES (1, ?, ?, ?, ?, ?, ?, ?)', ("g1", "Cổng chính", "hq", "in", "cd" * 32, "online", False)),
    ]
    for n in (1, 2):
        rows.append((
            'INSERT INTO "check_in" (checkin_id, gate_id, meeting_id, delegate_id, allowed, reason, outcome, '
            'direction, scheme, scanned_at, received_at, manual, credential) '
            'VALUES (?, 1, 1, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            (str(uuid.uuid4()), n == 1, "ok" if n == 1 else "already_inside", "entered" if n == 1 else "refused", "in",
             "compact", WHEN + timedelta(minutes=n), WHEN + timedelta(minutes=n, seconds=1), False, "d-1")))
    for sql, params in rows:
        db.execute_sql(sql.replace("?", p), params)


def test_a_database_of_an_earlier_commit_upgrades_with_its_data(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = open_database(empty_database_url)
    with db.connection_context():
        _load(db, FROZEN / f"schema-1b32f2a.{_engine(db)}.sql")
        _seed_old_database(db)

    monkeypatch.setenv("VAORA_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("VAORA_SIGNING_KEY_FILE", str(tmp_path / "key.pem"))
    assert main(["broker-config", str(tmp_path / "broker")]) == 2  # refused before migrating, not a crash
    assert "vaora-central migrate" in capsys.readouterr().err
    assert main(["migrate"]) == 0
    assert "0001_baseline" in capsys.readouterr().out

    from central.gates.models import CheckIn, Gate
    from central.meetings.models import Meeting
    from central.registration.models import Delegate

    open_database(empty_database_url)
    with database.connection_context():
        meeting = Meeting.get_by_id(1)
        assert meeting.title == "Hội nghị tổng kết năm 2025"
        assert meeting.walkin_policy == "approval"  # the value the models gave new meetings then
        assert Delegate.get_by_id(1).code == "K7Q2M9XR4T"
        assert sorted(c.reason for c in CheckIn.select()) == ["already_inside", "ok"]
        assert Gate.get(Gate.gate_id == "g1").mode is None
        assert pending() == []
    # The command that failed on this database before (no such column: t1.mode) now works on it.
    assert main(["broker-config", str(tmp_path / "broker")]) == 0
    assert (tmp_path / "broker" / "acl").read_text(encoding="utf-8").count("g1") >= 1


def test_an_upgraded_database_serves_the_app(empty_database_url: str, tmp_path: Path) -> None:
    from central.app import create_app

    db = open_database(empty_database_url)
    with db.connection_context():
        _load(db, FROZEN / f"schema-1b32f2a.{_engine(db)}.sql")
        _seed_old_database(db)
    migrate()
    token = "t" * 32
    app = create_app({"VAORA_DATABASE_URL": empty_database_url, "VAORA_API_TOKEN": token,
                      "VAORA_SIGNING_KEY_FILE": str(tmp_path / "key.pem"), "VAORA_DATA_DIR": str(tmp_path / "data"),
                      "TESTING": True})
    answer = app.test_client().get("/api/v1/meetings/1/attendance", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["present"] == 1


def _boom(ctx: migrations.MigrationContext) -> None:
    ctx.execute('CREATE TABLE "half_done" ("id" INTEGER PRIMARY KEY)')
    ctx.execute('ALTER TABLE "meeting" ADD COLUMN "room" VARCHAR(20)')
    raise ValueError("the clerk's test migration fails on purpose")


def test_a_failing_migration_names_itself_and_changes_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    real = migrations.discover()
    monkeypatch.setattr(migrations, "discover", lambda: [*real, Migration("0999_add_room", _boom)])
    db = open_database(database_url)
    with db.connection_context():
        before = _shape(db)
    with pytest.raises(MigrationError) as raised:
        migrate()
    assert raised.value.name == "0999_add_room"
    assert "fails on purpose" in str(raised.value)
    with db.connection_context():
        assert _shape(db) == before  # no half_done table, no room column
        assert pending() == ["0999_add_room"]

    monkeypatch.setenv("VAORA_DATABASE_URL", database_url)
    monkeypatch.setenv("VAORA_SIGNING_KEY_FILE", str(tmp_path / "key.pem"))
    assert main(["migrate"]) == 1  # the unit's ExecStartPre fails, so the web server does not start
    err = capsys.readouterr().err
    assert "migration 0999_add_room failed" in err and "fails on purpose" in err


def test_init_db_builds_a_new_database_and_workers_refuse_an_empty_one(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("VAORA_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("VAORA_SIGNING_KEY_FILE", str(tmp_path / "key.pem"))
    assert main(["deliver", "--once"]) == 2
    assert "pending: 0001_baseline" in capsys.readouterr().err
    assert main(["init-db"]) == 0
    assert "applied 0001_baseline" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "nothing to migrate" in capsys.readouterr().out
    assert main(["deliver", "--once"]) == 0


def test_every_module_in_the_package_is_a_migration_it_runs() -> None:
    """A file named outside the ``mNNNN_name.py`` pattern would be skipped silently; none is."""
    folder = Path(migrations.__file__).parent
    modules = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
    assert ["m" + m.name for m in migrations.discover()] == modules
    assert modules[0] == "m0001_baseline"
