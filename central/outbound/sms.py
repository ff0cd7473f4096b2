"""SMS: invitation text, Vietnamese phone numbers, and three senders behind one small interface.

- ``to_sms_text`` turns Vietnamese text into plain GSM-safe ASCII ("Giấy mời họp" -> "Giay moi hop"), so
  one SMS holds 160 characters and every phone shows it the same way.
- ``compose_invitation_sms`` builds the invitation message within 160 characters, shortening the meeting
  title (then the venue) at a word boundary; the invitation number and the registration link are never cut.
- ``normalise_vn_phone`` accepts the usual ways a Vietnamese mobile number is written and returns ``+84...``.
- Senders (``SmsSender``): ``GsmModemSender`` (a USB GSM modem over a serial port, AT commands in text
  mode), ``HttpGatewaySender`` (an operator's or vendor's HTTP SMS API) and ``LogSender`` (demos).
  ``send`` never raises: a failure is an ``SmsResult`` with ``ok=False``, an ``SmsError`` code and a detail.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

import requests
import serial

from protocols.logs import mask_phone, redact_secrets

log = logging.getLogger(__name__)

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SMS_LIMIT = 160
"""Characters in one GSM 7-bit SMS; ``to_sms_text`` output uses one septet per character."""

CTRL_Z = b"\x1a"
ESC = b"\x1b"


class SmsError(StrEnum):
    """Why an SMS was not sent."""

    INVALID_PHONE = "invalid_phone"
    EMPTY_TEXT = "empty_text"
    TOO_LONG = "too_long"
    PORT_UNAVAILABLE = "port_unavailable"
    MODEM_ERROR = "modem_error"
    TIMEOUT = "timeout"
    CONNECTION_FAILED = "connection_failed"
    HTTP_STATUS = "http_status"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class SmsResult:
    """Outcome of one ``send``: ``ok`` with the provider's ``reference``, or ``error`` with a ``detail``."""

    ok: bool
    reference: str | None = None
    error: SmsError | None = None
    detail: str | None = None

    @classmethod
    def sent(cls, reference: str | None) -> SmsResult:
        """A successful result carrying the modem's or gateway's message reference (if any)."""
        return cls(ok=True, reference=reference)

    @classmethod
    def failed(cls, error: SmsError, detail: str | None = None) -> SmsResult:
        """A failed result with its error code and a human-readable detail (no personal data)."""
        return cls(ok=False, error=error, detail=detail)


@runtime_checkable
class SmsSender(Protocol):
    """Anything that can send one SMS; ``send`` returns a result and never raises."""

    def send(self, phone: str, text: str) -> SmsResult:
        """Send ``text`` to ``phone`` (any accepted Vietnamese format) and report the outcome."""
        ...


# --------------------------------------------------------------------------------------------- phone numbers

_PHONE_SEPARATORS = re.compile(r"[\s.\-()]")
_VN_MOBILE = re.compile(r"[35789][0-9]{8}")


def normalise_vn_phone(value: str | None) -> str | None:
    """Return a Vietnamese mobile number as ``+84xxxxxxxxx``, or ``None`` if it is not one.

    Accepts ``0912345678``, ``+84912345678``, ``84912345678`` and ``+84 (0) 912 345 678``, with spaces,
    dots, hyphens or parentheses between digits. Mobile numbers have nine digits after the trunk ``0``,
    starting with 3, 5, 7, 8 or 9 (the pre-2018 eleven-digit numbers no longer exist).
    """
    if not isinstance(value, str) or len(value) > 40:
        return None
    compact = _PHONE_SEPARATORS.sub("", value.strip())
    if compact.startswith("+"):
        compact = compact[1:]
        if not compact.startswith("84"):
            return None
    if not compact.isascii() or not compact.isdigit():
        return None
    if compact.startswith("840") and len(compact) == 12:
        national = compact[3:]
    elif compact.startswith("84") and len(compact) == 11:
        national = compact[2:]
    elif compact.startswith("0") and len(compact) == 10:
        national = compact[1:]
    else:
        return None
    return f"+84{national}" if _VN_MOBILE.fullmatch(national) else None


# ------------------------------------------------------------------------------------------------ SMS text

