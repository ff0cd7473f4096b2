"""USB HID scanner: the evdev key-event decoder, keyboard layouts, and the reader with grab and reconnect.

The decoder is fed real ``evdev.InputEvent`` objects, framed as a real keyboard sends them (MSC_SCAN, the key
event, SYN_REPORT). ``HidScanner`` runs against ``FakeInputDevice``: an ``evdev.eventio.EventIO`` over a pipe,
so reading uses evdev's own ``read()`` on real ``struct input_event`` bytes; only what needs a kernel device
(open, grab, unplug) is simulated. Where ``/dev/uinput`` works, a real virtual keyboard is used as well.
"""

from __future__ import annotations

import array
import errno
import fcntl
import itertools
import logging
import os
import queue
import struct
import termios
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import evdev
import pytest
from evdev import InputEvent, ecodes
from evdev.eventio import EventIO

from gate.scanners.base import ScanEvent
from gate.scanners.hid import HidDecoder, HidScanner, find_device
from gate.scanners.keymaps import LAYOUTS, LayoutSpec, compile_layout, get_keymap
from protocols.codes import (
    SignedClaims,
    check_compact,
    encode_signed,
    format_compact,
    generate_compact,
    generate_signing_key,
    verify_signed,
)
from protocols.reasons import Reason
from tests.conftest import wait_until

E = ecodes
T0 = 1_750_000_000  # event timestamps (seconds), as the kernel stamps them
VENDOR, PRODUCT = 0x05E0, 0x1200

# An independent US table (not the code under test): character -> (key, shift).
_US_PUNCT = {
    "-": (E.KEY_MINUS, False), "_": (E.KEY_MINUS, True), "=": (E.KEY_EQUAL, False), "+": (E.KEY_EQUAL, True),
    ":": (E.KEY_SEMICOLON, True), ";": (E.KEY_SEMICOLON, False), ".": (E.KEY_DOT, False),
    ",": (E.KEY_COMMA, False), "/": (E.KEY_SLASH, False), " ": (E.KEY_SPACE, False),
}


def us_key(char: str) -> tuple[int, bool]:
    """The key and Shift state a US keyboard uses to type ``char``."""
    if char in _US_PUNCT:
        return _US_PUNCT[char]
    if char.isdigit():
        return E.ecodes[f"KEY_{char}"], False
    if char.isascii() and char.isalpha():
        return E.ecodes[f"KEY_{char.upper()}"], char.isupper()
    raise ValueError(char)


class Typist:
    """Produces the event stream of a keyboard-wedge scanner: 4 ms per key action, real event framing."""

    def __init__(self, start: float = T0, step_s: float = 0.004) -> None:
        self.t = start
        self.step_s = step_s

    def event(self, etype: int, code: int, value: int) -> InputEvent:
        sec = int(self.t)
        return InputEvent(sec, round((self.t - sec) * 1_000_000), etype, code, value)

    def key(self, code: int, value: int) -> list[InputEvent]:
        """One key action as a USB keyboard reports it: MSC_SCAN, EV_KEY, SYN_REPORT."""
        events = [self.event(E.EV_MSC, E.MSC_SCAN, 0x70000 + code), self.event(E.EV_KEY, code, value),
                  self.event(E.EV_SYN, E.SYN_REPORT, 0)]
        self.t += self.step_s
        return events

    def tap(self, code: int, shift: int | None = None) -> list[InputEvent]:
        """Press and release ``code``, holding ``shift`` (a Shift key code) around it if given."""
        events: list[InputEvent] = []
        if shift is not None:
            events += self.key(shift, 1)
        events += self.key(code, 1) + self.key(code, 0)
        if shift is not None:
            events += self.key(shift, 0)
        return events

    def text(self, text: str, enter: int | None = E.KEY_ENTER) -> list[InputEvent]:
        """Type ``text`` on a US layout (Shift pressed per character, as most scanners do), then Enter."""
        events: list[InputEvent] = []
        for char in text:
            code, shifted = us_key(char)
            events += self.tap(code, E.KEY_LEFTSHIFT if shifted else None)
        if enter is not None:
            events += self.tap(enter)
        return events

    def wait(self, seconds: float) -> None:
        self.t += seconds


