"""Structured log lines (``key=value``) for gate and central, masks for personal data, and redaction of secrets.

Personal data never reaches a log in clear: phone numbers, e-mail addresses and ID card numbers are masked
with the helpers here before they are logged. Secrets never reach a log either: :func:`redact_secrets`
blanks secret query parameters (an invitation's ``?s=``, ``?secret=``, tokens, codes, keys, passwords) and
bearer tokens in any text, and :class:`RedactSecrets`, on every handler :func:`configure_logging` sets up,
applies it to every line (gunicorn's access and error logs included).
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def mask_phone(value: str | None) -> str:
    """Keep the last three digits of a phone number: ``0912345678`` -> ``*******678``."""
    if not value:
        return ""
    digits = [ch for ch in value if ch.isdigit()]
    return "*" * max(len(digits) - 3, 0) + "".join(digits[-3:])


def mask_email(value: str | None) -> str:
    """Keep the first character of the local part and the domain: ``lan@x.vn`` -> ``l***@x.vn``."""
    if not value:
        return ""
    local, sep, domain = value.partition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_id_number(value: str | None) -> str:
    """Keep the last four characters of an ID card number: ``001085012345`` -> ``********2345``."""
    if not value:
        return ""
    return "*" * max(len(value) - 4, 0) + value[-4:]


SECRET_PARAMETERS = (
    "s", "secret", "token", "code", "key", "password", "passwd", "pwd", "api_key", "apikey", "access_token",
    "auth", "signature", "sig", "otp", "csrf_token",
)
"""Query parameters whose values are blanked in logs (``?s=`` carries an invitation's secret)."""

SECRET_FIELDS = ("secret", "token", "password", "passwd", "api_key", "apikey", "access_token", "csrf_token")
"""Names whose values are blanked wherever ``name=value`` appears (structured fields, forms, headers' text)."""

REDACTED = "[redacted]"

_NAMES = "|".join(re.escape(name) for name in SECRET_PARAMETERS)
_FIELDS = "|".join(re.escape(name) for name in SECRET_FIELDS)
_QUERY_SECRET = re.compile(
    # after ? & or ; (also percent-encoded, as in ?next=%2Fx%3Fs%3D...), the name, = (or %3D), the value
    rf"((?:[?&;]|%3F|%26|%3B)(?:{_NAMES})(?:=|%3D))(?:(?!%26|%3B)[^&;#\s\"'<>])*",
    re.IGNORECASE,
)
_FIELD_SECRET = re.compile(
    rf"((?<![\w.-])(?:{_FIELDS})[\"']?\s*[=:]\s*)(?:\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s\"'&,;]+)", re.IGNORECASE
)
_BEARER = re.compile(r"(\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE)
_SHORT_LINK = re.compile(r"(/dk/)[A-Za-z0-9]{8}\b")
"""central's short registration links (``/dk/<token>``, the token opens an invitation like its secret)."""
_SECRET_HEADER = re.compile(r"(x-[a-z-]*(?:secret|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]+", re.IGNORECASE)


def redact_secrets(text: str) -> str:
    """Return ``text`` with secret query parameters, ``secret=``/``token=``-like fields, bearer tokens and
    ``X-...-Secret``/``X-...-Token`` header values replaced by ``[redacted]``."""
    if not text:
        return text
    text = _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
    text = _BEARER.sub(rf"\1{REDACTED}", text)
    text = _SECRET_HEADER.sub(rf"\1{REDACTED}", text)
    text = _SHORT_LINK.sub(rf"\1{REDACTED}", text)
    return _FIELD_SECRET.sub(rf"\1{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """A handler filter that passes every record with :func:`redact_secrets` applied to its message, its
    string extra fields and its exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        message = record.getMessage()
        clean = redact_secrets(message)
        if clean != message:
            record.msg, record.args = clean, None
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_") and isinstance(value, str):
                setattr(record, key, redact_secrets(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        return True


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(ch in text for ch in ' ="\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class StructuredFormatter(logging.Formatter):
    """Format records as one ``ts=... level=... service=... logger=... msg=... key=value`` line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render one record; extra fields given with ``extra={...}`` follow as key=value pairs."""
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [
            f"ts={moment}",
            f"level={record.levelname.lower()}",
            f"service={self.service}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                parts.append(f"{key}={_quote(value)}")
        if record.exc_text:
            parts.append(f"exc={_quote(record.exc_text)}")
        elif record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send structured lines to stdout (journald picks them up under systemd), secrets redacted; peewee's
    query log stays off."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(StructuredFormatter(service))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # peewee's DEBUG query log holds every parameter (codes, personal data): not even at DEBUG.
    logging.getLogger("peewee").setLevel(max(logging.INFO, root.level))
