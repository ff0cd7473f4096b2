"""Backups of central: one ``tar.gz`` with the database, the signing key, the secret key and the documents.

``vaora-central backup -o FILE`` calls :func:`create_backup`; ``vaora-central restore FILE [--force]`` calls
:func:`restore_backup`. Both raise :class:`BackupError` with a one-line reason for the operator.

The archive holds:

- ``database/central.sqlite3``: a consistent copy made with SQLite's online backup API (safe while central runs in
  WAL mode: the copy is one read snapshot), or ``database/central.pgdump``: ``pg_dump --format=custom --no-owner``;
- ``keys/signing-key.pem``: central's first Ed25519 private key (``VAORA_SIGNING_KEY_FILE``), and
  ``keys/signing-keys/<fingerprint>.pem``: every key made by a rotation (the ``signing-keys/`` folder beside it).
  Which key is active, retired or revoked, and the public half of every key central ever signed with, live in the
  database (table ``signing_key``), so codes issued before the backup verify after a restore, and the key that was
  active at the backup signs again;
- ``keys/secret-key``: the app secret (``VAORA_SECRET_KEY_FILE``: session cookies, the desk's ID-number HMAC);
- ``data/...``: the data folder (``VAORA_DATA_DIR``: meeting documents);
- ``manifest.json``: format version, creation time (UTC), vaora's version, the engine, row counts, and for every
  member its role, original path, size and SHA-256.

A restore checks the whole archive (safe member names, regular files only, manifest, format version, every
SHA-256) in a staging folder before it touches anything, refuses a target database that already holds data unless
``force``, then puts each member where the CURRENT configuration says (so a backup can be restored into a fresh
folder with a new configuration). Central should be stopped while a restore runs. Files are written mode 0600
through a temporary file beside the target and an atomic rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlparse

from playhouse import db_url

from central.config import CentralConfig
from central.core.signing import key_dir

FORMAT = "vaora-central-backup"
FORMAT_VERSION = 1
KNOWN_FORMAT_VERSIONS = frozenset({1})
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/central.sqlite3"
PG_MEMBER = "database/central.pgdump"
SIGNING_KEY_MEMBER = "keys/signing-key.pem"
ROTATED_KEYS_PREFIX = "keys/signing-keys/"
SECRET_KEY_MEMBER = "keys/secret-key"
DATA_PREFIX = "data/"
SECRET_KEY_ENV = "VAORA_SECRET_KEY_FILE"
FALLBACK_SECRET_KEY_NAME = "secret-key"
"""Where a restore puts the secret key, beside the signing key, when no secret key file is configured."""

COUNTED_TABLES = {"meetings": "meeting", "delegates": "delegate", "checkins": "check_in"}
BOOKKEEPING_TABLES = frozenset({"schema_migration", "worker_beat", "feed_cursor"})
"""Tables whose rows do not count as data when deciding whether a restore would overwrite something."""
PG_CONNINFO_KEYS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name")
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore was refused or failed: one line for the operator, without secrets (the CLI prints it
    after "refused: ")."""


@dataclass(frozen=True)
class BackupSummary:
    """What a backup wrote or a restore put back."""

    archive: Path
    engine: str
    """``sqlite`` or ``postgresql``."""
    members: tuple[str, ...]
    """The archive's member names (``manifest.json`` last)."""
    meetings: int
    delegates: int
    checkins: int
    notes: tuple[str, ...] = ()
    """Things the operator should know (a member absent from the archive, where the secret key went)."""

    def describe(self) -> str:
        """One line for the operator."""
        line = (f"{self.archive}: {self.engine}, {len(self.members)} members, {self.meetings} meetings, "
                f"{self.delegates} delegates, {self.checkins} check-ins")
        return "; ".join([line, *self.notes])


@dataclass(frozen=True)
class _PgTarget:
    """How to reach a PostgreSQL database without putting its password on a command line."""

    conninfo: str
    """libpq keywords without the password."""
    password: str | None
    label: str
    """``user@host:port/db`` for messages and the manifest."""

    def env(self) -> dict[str, str]:
        """The environment for pg_dump / pg_restore: the password through ``PGPASSWORD``."""
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env


@dataclass(frozen=True)
class _Member:
    """One archive member as the manifest describes it."""

    name: str
    role: str
    original_path: str | None
    sha256: str
    size: int


# ----- the configuration -------------------------------------------------------------------------------------