def decode(
    events: Iterable[InputEvent], decoder: HidDecoder | None = None, now: float = 100.0
) -> list[ScanEvent]:
    return (decoder or HidDecoder()).feed(events, now)


def texts(scans: list[ScanEvent]) -> list[tuple[str | None, Reason]]:
    return [(scan.text, scan.reason) for scan in scans]


# -- the decoder -----------------------------------------------------------------------------------------


def test_letters_in_both_cases_and_digits() -> None:
    scans = decode(Typist().text("Ab3xY9zQ"))
    assert texts(scans) == [("Ab3xY9zQ", Reason.OK)]
    assert scans[0].source == "hid"
    assert scans[0].received_at == 100.0


def test_right_shift_and_shift_held_across_characters() -> None:
    typist = Typist()
    events = typist.tap(E.KEY_A, shift=E.KEY_RIGHTSHIFT)
    events += typist.key(E.KEY_LEFTSHIFT, 1)
    for code in (E.KEY_B, E.KEY_C, E.KEY_SEMICOLON):
        events += typist.tap(code)
    events += typist.key(E.KEY_LEFTSHIFT, 0)
    events += typist.tap(E.KEY_D) + typist.tap(E.KEY_ENTER)
    assert texts(decode(events)) == [("ABC:d", Reason.OK)]


def test_caps_lock_inverts_letters_but_not_digits_or_punctuation() -> None:
    typist = Typist()
    events = typist.tap(E.KEY_CAPSLOCK) + typist.text("ab1-", enter=None)
    events += typist.tap(E.KEY_C, shift=E.KEY_LEFTSHIFT) + typist.tap(E.KEY_ENTER)
    decoder = HidDecoder()
    assert texts(decode(events, decoder)) == [("AB1-c", Reason.OK)]
    # Caps Lock stays on for the next scan, and a second press turns it off.
    assert texts(decode(typist.text("x"), decoder)) == [("X", Reason.OK)]
    assert texts(decode(typist.tap(E.KEY_CAPSLOCK) + typist.text("x"), decoder)) == [("x", Reason.OK)]


def test_punctuation_found_in_codes() -> None:
    text = "a-b:c.d/e+f=g_h,i j"
    assert texts(decode(Typist().text(text))) == [(text, Reason.OK)]


def test_a_signed_code_typed_by_the_scanner_verifies() -> None:
    key = generate_signing_key()
    now = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
    claims = SignedClaims(key_id=3, meeting_id=12, attendee_id=3456, valid_from=now - timedelta(hours=1),
                          valid_until=now + timedelta(hours=8))
    code = encode_signed(claims, key)
    assert code.startswith("VR1:")
    [scan] = decode(Typist().text(code))
    assert scan.reason is Reason.OK and scan.text == code
    result = verify_signed(scan.text, {3: key.public_key()}, now)
    assert result.reason is Reason.OK and result.claims == claims


def test_a_compact_code_typed_with_hyphens_checks() -> None:
    printed = format_compact(generate_compact())
    assert "-" in printed
    [scan] = decode(Typist().text(printed))
    assert scan.text == printed
    assert check_compact(scan.text) is Reason.OK


def test_keypad_digits_and_keypad_enter() -> None:
    typist = Typist()
    events: list[InputEvent] = []
    for code in (E.KEY_KP1, E.KEY_KP2, E.KEY_KPMINUS, E.KEY_KP9, E.KEY_KPDOT, E.KEY_KP0):
        events += typist.tap(code)
    events += typist.tap(E.KEY_KPENTER)
    assert texts(decode(events)) == [("12-9.0", Reason.OK)]
    assert texts(decode(Typist().text("AB12", enter=E.KEY_KPENTER))) == [("AB12", Reason.OK)]


