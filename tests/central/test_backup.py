"""Backups (``central/backup.py``): a real central database with meetings, delegates (compact and signed codes),
check-ins and a document is backed up and restored into a fresh folder with a new configuration; the same
meetings, codes and check-ins come back, and a signed code issued before the backup still verifies with the
restored keys. Bad archives (tampered, ``..`` or absolute members, links, unknown format), a missing archive and a
target that already holds data are refused before anything changes.

The database comes from the suite's ``app`` fixture (schema built by central's migrations), on SQLite and, when
127.0.0.1:5432 answers, on PostgreSQL (``postgres`` marker; skipped otherwise).
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import sqlite3
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from central.backup import (
    MANIFEST,
    PG_MEMBER,
    SECRET_KEY_MEMBER,
    SIGNING_KEY_MEMBER,
    SQLITE_MEMBER,
    BackupError,
    create_backup,
    restore_backup,
)
from central.config import CentralConfig
from central.core.db import database, open_database
from central.core.keys import register_signing_key, trusted_keys
from central.core.signing import load_or_create_signing_key
from central.gates.checkins import store_checkin
from central.gates.models import CheckIn as CheckInRow
from central.meetings.documents import add_document
from central.meetings.models import Meeting
from central.registration.models import Delegate
from protocols.codes import public_key_from_text, short_public_key_from_text, verify_signed
from protocols.payloads import CheckIn, Direction, Outcome
from protocols.reasons import Reason
from tests.conftest import _admin_connection, _drop_database

from .conftest import START, Api

SECRET = "the-app-secret-of-these-tests-0123456789"
PDF = b"%PDF-1.4\n% bien ban hop\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
sqlite_only = pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True)
postgres_only = pytest.mark.parametrize(
    "empty_database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
def central_config(central_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The suite's app settings plus a secret key file, as production has."""
    secret = tmp_path / "keys" / "secret-key"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(SECRET + "\n", encoding="utf-8")
    secret.chmod(0o600)
    return {**central_config, "VAORA_SECRET_KEY_FILE": str(secret)}


