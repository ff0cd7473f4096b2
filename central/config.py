"""Central's configuration, read from ``VAORA_*`` environment variables or from a mapping (tests).

Every value is validated when the configuration is built; a bad value raises :class:`ConfigError`
naming the variable. Secrets (API token, MQTT password) may come from files so they stay out of the
environment and the repository.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from protocols.mqtt import TlsFiles

DEFAULTS: dict[str, str] = {
    "VAORA_DATABASE_URL": "sqlite:///var/central.db",
    "VAORA_SMTP_HOST": "127.0.0.1",
    "VAORA_SMTP_PORT": "25",
    "VAORA_MAIL_FROM": "vaora@localhost.localdomain",
    "VAORA_MQTT_URL": "",
    "VAORA_MQTT_HOST": "127.0.0.1",
    "VAORA_MQTT_PORT": "1883",
    "VAORA_MQTT_USERNAME": "",
    "VAORA_MQTT_PASSWORD_FILE": "",
    "VAORA_MQTT_CA_FILE": "",
    "VAORA_MQTT_CERT_FILE": "",
    "VAORA_MQTT_KEY_FILE": "",
    "VAORA_MQTT_CLIENT_ID": "",
    "VAORA_MQTT_SHARE_GROUP": "vaora-ingest",
    "VAORA_REDIS_URL": "",
    "VAORA_API_TOKEN": "",
    "VAORA_API_TOKEN_FILE": "",
    "VAORA_SIGNING_KEY_FILE": "var/signing-key.pem",
    "VAORA_PUBLIC_URL": "http://127.0.0.1:5000",
    "VAORA_INVITATION_FORMAT": "{seq}/GM-UBND",
    "VAORA_ENTRY_OPENS_BEFORE_MIN": "120",
    "VAORA_GRACE_AFTER_END_MIN": "30",
    "VAORA_SECRET_KEY_FILE": "",
    "VAORA_DATA_DIR": "var/data",
    "VAORA_SESSION_IDLE_MIN": "30",
    "VAORA_MAX_UPLOAD_MB": "20",
    "VAORA_SMS_BACKEND": "log",
    "VAORA_SMS_MODEM_PORT": "",
    "VAORA_SMS_HTTP_URL": "",
    "VAORA_PDF_FONT": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "VAORA_WEB_HOST": "127.0.0.1",
    "VAORA_WEB_PORT": "5000",
    "VAORA_WEB_WORKERS": "2",
    "VAORA_WEB_THREADS": "128",
    "VAORA_WEB_STREAMS": "",
    "VAORA_PROXY_COUNT": "0",
    "VAORA_RATELIMIT_STORAGE": "memory://",
    "VAORA_DB_POOL_SIZE": "16",
    "VAORA_SESSION_MAX_HOURS": "12",
    "VAORA_LOGIN_MAX_FAILURES": "5",
    "VAORA_LOGIN_WINDOW_MIN": "15",
    "VAORA_LOGIN_ADDRESS_MAX_FAILURES": "30",
    "VAORA_PASSWORD_HASH_CONCURRENCY": "2",
    "VAORA_RETENTION_DELEGATE_DAYS": "365",
    "VAORA_RETENTION_WALKIN_DAYS": "90",
    "VAORA_RETENTION_CHECKIN_DAYS": "730",
    "VAORA_RETENTION_AUDIT_DAYS": "730",
    "VAORA_RETENTION_OUTBOUND_DAYS": "30",
    "VAORA_REMOTE_BOOKING_WORKING_DAYS": "3",
    "VAORA_HOLIDAYS": "",
    "VAORA_LEGACY_CHANGE_STREAM": "0",
}
"""Every variable central reads, with its default."""

MIN_API_TOKEN_LENGTH = 16
DATABASE_SCHEMES = {"sqlite", "postgres", "postgresql", "postgresql+pool", "postgres+pool"}
"""``+pool``: pooled PostgreSQL connections (``VAORA_DB_POOL_SIZE`` per process)."""


class ConfigError(ValueError):
    """A configuration value is invalid; the message names each offending variable."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