def engine_of(database_url: str) -> str:
    """``sqlite`` or ``postgresql`` for a central database URL."""
    scheme = urlparse(database_url).scheme
    if scheme == "sqlite":
        return "sqlite"
    if scheme.startswith("postgres"):
        return "postgresql"
    raise BackupError(f"unsupported database URL scheme {scheme!r}")


def sqlite_path(database_url: str) -> Path:
    """The database file a ``sqlite:///path`` URL names (parsed by playhouse.db_url, as central connects)."""
    path = str(db_url.parse(database_url).get("database") or "")
    if not path or path == ":memory:":
        raise BackupError("the SQLite database URL names no file (an in-memory database cannot be backed up)")
    return Path(path)


def _pg_target(database_url: str) -> _PgTarget:
    # Parsed by playhouse.db_url, as central's own connection is: user and password as written.
    settings = db_url.parse(database_url)
    database = settings.pop("database", None)
    if not database:
        raise BackupError("the PostgreSQL database URL names no database")
    password = settings.pop("password", None)
    params = {"dbname": str(database)}
    params.update({key: str(value) for key, value in settings.items()
                   if key in ("host", "port", "user") or key in PG_CONNINFO_KEYS})
    conninfo = " ".join(f"{key}={_conninfo_quote(value)}" for key, value in params.items())
    where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{database}"
    label = f"{params['user']}@{where}" if "user" in params else where
    return _PgTarget(conninfo=conninfo, password=password, label=label)


def _conninfo_quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _secret_key_source(secret_key_file: Path | None) -> Path | None:
    """The secret key file: the one given, else ``VAORA_SECRET_KEY_FILE`` from the environment, else none."""
    if secret_key_file is not None:
        return Path(secret_key_file)
    raw = os.environ.get(SECRET_KEY_ENV, "").strip()
    return Path(raw) if raw else None


def _secret_key_target(config: CentralConfig, secret_key_file: Path | None) -> tuple[Path, str | None]:
    """Where a restore writes the secret key, and a note when it is not a configured path."""
    configured = _secret_key_source(secret_key_file)
    if configured is not None:
        return configured, None
    target = config.signing_key_file.parent / FALLBACK_SECRET_KEY_NAME
    return target, f"secret key restored to {target}: set {SECRET_KEY_ENV}={target}"


# ----- small file helpers ------------------------------------------------------------------------------------


class _HashingReader:
    """A file wrapper that hashes what tarfile reads from it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        block = self.handle.read(size)
        self.digest.update(block)
        return block


def _write_atomically(target: Path, source: Path, *, clear: tuple[Path, ...] = ()) -> None:
    """Copy ``source`` to ``target`` (mode 0600) through a temporary file beside it and a rename; the files in
    ``clear`` are removed just before the rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".restoring")
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o600)
        for path in clear:
            path.unlink(missing_ok=True)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _vaora_version() -> str | None:
    try:
        return metadata.version("vaora")
    except metadata.PackageNotFoundError:
        return None


# ----- SQLite ------------------------------------------------------------------------------------------------