def test_a_scan_split_across_reads_assembles() -> None:
    events = Typist().text("VR1:ABCDEF234")
    decoder = HidDecoder()
    cuts = [0, 1, 8, 28, 78, len(events) - 5]  # the last read ends between Enter's MSC_SCAN and its key down
    for start, end in itertools.pairwise(cuts):
        assert decoder.feed(events[start:end], 1.0) == []
    assert texts(decoder.feed(events[cuts[-1]:], 2.0)) == [("VR1:ABCDEF234", Reason.OK)]


def test_a_split_between_shift_and_its_key_keeps_the_shift() -> None:
    typist = Typist()
    shift_down = typist.key(E.KEY_LEFTSHIFT, 1)
    rest = typist.tap(E.KEY_A) + typist.key(E.KEY_LEFTSHIFT, 0) + typist.tap(E.KEY_ENTER)
    decoder = HidDecoder()
    assert decoder.feed(shift_down, 1.0) == []
    assert texts(decoder.feed(rest, 1.1)) == [("A", Reason.OK)]


def test_two_scans_back_to_back_give_two_events_in_order() -> None:
    typist = Typist()
    scans = decode(typist.text("FIRST1") + typist.text("second-2"))
    assert texts(scans) == [("FIRST1", Reason.OK), ("second-2", Reason.OK)]


def test_empty_scans_and_surrounding_spaces_yield_nothing_extra() -> None:
    typist = Typist()
    events = typist.tap(E.KEY_ENTER) + typist.text("  ") + typist.text(" AB CD ")
    assert texts(decode(events)) == [("AB CD", Reason.OK)]


def test_configured_prefix_and_suffix_are_stripped() -> None:
    decoder = HidDecoder(prefix="S:", suffix="_E")
    assert texts(decode(Typist().text("S:ABC123_E"), decoder)) == [("ABC123", Reason.OK)]


def test_autorepeating_stuck_key_is_refused_once_without_a_wall_of_characters() -> None:
    typist = Typist()
    events = typist.text("AB", enter=None) + typist.key(E.KEY_C, 1)
    typist.wait(0.25)
    for _ in range(40):  # the kernel repeats every 33 ms after a 250 ms delay
        events += typist.key(E.KEY_C, 2)
        typist.wait(0.033)
    events += typist.key(E.KEY_C, 0) + typist.text("D")
    events += typist.text("XYZ2")
    scans = decode(events)
    assert texts(scans) == [(None, Reason.MALFORMED), ("XYZ2", Reason.OK)]


def test_stuck_key_refusal_is_delivered_while_the_key_is_still_down() -> None:
    typist = Typist()
    decoder = HidDecoder()
    assert decoder.feed(typist.text("AB", enter=None) + typist.key(E.KEY_C, 1), 1.0) == []
    typist.wait(0.25)
    assert texts(decoder.feed(typist.key(E.KEY_C, 2), 1.3)) == [(None, Reason.MALFORMED)]
    assert decoder.feed(typist.key(E.KEY_C, 2) + typist.key(E.KEY_C, 2), 1.4) == []


def test_key_held_longer_than_the_limit_is_refused_even_without_autorepeat() -> None:
    typist = Typist()
    decoder = HidDecoder(stuck_key_s=0.5)
    events = typist.text("AB", enter=None) + typist.key(E.KEY_C, 1)
    typist.wait(1.0)
    events += typist.key(E.KEY_C, 0) + typist.text("D")
    assert texts(decode(events, decoder)) == [(None, Reason.MALFORMED)]
    # A key held just under the limit is an ordinary (slow) key press.
    events = typist.key(E.KEY_E, 1)
    typist.wait(0.4)
    events += typist.key(E.KEY_E, 0) + typist.text("F")
    assert texts(decode(events, decoder)) == [("eF", Reason.OK)]


