"""Structured log lines (``key=value``) for gate and central, and masks for personal data.

Personal data never reaches a log in clear: phone numbers, e-mail addresses and ID card numbers are masked
with the helpers here before they are logged.
"""

from __future__ import annotations

import logging
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
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send structured lines to stdout (journald picks them up under systemd)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(StructuredFormatter(service))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