def _sqlite_copy(source: Path, destination: Path) -> None:
    """Copy a live SQLite database (WAL included) into ``destination`` as one self-contained file."""
    if not source.is_file():
        raise BackupError(f"the database file {source} does not exist")
    try:
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(destination)
            try:
                src.backup(dst)  # one step: one read snapshot, writers are not blocked in WAL mode
                dst.execute("PRAGMA journal_mode=DELETE")  # no -wal beside the copy; central turns WAL back on
                _check_sqlite(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the SQLite database {source}: {exc}") from exc


SQLITE_INTACT = "ok"
"""What ``PRAGMA quick_check`` answers for an intact database."""


def _check_sqlite(connection: sqlite3.Connection) -> None:
    result = connection.execute("PRAGMA quick_check").fetchone()
    if result is None or result[0] != SQLITE_INTACT:
        raise BackupError("the SQLite database fails its integrity check")


def _sqlite_tables(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return [row[0] for row in rows]


def _sqlite_counts(path: Path) -> dict[str, int]:
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = set(_sqlite_tables(connection))
            return {key: connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] if table in tables
                    else 0 for key, table in COUNTED_TABLES.items()}
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read the SQLite database {path}: {exc}") from exc


def _sqlite_has_data(path: Path) -> bool:
    """True when the file at ``path`` holds rows (other than bookkeeping), or is not a readable database."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            for table in _sqlite_tables(connection):
                if table in BOOKKEEPING_TABLES:
                    continue
                if connection.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() is not None:
                    return True
            return False
        finally:
            connection.close()
    except sqlite3.Error:
        return True


def _restore_sqlite(staged: Path, target: Path) -> None:
    """Put the staged copy at ``target``; the old database's -wal / -shm / -journal go first (they would be
    replayed into the new file)."""
    leftovers = tuple(target.with_name(target.name + suffix) for suffix in ("-wal", "-shm", "-journal"))
    _write_atomically(target, staged, clear=leftovers)


# ----- PostgreSQL --------------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} was not found on PATH: install the PostgreSQL client tools (postgresql-client)")
    return found


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise BackupError("psycopg is not installed (install vaora with its pg extra)") from exc
    return psycopg


@contextlib.contextmanager
def _pg_connection(target: _PgTarget) -> Iterator[Any]:
    psycopg = _psycopg()
    try:
        connection = psycopg.connect(target.conninfo, password=target.password, autocommit=True)
    except psycopg.Error as exc:
        raise BackupError(f"cannot connect to PostgreSQL {target.label}: {_first_line(str(exc))}") from exc
    try:
        yield connection
    except psycopg.Error as exc:
        raise BackupError(f"PostgreSQL {target.label}: {_first_line(str(exc))}") from exc
    finally:
        connection.close()


def _pg_tables(connection: Any) -> list[str]:
    rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
    return [row[0] for row in rows]


def _pg_counts(connection: Any) -> dict[str, int]:
    sql = _psycopg().sql
    tables = set(_pg_tables(connection))
    counts: dict[str, int] = {}
    for key, table in COUNTED_TABLES.items():
        query = sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(table))
        counts[key] = connection.execute(query).fetchone()[0] if table in tables else 0
    return counts


def _pg_has_data(target: _PgTarget) -> bool:
    sql = _psycopg().sql
    with _pg_connection(target) as connection:
        for table in _pg_tables(connection):
            if table in BOOKKEEPING_TABLES:
                continue
            query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
            if connection.execute(query).fetchone()[0]:
                return True
    return False


def _run(command: list[str], target: _PgTarget, what: str) -> None:
    try:
        result = subprocess.run(command, env=target.env(), capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BackupError(f"cannot run {what}: {exc.strerror or exc}") from exc
    if result.returncode != 0:
        raise BackupError(f"{what} failed for {target.label}: {_first_line(result.stderr) or 'no message'}")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _pg_dump(target: _PgTarget, destination: Path) -> dict[str, int]:
    """Dump the database into ``destination``; return the row counts of the snapshot the dump was taken from."""
    pg_dump = _tool("pg_dump")
    with _pg_connection(target) as connection:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = connection.execute("SELECT pg_export_snapshot()").fetchone()[0]
        counts = _pg_counts(connection)
        command = [pg_dump, "--format=custom", "--no-owner", f"--snapshot={snapshot}", f"--file={destination}",
                   f"--dbname={target.conninfo}"]
        _run(command, target, "pg_dump")
        connection.execute("COMMIT")
    return counts


def _pg_restore(target: _PgTarget, dump: Path) -> dict[str, int]:
    pg_restore = _tool("pg_restore")
    command = [pg_restore, "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
               f"--dbname={target.conninfo}", str(dump)]
    _run(command, target, "pg_restore")
    with _pg_connection(target) as connection:
        return _pg_counts(connection)


def _check_pg_dump(dump: Path) -> None:
    pg_restore = _tool("pg_restore")
    result = subprocess.run([pg_restore, "--list", str(dump)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"the archive's database dump is unreadable: {_first_line(result.stderr)}")


# ----- writing the archive -----------------------------------------------------------------------------------


def _add_file(tar: tarfile.TarFile, name: str, path: Path, role: str, original: str | None) -> _Member:
    """Add ``path`` as ``name`` (mode 0600, no owner), hashing it as it is read."""
    with path.open("rb") as handle:
        status = os.fstat(handle.fileno())
        info = tarfile.TarInfo(name)
        info.size = status.st_size
        info.mtime = int(status.st_mtime)
        info.mode = 0o600
        reader = _HashingReader(handle)
        tar.addfile(info, reader)  # tarfile only calls read()
    return _Member(name=name, role=role, original_path=original, sha256=reader.digest.hexdigest(), size=info.size)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def _documents(data_dir: Path, skip: set[Path]) -> Iterator[tuple[str, Path]]:
    """Every regular file under ``data_dir`` (symbolic links are not followed), as (member name, path)."""
    if not data_dir.is_dir():
        return
    for folder, dirs, files in os.walk(data_dir):
        dirs.sort()
        for filename in sorted(files):
            path = Path(folder) / filename
            if path.is_symlink() or not path.is_file() or path.resolve() in skip:
                continue
            yield DATA_PREFIX + path.relative_to(data_dir).as_posix(), path


def _manifest(engine: str, counts: Mapping[str, int], members: list[_Member], notes: list[str]) -> bytes:
    body = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "vaora_version": _vaora_version(),
        "engine": engine,
        "counts": dict(counts),
        "members": [vars(member) for member in members],
        "notes": notes,
    }
    return json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8")


def _dump_database(config: CentralConfig, engine: str, staging: Path) -> tuple[Path, str, dict[str, int]]:
    """Copy the database into ``staging``; return the copy, where it came from (no password) and its counts."""
    if engine == "sqlite":
        source = sqlite_path(config.database_url)
        copy = staging / "central.sqlite3"
        _sqlite_copy(source, copy)
        return copy, str(source.absolute()), _sqlite_counts(copy)
    target = _pg_target(config.database_url)
    copy = staging / "central.pgdump"
    counts = _pg_dump(target, copy)
    return copy, f"postgresql://{target.label}", counts


def _write_members(tar: tarfile.TarFile, config: CentralConfig, engine: str, staging: Path,
                   secret_key_file: Path | None, skip: set[Path]) -> tuple[list[_Member], list[str], dict[str, int]]:
    notes: list[str] = []
    copy, original, counts = _dump_database(config, engine, staging)
    name = SQLITE_MEMBER if engine == "sqlite" else PG_MEMBER
    members = [_add_file(tar, name, copy, "database", original)]
    signing_key = config.signing_key_file
    if signing_key.is_file():
        members.append(_add_file(tar, SIGNING_KEY_MEMBER, signing_key, "signing_key", str(signing_key.absolute())))
    else:
        notes.append(f"no signing key file at {signing_key} (none created yet)")
    rotated = key_dir(signing_key)
    for path in sorted(rotated.glob("*.pem")) if rotated.is_dir() else []:
        members.append(_add_file(tar, ROTATED_KEYS_PREFIX + path.name, path, "rotated_signing_key",
                                 str(path.absolute())))
    secret_path = _secret_key_source(secret_key_file)
    if secret_path is not None:
        if not secret_path.is_file():
            raise BackupError(f"the secret key file {secret_path} does not exist")
        members.append(_add_file(tar, SECRET_KEY_MEMBER, secret_path, "secret_key", str(secret_path.absolute())))
    elif config.secret_key:
        text = staging / "secret-key"
        text.write_text(config.secret_key + "\n", encoding="utf-8")
        members.append(_add_file(tar, SECRET_KEY_MEMBER, text, "secret_key", None))
    else:
        notes.append(f"no secret key file configured ({SECRET_KEY_ENV})")
    for member_name, path in _documents(config.data_dir, skip):
        members.append(_add_file(tar, member_name, path, "document", str(path.absolute())))
    return members, notes, counts


def create_backup(config: CentralConfig, archive: Path, *, secret_key_file: Path | None = None) -> BackupSummary:
    """Write one ``tar.gz`` backup of central at ``archive`` (mode 0600, written beside it and renamed).

    ``secret_key_file`` defaults to ``VAORA_SECRET_KEY_FILE`` from the environment (the configuration keeps only
    the key's text). Raises :class:`BackupError` when the database cannot be copied (a missing file, ``pg_dump``
    not installed or failing) or the archive cannot be written.
    """
    archive = Path(archive)
    engine = engine_of(config.database_url)
    if not archive.parent.is_dir():
        raise BackupError(f"the folder {archive.parent} does not exist")
    try:
        fd, temporary = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.", suffix=".partial")
    except OSError as exc:
        raise BackupError(f"cannot write in {archive.parent}: {exc.strerror or exc}") from exc
    skip = {Path(temporary).resolve(), archive.resolve()}
    try:
        with os.fdopen(fd, "wb") as out, tempfile.TemporaryDirectory(prefix="vaora-backup-") as staging:
            with tarfile.open(fileobj=out, mode="w:gz") as tar:
                members, notes, counts = _write_members(tar, config, engine, Path(staging), secret_key_file, skip)
                _add_bytes(tar, MANIFEST, _manifest(engine, counts, members, notes))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, archive)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise BackupError(f"cannot write the backup {archive}: {exc.strerror or exc}") from exc
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return _summary(archive, engine, members, counts, notes)


def _summary(archive: Path, engine: str, members: list[_Member], counts: Mapping[str, int],
             notes: list[str]) -> BackupSummary:
    return BackupSummary(archive=archive, engine=engine, members=(*[m.name for m in members], MANIFEST),
                         meetings=counts["meetings"], delegates=counts["delegates"], checkins=counts["checkins"],
                         notes=tuple(notes))


# ----- reading and checking an archive -----------------------------------------------------------------------


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or name.startswith("/") or "\\" in name or path.is_absolute() or ".." in path.parts:
        raise BackupError(f"the archive member {name!r} points outside its folder")
    return path


def _stage(archive: Path, staging: Path) -> dict[str, tuple[str, int]]:
    """Extract every regular file of ``archive`` under ``staging``; return name -> (sha256, size).

    Refuses absolute names, ``..``, links, devices and duplicates before writing the member.
    """
    found: dict[str, tuple[str, int]] = {}
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for info in tar:
                path = _safe_name(info.name)
                if info.isdir():
                    continue
                if not info.isreg():
                    raise BackupError(f"the archive member {info.name!r} is not a regular file")
                name = path.as_posix()
                if name in found:
                    raise BackupError(f"the archive holds {name!r} twice")
                found[name] = _extract(tar, info, staging / name)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BackupError(f"{archive} is not a readable tar.gz backup ({exc})") from exc
    except OSError as exc:
        raise BackupError(f"cannot unpack {archive}: {exc.strerror or exc}") from exc
    return found


def _extract(tar: tarfile.TarFile, info: tarfile.TarInfo, destination: Path) -> tuple[str, int]:
    source = tar.extractfile(info)
    if source is None:
        raise BackupError(f"the archive member {info.name!r} cannot be read")
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with source, destination.open("wb") as out:
        for block in iter(lambda: source.read(CHUNK), b""):
            digest.update(block)
            size += len(block)
            out.write(block)
    return digest.hexdigest(), size


def _read_manifest(staging: Path, found: Mapping[str, tuple[str, int]]) -> dict[str, Any]:
    if MANIFEST not in found:
        raise BackupError("the archive has no manifest.json (not a vaora backup)")
    try:
        manifest = json.loads((staging / MANIFEST).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError("the archive's manifest.json is not valid JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("the archive's manifest is not a vaora backup manifest")
    version = manifest.get("format_version")
    if version not in KNOWN_FORMAT_VERSIONS:
        raise BackupError(f"backup format version {version!r} is unknown to this vaora "
                          f"(known: {sorted(KNOWN_FORMAT_VERSIONS)})")
    return manifest


def _members_of(manifest: Mapping[str, Any]) -> list[_Member]:
    raw = manifest.get("members")
    if not isinstance(raw, list):
        raise BackupError("the archive's manifest lists no members")
    try:
        members = [_Member(name=str(item["name"]), role=str(item["role"]), original_path=item.get("original_path"),
                           sha256=str(item["sha256"]), size=int(item["size"])) for item in raw]
    except (TypeError, KeyError, ValueError) as exc:
        raise BackupError("the archive's manifest has a malformed member entry") from exc
    for member in members:
        _safe_name(member.name)
    return members


def _check_members(members: list[_Member], found: Mapping[str, tuple[str, int]], engine: str) -> None:
    """Every listed member is present with its SHA-256, nothing unlisted is present, the roles make sense."""
    listed = {member.name for member in members}
    extra = sorted(set(found) - listed - {MANIFEST})
    if extra:
        raise BackupError(f"the archive member {extra[0]!r} is not in the manifest")
    for member in members:
        if member.name not in found:
            raise BackupError(f"the archive lacks {member.name!r}, which its manifest lists")
        if found[member.name] != (member.sha256, member.size):
            raise BackupError(f"{member.name!r} does not match its SHA-256 in the manifest (damaged or "
                              "tampered archive)")
    expected = {"database": SQLITE_MEMBER if engine == "sqlite" else PG_MEMBER,
                "signing_key": SIGNING_KEY_MEMBER, "secret_key": SECRET_KEY_MEMBER}
    databases = [member for member in members if member.role == "database"]
    if len(databases) != 1:
        raise BackupError("the archive must hold exactly one database")
    for member in members:
        wanted = expected.get(member.role)
        if member.role == "document":
            valid = member.name.startswith(DATA_PREFIX)
        elif member.role == "rotated_signing_key":
            name = member.name.removeprefix(ROTATED_KEYS_PREFIX)
            valid = member.name.startswith(ROTATED_KEYS_PREFIX) and _is_key_file_name(name)
        else:
            valid = member.name == wanted
        if not valid:
            raise BackupError(f"the archive member {member.name!r} has an unexpected role {member.role!r}")


def _is_key_file_name(name: str) -> bool:
    """A rotated key's file name: 16 hex digits and ``.pem`` (:func:`central.core.signing.key_file_name`)."""
    stem = name.removesuffix(".pem")
    return name.endswith(".pem") and len(stem) == 16 and all(c in "0123456789abcdef" for c in stem)


