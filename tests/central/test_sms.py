"""SMS: the text rules, the invitation message, phone numbers, and the three senders against real peers.

The modem sender talks to a fake modem on the master side of a real pty; the HTTP sender talks to a local
``http.server``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import socket
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from central.outbound.sms import (
    GsmModemSender,
    HttpGatewaySender,
    LogSender,
    SmsComposeError,
    SmsError,
    SmsSender,
    compose_invitation_sms,
    normalise_vn_phone,
    to_sms_text,
)

# ------------------------------------------------------------------------------------------- SMS text

VOWELS_WITH_TONES = {
    "a": "aàáảãạ",
    "ă": "ăằắẳẵặ",
    "â": "âầấẩẫậ",
    "e": "eèéẻẽẹ",
    "ê": "êềếểễệ",
    "i": "iìíỉĩị",
    "o": "oòóỏõọ",
    "ô": "ôồốổỗộ",
    "ơ": "ơờớởỡợ",
    "u": "uùúủũụ",
    "ư": "ưừứửữự",
    "y": "yỳýỷỹỵ",
}
PLAIN = {"a": "a", "ă": "a", "â": "a", "e": "e", "ê": "e", "i": "i", "o": "o", "ô": "o", "ơ": "o"}
PLAIN |= {"u": "u", "ư": "u", "y": "y"}


@pytest.mark.parametrize("base", list(VOWELS_WITH_TONES))
def test_every_vowel_with_every_tone_loses_its_marks(base: str) -> None:
    forms = VOWELS_WITH_TONES[base]
    assert len(forms) == 6
    assert to_sms_text(forms) == PLAIN[base] * 6
    assert to_sms_text(forms.upper()) == PLAIN[base].upper() * 6
    assert to_sms_text(unicodedata.normalize("NFD", forms)) == PLAIN[base] * 6


def test_d_with_stroke_and_sample_sentences() -> None:
    assert to_sms_text("đ Đ") == "d D"
    assert to_sms_text("Giấy mời họp") == "Giay moi hop"
    assert (
        to_sms_text("Đồng chí Đặng Thị Hường, Ủy ban nhân dân") == "Dong chi Dang Thi Huong, Uy ban nhan dan"
    )
    assert to_sms_text("Phường Điện Biên, Quận Ba Đình, Hà Nội") == "Phuong Dien Bien, Quan Ba Dinh, Ha Noi"


def test_characters_outside_gsm_ascii_are_replaced_or_dropped() -> None:
    assert to_sms_text("“Hội nghị” – 2026…") == '"Hoi nghi" - 2026...'
    assert to_sms_text("a[b]{c}|d\\e~f^g`h") == "a(b)(c)/d/e-fg'h"
    assert to_sms_text("Họp\u00a0\u00a0tổ\tA 😀 中文 ❤") == "Hop to A "
    assert to_sms_text("dòng 1\r\ndòng 2") == "dong 1\ndong 2"
    assert to_sms_text("ctrl\x1a\x1b\x00z") == "ctrlz"  # a Ctrl-Z in the text would end the modem's input
    assert to_sms_text("ＵＢＮＤ") == "UBND"


@given(st.text(max_size=300))
def test_sms_text_is_always_gsm_safe_ascii(text: str) -> None:
    result = to_sms_text(text)
    assert result.isascii()
    assert not set(result) & set("[]{}|\\~^`\x1a\x1b\r\t")
    assert all(ch == "\n" or 32 <= ord(ch) < 127 for ch in result)


# ----------------------------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    "written",
    ["0912345678", "+84912345678", "84912345678", "0912 345 678", "091.234.5678", "+84 912-345-678",
     "+84 (0) 912 345 678", " 0912345678 "],
)  # fmt: skip
def test_phone_forms_normalise_to_plus84(written: str) -> None:
    assert normalise_vn_phone(written) == "+84912345678"


@pytest.mark.parametrize("written", ["0321234567", "0561234567", "0701234567", "0861234567", "0981234567"])
def test_every_mobile_prefix_is_accepted(written: str) -> None:
    assert normalise_vn_phone(written) == "+84" + written[1:]


@pytest.mark.parametrize(
    "written",
    ["", "091234567", "09123456789", "01234567890", "0212345678", "0612345678", "+1 912345678",
     "+8491234567a", "0912345678x", "٠٩١٢٣٤٥٦٧٨", "abc", "+", "84", "00912345678", "0912/345678"],
)  # fmt: skip
def test_invalid_phones_give_none(written: str) -> None:
    assert normalise_vn_phone(written) is None


# ------------------------------------------------------------------------------------- invitation text

STARTS = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
LINK = "https://vaora.example.vn/r/125-2026?k=Q2xhc3NpZmllZA_x"


def test_short_invitation_is_sent_whole() -> None:
    text = compose_invitation_sms("125/TM-UBND", "Họp giao ban tuần", STARTS, "Phòng họp số 1", LINK)
    assert text == (
        "UBND moi du hop: Hop giao ban tuan, 08:00 27/11/2026 tai Phong hop so 1. So 125/TM-UBND. "
        f"Dang ky: {LINK}"
    )


def test_start_time_is_shown_in_vietnam_time_whatever_the_zone() -> None:
    plus9 = timezone(timedelta(hours=9))
    text = compose_invitation_sms("1/TM-UBND", "Họp", datetime(2026, 1, 1, 10, 30, tzinfo=plus9), "A", LINK)
    assert "08:30 01/01/2026" in text
    naive = compose_invitation_sms("1/TM-UBND", "Họp", datetime(2026, 1, 1, 14, 0), "A", LINK)
    assert "14:00 01/01/2026" in naive


def test_long_title_is_shortened_at_a_word_boundary() -> None:
    title = (
        "Hội nghị tổng kết công tác năm 2026 và triển khai nhiệm vụ trọng tâm năm 2027 "
        "của Ủy ban nhân dân thành phố"
    )
    text = compose_invitation_sms("125/TM-UBND", title, STARTS, "Hội trường A, 12 Lê Lai", LINK)
    # This long link leaves 44 characters: the venue keeps at most half of them (cut by words), the title the rest.
    assert text == (
        "UBND moi du hop: Hoi nghi tong ket..., 08:00 27/11/2026 tai Hoi truong A, 12... So 125/TM-UBND. "
        f"Dang ky: {LINK}"
    )
    assert len(text) <= 160 < len(text.replace("ket...", "ket cong..."))  # one more word would not fit
    shown = text.removeprefix("UBND moi du hop: ").split(", 08:00")[0]
    assert to_sms_text(title).startswith(shown.removesuffix("...") + " ")  # whole words only


def test_a_long_venue_is_cut_to_its_share_so_the_title_keeps_the_larger_part() -> None:
    venue = "Hội trường lớn tầng 3 tòa nhà Trung tâm Hội nghị quốc gia, đường Phạm Hùng, Nam Từ Liêm, Hà Nội"
    link = "https://vaora.example.vn/registration/2026/125-TM-UBND?k=" + "a" * 10
    text = compose_invitation_sms("125/TM-UBND", "Hội nghị triển khai", STARTS, venue, link)
    assert text == (
        f"UBND moi du hop: Hoi nghi..., 08:00 27/11/2026 tai Hoi truong... So 125/TM-UBND. Dang ky: {link}"
    )
    assert len(text) <= 160


def test_an_overlong_single_word_title_is_left_out_rather_than_cut() -> None:
    text = compose_invitation_sms("125/TM-UBND", "X" * 200, STARTS, "Phòng 1", LINK)
    assert "XX" not in text
    assert text.startswith("UBND moi du hop: ..., 08:00 27/11/2026 tai Phong 1.")


def test_number_and_link_are_never_cut_so_impossible_messages_raise() -> None:
    with pytest.raises(SmsComposeError):
        compose_invitation_sms("125/TM-UBND", "Họp", STARTS, "Phòng 1", "https://x.vn/" + "a" * 150)
    with pytest.raises(SmsComposeError):
        compose_invitation_sms("125/TM-UBND", "   ", STARTS, "Phòng 1", LINK)
    with pytest.raises(SmsComposeError):
        compose_invitation_sms("125/TM-UBND", "Họp", STARTS, "Phòng 1", "https://x.vn/a b")
    with pytest.raises(SmsComposeError):
        compose_invitation_sms("125/TM-UBND", "Họp", STARTS, "Phòng 1", "https://x.vn/~an")


VIETNAMESE_LETTERS = (
    "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
)
VIETNAMESE_LETTERS += VIETNAMESE_LETTERS.upper()
vn_words = st.text(alphabet=VIETNAMESE_LETTERS, min_size=1, max_size=12)
vn_phrases = st.lists(vn_words, min_size=1, max_size=40).map(" ".join)
numbers = st.from_regex(r"[1-9][0-9]{0,3}/(TM|GM|QD)-(UBND|VP|HDND)", fullmatch=True)
links = st.from_regex(r"https://[a-z]{3,12}\.vn/r/[A-Za-z0-9_-]{8,43}", fullmatch=True)
moments = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))


@settings(max_examples=400)
@given(numbers, vn_phrases, moments, vn_phrases, links)
def test_invitation_properties(number: str, title: str, starts_at: datetime, venue: str, link: str) -> None:
    text = compose_invitation_sms(number, title, starts_at, venue, link)
    assert text.isascii()
    assert len(text) <= 160
    assert f"So {number}." in text
    assert text.endswith(f"Dang ky: {link}")
    shown = re.match(r"UBND moi du hop: (.*?), \d\d:\d\d \d\d/\d\d/\d{4}", text)
    assert shown is not None
    title_shown = shown.group(1)
    plain_words = to_sms_text(title).split()
    if title_shown.endswith("..."):
        kept = title_shown[:-3].split()
        assert kept == plain_words[: len(kept)]  # a prefix of whole words: never a partial word
        assert len(kept) < len(plain_words)
    else:
        assert title_shown == " ".join(plain_words)


# ----------------------------------------------------------------------------------------- fake modem


@dataclass
class FakeModem:
    """Answers like a GSM modem on the master side of a pty: echo, OK, the ``> `` prompt, +CMGS."""

    master: int
    mode: str = "ok"  # ok | cms_error | silent | silent_after_text | no_prompt | reject_cscs
    received: list[tuple[str, str]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    escaped: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> FakeModem:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _reply(self, data: bytes) -> None:
        os.write(self.master, data)

    def _run(self) -> None:
        buffer = b""
        number: str | None = None
        while not self.stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 1024)
            except OSError:
                return
            if self.mode == "silent":
                continue
            buffer += chunk
            while True:
                if number is not None:  # text-entry mode after the prompt
                    if b"\x1b" in buffer:
                        self.escaped = True
                        buffer, number = b"", None
                        continue
                    if b"\x1a" not in buffer:
                        break
                    text, buffer = buffer.split(b"\x1a", 1)
                    self._reply(text)  # echo the text
                    self.received.append((number, text.decode("ascii")))
                    number = None
                    if self.mode == "cms_error":
                        self._reply(b"\r\n+CMS ERROR: 500\r\n")
                    elif self.mode == "ok":
                        self._reply(b"\r\n+CMGS: 17\r\n\r\nOK\r\n")
                    continue
                if b"\r" not in buffer:
                    break
                line, buffer = buffer.split(b"\r", 1)
                command = line.decode("ascii").strip()
                self.commands.append(command)
                self._reply(line + b"\r")  # echo
                match = re.fullmatch(r'AT\+CMGS="([^"]+)"', command)
                if match:
                    number = match.group(1)
                    if self.mode != "no_prompt":
                        self._reply(b"\r\n> ")
                elif command == 'AT+CSCS="GSM"' and self.mode == "reject_cscs":
                    self._reply(b"\r\nERROR\r\n")
                elif command.startswith("AT"):
                    self._reply(b"\r\nOK\r\n")
                elif command:
                    self._reply(b"\r\nERROR\r\n")


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """A real pty: the master fd for the fake modem, the slave's device path for the sender."""
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