# Characters of the GSM 03.38 basic set that are also ASCII (one septet each). ``@`` ``$`` ``_`` are there.
_GSM_ASCII = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 \n!\"#$%&'()*+,-./:;<=>?@_"
)
# Replacements applied before decomposition: letters NFD does not split, typography, and ASCII characters
# that need the GSM escape table (two septets; some phones show them wrongly).
# fmt: off
_REPLACE = {
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
    "ß": "ss", "ł": "l", "Ł": "L", "ı": "i",
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "`": "'", "´": "'", "“": '"', "”": '"', "„": '"', "«": '"',
    "»": '"', "–": "-", "—": "-", "−": "-", "‐": "-", "‑": "-", "…": "...", "•": "-", "·": "-",
    "[": "(", "]": ")", "{": "(", "}": ")", "\\": "/", "|": "/", "~": "-", "^": "", "€": "EUR", "⁄": "/",
    "\t": " ", "\r\n": "\n", "\r": "\n", "\u00a0": " ",
}
# fmt: on
_REPLACE_RE = re.compile("|".join(re.escape(key) for key in sorted(_REPLACE, key=len, reverse=True)))
_SPACES = re.compile(r"[ ]{2,}")


def to_sms_text(text: str) -> str:
    """Return ``text`` as GSM-safe plain ASCII without Vietnamese diacritics.

    Every tone and vowel mark is removed ("Giấy mời họp" -> "Giay moi hop"), "đ"/"Đ" become "d"/"D",
    typographic quotes and dashes become ASCII ones, characters GSM can only send through its escape
    table (``[ ] { } \\ | ~ ^``) are replaced, and anything else outside the set is dropped. Runs of
    spaces collapse to one; line breaks are kept as ``\\n``.
    """
    replaced = _REPLACE_RE.sub(lambda match: _REPLACE[match.group(0)], text)
    decomposed = unicodedata.normalize("NFKD", replaced)
    kept = "".join(
        ch for ch in decomposed if unicodedata.category(ch) != "Mn" and (ch in _GSM_ASCII or ch in _REPLACE)
    )
    # NFKD can reveal characters that need replacing (e.g. a full-width "|"): one more pass, then filter.
    kept = _REPLACE_RE.sub(lambda match: _REPLACE[match.group(0)], kept)
    kept = "".join(ch for ch in kept if ch in _GSM_ASCII)
    return _SPACES.sub(" ", kept)


class SmsComposeError(ValueError):
    """The message cannot be composed (empty title, unusable link, or the fixed parts exceed the limit)."""


_TRAILING_PUNCTUATION = " ,;:.-/"
_LINK_SAFE = re.compile(r"[A-Za-z0-9\-._/:?#@!$&'()*+,;=%]+")