@dataclass(frozen=True)
class CentralConfig:
    """Validated settings of the central server."""

    database_url: str
    smtp_host: str
    smtp_port: int
    mail_from: str
    mqtt_host: str
    mqtt_port: int
    mqtt_username: str | None
    mqtt_password: str | None
    api_token: str | None
    signing_key_file: Path
    public_url: str
    invitation_format: str
    entry_opens_before_min: int
    grace_after_end_min: int
    secret_key: str | None = None
    data_dir: Path = Path("var/data")
    session_idle_min: int = 30
    max_upload_mb: int = 20
    sms_backend: str = "log"
    sms_modem_port: str = ""
    sms_http_url: str = ""
    pdf_font: Path = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    mqtt_client_id: str = ""
    """``VAORA_MQTT_CLIENT_ID``: the ingest worker's MQTT client id; empty (the default) means one unique to the
    process (:meth:`ingest_client_id`). Two processes must never share one: the broker drops the older."""
    mqtt_share_group: str = "vaora-ingest"
    """``VAORA_MQTT_SHARE_GROUP``: the ingest workers subscribe through ``$share/<group>/...`` with clean sessions,
    so every worker of the group takes a share of the gates' messages and any one of them can die (the gates
    re-publish what it had not acknowledged). Empty: one worker, plain subscriptions and a persistent session
    under a stable client id (the broker queues the gates' messages while it is away)."""
    redis_url: str = ""
    """``VAORA_REDIS_URL``: the Redis shared by central's processes; when set (and ``VAORA_RATELIMIT_STORAGE`` is
    not), the rate-limit counts live there instead of in each process's memory."""
    mqtt_url_tls: bool = False
    """True when ``VAORA_MQTT_URL`` is an ``mqtts://`` URL: TLS even without ``VAORA_MQTT_CA_FILE`` (the system's
    trust store then checks the broker)."""
    web_host: str = "127.0.0.1"
    web_port: int = 5000
    web_workers: int = 2
    web_threads: int = 128
    web_streams: int = 112
    """Live-dashboard streams one web process holds at most; the rest of its threads stay for other requests."""
    proxy_count: int = 0
    ratelimit_storage: str = "memory://"
    db_pool_size: int = 16
    session_max_hours: int = 12
    """``VAORA_SESSION_MAX_HOURS``: absolute session lifetime, whatever the activity (beside the idle timeout
    ``session_idle_min``); checked on the server-side session record."""
    login_max_failures: int = 5
    """``VAORA_LOGIN_MAX_FAILURES``: wrong passwords for one account name within ``login_window_min`` before it is
    locked (429 with ``Retry-After``): 1 minute, doubled for each further failure, at most 24 h."""
    login_window_min: int = 15
    """``VAORA_LOGIN_WINDOW_MIN``: the window in which the login throttle counts failures (account and address)."""
    login_address_max_failures: int = 30
    """``VAORA_LOGIN_ADDRESS_MAX_FAILURES``: failed logins from one client address within ``login_window_min``
    before it gets 429."""
    password_hash_concurrency: int = 2
    """``VAORA_PASSWORD_HASH_CONCURRENCY``: password checks (argon2, 64 MiB each) that run at once per process; the
    others wait up to 5 s for a turn, then the login answers 503 with ``Retry-After``."""
    retention_delegate_days: int = 365
    """``VAORA_RETENTION_DELEGATE_DAYS``: days after a meeting ends until its delegates' names and contact data are
    anonymised by ``vaora-central purge`` (``central.retention``; reasons in the README)."""
    retention_walkin_days: int = 90
    """``VAORA_RETENTION_WALKIN_DAYS``: days after a meeting ends until its walk-ins' data (name, date of birth,
    ID number hash) is anonymised."""
    retention_checkin_days: int = 730
    """``VAORA_RETENTION_CHECKIN_DAYS``: days after a meeting ends until its check-ins are cut to the counted
    entries, anonymised (refusals, exits and repeats deleted)."""
    retention_audit_days: int = 730
    """``VAORA_RETENTION_AUDIT_DAYS``: days until an audit entry's details are blanked (who, what, when stay)."""
    retention_outbound_days: int = 30
    """``VAORA_RETENTION_OUTBOUND_DAYS``: days until a finished e-mail or SMS job (addresses, codes, links with
    secrets) is deleted from the outbound queue."""
    remote_booking_working_days: int = 3
    """``VAORA_REMOTE_BOOKING_WORKING_DAYS``: a meeting with remote points ("điểm cầu") is booked at least this many
    working days before its day, or with a leader's override (``central.meetings.booking``)."""
    holidays: frozenset[date] = field(default_factory=frozenset)
    """``VAORA_HOLIDAYS``: a file of public holidays, one ISO date (``2026-09-02``) a line, ``#`` starts a comment;
    they are not working days for the booking rule (weekends never are)."""
    legacy_change_stream: bool = False
    """``VAORA_LEGACY_CHANGE_STREAM``: ``1`` also publishes every change on the old global stream
    ``vaora/v1/central/changes`` (every site's changes, no ``prev``), and lets gates and site bridges read it
    (``broker-config``): on while gates older than the per-site change streams remain, ``0`` (the default) once
    every gate is upgraded, so no gate receives another site's delegates."""

    def ingest_client_id(self) -> str:
        """The ingest worker's client id: ``VAORA_MQTT_CLIENT_ID`` when set; else, in a share group, one unique to
        this process (``vaora-central-ingest-<host>-<pid>``), or, without a group, the stable
        ``vaora-central-ingest`` whose persistent session the broker keeps."""
        if self.mqtt_client_id:
            return self.mqtt_client_id
        from protocols.mqtt import process_client_id

        return process_client_id("central-ingest") if self.mqtt_share_group else "vaora-central-ingest"

    @property
    def mqtt_tls(self) -> TlsFiles | None:
        """The TLS files every central MQTT client uses (ingest, change feed, publisher), or None for plain
        TCP (no ``VAORA_MQTT_CA_FILE`` and no ``mqtts://`` in ``VAORA_MQTT_URL``)."""
        if self.mqtt_ca_file is None and not self.mqtt_url_tls:
            return None
        from protocols.mqtt import TlsFiles

        return TlsFiles(self.mqtt_ca_file, self.mqtt_cert_file, self.mqtt_key_file)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CentralConfig:
        """Build the configuration from the process environment (or the given one)."""
        source = os.environ if environ is None else environ
        return cls.from_mapping({k: v for k, v in source.items() if k.startswith("VAORA_")})

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> CentralConfig:
        """Build the configuration from ``VAORA_*`` keys; missing keys take their defaults.

        Raises :class:`ConfigError` listing every invalid variable.
        """
        values = {**DEFAULTS, **{k: "" if v is None else str(v) for k, v in mapping.items() if k in DEFAULTS}}
        errors: dict[str, str] = {}

        def port(name: str) -> int:
            raw = values[name].strip()
            if not raw.isdigit() or not 1 <= int(raw) <= 65535:
                errors[name] = f"must be a port number 1..65535, got {raw!r}"
                return 0
            return int(raw)

        def read_secret_file(name: str) -> str | None:
            raw = values[name].strip()
            if not raw:
                return None
            try:
                return Path(raw).read_text(encoding="utf-8").strip()
            except OSError as exc:
                errors[name] = f"cannot read {raw!r}: {exc.strerror or exc}"
                return None

        database_url = values["VAORA_DATABASE_URL"].strip()
        if urlparse(database_url).scheme not in DATABASE_SCHEMES:
            errors["VAORA_DATABASE_URL"] = (
                f"must start with sqlite://, postgresql:// or postgresql+pool://, got {database_url!r}")

        smtp_host = values["VAORA_SMTP_HOST"].strip()
        if not smtp_host:
            errors["VAORA_SMTP_HOST"] = "must not be empty"
        mail_from = values["VAORA_MAIL_FROM"].strip()
        if mail_from.count("@") != 1 or any(c.isspace() for c in mail_from):
            errors["VAORA_MAIL_FROM"] = f"must be an e-mail address, got {mail_from!r}"
        mqtt_host = values["VAORA_MQTT_HOST"].strip()
        if not mqtt_host:
            errors["VAORA_MQTT_HOST"] = "must not be empty"
        mqtt_port = port("VAORA_MQTT_PORT")
        mqtt_url_tls = False
        if mqtt_url := values["VAORA_MQTT_URL"].strip():
            from protocols.mqtt import parse_broker_url

            try:
                address = parse_broker_url(mqtt_url)
            except ValueError as exc:
                errors["VAORA_MQTT_URL"] = str(exc)
            else:
                if clash := [name for name in ("VAORA_MQTT_HOST", "VAORA_MQTT_PORT") if str(mapping.get(name) or "")]:
                    errors["VAORA_MQTT_URL"] = f"give VAORA_MQTT_URL or {' and '.join(clash)}, not both"
                mqtt_host, mqtt_port, mqtt_url_tls = address.host, address.port, address.tls

        api_token = values["VAORA_API_TOKEN"].strip() or read_secret_file("VAORA_API_TOKEN_FILE")
        if api_token is not None and len(api_token) < MIN_API_TOKEN_LENGTH:
            name = "VAORA_API_TOKEN" if values["VAORA_API_TOKEN"].strip() else "VAORA_API_TOKEN_FILE"
            errors[name] = f"the API token must be at least {MIN_API_TOKEN_LENGTH} characters"

        public_url = values["VAORA_PUBLIC_URL"].strip().rstrip("/")
        parsed = urlparse(public_url)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            errors["VAORA_PUBLIC_URL"] = f"must be an http(s) URL, got {public_url!r}"

        invitation_format = values["VAORA_INVITATION_FORMAT"]
        problem = _check_invitation_format(invitation_format)
        if problem:
            errors["VAORA_INVITATION_FORMAT"] = problem

        raw_minutes = values["VAORA_ENTRY_OPENS_BEFORE_MIN"].strip()
        minutes = int(raw_minutes) if raw_minutes.isdigit() else -1
        if not 0 <= minutes <= 24 * 60:
            errors["VAORA_ENTRY_OPENS_BEFORE_MIN"] = f"must be minutes 0..1440, got {raw_minutes!r}"

        raw_grace = values["VAORA_GRACE_AFTER_END_MIN"].strip()
        grace_minutes = int(raw_grace) if raw_grace.isdigit() else -1
        if not 0 <= grace_minutes <= 24 * 60:
            errors["VAORA_GRACE_AFTER_END_MIN"] = f"must be minutes 0..1440, got {raw_grace!r}"

        signing_key_file = values["VAORA_SIGNING_KEY_FILE"].strip()
        if not signing_key_file:
            errors["VAORA_SIGNING_KEY_FILE"] = "must not be empty"

        def bounded_int(name: str, low: int, high: int) -> int:
            raw = values[name].strip()
            if not raw.isdigit() or not low <= int(raw) <= high:
                errors[name] = f"must be a whole number {low}..{high}, got {raw!r}"
                return low
            return int(raw)

        sms_backend = values["VAORA_SMS_BACKEND"].strip() or "log"
        if sms_backend not in {"log", "modem", "http"}:
            errors["VAORA_SMS_BACKEND"] = f"must be log, modem or http, got {sms_backend!r}"
        elif sms_backend == "modem" and not values["VAORA_SMS_MODEM_PORT"].strip():
            errors["VAORA_SMS_MODEM_PORT"] = "must name the modem's serial port when VAORA_SMS_BACKEND=modem"
        elif sms_backend == "http" and not values["VAORA_SMS_HTTP_URL"].strip().startswith(("http://", "https://")):
            errors["VAORA_SMS_HTTP_URL"] = "must be an http(s) URL when VAORA_SMS_BACKEND=http"
        secret_key = read_secret_file("VAORA_SECRET_KEY_FILE")

        def existing_file(name: str) -> Path | None:
            raw = values[name].strip()
            if not raw:
                return None
            if not Path(raw).is_file():
                errors[name] = f"cannot read {raw!r}: no such file"
            return Path(raw)

        mqtt_ca_file = existing_file("VAORA_MQTT_CA_FILE")
        mqtt_cert_file = existing_file("VAORA_MQTT_CERT_FILE")
        mqtt_key_file = existing_file("VAORA_MQTT_KEY_FILE")
        if mqtt_key_file is not None and mqtt_cert_file is None:
            errors["VAORA_MQTT_KEY_FILE"] = "needs VAORA_MQTT_CERT_FILE (the certificate of this key)"
        if (mqtt_cert_file is not None or mqtt_key_file is not None) and mqtt_ca_file is None and not mqtt_url_tls:
            errors["VAORA_MQTT_CA_FILE"] = ("must be set when a client certificate or key is (TLS needs the CA, "
                                            "or an mqtts:// VAORA_MQTT_URL)")
        tls_names = {"ca_file": "VAORA_MQTT_CA_FILE", "cert_file": "VAORA_MQTT_CERT_FILE",
                     "key_file": "VAORA_MQTT_KEY_FILE"}
        if (mqtt_ca_file is not None or mqtt_url_tls) and not errors.keys() & set(tls_names.values()):
            from protocols.mqtt import TlsFiles, check_tls_files

            for field, problem in check_tls_files(TlsFiles(mqtt_ca_file, mqtt_cert_file, mqtt_key_file)):
                errors.setdefault(tls_names[field], problem)
        mqtt_client_id = values["VAORA_MQTT_CLIENT_ID"].strip()
        if len(mqtt_client_id) > 64 or any(c.isspace() or c in "+#/" for c in mqtt_client_id):
            errors["VAORA_MQTT_CLIENT_ID"] = (
                f"must be empty (unique per process) or 1..64 characters without spaces, '+', '#' or '/', "
                f"got {mqtt_client_id!r}")
        mqtt_share_group = values["VAORA_MQTT_SHARE_GROUP"].strip()
        if len(mqtt_share_group) > 64 or any(c.isspace() or c in "+#/$" for c in mqtt_share_group):
            errors["VAORA_MQTT_SHARE_GROUP"] = (
                f"must be empty (one ingest worker) or 1..64 characters without spaces, '+', '#', '/' or '$', "
                f"got {mqtt_share_group!r}")
        redis_url = values["VAORA_REDIS_URL"].strip()
        if redis_url and urlparse(redis_url).scheme not in {"redis", "rediss", "redis+sentinel"}:
            errors["VAORA_REDIS_URL"] = f"must be a redis://, rediss:// or redis+sentinel:// URL, got {redis_url!r}"
        if secret_key is not None and len(secret_key) < MIN_API_TOKEN_LENGTH:
            errors["VAORA_SECRET_KEY_FILE"] = f"the secret key must be at least {MIN_API_TOKEN_LENGTH} characters"

        web_threads = bounded_int("VAORA_WEB_THREADS", 4, 1024)
        raw_streams = values["VAORA_WEB_STREAMS"].strip()
        web_streams = bounded_int("VAORA_WEB_STREAMS", 0, 1024) if raw_streams else web_threads - web_threads // 8
        if web_streams >= web_threads:
            errors["VAORA_WEB_STREAMS"] = (
                f"must be below VAORA_WEB_THREADS ({web_threads}), so other requests keep threads; got {web_streams}")
        # An explicit VAORA_RATELIMIT_STORAGE wins; else the shared Redis, when there is one; else memory.
        explicit_storage = str(mapping.get("VAORA_RATELIMIT_STORAGE") or "").strip()
        shared_redis = "" if "VAORA_REDIS_URL" in errors else redis_url
        ratelimit_storage = explicit_storage or shared_redis or values["VAORA_RATELIMIT_STORAGE"].strip()
        if urlparse(ratelimit_storage).scheme not in {"memory", "redis", "rediss", "redis+sentinel"}:
            errors["VAORA_RATELIMIT_STORAGE"] = f"must be memory:// or a redis:// URL, got {ratelimit_storage!r}"

        holidays: frozenset[date] = frozenset()
        if holidays_file := values["VAORA_HOLIDAYS"].strip():
            try:
                holidays = read_holidays(Path(holidays_file))
            except (OSError, ValueError) as exc:
                errors["VAORA_HOLIDAYS"] = f"cannot read {holidays_file!r}: {getattr(exc, 'strerror', None) or exc}"

        raw_legacy = values["VAORA_LEGACY_CHANGE_STREAM"].strip().lower()
        if raw_legacy not in {"", "0", "1", "false", "true", "no", "yes", "off", "on"}:
            errors["VAORA_LEGACY_CHANGE_STREAM"] = f"must be 0 or 1, got {raw_legacy!r}"

        config = cls(
            database_url=database_url,
            smtp_host=smtp_host,
            smtp_port=port("VAORA_SMTP_PORT"),
            mail_from=mail_from,
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            mqtt_username=values["VAORA_MQTT_USERNAME"].strip() or None,
            mqtt_password=read_secret_file("VAORA_MQTT_PASSWORD_FILE"),
            api_token=api_token,
            signing_key_file=Path(signing_key_file),
            public_url=public_url,
            invitation_format=invitation_format,
            entry_opens_before_min=minutes,
            grace_after_end_min=grace_minutes,
            secret_key=secret_key,
            # Resolved here, once: a relative folder means the working directory central started in.
            data_dir=Path(values["VAORA_DATA_DIR"].strip() or "var/data").expanduser().resolve(),
            session_idle_min=bounded_int("VAORA_SESSION_IDLE_MIN", 1, 24 * 60),
            max_upload_mb=bounded_int("VAORA_MAX_UPLOAD_MB", 1, 500),
            sms_backend=sms_backend,
            sms_modem_port=values["VAORA_SMS_MODEM_PORT"].strip(),
            sms_http_url=values["VAORA_SMS_HTTP_URL"].strip(),
            pdf_font=Path(values["VAORA_PDF_FONT"].strip()),
            mqtt_ca_file=mqtt_ca_file,
            mqtt_cert_file=mqtt_cert_file,
            mqtt_key_file=mqtt_key_file,
            mqtt_client_id=mqtt_client_id,
            mqtt_share_group=mqtt_share_group,
            redis_url=redis_url,
            mqtt_url_tls=mqtt_url_tls,
            web_host=values["VAORA_WEB_HOST"].strip() or "127.0.0.1",
            web_port=port("VAORA_WEB_PORT"),
            web_workers=bounded_int("VAORA_WEB_WORKERS", 1, 64),
            web_threads=web_threads,
            web_streams=web_streams,
            proxy_count=bounded_int("VAORA_PROXY_COUNT", 0, 5),
            ratelimit_storage=ratelimit_storage,
            db_pool_size=bounded_int("VAORA_DB_POOL_SIZE", 1, 200),
            session_max_hours=bounded_int("VAORA_SESSION_MAX_HOURS", 1, 24 * 7),
            login_max_failures=bounded_int("VAORA_LOGIN_MAX_FAILURES", 1, 100),
            login_window_min=bounded_int("VAORA_LOGIN_WINDOW_MIN", 1, 24 * 60),
            login_address_max_failures=bounded_int("VAORA_LOGIN_ADDRESS_MAX_FAILURES", 1, 10_000),
            password_hash_concurrency=bounded_int("VAORA_PASSWORD_HASH_CONCURRENCY", 1, 64),
            retention_delegate_days=bounded_int("VAORA_RETENTION_DELEGATE_DAYS", 1, 3650),
            retention_walkin_days=bounded_int("VAORA_RETENTION_WALKIN_DAYS", 1, 3650),
            retention_checkin_days=bounded_int("VAORA_RETENTION_CHECKIN_DAYS", 1, 3650),
            retention_audit_days=bounded_int("VAORA_RETENTION_AUDIT_DAYS", 1, 3650),
            retention_outbound_days=bounded_int("VAORA_RETENTION_OUTBOUND_DAYS", 1, 3650),
            remote_booking_working_days=bounded_int("VAORA_REMOTE_BOOKING_WORKING_DAYS", 0, 60),
            holidays=holidays,
            legacy_change_stream=raw_legacy in {"1", "true", "yes", "on"},
        )
        if errors:
            raise ConfigError(errors)
        return config


def read_holidays(path: Path) -> frozenset[date]:
    """The dates of a holidays file: one ISO date a line; blank lines and ``#`` comments are skipped. Raises
    ValueError naming the first bad line."""
    found: set[date] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            found.add(date.fromisoformat(text))
        except ValueError:
            raise ValueError(f"line {number}: {text[:40]!r} is not a date YYYY-MM-DD") from None
    return frozenset(found)


def _check_invitation_format(text: str) -> str | None:
    """Return why an invitation number format is unusable, or None when it is fine."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        return f"not a valid format string: {exc}"
    if "seq" not in fields:
        return "must contain {seq}"
    unknown = fields - {"seq", "year"}
    if unknown:
        return f"unknown fields {sorted(unknown)}; only {{seq}} and {{year}} are allowed"
    return None