def _check_database(engine: str, staged: Path) -> None:
    if engine == "postgresql":
        _check_pg_dump(staged)
        return
    try:
        connection = sqlite3.connect(f"{staged.resolve().as_uri()}?mode=ro", uri=True)
        try:
            _check_sqlite(connection)
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise BackupError(f"the archive's database is not a readable SQLite file ({exc})") from exc


def _validate(archive: Path, staging: Path, engine: str) -> tuple[dict[str, Any], list[_Member]]:
    if not archive.is_file():
        raise BackupError(f"the backup {archive} does not exist")
    found = _stage(archive, staging)
    manifest = _read_manifest(staging, found)
    if manifest.get("engine") != engine:
        raise BackupError(f"the backup holds a {manifest.get('engine')} database, the configuration "
                          f"names {engine}")
    members = _members_of(manifest)
    _check_members(members, found, engine)
    _check_database(engine, staging / (SQLITE_MEMBER if engine == "sqlite" else PG_MEMBER))
    return manifest, members


# ----- restoring ---------------------------------------------------------------------------------------------


def _target_has_data(config: CentralConfig, engine: str) -> bool:
    if engine == "sqlite":
        return _sqlite_has_data(sqlite_path(config.database_url))
    return _pg_has_data(_pg_target(config.database_url))