def test_shift_held_and_autorepeating_through_a_long_code_is_not_a_stuck_key() -> None:
    typist = Typist(step_s=0.02)
    events = typist.key(E.KEY_LEFTSHIFT, 1)
    for index, char in enumerate("ABCDEFGHJKMNPQRSTUVWXYZABCDEFGH"):
        events += typist.tap(E.ecodes[f"KEY_{char}"])
        if index > 12:
            events += typist.key(E.KEY_LEFTSHIFT, 2)
    events += typist.key(E.KEY_LEFTSHIFT, 0) + typist.tap(E.KEY_ENTER)
    assert texts(decode(events)) == [("ABCDEFGHJKMNPQRSTUVWXYZABCDEFGH", Reason.OK)]


def test_a_stuck_enter_after_a_good_scan_refuses_nothing_and_resyncs_on_release() -> None:
    typist = Typist()
    events = typist.text("GOOD1", enter=None) + typist.key(E.KEY_ENTER, 1)
    typist.wait(0.25)
    for _ in range(10):
        events += typist.key(E.KEY_ENTER, 2)
    events += typist.key(E.KEY_ENTER, 0) + typist.text("NEXT2")
    assert texts(decode(events)) == [("GOOD1", Reason.OK), ("NEXT2", Reason.OK)]


def test_over_long_scan_gives_one_refusal_and_resyncs_at_the_next_enter() -> None:
    decoder = HidDecoder(max_length=16)
    typist = Typist()
    scans: list[ScanEvent] = []
    for _ in range(5):  # 50 characters over several reads, no Enter
        scans += decoder.feed(typist.text("ABCDEFGHJK", enter=None), 1.0)
    scans += decoder.feed(typist.tap(E.KEY_ENTER), 1.5)
    scans += decoder.feed(typist.text("ABCDEFGHJKMNPQRS"), 2.0)  # exactly 16: accepted
    assert texts(scans) == [(None, Reason.TOO_LONG), ("ABCDEFGHJKMNPQRS", Reason.OK)]


def test_the_default_limit_is_the_protocol_maximum() -> None:
    scans = decode(Typist().text("A" * 257) + Typist(start=T0 + 10).text("A" * 256))
    assert [scan.reason for scan in scans] == [Reason.TOO_LONG, Reason.OK]


@pytest.mark.parametrize(
    "intruder",
    [
        lambda t: t.tap(E.KEY_BACKSPACE),
        lambda t: t.tap(E.KEY_F1),
        lambda t: t.tap(E.KEY_C, shift=E.KEY_LEFTCTRL),  # Ctrl+C
        lambda t: t.tap(E.KEY_1, shift=E.KEY_LEFTALT),
        lambda t: t.tap(E.KEY_Q, shift=E.KEY_RIGHTALT),  # no AltGr on the US layout
        lambda t: t.tap(E.KEY_102ND),  # no such key on ANSI keyboards
        lambda t: t.tap(E.KEY_TAB),  # not a terminator unless configured
    ],
    ids=["backspace", "f1", "ctrl", "alt", "altgr-us", "102nd-us", "tab"],
)
def test_a_key_without_a_character_makes_the_scan_malformed(intruder: Any) -> None:
    typist = Typist()
    events = typist.text("AB", enter=None) + intruder(typist) + typist.text("CD") + typist.text("OK3")
    assert texts(decode(events)) == [(None, Reason.MALFORMED), ("OK3", Reason.OK)]


def test_tab_terminates_when_configured() -> None:
    typist = Typist()
    events = typist.text("AB12", enter=E.KEY_TAB) + typist.text("CD34")
    scans = decode(events, HidDecoder(tab_terminates=True))
    assert texts(scans) == [("AB12", Reason.OK), ("CD34", Reason.OK)]


def test_dropped_events_refuse_the_scan_and_reading_recovers() -> None:
    typist = Typist()
    events = typist.text("ABC", enter=None)
    events.append(typist.event(E.EV_SYN, E.SYN_DROPPED, 0))
    # The rest of the damaged batch, up to SYN_REPORT, is not trusted: this Enter must not end the scan.
    events += [typist.event(E.EV_KEY, E.KEY_ENTER, 1), typist.event(E.EV_SYN, E.SYN_REPORT, 0)]
    events += typist.key(E.KEY_ENTER, 0) + typist.text("EF") + typist.text("GH5")
    assert texts(decode(events)) == [(None, Reason.MALFORMED), ("GH5", Reason.OK)]


