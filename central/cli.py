"""Command line of central: ``vaora-central serve | ingest | deliver | migrate | init-db | add-gate | create-admin |
export | backup | restore | broker-config | site-ca | broker-cert | gate-cert | central-cert | revoke-gate-cert |
issue-api-token | api-client | purge | subject-export | erase-person | signing-key``."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from central.config import CentralConfig, ConfigError
from central.core.db import database, open_database
from central.core.errors import ServiceError
from central.messaging import certs
from central.migrations import MigrationError, SchemaOutOfDateError, migrate, require_current
from protocols import systemd as sd
from protocols.logs import configure_logging

log = logging.getLogger(__name__)

BEAT_INTERVAL_S = 10.0
"""How often ingest and deliver feed systemd's watchdog (at most; half of WatchdogSec when shorter) and record
their beat for /healthz."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaora-central", description="vaora central server")
    parser.add_argument("--log-level", default=os.environ.get("VAORA_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the web app under gunicorn (VAORA_WEB_* settings)")
    serve.add_argument("--host", help="address to listen on (default: VAORA_WEB_HOST)")
    serve.add_argument("--port", type=int, help="port (default: VAORA_WEB_PORT)")
    sub.add_parser("ingest", help="run the MQTT ingest worker and the change feed to the gates")
    broker = sub.add_parser("broker-config", help="write Mosquitto's password and ACL files for every gate (the "
                                                  "core broker), or with --site a site broker's files and bridge")
    broker.add_argument("directory", type=Path, help="e.g. /etc/mosquitto/vaora (see systemd/mosquitto/)")
    broker.add_argument("--site", help="write this site's broker files: passwd, acl, vaora-bridge.conf")
    broker.add_argument("--core", help="with --site: the core broker pair, host:port,host:port")
    broker.add_argument("--output", type=Path, help="with --site: where to write (default DIRECTORY/sites/<site>)")
    broker.add_argument("--install-dir", type=Path, default=Path("/etc/mosquitto/vaora"),
                        help="with --site --tls: where the site's files will be on the site machine")
    broker.add_argument("--tls", action="store_true",
                        help="with --site: the bridge uses a certificate from the CA in DIRECTORY (core port 8883)")
    site_ca = sub.add_parser("site-ca", help="create the site CA for the broker's TLS listener (once; kept after)")
    site_ca.add_argument("directory", type=Path, help="e.g. /etc/mosquitto/vaora (ca.crt, ca.key mode 0600)")
    site_ca.add_argument("--days", type=int, default=certs.CA_DAYS, help=f"validity (default {certs.CA_DAYS})")
    broker_cert = sub.add_parser("broker-cert", help="issue the broker's server.crt/server.key from the site CA")
    broker_cert.add_argument("directory", type=Path, help="the site-ca directory")
    broker_cert.add_argument("hosts", nargs="+", metavar="HOST", help="DNS names or IP addresses clients connect to")
    broker_cert.add_argument("--days", type=int, default=certs.BROKER_DAYS,
                             help=f"validity (default {certs.BROKER_DAYS})")
    gate_cert = sub.add_parser("gate-cert", help="issue a registered gate's MQTT client certificate from the site CA")
    gate_cert.add_argument("directory", type=Path, help="the site-ca directory (writes certs/gate-<id>.crt/.key)")
    gate_cert.add_argument("gate_id", help="the gate's id (its certificate's common name is gate-<id>)")
    gate_cert.add_argument("--days", type=int, default=certs.CLIENT_DAYS,
                           help=f"validity (default {certs.CLIENT_DAYS})")
    revoke = sub.add_parser("revoke-gate-cert", help="revoke a gate's MQTT certificate (lost or stolen gate)")
    revoke.add_argument("directory", type=Path, help="the site-ca directory (updates ca.crl)")
    revoke.add_argument("gate_id", help="the gate whose current certificate is revoked")
    central_cert = sub.add_parser("central-cert", help="issue central's MQTT client certificate from the site CA")
    central_cert.add_argument("directory", type=Path, help="the site-ca directory (writes certs/vaora-central.crt)")
    central_cert.add_argument("--days", type=int, default=certs.CLIENT_DAYS,
                              help=f"validity (default {certs.CLIENT_DAYS})")
    sub.add_parser("migrate", help="apply the pending schema migrations (the web unit runs it before starting)")
    sub.add_parser("init-db", help="build a new database: the baseline schema, then every migration")
    backup = sub.add_parser("backup", help="write the database, signing key, secret key and documents into one archive")
    backup.add_argument("-o", "--output", type=Path, required=True, help="archive to write, e.g. vaora.tar.gz")
    restore = sub.add_parser("restore", help="put an archive from `backup` back, at the paths of this config")
    restore.add_argument("archive", type=Path)
    restore.add_argument("--force", action="store_true", help="replace a database that already holds data")
    add_gate = sub.add_parser("add-gate", help="register a gate and print its token (shown once)")
    add_gate.add_argument("gate_id")
    add_gate.add_argument("--site", required=True)
    add_gate.add_argument("--name", default="")
    add_gate.add_argument("--direction", choices=("in", "out"), default="in")
    admin = sub.add_parser("create-admin", help="create an administrator (password from stdin or a file)")
    admin.add_argument("username")
    admin.add_argument("--password-file", type=Path, help="file holding the password (else read from stdin)")
    admin.add_argument("--full-name", default="")
    deliver = sub.add_parser(
        "deliver", help="send the queued e-mail and SMS (invitations, delegates' codes) and retry failed ones"
    )
    deliver.add_argument("--once", action="store_true", help="one round, then exit")
    deliver.add_argument("--interval", type=float, default=15.0, help="seconds between rounds")
    export = sub.add_parser("export", help="write a meeting's attendance list (danh sách thành phần tham dự)")
    export.add_argument("--meeting", type=int, required=True, help="the meeting's number (its id in the URL)")
    export.add_argument("--format", choices=("xlsx", "csv", "pdf"), default="xlsx")
    export.add_argument("-o", "--output", type=Path, required=True, help="file to write ('-' for standard output)")
    conflicts = sub.add_parser("conflicts", help="list a meeting's conflicts (entries central flagged, and why)")
    conflicts.add_argument("--meeting", type=int, required=True, help="the meeting's number (its id in the URL)")
    conflicts.add_argument("--rescan", action="store_true",
                           help="first check every entry of the meeting again and record what was missed")
    clients = sub.add_parser("api-client", help="API clients: one token each, with scopes (create, list, revoke)")
    client_sub = clients.add_subparsers(dest="client_command", required=True)
    client_create = client_sub.add_parser("create", help="create a client and print its token (shown once)")
    client_create.add_argument("--name", required=True, help="e.g. ioffice (lower-case letters, digits, . - _)")
    client_create.add_argument("--scope", action="append", required=True, dest="scopes",
                               help="repeat for each: attendance:read, meetings:create, invitations:draft")
    client_sub.add_parser("list", help="list the clients (never their tokens)")
    client_revoke = client_sub.add_parser("revoke", help="revoke a client's token (its next request answers 401)")
    client_revoke.add_argument("client", help="the client's name or id")
    purge = sub.add_parser("purge", help="anonymise or delete the personal data past its retention "
                                         "(VAORA_RETENTION_*; run daily by vaora-central-purge.timer)")
    purge.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    for name, text in (("subject-export", "write everything stored about one person as JSON (subject access)"),
                       ("erase-person", "anonymise one person everywhere (erasure); audited")):
        person = sub.add_parser(name, help=text)
        person.add_argument("--email", help="the person's e-mail address")
        person.add_argument("--phone", help="the person's phone number")
        person.add_argument("--cccd", help="the person's citizen ID (CCCD) number; needs VAORA_SECRET_KEY_FILE")
        if name == "subject-export":
            person.add_argument("-o", "--output", type=Path, required=True, help="file to write ('-': standard output)")
        else:
            person.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    signing = sub.add_parser("signing-key", help="the keys signed codes are signed with (list, rotate, revoke)")
    signing_sub = signing.add_subparsers(dest="key_command", required=True)
    signing_sub.add_parser("list", help="list the keys: id, state, created, codes and until when they last")
    signing_sub.add_parser("rotate", help="make a new active key; the old one keeps verifying its codes")
    signing_revoke = signing_sub.add_parser("revoke", help="stop trusting a key: online gates refuse its codes")
    signing_revoke.add_argument("key_id", type=int, help="the key's id (see `signing-key list`)")
    token = sub.add_parser("issue-api-token", help="write a new random API token to a file (mode 0600)")
    token.add_argument("path", type=Path, help="file to write, e.g. the one VAORA_API_TOKEN_FILE names")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code (2 for bad configuration or input)."""
    args = _parser().parse_args(argv)
    configure_logging("central", args.log_level)
    if args.command == "issue-api-token":
        return _issue_api_token(args.path)
    if args.command in {"site-ca", "broker-cert", "central-cert", "revoke-gate-cert"}:
        return _certificate(args)
    try:
        config = CentralConfig.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from central.server import serve

        return serve(config, host=args.host, port=args.port)
    if args.command in {"backup", "restore"}:
        return _backup(config, args)
    open_database(config.database_url, pool_size=config.db_pool_size)
    if args.command in {"migrate", "init-db"}:
        return _migrate()
    try:
        require_current()
    except SchemaOutOfDateError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    if args.command == "add-gate":
        return _add_gate(args)
    if args.command == "ingest":
        return _ingest(config)
    if args.command == "broker-config":
        if args.site is not None:
            return _site_broker_config(args, legacy_changes=config.legacy_change_stream)
        return _broker_config(args.directory, legacy_changes=config.legacy_change_stream)
    if args.command == "gate-cert":
        return _gate_certificate(args)
    if args.command == "create-admin":
        return _create_admin(args)
    if args.command == "deliver":
        return _deliver(config, once=args.once, interval=args.interval)
    if args.command == "export":
        return _export(args.meeting, args.format, args.output)
    if args.command == "conflicts":
        return _conflicts(args.meeting, args.rescan)
    if args.command == "api-client":
        return _api_client(args)
    if args.command in {"purge", "subject-export", "erase-person"}:
        return _retention(config, args)
    if args.command == "signing-key":
        return _signing_key(config, args)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _migrate() -> int:
    try:
        names = migrate()
    except MigrationError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"database ready: applied {', '.join(names)}" if names else "database ready: nothing to migrate")
    return 0


def _backup(config: CentralConfig, args: argparse.Namespace) -> int:
    from central.backup import BackupError, create_backup, restore_backup

    try:
        if args.command == "backup":
            summary = create_backup(config, args.output)
            print(f"backup written: {summary.describe()}")
        else:
            summary = restore_backup(config, args.archive, force=args.force)
            print(f"restored: {summary.describe()}")
    except BackupError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    return 0


def _conflicts(meeting_id: int, rescan: bool) -> int:
    from central.core.context import utc_now
    from central.gates import conflicts
    from central.meetings.services import get_meeting

    try:
        with database.connection_context():
            meeting = get_meeting(meeting_id)
            if rescan:
                with database.atomic():
                    added = conflicts.scan_meeting(meeting, utc_now())
                print(f"rescanned meeting {meeting_id}: {added} new conflicts", file=sys.stderr)
            rows = conflicts.meeting_conflicts(meeting)
    except ServiceError as exc:
        print(f"refused: {exc} ({meeting_id})", file=sys.stderr)
        return 2
    for row in reversed(rows):
        where = "manual" if row["manual"] else row["gate_id"]
        print(f"{row['at']}\t{row['reason']}\t{where}\t{row['name']}\t{row['organisation']}")
    print(f"{len(rows)} conflicts", file=sys.stderr)
    return 0


def _export(meeting_id: int, format_name: str, output: Path) -> int:
    from central.attendance.exports import export
    from central.meetings.services import get_meeting

    try:
        with database.connection_context():
            written = export(get_meeting(meeting_id), format_name)
    except ServiceError as exc:
        print(f"refused: {exc} ({meeting_id})", file=sys.stderr)
        return 2
    if str(output) == "-":
        sys.stdout.buffer.write(written.content)
        sys.stdout.flush()
        return 0
    try:
        output.write_bytes(written.content)
    except OSError as exc:
        print(f"cannot write {output}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {output} ({len(written.content)} bytes, {format_name})", file=sys.stderr)
    return 0


def _retention(config: CentralConfig, args: argparse.Namespace) -> int:
    """purge, subject-export and erase-person (``central.retention``)."""
    from central.core.context import utc_now
    from central.retention import subjects
    from central.retention.policy import RetentionPolicy
    from central.retention.purge import purge

    now = utc_now()
    if args.command == "purge":
        with database.connection_context():
            report = purge(RetentionPolicy.from_config(config), now, dry_run=args.dry_run, actor="cli")
        print("dry run: nothing changed" if args.dry_run else "purged", file=sys.stderr)
        for line in report.lines():
            print(line)
        return 0
    if args.command == "erase-person" and not args.yes:
        print("refused: erasure cannot be undone; add --yes", file=sys.stderr)
        return 2
    try:
        query = subjects.parse_query({"email": args.email, "phone": args.phone, "cccd": args.cccd})
        with database.connection_context():
            subject = subjects.find_subject(query, secret=config.secret_key)
            if args.command == "subject-export":
                content = subjects.export_json(subjects.export_subject(subject, "cli", now=now))
            else:
                counts = subjects.erase_subject(subject, "cli", now=now)
    except ServiceError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    if args.command == "erase-person":
        for name, count in counts.items():
            print(f"{name}\t{count}")
        return 0
    if str(args.output) == "-":
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
        return 0
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    print(f"wrote {args.output} ({len(subject.delegates)} registrations, {len(subject.walkins)} walk-ins)",
          file=sys.stderr)
    return 0


def _add_gate(args: argparse.Namespace) -> int:
    from central.gates.registry import register_gate

    data = {"gate_id": args.gate_id, "site_id": args.site, "name": args.name, "direction": args.direction}
    try:
        with database.connection_context():
            registered = register_gate(data, actor="cli")
    except ServiceError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print(registered.token)
    return 0


def _api_client(args: argparse.Namespace) -> int:
    from central.clients import services as clients
    from central.core.context import utc_now

    try:
        with database.connection_context():
            if args.client_command == "create":
                issued = clients.create_client({"name": args.name, "scopes": args.scopes}, actor="cli", now=utc_now())
                print(f"API client {issued.client.name} created with scopes {issued.client.scopes}; its token "
                      "(shown once, give it to that system only):", file=sys.stderr)
                print(issued.token)
            elif args.client_command == "list":
                for client in clients.list_clients():
                    used = client.last_used_at.isoformat(timespec="seconds") if client.last_used_at else "never"
                    state = f"revoked {client.revoked_at.isoformat(timespec='seconds')}" if client.revoked_at \
                        else "active"
                    print(f"{client.id}\t{client.name}\t{client.prefix}...\t{client.scopes}\t"
                          f"created {client.created_at.isoformat(timespec='seconds')} by {client.created_by}\t"
                          f"last used {used}\t{state}")
            else:
                revoked = clients.revoke_client(args.client, actor="cli", now=utc_now())
                print(f"API client {revoked.name} revoked")
    except ServiceError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    return 0


def _signing_key(config: CentralConfig, args: argparse.Namespace) -> int:
    from central.admin.signing_keys import list_keys
    from central.core import keys
    from central.core.context import utc_now

    def moment(value: datetime | None) -> str:
        return value.isoformat(timespec="seconds") if value is not None else "-"

    try:
        with database.connection_context():
            if args.key_command == "rotate":
                rotated = keys.rotate(config.signing_key_file, "cli", utc_now())
                print(f"signing key {rotated.key_id} is now active; the previous key keeps verifying its codes")
            elif args.key_command == "revoke":
                keys.revoke(config.signing_key_file, args.key_id, "cli", utc_now())
                print(f"signing key {args.key_id} revoked; online gates refuse its codes")
            else:
                for key in list_keys():
                    print(f"{key.key_id}\t{key.state}\t{key.fingerprint}\tcreated {moment(key.created_at)}\t"
                          f"revoked {moment(key.revoked_at)}\t{key.codes} codes until {moment(key.codes_until)}")
    except ServiceError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    return 0


def _ingest(config: CentralConfig) -> int:
    """Run ingest and the change feed; tell systemd READY, feed its watchdog and record a beat while healthy."""
    from central.core.beats import INGEST, try_beat
    from central.core.context import utc_now
    from central.messaging.changefeed import ChangeFeed
    from central.messaging.ingest import IngestWorker
    from protocols.mqtt import process_client_id

    client_id = config.ingest_client_id()
    worker = IngestWorker(config.mqtt_host, config.mqtt_port, username=config.mqtt_username,
                          password=config.mqtt_password, tls=config.mqtt_tls, client_id=client_id,
                          share_group=config.mqtt_share_group or None)
    # Unique per process too: a second ingest process must not make the broker drop this one's feed client.
    feed = ChangeFeed(config.mqtt_host, config.mqtt_port, username=config.mqtt_username,
                      password=config.mqtt_password, tls=config.mqtt_tls,
                      client_id=process_client_id("central-changefeed"), legacy=config.legacy_change_stream)
    stop = _stop_on_signals()
    interval = min(sd.watchdog_interval() or BEAT_INTERVAL_S, BEAT_INTERVAL_S)
    feed.start()
    worker.start()
    sd.notify("READY=1")
    try:
        while not stop.wait(interval):
            if not worker.writer_healthy():
                log.error("ingest writer stalled; no watchdog ping (systemd restarts the service)")
                continue
            sd.notify("WATCHDOG=1")
            if worker.connected.is_set():
                try_beat(INGEST, utc_now(), f"client={client_id}")
    finally:
        sd.notify("STOPPING=1")
        worker.stop()
        feed.stop()
    return 0


def _print_issued(issued: certs.IssuedCertificate) -> None:
    print(f"{issued.common_name}: {issued.cert_file} and {issued.key_file} (mode 0600), valid until "
          f"{issued.not_after.date().isoformat()}")


def _certificate(args: argparse.Namespace) -> int:
    """site-ca, broker-cert, central-cert and revoke-gate-cert: no database needed."""
    from central.core.context import utc_now

    try:
        if args.command == "site-ca":
            issued = certs.create_site_ca(args.directory, now=utc_now(), days=args.days)
            if not issued.created:
                print(f"site CA kept: {issued.cert_file} (valid until {issued.not_after.date().isoformat()}); "
                      "it is never replaced, as every certificate it signed would stop working")
                return 0
        elif args.command == "broker-cert":
            issued = certs.issue_broker(args.directory, args.hosts, now=utc_now(), days=args.days)
        elif args.command == "revoke-gate-cert":
            serial = certs.revoke_gate(args.directory, args.gate_id, now=utc_now())
            print(f"revoked gate-{args.gate_id} (serial {serial:x}) in {args.directory / certs.CRL_NAME}; restart "
                  "mosquitto so the broker reads it")
            return 0
        else:
            issued = certs.issue_central(args.directory, now=utc_now(), days=args.days)
    except ServiceError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    _print_issued(issued)
    return 0


def _gate_certificate(args: argparse.Namespace) -> int:
    """gate-cert: only for a gate registered at central (a typo would make a certificate the ACL knows nothing of)."""
    from central.core.context import utc_now
    from central.gates.models import Gate

    with database.connection_context():
        known = Gate.select().where(Gate.gate_id == args.gate_id).exists()
    if not known:
        print(f"refused: unknown_gate: {args.gate_id!r} is not a registered gate (vaora-central add-gate)",
              file=sys.stderr)
        return 2
    try:
        issued = certs.issue_gate(args.directory, args.gate_id, now=utc_now(), days=args.days)
    except ServiceError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    _print_issued(issued)
    print(f"copy {args.directory / 'ca.crt'}, {issued.cert_file} and {issued.key_file} to the gate "
          "([mqtt] ca_file, cert_file, key_file); re-run before the date above to renew")
    return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _broker_config(directory: Path, *, legacy_changes: bool) -> int:
    from central.gates.models import Gate
    from central.messaging.broker_auth import GateAccount, provision

    with database.connection_context():
        gates = [GateAccount(gate.gate_id, gate.site_id) for gate in Gate.select().order_by(Gate.gate_id)]
    credentials = provision(directory, gates, legacy_changes=legacy_changes)
    print(f"wrote {directory / 'passwd'} and {directory / 'acl'} for {len(gates)} gate(s) and central")
    print(f"passwords (give each gate its own, as mqtt.password_file): {directory / 'secrets'}/<user>.password")
    log.info("broker config written users=%d", len(credentials))
    return 0


def _site_broker_config(args: argparse.Namespace, *, legacy_changes: bool) -> int:
    """broker-config --site: one site broker's passwd, acl and bridge file (see central.messaging.site_broker)."""
    from central.core.context import utc_now
    from central.core.db import write_transaction
    from central.gates.models import Gate
    from central.gates.site_links import register_site
    from central.messaging.broker_auth import GateAccount
    from central.messaging.site_broker import parse_core_addresses, provision_site

    if args.core is None:
        print("refused: --site needs --core host:port,host:port (the core broker pair)", file=sys.stderr)
        return 2
    with database.connection_context():
        gates = [GateAccount(gate.gate_id, gate.site_id) for gate in Gate.select().order_by(Gate.gate_id)]
    try:
        core = parse_core_addresses(args.core)
        written = provision_site(args.directory, args.site, gates, core, output=args.output,
                                 install_dir=args.install_dir, tls=args.tls, now=utc_now(),
                                 legacy_changes=legacy_changes)
    except (ValueError, ServiceError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    # From now on the fleet page shows the site as offline until its bridge reaches the core.
    with database.connection_context(), write_transaction():
        register_site(args.site, utc_now())
    print(f"wrote {written.directory}/passwd, acl and {written.bridge_file.name} (mode 0600) for site {args.site}: "
          f"{len(written.gates)} gate(s), bridged to {', '.join(core)}")
    print(f"re-run `vaora-central broker-config {args.directory}` so the core knows the bridge's account")
    return 0


def _create_admin(args: argparse.Namespace) -> int:
    from central.auth.roles import ADMINISTRATOR
    from central.auth.users import create_user
    from central.core.context import utc_now

    try:
        if args.password_file is not None:
            password = args.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    except OSError as exc:
        print(f"cannot read the password: {exc}", file=sys.stderr)
        return 2
    data = {"username": args.username, "password": password, "role": ADMINISTRATOR, "full_name": args.full_name}
    try:
        with database.connection_context():
            user = create_user(data, actor="cli", now=utc_now())
    except ServiceError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print(f"administrator {user.username} created")
    return 0


def _deliver(config: CentralConfig, *, once: bool, interval: float) -> int:
    """Run the outbound worker: every queued e-mail and SMS, the invitations' included."""
    from central.core.beats import DELIVER_PREFIX, try_beat
    from central.core.context import sms_sender_from_config, utc_now
    from central.features import load_job_kinds
    from central.outbound.engine import OutboundWorker, Senders
    from central.outbound.worker import PooledSmtpSender

    load_job_kinds()
    senders = Senders(
        mail=PooledSmtpSender(config.smtp_host, config.smtp_port),
        mail_from=config.mail_from,
        sms=sms_sender_from_config(config),
        pdf_font=config.pdf_font,
    )
    name = f"{DELIVER_PREFIX}-{socket.gethostname()}:{os.getpid()}"
    last_beat = [0.0]

    def on_cycle() -> None:  # after every job and every round of the worker's loop: it is alive
        sd.notify("WATCHDOG=1")
        if time.monotonic() - last_beat[0] >= BEAT_INTERVAL_S:
            last_beat[0] = time.monotonic()
            try_beat(name, utc_now())

    worker = OutboundWorker(senders=senders, clock=utc_now, poll_interval=min(interval, BEAT_INTERVAL_S),
                            on_cycle=on_cycle)
    if once:
        with database.connection_context():
            count = worker.run_once()
        senders.close()
        print(f"attempted {count} deliveries")
        return 0
    stop = _stop_on_signals()
    sd.notify("READY=1")
    try:
        worker.run(stop)
    finally:
        sd.notify("STOPPING=1")
    return 0


def _issue_api_token(path: Path) -> int:
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    print(f"API token written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