@pytest.fixture
def config(app: Flask, central_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> CentralConfig:
    """The running app's configuration; ``VAORA_SECRET_KEY_FILE`` is in the environment, as for the CLI."""
    monkeypatch.setenv("VAORA_SECRET_KEY_FILE", central_config["VAORA_SECRET_KEY_FILE"])
    return app.extensions["vaora"].config


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same engine, elsewhere: a file not yet made, or a new PostgreSQL database."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/fresh/var/central.db"
        return
    from psycopg import sql

    name = f"vaora_t_{secrets.token_hex(6)}"
    with _admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{database_url.rsplit('/', 1)[0]}/{name}"
    finally:
        _drop_database(name)


def fresh_config(url: str, folder: Path) -> CentralConfig:
    """A new installation's configuration: other database, key path and data folder."""
    return CentralConfig.from_mapping({
        "VAORA_DATABASE_URL": url,
        "VAORA_SIGNING_KEY_FILE": str(folder / "etc" / "vaora-signing.pem"),
        "VAORA_DATA_DIR": str(folder / "documents-here"),
    })


@dataclass(frozen=True)
class World:
    """What the source installation holds that the tests look for after a restore."""

    signed_code: str
    document: str
    """The stored document's name under ``data_dir/documents``."""


def checkin(delegate_id: int, meeting_id: int, minutes: int) -> CheckIn:
    """A check-in from gate g1 ``minutes`` after the meeting starts."""
    return CheckIn(id=uuid.uuid4(), gate_id="g1", site_id="hq", direction=Direction.IN,
                   scanned_at=START + timedelta(minutes=minutes), allowed=True, reason=Reason.OK,
                   outcome=Outcome.ENTERED, meeting_id=meeting_id, delegate_id=delegate_id)


def build_world(api: Api, config: CentralConfig) -> World:
    """Two meetings (compact and signed), a delegate in each, their check-ins at gate g1, and a document."""
    compact = api.meeting(title="Họp giao ban tháng 3")
    signed = api.meeting(scheme="signed", title="Họp Ban chỉ đạo chuyển đổi số")
    organisation = api.organisation()
    delegates = []
    for meeting in (compact, signed):
        invitation = api.invitation(meeting_id=meeting["id"], organisation_id=organisation["id"])
        response = api.register(invitation)
        assert response.status_code == 201, response.get_json()
        delegates.append((response.get_json()["id"], meeting["id"]))
    api.gate("g1")
    with database.connection_context():
        for minutes, (delegate_id, meeting_id) in enumerate(delegates):
            assert store_checkin(checkin(delegate_id, meeting_id, minutes), "g1", START).status == "stored"
        document = add_document(Meeting.get_by_id(compact["id"]), "bien-ban.pdf", PDF, data_dir=config.data_dir,
                                max_bytes=1 << 20, actor="test", now=START)
        signed_code = Delegate.get_by_id(delegates[1][0]).code
    return World(signed_code=signed_code, document=document.stored_name)


def contents() -> dict[str, Any]:
    """What the database the proxy points at holds: meeting titles, delegates' codes, check-ins, keys."""
    with database.connection_context():
        return {
            "titles": sorted(m.title for m in Meeting.select()),
            "codes": {d.id: d.code for d in Delegate.select()},
            "checkins": sorted((str(c.checkin_id), c.delegate_id, c.scanned_at) for c in CheckInRow.select()),
            "keys": trusted_keys(),
        }


def contents_of(url: str) -> dict[str, Any]:
    """The same for the database at ``url`` (the proxy now points there)."""
    if not database.is_closed():
        database.close()
    open_database(url)
    return contents()


def members_of(archive: Path) -> dict[str, bytes]:
    """Every member of a backup archive and its bytes."""
    with tarfile.open(archive) as tar:
        return {info.name: tar.extractfile(info).read() for info in tar if info.isreg()}  # type: ignore[union-attr]


def rewrite(source: Path, target: Path, *, change: Callable[[dict[str, bytes]], dict[str, bytes]],
            extra: tarfile.TarInfo | None = None) -> Path:
    """Write ``target`` with the members ``change`` makes of ``source``'s (and ``extra``, a non-file member)."""
    with tarfile.open(target, "w:gz") as tar:
        for name, data in change(members_of(source)).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            tar.addfile(extra)
    return target


def listed(members: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    """``members`` with ``name`` added and listed in the manifest with its true SHA-256 (only its name is bad)."""
    manifest = json.loads(members[MANIFEST])
    manifest["members"].append({"name": name, "role": "document", "original_path": None,
                                "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    return {**members, name: data, MANIFEST: json.dumps(manifest).encode()}


def files_of(config: CentralConfig) -> dict[str, bytes]:
    """The bytes of an installation's database file (SQLite), keys and documents, to prove nothing changed."""
    paths = [config.signing_key_file, Path(config.signing_key_file.parent / "secret-key"),
             *sorted(config.data_dir.rglob("*"))]
    if config.database_url.startswith("sqlite"):
        paths.append(Path(config.database_url.split(":///", 1)[1]))
    return {str(path): path.read_bytes() for path in paths if path.is_file()}


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


# ----- the round trip ----------------------------------------------------------------------------------------


def test_backup_restored_into_a_fresh_folder_brings_everything_back(
    config: CentralConfig, api: Api, fresh_url: str, tmp_path: Path
) -> None:
    world = build_world(api, config)
    before = contents()
    archive = tmp_path / "backups" / "vaora.tar.gz"
    archive.parent.mkdir()

    written = create_backup(config, archive)

    engine = "sqlite" if config.database_url.startswith("sqlite") else "postgresql"
    database_member = SQLITE_MEMBER if engine == "sqlite" else PG_MEMBER
    document_member = f"data/documents/{world.document}"
    assert written.engine == engine
    assert (written.meetings, written.delegates, written.checkins) == (2, 2, 2)
    assert set(written.members) == {database_member, SIGNING_KEY_MEMBER, SECRET_KEY_MEMBER, document_member, MANIFEST}
    assert mode(archive) == 0o600
    assert [p.name for p in archive.parent.iterdir()] == ["vaora.tar.gz"]  # no temporary file left
    members = members_of(archive)
    manifest = json.loads(members[MANIFEST])
    assert (manifest["format_version"], manifest["engine"]) == (1, engine)
    assert datetime.fromisoformat(manifest["created_at"]).utcoffset() == timedelta(0)
    entries = {entry["name"]: entry for entry in manifest["members"]}
    assert entries[SIGNING_KEY_MEMBER]["original_path"] == str(config.signing_key_file.absolute())
    assert all(entries[name]["sha256"] == hashlib.sha256(members[name]).hexdigest() for name in entries)
    assert members[SIGNING_KEY_MEMBER] == config.signing_key_file.read_bytes()
    assert members[SECRET_KEY_MEMBER].decode().strip() == SECRET

    folder = tmp_path / "fresh"
    fresh = fresh_config(fresh_url, folder)
    restored = restore_backup(fresh, archive, secret_key_file=folder / "etc" / "secret-key")

    assert (restored.meetings, restored.delegates, restored.checkins) == (2, 2, 2)
    assert restored.notes == ()
    assert fresh.signing_key_file.read_bytes() == config.signing_key_file.read_bytes()
    assert (fresh.data_dir / "documents" / world.document).read_bytes() == PDF
    for path in (fresh.signing_key_file, folder / "etc" / "secret-key", fresh.data_dir / "documents" / world.document):
        assert mode(path) == 0o600, path
    restarted = CentralConfig.from_mapping({"VAORA_SECRET_KEY_FILE": str(folder / "etc" / "secret-key")})
    assert restarted.secret_key == SECRET

    after = contents_of(fresh_url)
    assert after == before
    assert after["titles"] == ["Họp Ban chỉ đạo chuyển đổi số", "Họp giao ban tháng 3"]
    keys = {entry.key_id: public_key_from_text(entry.public_key) for entry in after["keys"]}
    short = {entry.key_id: short_public_key_from_text(entry.short_key) for entry in after["keys"] if entry.short_key}
    assert verify_signed(world.signed_code, keys, START, short).reason is Reason.OK
    with database.connection_context():  # the restored private key is still the active one: no new key id
        active = register_signing_key(load_or_create_signing_key(fresh.signing_key_file), START)
        assert [entry.key_id for entry in trusted_keys()] == [active.key_id]


def test_backup_carries_every_rotated_signing_key_and_the_active_one_signs_after_restore(
    config: CentralConfig, api: Api, fresh_url: str, tmp_path: Path
) -> None:
    from central.backup import ROTATED_KEYS_PREFIX
    from central.core import keys
    from central.core.signing import key_dir

    world = build_world(api, config)  # a signed code by the first key
    with database.connection_context():
        revoked = keys.rotate(config.signing_key_file, "quantri", START)
        active = keys.rotate(config.signing_key_file, "quantri", START)
        keys.revoke(config.signing_key_file, revoked.key_id, "quantri", START)
    rotated_files = sorted(key_dir(config.signing_key_file).glob("*.pem"))
    assert len(rotated_files) == 2
    archive = tmp_path / "vaora.tar.gz"
    written = create_backup(config, archive)
    assert sorted(m for m in written.members if m.startswith(ROTATED_KEYS_PREFIX)) == [
        ROTATED_KEYS_PREFIX + path.name for path in rotated_files]

    folder = tmp_path / "fresh"
    fresh = fresh_config(fresh_url, folder)
    restore_backup(fresh, archive, secret_key_file=folder / "etc" / "secret-key")
    restored_dir = key_dir(fresh.signing_key_file)
    assert {p.name: p.read_bytes() for p in restored_dir.glob("*.pem")} == {p.name: p.read_bytes()
                                                                             for p in rotated_files}
    assert mode(restored_dir) == 0o700 and all(mode(p) == 0o600 for p in restored_dir.glob("*.pem"))
    after = contents_of(fresh_url)
    with database.connection_context():
        signing = keys.active_key(fresh.signing_key_file, START)
        assert signing.key_id == active.key_id
        assert signing.private_key.public_key() == active.private_key.public_key()
        states = {row.key_id: keys.state_of(row) for row in keys.all_keys()}
    assert states == {1: "retired", revoked.key_id: "revoked", active.key_id: "active"}
    trusted = {entry.key_id: public_key_from_text(entry.public_key) for entry in after["keys"] if not entry.revoked}
    short = {entry.key_id: short_public_key_from_text(entry.short_key) for entry in after["keys"]
             if entry.short_key and not entry.revoked}
    assert verify_signed(world.signed_code, trusted, START, short).reason is Reason.OK, "the retired key still verifies"


@sqlite_only
def test_sqlite_backup_is_one_snapshot_while_a_writer_holds_a_transaction(
    config: CentralConfig, api: Api, fresh_url: str, tmp_path: Path
) -> None:
    build_world(api, config)
    before = contents()
    writer = sqlite3.connect(config.database_url.split(":///", 1)[1], timeout=1)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE meeting SET title = 'not committed'")
        create_backup(config, tmp_path / "live.tar.gz")  # central running: neither blocks nor sees the write
    finally:
        writer.rollback()
        writer.close()
    restore_backup(fresh_config(fresh_url, tmp_path / "fresh"), tmp_path / "live.tar.gz",
                   secret_key_file=tmp_path / "fresh" / "secret")
    assert contents_of(fresh_url) == before


@sqlite_only
def test_without_a_configured_secret_path_the_key_goes_beside_the_signing_key(
    config: CentralConfig, api: Api, fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_backup(config, tmp_path / "b.tar.gz")
    monkeypatch.delenv("VAORA_SECRET_KEY_FILE")
    fresh = fresh_config(fresh_url, tmp_path / "fresh")
    summary = restore_backup(fresh, tmp_path / "b.tar.gz")
    target = fresh.signing_key_file.parent / "secret-key"
    assert target.read_text(encoding="utf-8").strip() == SECRET
    assert summary.notes == (f"secret key restored to {target}: set VAORA_SECRET_KEY_FILE={target}",)


# ----- refusals ----------------------------------------------------------------------------------------------


def test_restoring_over_data_needs_force(config: CentralConfig, api: Api, tmp_path: Path) -> None:
    build_world(api, config)
    before = contents()
    archive = tmp_path / "b.tar.gz"
    create_backup(config, archive)
    api.meeting(title="Họp sau khi sao lưu")

    with pytest.raises(BackupError, match="already holds data"):
        restore_backup(config, archive)
    assert "Họp sau khi sao lưu" in contents()["titles"]

    summary = restore_backup(config, archive, force=True)
    assert summary.meetings == 2
    assert contents() == before


@sqlite_only
def test_a_tampered_archive_is_refused_and_nothing_changes(
    config: CentralConfig, api: Api, tmp_path: Path
) -> None:
    build_world(api, config)
    archive = create_backup(config, tmp_path / "b.tar.gz").archive
    tampered = rewrite(archive, tmp_path / "tampered.tar.gz",
                       change=lambda members: {**members, SIGNING_KEY_MEMBER: b"not the key"})
    before = files_of(config)

    with pytest.raises(BackupError, match="does not match its SHA-256"):
        restore_backup(config, tampered, force=True)
    assert files_of(config) == before

    fresh = fresh_config(f"sqlite:///{tmp_path}/fresh/central.db", tmp_path / "fresh")
    with pytest.raises(BackupError, match="does not match its SHA-256"):
        restore_backup(fresh, tampered, secret_key_file=tmp_path / "fresh" / "secret-key")
    assert not (tmp_path / "fresh").exists()


@sqlite_only
@pytest.mark.parametrize("name", ["../escape.txt", "data/../../escape.txt", "/tmp/vaora-escape.txt"])
def test_a_member_outside_the_archive_folder_is_refused(
    config: CentralConfig, tmp_path: Path, name: str
) -> None:
    archive = create_backup(config, tmp_path / "b.tar.gz").archive
    evil = rewrite(archive, tmp_path / "evil.tar.gz", change=lambda members: listed(members, name, b"owned"))
    fresh = fresh_config(f"sqlite:///{tmp_path}/fresh/central.db", tmp_path / "fresh")
    with pytest.raises(BackupError, match="points outside its folder"):
        restore_backup(fresh, evil)
    assert not (tmp_path / "fresh").exists()
    assert not Path("/tmp/vaora-escape.txt").exists()


@sqlite_only
def test_a_link_member_is_refused(config: CentralConfig, tmp_path: Path) -> None:
    archive = create_backup(config, tmp_path / "b.tar.gz").archive
    link = tarfile.TarInfo("data/documents/link.pdf")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    evil = rewrite(archive, tmp_path / "evil.tar.gz", change=lambda members: members, extra=link)
    with pytest.raises(BackupError, match="not a regular file"):
        restore_backup(fresh_config(f"sqlite:///{tmp_path}/fresh/central.db", tmp_path / "fresh"), evil)


@sqlite_only
def test_an_unknown_format_version_or_a_missing_manifest_is_refused(config: CentralConfig, tmp_path: Path) -> None:
    archive = create_backup(config, tmp_path / "b.tar.gz").archive
    fresh = fresh_config(f"sqlite:///{tmp_path}/fresh/central.db", tmp_path / "fresh")

    def future(members: dict[str, bytes]) -> dict[str, bytes]:
        manifest = json.loads(members[MANIFEST])
        return {**members, MANIFEST: json.dumps({**manifest, "format_version": 99}).encode()}

    with pytest.raises(BackupError, match="format version 99 is unknown"):
        restore_backup(fresh, rewrite(archive, tmp_path / "future.tar.gz", change=future))
    no_manifest = rewrite(archive, tmp_path / "bare.tar.gz",
                          change=lambda members: {k: v for k, v in members.items() if k != MANIFEST})
    with pytest.raises(BackupError, match=r"no manifest\.json"):
        restore_backup(fresh, no_manifest)
    assert not (tmp_path / "fresh").exists()


@sqlite_only
def test_a_missing_or_unreadable_archive_is_refused(config: CentralConfig, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="does not exist"):
        restore_backup(config, tmp_path / "nowhere.tar.gz")
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not a backup")
    with pytest.raises(BackupError, match=r"not a readable tar\.gz"):
        restore_backup(config, garbage)


def test_pg_dump_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    config = CentralConfig.from_mapping({"VAORA_DATABASE_URL": "postgresql://vaora:hunter2-secret@127.0.0.1/vaora",
                                         "VAORA_SIGNING_KEY_FILE": str(tmp_path / "k.pem")})
    with pytest.raises(BackupError, match="pg_dump was not found") as refused:
        create_backup(config, tmp_path / "b.tar.gz")
    assert "hunter2" not in str(refused.value)
    assert list(tmp_path.iterdir()) == []


@postgres_only
def test_the_postgres_password_travels_in_the_environment(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_dump gets the password through PGPASSWORD, never in its arguments (the test server trusts anyone)."""
    password = "never-on-the-command-line"
    url = database_url.replace("postgres@", f"postgres:{password}@", 1)
    config = CentralConfig.from_mapping({"VAORA_DATABASE_URL": url, "VAORA_SIGNING_KEY_FILE": str(tmp_path / "k.pem"),
                                         "VAORA_DATA_DIR": str(tmp_path / "data")})
    calls: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def spy(command: list[str], **kwargs: Any) -> Any:
        calls.append((command, kwargs["env"]))
        return real_run(command, **kwargs)

    monkeypatch.setattr("central.backup.subprocess.run", spy)
    monkeypatch.delenv("VAORA_SECRET_KEY_FILE", raising=False)
    summary = create_backup(config, tmp_path / "b.tar.gz")
    assert summary.members == (PG_MEMBER, MANIFEST)
    [(command, env)] = calls
    assert command[0].endswith("pg_dump") and "--format=custom" in command and "--no-owner" in command
    assert not any(password in part for part in command)
    assert env["PGPASSWORD"] == password
    assert password not in members_of(tmp_path / "b.tar.gz")[MANIFEST].decode()