def test_decoder_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        HidDecoder(max_length=0)
    with pytest.raises(ValueError):
        HidDecoder(stuck_key_s=0)
    with pytest.raises(KeyError):
        HidDecoder(keymap="xx")


# -- layouts -----------------------------------------------------------------------------------------------


def test_german_layout_is_really_used() -> None:
    typist = Typist()
    # The same key positions a US-configured scanner would send for "Zy-1:/"...
    events = typist.tap(E.KEY_Z, shift=E.KEY_LEFTSHIFT) + typist.tap(E.KEY_Y) + typist.tap(E.KEY_MINUS)
    events += typist.tap(E.KEY_1) + typist.tap(E.KEY_SEMICOLON, shift=E.KEY_LEFTSHIFT)
    events += typist.tap(E.KEY_SLASH) + typist.tap(E.KEY_ENTER)
    assert texts(decode(events, HidDecoder(keymap="us"))) == [("Zy-1:/", Reason.OK)]
    # ...read as QWERTZ give the German characters on those keys.
    assert texts(decode(events, HidDecoder(keymap="de"))) == [("Yzß1Ö-", Reason.OK)]


def test_a_german_scanner_types_a_signed_code_prefix_and_at_sign() -> None:
    typist = Typist()
    # On QWERTZ ':' is Shift+'.', '/' is Shift+7, '@' is AltGr+Q, '_' is Shift on the '-' key (KEY_SLASH).
    events = typist.tap(E.KEY_V, shift=E.KEY_LEFTSHIFT) + typist.tap(E.KEY_R, shift=E.KEY_RIGHTSHIFT)
    events += typist.tap(E.KEY_1) + typist.tap(E.KEY_DOT, shift=E.KEY_LEFTSHIFT)
    events += typist.tap(E.KEY_7, shift=E.KEY_LEFTSHIFT) + typist.tap(E.KEY_Q, shift=E.KEY_RIGHTALT)
    events += typist.tap(E.KEY_SLASH, shift=E.KEY_LEFTSHIFT) + typist.tap(E.KEY_Y) + typist.tap(E.KEY_ENTER)
    assert texts(decode(events, HidDecoder(keymap="de"))) == [("VR1:/@_z", Reason.OK)]


def test_german_dead_key_makes_the_scan_malformed() -> None:
    typist = Typist()
    events = typist.text("AB", enter=None) + typist.tap(E.KEY_GRAVE) + typist.text("C")
    assert texts(decode(events, HidDecoder(keymap="de"))) == [(None, Reason.MALFORMED)]


def test_caps_lock_applies_to_german_umlauts() -> None:
    typist = Typist()
    events = typist.tap(E.KEY_CAPSLOCK) + typist.tap(E.KEY_SEMICOLON) + typist.tap(E.KEY_1)
    events += typist.tap(E.KEY_ENTER)
    assert texts(decode(events, HidDecoder(keymap="de"))) == [("Ö1", Reason.OK)]


def test_us_layout_covers_every_printable_ascii_character() -> None:
    keymap = get_keymap("us")
    typed = set(keymap.plain.values()) | set(keymap.shifted.values())
    assert {chr(c) for c in range(0x20, 0x7F)} <= typed


def test_layouts_are_data_and_a_malformed_layout_is_rejected() -> None:
    assert {"us", "de"} <= set(LAYOUTS)
    us = LAYOUTS["us"]
    broken = LayoutSpec("broken", plain=(us.plain[0][:-1], *us.plain[1:]), shifted=us.shifted)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="broken"):
        compile_layout(broken)


# -- the reader: a fake device behind the real opener interface ------------------------------------------

_EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux: timeval, type, code, value