def _restore_database(config: CentralConfig, engine: str, staged: Path) -> dict[str, int]:
    if engine == "sqlite":
        target = sqlite_path(config.database_url)
        _restore_sqlite(staged, target)
        return _sqlite_counts(target)
    return _pg_restore(_pg_target(config.database_url), staged)


def _restore_files(config: CentralConfig, members: list[_Member], staging: Path,
                   secret_key_file: Path | None) -> list[str]:
    """Write the keys and documents where the current configuration names them; return notes."""
    notes: list[str] = []
    for member in members:
        if member.role == "signing_key":
            target = config.signing_key_file
        elif member.role == "rotated_signing_key":
            folder = key_dir(config.signing_key_file)
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            target = folder / member.name.removeprefix(ROTATED_KEYS_PREFIX)
        elif member.role == "secret_key":
            target, note = _secret_key_target(config, secret_key_file)
            notes.extend([note] if note else [])
        elif member.role == "document":
            target = config.data_dir / member.name.removeprefix(DATA_PREFIX)
        else:
            continue
        _write_atomically(target, staging / member.name)
    return notes


def restore_backup(config: CentralConfig, archive: Path, *, force: bool = False,
                   secret_key_file: Path | None = None) -> BackupSummary:
    """Restore ``archive`` into the database, key files and data folder the CURRENT ``config`` names.

    The whole archive is checked first; an invalid one raises :class:`BackupError` before anything changes, and so
    does a target database that already holds data unless ``force``. The secret key goes to ``secret_key_file``,
    else ``VAORA_SECRET_KEY_FILE``, else ``secret-key`` beside the signing key (the summary's notes say so).
    Central should not run during a restore.
    """
    archive = Path(archive)
    engine = engine_of(config.database_url)
    with tempfile.TemporaryDirectory(prefix="vaora-restore-") as folder:
        staging = Path(folder)
        manifest, members = _validate(archive, staging, engine)
        if not force and _target_has_data(config, engine):
            raise BackupError("the target database already holds data (restore with --force to replace it)")
        try:
            counts = _restore_database(config, engine, staging / (SQLITE_MEMBER if engine == "sqlite" else PG_MEMBER))
            notes = _restore_files(config, members, staging, secret_key_file)
        except OSError as exc:
            raise BackupError(f"restore failed while writing files: {exc.strerror or exc}") from exc
    expected = manifest.get("counts")
    if isinstance(expected, dict) and any(expected.get(key) != counts[key] for key in COUNTED_TABLES):
        notes.append(f"row counts differ from the backup's manifest: {expected} there, {counts} restored")
    return _summary(archive, engine, members, counts, notes)