def _modem(pty_pair: tuple[int, str], mode: str) -> Iterator[tuple[FakeModem, str]]:
    master, path = pty_pair
    modem = FakeModem(master, mode).start()
    try:
        yield modem, path
    finally:
        modem.stop.set()
        modem.thread.join(timeout=2)


@pytest.fixture(params=["ok"])
def modem(request: pytest.FixtureRequest, pty_pair: tuple[int, str]) -> Iterator[tuple[FakeModem, str]]:
    """A started fake modem (mode from the parameter) and the path to open."""
    yield from _modem(pty_pair, request.param)


def test_modem_sends_text_mode_sms_and_returns_the_reference(
    modem: tuple[FakeModem, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, path = modem
    sender = GsmModemSender(path, command_timeout=2, send_timeout=2)
    assert isinstance(sender, SmsSender)
    with caplog.at_level(logging.INFO, logger="central.outbound.sms"):
        result = sender.send("0912 345 678", "Giấy mời họp: Hội nghị — 08:00")
    assert result.ok, result
    assert result.reference == "17"
    assert result.error is None
    assert fake.received == [("+84912345678", "Giay moi hop: Hoi nghi - 08:00")]
    assert fake.commands[:4] == ["AT", "AT+CMGF=1", 'AT+CSCS="GSM"', 'AT+CMGS="+84912345678"']
    assert "0912345678" not in caplog.text and "912345678" not in caplog.text
    assert "********678" in caplog.text


def test_modem_sends_two_messages_in_a_row(modem: tuple[FakeModem, str]) -> None:
    fake, path = modem
    sender = GsmModemSender(path, command_timeout=2, send_timeout=2)
    assert sender.send("0912345678", "một").ok
    assert sender.send("0987654321", "hai").ok
    assert fake.received == [("+84912345678", "mot"), ("+84987654321", "hai")]


@pytest.mark.parametrize("modem", ["cms_error"], indirect=True)
def test_modem_cms_error_is_a_failed_result(modem: tuple[FakeModem, str]) -> None:
    fake, path = modem
    result = GsmModemSender(path, command_timeout=2, send_timeout=2).send("0912345678", "Xin chào")
    assert not result.ok
    assert result.error is SmsError.MODEM_ERROR
    assert result.detail == "+CMS ERROR: 500"
    assert result.reference is None
    assert fake.received == [("+84912345678", "Xin chao")]


@pytest.mark.parametrize("modem", ["reject_cscs"], indirect=True)
def test_modem_error_on_a_setup_command_is_a_failed_result(modem: tuple[FakeModem, str]) -> None:
    fake, path = modem
    result = GsmModemSender(path, command_timeout=2, send_timeout=2).send("0912345678", "Xin chào")
    assert not result.ok
    assert result.error is SmsError.MODEM_ERROR
    assert result.detail == 'AT+CSCS="GSM": ERROR'
    assert fake.received == []
    assert not any(command.startswith("AT+CMGS") for command in fake.commands)


@pytest.mark.parametrize("modem", ["silent"], indirect=True)
def test_silent_modem_times_out_into_a_failed_result(modem: tuple[FakeModem, str]) -> None:
    _, path = modem
    result = GsmModemSender(path, command_timeout=0.5, send_timeout=0.5).send("0912345678", "Xin chào")
    assert not result.ok  # it returned: the command timeout ended the wait for the modem's answer
    assert result.error is SmsError.TIMEOUT
    assert result.detail == "no answer to AT"


@pytest.mark.parametrize("modem", ["silent_after_text"], indirect=True)
def test_no_reference_after_the_text_times_out_into_a_failed_result(modem: tuple[FakeModem, str]) -> None:
    fake, path = modem
    result = GsmModemSender(path, command_timeout=1, send_timeout=0.5).send("0912345678", "Xin chào")
    assert not result.ok
    assert result.error is SmsError.TIMEOUT
    assert result.detail == "no +CMGS after the text was sent"
    assert fake.received == [("+84912345678", "Xin chao")]


@pytest.mark.parametrize("modem", ["no_prompt"], indirect=True)
def test_lost_prompt_times_out_and_escapes_text_mode_so_the_next_send_works(
    modem: tuple[FakeModem, str],
) -> None:
    fake, path = modem
    sender = GsmModemSender(path, command_timeout=0.5, send_timeout=0.5)
    result = sender.send("0912345678", "Xin chào")
    assert not result.ok
    assert result.error is SmsError.TIMEOUT
    assert result.detail == "no answer to AT+CMGS"
    deadline = time.monotonic() + 2
    while not fake.escaped and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.escaped
    fake.mode = "ok"  # the modem recovers: without the ESC, "AT" would have become part of a message
    assert sender.send("0912345678", "Lần hai").ok
    assert fake.received == [("+84912345678", "Lan hai")]


def test_modem_port_that_does_not_exist_is_a_failed_result(tmp_path: Any) -> None:
    result = GsmModemSender(str(tmp_path / "ttyUSB9"), command_timeout=0.5).send("0912345678", "Xin chào")
    assert not result.ok
    assert result.error is SmsError.PORT_UNAVAILABLE


def test_modem_refuses_bad_input_without_touching_the_port() -> None:
    opened: list[str] = []

    def opener(url: str, **kwargs: Any) -> Any:
        opened.append(url)
        return serial.serial_for_url("loop://", **kwargs)

    sender = GsmModemSender("loop://", opener=opener)
    assert sender.send("12345", "Xin chào").error is SmsError.INVALID_PHONE
    assert sender.send("0912345678", "😀😀").error is SmsError.EMPTY_TEXT
    assert sender.send("0912345678", "a" * 161).error is SmsError.TOO_LONG
    assert opened == []


def test_opener_is_injectable_and_used_with_the_configured_port(modem: tuple[FakeModem, str]) -> None:
    _, path = modem
    calls: list[tuple[str, dict[str, Any]]] = []

    def opener(url: str, **kwargs: Any) -> Any:
        calls.append((url, kwargs))
        return serial.serial_for_url(url, **kwargs)

    result = GsmModemSender(path, baudrate=9600, opener=opener, command_timeout=2).send("0912345678", "A")
    assert result.ok
    assert calls[0][0] == path
    assert calls[0][1]["baudrate"] == 9600


# --------------------------------------------------------------------------------------- HTTP gateway


@dataclass
class Gateway:
    """A local HTTP server that records requests and answers with ``status`` after ``delay`` seconds."""

    status: int = 200
    delay: float = 0.0
    answer: bytes = b'{"id": "msg-42"}'
    requests: list[dict[str, Any]] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                gateway.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                time.sleep(gateway.delay)
                with contextlib.suppress(
                    BrokenPipeError, ConnectionResetError
                ):  # the timeout test's client left
                    self.send_response(gateway.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(gateway.answer)))
                    self.end_headers()
                    self.wfile.write(gateway.answer)

            do_POST = do_GET = do_PUT = _handle  # noqa: N815 (http.server's naming)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep the test output quiet."""

        return Handler


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    """A started local gateway and its base URL."""
    state = Gateway()
    server = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_gateway_posts_json_and_returns_the_reference(gateway: tuple[Gateway, str]) -> None:
    state, base = gateway
    sender = HttpGatewaySender(f"{base}/send", headers={"Content-Type": "application/json", "X-Key": "k"})
    assert isinstance(sender, SmsSender)
    result = sender.send("0912.345.678", 'Giấy mời "họp"')
    assert result.ok, result
    assert result.reference == "msg-42"
    [request] = state.requests
    assert request["method"] == "POST"
    assert request["path"] == "/send"
    assert request["headers"]["X-Key"] == "k"
    assert json.loads(request["body"]) == {"to": "+84912345678", "text": 'Giấy mời "họp"'}


def test_http_gateway_get_with_form_template_in_the_url(gateway: tuple[Gateway, str]) -> None:
    state, base = gateway
    state.answer = b"OK"
    sender = HttpGatewaySender(f"{base}/api?to={{phone}}&msg={{text}}", method="GET", body_template=None)
    result = sender.send("0912345678", "Họp lúc 8h & ăn trưa")
    assert result.ok
    assert result.reference is None  # the answer is not JSON
    [request] = state.requests
    assert request["method"] == "GET"
    assert (
        request["path"]
        == "/api?to=%2B84912345678&msg=H%E1%BB%8Dp%20l%C3%BAc%208h%20%26%20%C4%83n%20tr%C6%B0a"
    )


def test_http_gateway_form_body(gateway: tuple[Gateway, str]) -> None:
    state, base = gateway
    sender = HttpGatewaySender(
        f"{base}/sms",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body_template="to={phone}&text={text}",
        body_escape="form",
    )
    assert sender.send("0912345678", "a&b=c").ok
    assert state.requests[0]["body"] == b"to=%2B84912345678&text=a%26b%3Dc"


@pytest.mark.parametrize("status", [201, 202, 204])
def test_http_gateway_any_2xx_is_success(gateway: tuple[Gateway, str], status: int) -> None:
    state, base = gateway
    state.status = status
    state.answer = b"" if status == 204 else state.answer
    assert HttpGatewaySender(base).send("0912345678", "Xin chào").ok


@pytest.mark.parametrize("status", [400, 401, 429, 500, 503])
def test_http_gateway_error_status_is_a_failed_result(gateway: tuple[Gateway, str], status: int) -> None:
    state, base = gateway
    state.status = status
    result = HttpGatewaySender(base).send("0912345678", "Xin chào")
    assert not result.ok
    assert result.error is SmsError.HTTP_STATUS
    assert result.detail == f"HTTP {status}"


def test_http_gateway_timeout_is_a_failed_result(gateway: tuple[Gateway, str]) -> None:
    state, base = gateway
    state.delay = 1.5
    result = HttpGatewaySender(base, timeout=0.3).send("0912345678", "Xin chào")
    assert not result.ok  # returned before the gateway's 1.5 s answer: the 0.3 s timeout ended it
    assert result.error is SmsError.TIMEOUT


def test_http_gateway_unreachable_port_is_a_failed_result() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = HttpGatewaySender(f"http://127.0.0.1:{port}/send", timeout=2).send("0912345678", "Xin chào")
    assert not result.ok
    assert result.error is SmsError.CONNECTION_FAILED


def test_http_gateway_malformed_url_and_bad_phone_are_failed_results() -> None:
    assert HttpGatewaySender("not a url").send("0912345678", "x").error is SmsError.CONNECTION_FAILED
    assert HttpGatewaySender("http://127.0.0.1:9/").send("911", "x").error is SmsError.INVALID_PHONE


# ------------------------------------------------------------------------------------------ log sender


def test_log_sender_masks_the_phone(caplog: pytest.LogCaptureFixture) -> None:
    sender = LogSender()
    assert isinstance(sender, SmsSender)
    with caplog.at_level(logging.INFO, logger="central.outbound.sms"):
        result = sender.send("0912345678", "Giay moi hop")
        failed = sender.send("12", "x")
    assert result.ok
    assert result.reference == "log-1"
    assert sender.sent == [("+84912345678", "Giay moi hop")]
    assert "********678" in caplog.text
    assert "912345678" not in caplog.text
    assert "Giay moi hop" in caplog.text
    assert failed.error is SmsError.INVALID_PHONE