class _Info:
    def __init__(self, vendor: int, product: int) -> None:
        self.bustype, self.vendor, self.product, self.version = 3, vendor, product, 0x0110


class FakeInputDevice(EventIO):
    """What ``evdev.InputDevice(path)`` returns, over a pipe: ``read()``/``fileno()`` are evdev's own."""

    def __init__(self, bus: FakeBus, path: str) -> None:
        self.bus = bus
        self.path = path
        self.name = "Fake 2D scanner"
        self.info = _Info(*bus.ids.get(path, (VENDOR, PRODUCT)))
        self.fd, self._writer = os.pipe()
        os.set_blocking(self.fd, False)
        self.grabbed = False
        self.closed = False
        self.unplugged = False

    def capabilities(self) -> dict[int, list[int]]:
        return {E.EV_KEY: [E.KEY_A, E.KEY_ENTER] if self.path not in self.bus.no_enter else [E.KEY_VOLUMEUP]}

    def grab(self) -> None:
        if self.bus.grabbed_elsewhere:
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.grabbed = True

    def ungrab(self) -> None:
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        self.grabbed = False

    def read(self) -> Iterator[InputEvent]:
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        return super().read()

    def send(self, events: Iterable[InputEvent]) -> None:
        os.write(self._writer, b"".join(_EVENT.pack(e.sec, e.usec, e.type, e.code, e.value) for e in events))

    def unread(self) -> int:
        """How many bytes sent are still waiting in the pipe for the reader."""
        count = array.array("i", [0])
        fcntl.ioctl(self.fd, termios.FIONREAD, count)
        return count[0]

    def unplug(self) -> None:
        self.unplugged = True
        os.close(self._writer)  # wakes select() like the kernel does on removal
        self._writer = -1

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)
            if self._writer >= 0:
                os.close(self._writer)


class FakeBus:
    """The set of plugged input devices; ``open`` has the signature and errors of ``evdev.InputDevice``."""

    def __init__(self, *paths: str) -> None:
        self.plugged = set(paths)
        self.opened: list[FakeInputDevice] = []
        self.ids: dict[str, tuple[int, int]] = {}
        self.no_enter: set[str] = set()
        self.grabbed_elsewhere = False
        self.attempts = 0
        """Every call of ``open``, failed ones included."""

    def open(self, path: str) -> FakeInputDevice:
        self.attempts += 1
        if path not in self.plugged:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        device = FakeInputDevice(self, path)
        self.opened.append(device)
        return device

    def unplug(self, path: str) -> None:
        self.plugged.discard(path)
        for device in self.opened:
            if device.path == path and not device.closed:
                device.unplug()

    def current(self) -> FakeInputDevice:
        return self.opened[-1]

    def close_all(self) -> None:
        for device in self.opened:
            device.close()


@pytest.fixture
def bus() -> Iterator[FakeBus]:
    fake = FakeBus("/dev/input/event3")
    yield fake
    fake.close_all()


def collect() -> tuple[queue.Queue[ScanEvent], Any]:
    events: queue.Queue[ScanEvent] = queue.Queue()
    return events, events.put


def test_reader_grabs_the_device_and_delivers_scans(bus: FakeBus) -> None:
    events, on_scan = collect()
    scanner = HidScanner("/dev/input/event3", opener=bus.open, poll_s=0.05)
    scanner.start(on_scan)
    try:
        assert scanner.connected.wait(3)
        device = bus.current()
        assert device.grabbed
        device.send(Typist().text("ABCD-EFGH-23"))
        scan = events.get(timeout=3)
        assert (scan.text, scan.reason) == ("ABCD-EFGH-23", Reason.OK)
        assert scan.source == "hid:/dev/input/event3"
    finally:
        scanner.close()
    assert not device.grabbed and device.closed
    assert not scanner.connected.is_set()
    scanner.close()  # twice is fine