def _local_time(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(LOCAL_TZ)
    return moment.strftime("%H:%M %d/%m/%Y")


def _shorten(words: list[str], count: int) -> str:
    """The first ``count`` whole words followed by "..." (trailing punctuation of the last word dropped)."""
    return " ".join(words[:count]).rstrip(_TRAILING_PUNCTUATION) + "..."


def compose_invitation_sms(
    number: str, title: str, starts_at: datetime, venue: str, link: str, limit: int = SMS_LIMIT
) -> str:
    """Return the invitation SMS, plain ASCII, at most ``limit`` characters.

    Shape: ``UBND moi du hop: <title>, 08:00 27/11/2026 tai <venue>. So 125/GM-UBND. Dang ky: <link>``.
    ``starts_at`` is shown in Vietnam time (a naive datetime is taken as Vietnam time already). A title that
    does not fit is shortened with "..." after its last whole word that fits; if not even its first word
    fits, the venue is shortened the same way (a long venue is first cut to half the room title and venue share,
    so that it cannot crowd out the title); as a last resort the title becomes "..." and then the venue
    clause is left out. The number and the link are never cut: if they alone do not fit, or the link holds
    characters an SMS would alter, ``SmsComposeError`` is raised.
    """
    number_text = to_sms_text(number).replace("\n", " ").strip()
    title_words = to_sms_text(title).split()
    venue_words = to_sms_text(venue).split()
    link = link.strip()
    if not title_words:
        raise SmsComposeError("the meeting title is empty once made SMS-safe")
    if not number_text:
        raise SmsComposeError("the invitation number is empty")
    if not link or not _LINK_SAFE.fullmatch(link):
        raise SmsComposeError("the link is empty or holds characters an SMS would alter")
    when = _local_time(starts_at)

    def render(title_text: str, venue_text: str | None) -> str:
        place = f" tai {venue_text}" if venue_text else ""
        stop = "" if place.endswith("...") else "."
        return f"UBND moi du hop: {title_text}, {when}{place}{stop} So {number_text}. Dang ky: {link}"

    def fits(text: str) -> bool:
        return len(text) <= limit

    full_title = " ".join(title_words)
    full_venue = " ".join(venue_words) or None
    candidate = render(full_title, full_venue)
    if fits(candidate):
        return candidate
    # 0. A long venue must not crowd out the title: it keeps at most half the room the two share (or what
    # the whole title leaves), cut by words, before the title is shortened.
    room = limit - len(render("", None)) - len(" tai ")
    venue_room = max(room // 2, room - len(full_title))
    if full_venue and len(full_venue) > venue_room and len(venue_words) > 1:
        keep = next((n for n in range(len(venue_words) - 1, 0, -1) if len(_shorten(venue_words, n)) <= venue_room), 1)
        venue_words, full_venue = venue_words[:keep], _shorten(venue_words, keep)
    # 1. Shorten the title, keeping the whole venue.
    for count in range(len(title_words) - 1, 0, -1):
        candidate = render(_shorten(title_words, count), full_venue)
        if fits(candidate):
            return candidate
    # 2. Shorten the venue as little as possible, keeping as much of the title as then fits (>= 1 word).
    for venue_count in range(len(venue_words) - 1, 0, -1):
        venue_text = _shorten(venue_words, venue_count)
        for count in range(len(title_words), 0, -1):
            title_text = full_title if count == len(title_words) else _shorten(title_words, count)
            candidate = render(title_text, venue_text)
            if fits(candidate):
                return candidate
    # 3. Last resorts: no title words (a single huge word cannot be cut), then no venue clause.
    last_venues: tuple[str | None, ...] = (full_venue, _shorten(venue_words, 1) if len(venue_words) > 1 else None, None)
    for last_venue in last_venues:
        candidate = render("...", last_venue)
        if fits(candidate):
            return candidate
    raise SmsComposeError(f"number and link alone need more than {limit} characters")


# ------------------------------------------------------------------------------------------------- senders


@dataclass
class LogSender:
    """Log each message instead of sending it (demos and development); the phone is masked in the log and
    the secret of a registration link in the text is redacted (``?secret=[redacted]``). ``sent`` keeps the
    texts whole, for a test or a demo that must follow the link."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    _counter: Any = field(default_factory=lambda: itertools.count(1), init=False, repr=False)

    def send(self, phone: str, text: str) -> SmsResult:
        """Log the message and record ``(normalised phone, text)`` in ``sent``; invalid phones fail."""
        number = normalise_vn_phone(phone)
        if number is None:
            log.warning("sms not logged: invalid phone to=%s", mask_phone(phone))
            return SmsResult.failed(SmsError.INVALID_PHONE, "not a Vietnamese mobile number")
        reference = f"log-{next(self._counter)}"
        self.sent.append((number, text))
        log.info("sms (log only) to=%s ref=%s text=%s", mask_phone(number), reference, redact_secrets(text))
        return SmsResult.sent(reference)


class _ModemTimeoutError(Exception):
    """The modem said nothing conclusive before the deadline."""


class _ModemRefusedError(Exception):
    """The modem answered ``ERROR``, ``+CMS ERROR: n`` or ``+CME ERROR: n`` (the line is the message)."""


def _is_error_line(line: str) -> bool:
    return line == "ERROR" or line.startswith(("+CMS ERROR", "+CME ERROR"))


class _ModemLink:
    """Line-oriented conversation with a modem on an open serial port."""

    def __init__(self, port: Any) -> None:
        self.port = port
        self.buffer = b""

    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def _fill(self, deadline: float) -> None:
        if time.monotonic() >= deadline:
            raise _ModemTimeoutError
        waiting = getattr(self.port, "in_waiting", 0) or 1
        self.buffer += self.port.read(waiting)

    def next_line(self, deadline: float) -> str:
        """Return the next non-empty line (CR/LF stripped) or raise ``_ModemTimeoutError``."""
        while True:
            index = self.buffer.find(b"\n")
            if index >= 0:
                raw, self.buffer = self.buffer[:index], self.buffer[index + 1 :]
                line = raw.decode("ascii", "replace").strip("\r\n \x1a")
                if line:
                    return line
                continue
            self._fill(deadline)

    def command(self, command: str, timeout: float) -> None:
        """Send ``command`` and wait for ``OK``; echo and unsolicited lines are skipped."""
        self.write(command.encode("ascii") + b"\r")
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(deadline)
            if line == "OK":
                return
            if _is_error_line(line):
                raise _ModemRefusedError(line)

    def wait_prompt(self, timeout: float) -> None:
        """Wait for the ``> `` prompt that follows ``AT+CMGS`` (it ends no line); error lines raise."""
        deadline = time.monotonic() + timeout
        while True:
            while (index := self.buffer.find(b"\n")) >= 0:
                line = self.buffer[:index].decode("ascii", "replace").strip("\r\n ")
                if line.startswith(">"):
                    self.buffer = self.buffer[index + 1 :]
                    return
                self.buffer = self.buffer[index + 1 :]
                if _is_error_line(line):
                    raise _ModemRefusedError(line)
            if b">" in self.buffer:  # the prompt, possibly right after the echo of the command
                self.buffer = b""
                return
            self._fill(deadline)


_CMGS_REFERENCE = re.compile(r"\+CMGS:\s*(\d+)")


@dataclass
class GsmModemSender:
    """Send through a GSM modem on a serial port with AT commands in text mode (GSM character set).

    ``port`` is a device path (``/dev/ttyUSB2``) or any pyserial URL; ``opener`` opens it (injectable for
    tests). The conversation: ``AT``, ``AT+CMGF=1``, ``AT+CSCS="GSM"``, ``AT+CMGS="+84..."``, the ``> ``
    prompt, the text and Ctrl-Z, then ``+CMGS: <ref>`` and ``OK``. ``ERROR`` / ``+CMS ERROR: <n>`` and
    silence past the timeouts give failed results. One message at a time per sender (a lock).
    """

    port: str
    baudrate: int = 115200
    command_timeout: float = 5.0
    send_timeout: float = 60.0
    opener: Callable[..., Any] = serial.serial_for_url
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def send(self, phone: str, text: str) -> SmsResult:
        """Send ``text`` (made SMS-safe with ``to_sms_text``) to ``phone``; never raises."""
        number = normalise_vn_phone(phone)
        if number is None:
            return SmsResult.failed(SmsError.INVALID_PHONE, "not a Vietnamese mobile number")
        body = to_sms_text(text).strip()
        if not body:
            return SmsResult.failed(SmsError.EMPTY_TEXT, "nothing to send once made SMS-safe")
        if len(body) > SMS_LIMIT:
            return SmsResult.failed(SmsError.TOO_LONG, f"{len(body)} characters, one SMS holds {SMS_LIMIT}")
        with self._lock:
            result = self._send_locked(number, body)
        if result.ok:
            log.info("sms sent via modem to=%s ref=%s", mask_phone(number), result.reference)
        else:
            log.warning(
                "sms via modem failed to=%s error=%s detail=%s",
                mask_phone(number),
                result.error,
                result.detail,
            )
        return result

    def _send_locked(self, number: str, body: str) -> SmsResult:
        try:
            port = self.opener(
                self.port, baudrate=self.baudrate, timeout=0.05, write_timeout=self.command_timeout
            )
        except (serial.SerialException, OSError, ValueError) as error:
            return SmsResult.failed(SmsError.PORT_UNAVAILABLE, f"cannot open {self.port}: {error}")
        try:
            return self._converse(_ModemLink(port), number, body)
        except (serial.SerialException, OSError) as error:
            return SmsResult.failed(SmsError.PORT_UNAVAILABLE, f"serial I/O failed: {error}")
        except Exception as error:  # a driver bug must not take the caller down
            log.exception("unexpected modem failure")
            return SmsResult.failed(SmsError.INTERNAL_ERROR, repr(error))
        finally:
            try:
                port.close()
            except Exception:  # closing a broken port can fail; nothing left to do
                log.debug("closing the modem port failed", exc_info=True)

    def _converse(self, link: _ModemLink, number: str, body: str) -> SmsResult:
        step = "AT"
        try:
            reset = getattr(link.port, "reset_input_buffer", None)
            if reset is not None:
                reset()
            for step in ("AT", "AT+CMGF=1", 'AT+CSCS="GSM"'):
                link.command(step, self.command_timeout)
            step = "AT+CMGS"
            link.write(f'AT+CMGS="{number}"'.encode("ascii") + b"\r")
            link.wait_prompt(self.command_timeout)
        except _ModemTimeoutError:
            if step == "AT+CMGS":
                self._escape(link)  # the prompt may have been lost while the modem waits for text
            return SmsResult.failed(SmsError.TIMEOUT, f"no answer to {step}")
        except _ModemRefusedError as refusal:
            return SmsResult.failed(SmsError.MODEM_ERROR, f"{step}: {refusal}")
        link.write(body.encode("ascii") + CTRL_Z)
        return self._await_reference(link)

    @staticmethod
    def _escape(link: _ModemLink) -> None:
        """Send ESC: a modem still in text-entry mode drops the text; the next conversation starts clean."""
        try:
            link.write(ESC)
        except (serial.SerialException, OSError):
            log.debug("could not send ESC to the modem", exc_info=True)

    def _await_reference(self, link: _ModemLink) -> SmsResult:
        deadline = time.monotonic() + self.send_timeout
        reference: str | None = None
        try:
            while True:
                line = link.next_line(deadline)
                match = _CMGS_REFERENCE.match(line)
                if match:
                    reference = match.group(1)
                elif line == "OK" and reference is not None:
                    return SmsResult.sent(reference)
                elif _is_error_line(line):
                    return SmsResult.failed(SmsError.MODEM_ERROR, line)
                # anything else (the echoed text, unsolicited codes, an OK before +CMGS) is skipped
        except _ModemTimeoutError:
            if reference is not None:  # +CMGS means the network took it; only the final OK went missing
                return SmsResult.sent(reference)
            self._escape(link)
            return SmsResult.failed(SmsError.TIMEOUT, "no +CMGS after the text was sent")


BodyEscape = Literal["json", "form", "raw"]


def _escape(value: str, escape: BodyEscape) -> str:
    if escape == "json":
        return json.dumps(value, ensure_ascii=False)[1:-1]
    if escape == "form":
        return urllib.parse.quote_plus(value)
    return value


@dataclass
class HttpGatewaySender:
    """Send through an HTTP SMS gateway: success is any 2xx answer; never raises.

    ``url`` and ``body_template`` may hold ``{phone}`` (``+84...``) and ``{text}``; they are substituted
    literally (no ``str.format``, so JSON braces need no doubling). Values are escaped for the body per
    ``body_escape`` (``json`` string content, ``form`` url-encoding, or ``raw``) and always url-encoded in
    the URL. ``reference_field`` names the key of a JSON answer holding the message id. ``session`` is
    injectable (a ``requests.Session``); ``timeout`` is in seconds.
    """

    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    body_template: str | None = '{"to": "{phone}", "text": "{text}"}'
    body_escape: BodyEscape = "json"
    reference_field: str | None = "id"
    timeout: float = 10.0
    session: Any = None

    def send(self, phone: str, text: str) -> SmsResult:
        """POST (or ``method``) the message to the gateway and report the outcome."""
        number = normalise_vn_phone(phone)
        if number is None:
            return SmsResult.failed(SmsError.INVALID_PHONE, "not a Vietnamese mobile number")
        if not text.strip():
            return SmsResult.failed(SmsError.EMPTY_TEXT, "nothing to send")
        url = self.url.replace("{phone}", urllib.parse.quote(number)).replace(
            "{text}", urllib.parse.quote(text)
        )
        body = None
        if self.body_template is not None:
            body = (
                self.body_template.replace("{phone}", _escape(number, self.body_escape))
                .replace("{text}", _escape(text, self.body_escape))
                .encode("utf-8")
            )
        result = self._request(url, body)
        if result.ok:
            log.info("sms sent via http to=%s ref=%s", mask_phone(number), result.reference)
        else:
            log.warning(
                "sms via http failed to=%s error=%s detail=%s",
                mask_phone(number),
                result.error,
                result.detail,
            )
        return result

    def _request(self, url: str, body: bytes | None) -> SmsResult:
        http = self.session or requests
        try:
            response = http.request(
                self.method, url, data=body, headers=dict(self.headers), timeout=self.timeout
            )
        except requests.Timeout:
            return SmsResult.failed(SmsError.TIMEOUT, f"no answer within {self.timeout:g} s")
        except requests.RequestException as error:
            return SmsResult.failed(SmsError.CONNECTION_FAILED, type(error).__name__)
        except Exception as error:  # a bad URL or a session bug must not take the caller down
            log.exception("unexpected http gateway failure")
            return SmsResult.failed(SmsError.INTERNAL_ERROR, repr(error))
        if not 200 <= response.status_code < 300:
            return SmsResult.failed(SmsError.HTTP_STATUS, f"HTTP {response.status_code}")
        return SmsResult.sent(self._reference(response))

    def _reference(self, response: Any) -> str | None:
        if not self.reference_field:
            return None
        try:
            data = response.json()
        except ValueError:
            return None
        if isinstance(data, dict) and data.get(self.reference_field) is not None:
            return str(data[self.reference_field])
        return None