def test_reader_reopens_an_unplugged_device_when_it_comes_back(bus: FakeBus) -> None:
    events, on_scan = collect()
    scanner = HidScanner("/dev/input/event3", opener=bus.open, poll_s=0.05, backoff_initial=0.05,
                         backoff_max=0.2)
    scanner.start(on_scan)
    try:
        assert scanner.connected.wait(3)
        first = bus.current()
        first.send(Typist().text("PARTIAL", enter=None))  # cut off by the unplug
        assert wait_until(lambda: first.unread() == 0)  # the reader took it in
        bus.unplug("/dev/input/event3")
        assert wait_until(lambda: not scanner.connected.is_set())
        tried = bus.attempts
        assert wait_until(lambda: bus.attempts >= tried + 3)  # several failed opens (ENOENT) meanwhile
        assert scanner.opens == 1
        bus.plugged.add("/dev/input/event3")
        assert wait_until(lambda: scanner.opens == 2)
        assert scanner.connected.wait(3)
        second = bus.current()
        assert second is not first and second.grabbed and first.closed
        second.send(Typist(start=T0 + 5).text("AFTER9"))
        scan = events.get(timeout=3)
        assert (scan.text, scan.reason) == ("AFTER9", Reason.OK)
        assert events.empty()
    finally:
        scanner.close()


def test_reader_finds_the_device_by_vendor_and_product_on_every_open(bus: FakeBus) -> None:
    found: list[str | None] = [None, None, "/dev/input/event3"]
    calls: list[tuple[int, int]] = []

    def finder(vendor: int, product: int) -> str | None:
        calls.append((vendor, product))
        return found.pop(0) if found else "/dev/input/event3"

    events, on_scan = collect()
    scanner = HidScanner(vendor=VENDOR, product=PRODUCT, finder=finder, opener=bus.open, poll_s=0.05,
                         backoff_initial=0.02)
    scanner.start(on_scan)
    try:
        assert scanner.connected.wait(3)
        assert calls[:3] == [(VENDOR, PRODUCT)] * 3
        bus.current().send(Typist().text("VR1:AB"))
        assert events.get(timeout=3).text == "VR1:AB"
    finally:
        scanner.close()
    assert scanner.label == "usb:05e0:1200"


def test_find_device_matches_ids_and_needs_an_enter_key() -> None:
    bus = FakeBus("/dev/input/event0", "/dev/input/event1", "/dev/input/event2", "/dev/input/event5")
    bus.ids = {"/dev/input/event0": (0x046D, 0xC31C), "/dev/input/event1": (VENDOR, PRODUCT),
               "/dev/input/event2": (VENDOR, PRODUCT)}
    bus.no_enter = {"/dev/input/event1"}  # the scanner's consumer-control interface
    listed = [*sorted(bus.plugged), "/dev/input/event9"]  # event9 vanished between listing and opening
    try:
        assert find_device(VENDOR, PRODUCT, lister=lambda: listed, opener=bus.open) == "/dev/input/event2"
        assert find_device(0x1234, 0x5678, lister=lambda: listed, opener=bus.open) is None
        assert all(device.closed for device in bus.opened)
    finally:
        bus.close_all()


def test_reader_waits_while_another_process_holds_the_grab(bus: FakeBus) -> None:
    bus.grabbed_elsewhere = True
    events, on_scan = collect()
    scanner = HidScanner("/dev/input/event3", opener=bus.open, poll_s=0.05, backoff_initial=0.02,
                         backoff_max=0.05)
    scanner.start(on_scan)
    try:
        assert wait_until(lambda: len(bus.opened) >= 2)
        assert not scanner.connected.is_set()
        assert all(device.closed for device in bus.opened)  # every failed attempt released its descriptor
        bus.grabbed_elsewhere = False
        assert scanner.connected.wait(3)
        bus.current().send(Typist().text("XY7"))
        assert events.get(timeout=3).text == "XY7"
    finally:
        scanner.close()


def test_reader_survives_a_failing_scan_handler(bus: FakeBus) -> None:
    received: queue.Queue[ScanEvent] = queue.Queue()

    def on_scan(event: ScanEvent) -> None:
        received.put(event)
        if event.text == "BOOM":
            raise RuntimeError("handler bug")

    scanner = HidScanner("/dev/input/event3", opener=bus.open, poll_s=0.05)
    scanner.start(on_scan)
    try:
        assert scanner.connected.wait(3)
        typist = Typist()
        bus.current().send(typist.text("BOOM"))
        assert received.get(timeout=3).text == "BOOM"
        bus.current().send(typist.text("FINE"))
        assert received.get(timeout=3).text == "FINE"
        assert scanner.opens == 1
    finally:
        scanner.close()


def test_reader_never_logs_the_full_code(bus: FakeBus, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gate.scanners.hid")
    code = format_compact(generate_compact())
    events, on_scan = collect()
    scanner = HidScanner("/dev/input/event3", opener=bus.open, poll_s=0.05)
    scanner.start(on_scan)
    try:
        assert scanner.connected.wait(3)
        bus.current().send(Typist().text(code))
        assert events.get(timeout=3).text == code
    finally:
        scanner.close()
    assert any("len=17" in record.getMessage() for record in caplog.records)
    assert not any(code[:6] in record.getMessage() for record in caplog.records)


def test_scanner_needs_a_path_or_both_usb_ids() -> None:
    with pytest.raises(ValueError):
        HidScanner()
    with pytest.raises(ValueError):
        HidScanner(vendor=VENDOR)
    with pytest.raises(ValueError):
        HidScanner("/dev/input/event3", vendor=VENDOR, product=PRODUCT)
    with pytest.raises(ValueError):
        HidScanner(vendor=0x10000, product=1)


# -- a real virtual keyboard, where the kernel offers /dev/uinput --------------------------------------


def _uinput_works() -> bool:
    try:
        evdev.UInput(name="vaora-probe").close()
    except (OSError, evdev.UInputError):
        return False
    return True


needs_uinput = pytest.mark.skipif(not _uinput_works(), reason="/dev/uinput is not available on this machine")


def _virtual_scanner() -> evdev.UInput:
    keys = [code for code in range(E.KEY_ESC, E.KEY_KPDOT + 1)] + [E.KEY_KPENTER]
    device = evdev.UInput({E.EV_KEY: keys}, name="vaora test scanner", vendor=VENDOR, product=PRODUCT)
    time.sleep(0.3)  # let udev create the node
    return device


def _type_on(device: evdev.UInput, text: str) -> None:
    for event in Typist().text(text):
        if event.type == E.EV_KEY:
            device.write(E.EV_KEY, event.code, event.value)
            device.syn()
            time.sleep(0.002)


@needs_uinput
def test_a_real_virtual_keyboard_types_a_code() -> None:
    virtual = _virtual_scanner()
    events, on_scan = collect()
    scanner = HidScanner(vendor=VENDOR, product=PRODUCT, poll_s=0.05)
    try:
        scanner.start(on_scan)
        assert scanner.connected.wait(5)
        _type_on(virtual, "VR1:ABC-234")
        scan = events.get(timeout=5)
        assert (scan.text, scan.reason) == ("VR1:ABC-234", Reason.OK)
    finally:
        scanner.close()
        virtual.close()


@needs_uinput
def test_a_real_virtual_keyboard_removed_and_recreated_is_reopened() -> None:
    virtual = _virtual_scanner()
    events, on_scan = collect()
    scanner = HidScanner(vendor=VENDOR, product=PRODUCT, poll_s=0.05, backoff_initial=0.1, backoff_max=0.5)
    try:
        scanner.start(on_scan)
        assert scanner.connected.wait(5)
        virtual.close()
        assert wait_until(lambda: not scanner.connected.is_set(), 5)
        virtual = _virtual_scanner()
        assert wait_until(lambda: scanner.opens == 2, 10)
        assert scanner.connected.wait(5)
        _type_on(virtual, "AGAIN42")
        scan = events.get(timeout=5)
        assert (scan.text, scan.reason) == ("AGAIN42", Reason.OK)
    finally:
        scanner.close()
        virtual.close()
