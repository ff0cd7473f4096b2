"""USB HID (keyboard-wedge) scanners read through evdev: key events decoded to scans with a keyboard layout.

:class:`HidDecoder` is pure: it turns ``evdev.InputEvent`` objects into :class:`ScanEvent` objects
(Shift, Caps Lock and AltGr, both Enter keys and optionally Tab as terminators, over-long scans, stuck keys,
unmapped keys). :class:`HidScanner` finds the device (by path or USB vendor/product id), grabs it so its
keystrokes never reach a console, reads it on a background thread and reopens it with backoff when it is
unplugged and comes back.
"""

from __future__ import annotations

import errno
import logging
import select
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import evdev
from evdev import ecodes

from protocols.codes import MAX_SCAN_LENGTH
from protocols.reasons import Reason

from .base import ScanCallback, ScanEvent, Scanner
from .keymaps import Keymap, get_keymap

log = logging.getLogger(__name__)

KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2

_SHIFT_KEYS = frozenset({ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT})
_OTHER_MODIFIERS = frozenset({ecodes.KEY_LEFTCTRL, ecodes.KEY_RIGHTCTRL, ecodes.KEY_LEFTALT,
                              ecodes.KEY_LEFTMETA, ecodes.KEY_RIGHTMETA})
_LOCK_KEYS = frozenset({ecodes.KEY_CAPSLOCK, ecodes.KEY_NUMLOCK, ecodes.KEY_SCROLLLOCK})
_MODIFIERS = _SHIFT_KEYS | _OTHER_MODIFIERS | _LOCK_KEYS | {ecodes.KEY_RIGHTALT}
_ENTER_KEYS = frozenset({ecodes.KEY_ENTER, ecodes.KEY_KPENTER})


def describe_scan(event: ScanEvent) -> str:
    """A log-safe summary of a scan: reason, length and first two characters only (codes are credentials)."""
    if event.text is None:
        return f"reason={event.reason} source={event.source}"
    return f"reason={event.reason} source={event.source} len={len(event.text)} head={event.text[:2]!r}"


class HidDecoder:
    """Assemble key events from a keyboard-wedge scanner into scans.

    A scan is the characters typed before Enter (``KEY_ENTER`` or ``KEY_KPENTER``; also ``KEY_TAB`` when
    ``tab_terminates``). Empty scans yield nothing; spaces around a scan and the configured
    ``prefix``/``suffix`` are removed. Refusals (each scan is refused at most once, and the rest of it is
    discarded up to its Enter):

    - ``TOO_LONG`` as soon as a scan exceeds ``max_length`` characters;
    - ``MALFORMED`` at Enter when a key in the scan types no character in ``keymap`` (or was typed with Ctrl,
      Alt or Meta held);
    - ``MALFORMED`` at once for a stuck key: an autorepeat event (value 2) of a non-modifier key, or a key
      held down longer than ``stuck_key_s`` (measured with the events' own timestamps);
    - ``MALFORMED`` when the kernel reports dropped events (``SYN_DROPPED``).

    Modifiers (Shift, Ctrl, Alt, Meta) may be held and autorepeat for as long as a scan takes.
    """

    def __init__(
        self,
        keymap: Keymap | str = "us",
        max_length: int = MAX_SCAN_LENGTH,
        stuck_key_s: float = 0.5,
        tab_terminates: bool = False,
        prefix: str = "",
        suffix: str = "",
        source: str = "hid",
    ) -> None:
        if max_length < 1:
            raise ValueError("max_length must be at least 1")
        if stuck_key_s <= 0:
            raise ValueError("stuck_key_s must be positive")
        self.keymap = get_keymap(keymap) if isinstance(keymap, str) else keymap
        self.max_length = max_length
        self.stuck_key_s = stuck_key_s
        self.prefix = prefix
        self.suffix = suffix
        self.source = source
        self._terminators = _ENTER_KEYS | {ecodes.KEY_TAB} if tab_terminates else _ENTER_KEYS
        # The limit counts raw characters including prefix/suffix, which are stripped afterwards.
        self._raw_limit = max_length + len(prefix) + len(suffix)
        self.caps_lock = False
        self._chars: list[str] = []
        self._unmapped = False
        self._discarding = False
        self._held: dict[int, float] = {}  # non-modifier key code -> timestamp it went down
        self._stuck: set[int] = set()  # held keys already reported stuck
        self._modifiers: set[int] = set()
        self._dropping = False  # between SYN_DROPPED and the next SYN_REPORT

    def reset(self) -> None:
        """Forget the partial scan and all key state (after the device was reopened)."""
        self.caps_lock = False
        self._chars.clear()
        self._unmapped = False
        self._discarding = False
        self._held.clear()
        self._stuck.clear()
        self._modifiers.clear()
        self._dropping = False

    def feed(self, events: Iterable[evdev.InputEvent], now: float) -> list[ScanEvent]:
        """Decode ``events`` read at monotonic time ``now``; return the scans they complete (or refuse)."""
        out: list[ScanEvent] = []
        for event in events:
            if event.type == ecodes.EV_SYN:
                self._on_syn(event, now, out)
            elif event.type == ecodes.EV_KEY and not self._dropping:
                self._on_key(event, now, out)
            # EV_MSC (scan codes), EV_LED, EV_REP and the rest carry nothing for us.
        return out

    # -- internals ---------------------------------------------------------------------------------------

    def _on_syn(self, event: evdev.InputEvent, now: float, out: list[ScanEvent]) -> None:
        if event.code == ecodes.SYN_DROPPED:
            # The kernel buffer overflowed: key downs/ups were lost, so neither the scan nor the key state
            # can be trusted. Refuse the scan, forget held keys and ignore events up to the next SYN_REPORT.
            log.warning("hid scanner %s: events dropped by the kernel; scan refused", self.source)
            self._refuse(Reason.MALFORMED, now, out)
            self._held.clear()
            self._stuck.clear()
            self._modifiers.clear()
            self._dropping = True
        elif event.code == ecodes.SYN_REPORT:
            self._dropping = False

    def _on_key(self, event: evdev.InputEvent, now: float, out: list[ScanEvent]) -> None:
        code, value = event.code, event.value
        at = event.sec + event.usec / 1_000_000
        self._check_held(at, now, out)
        if code in _MODIFIERS:
            self._on_modifier(code, value)
            return
        if value == KEY_UP:
            self._held.pop(code, None)
            if code in self._stuck:
                self._stuck.discard(code)
                if code in self._terminators:
                    # A stuck Enter can only end when released: the scan it should have ended is over.
                    self._resync()
            return
        if value == KEY_REPEAT:
            if code not in self._stuck:
                self._on_stuck(code, "autorepeats", now, out)
            return
        if value != KEY_DOWN:
            return
        self._held[code] = at
        self._stuck.discard(code)  # a new press means it was released (even if the release was lost)
        if code in self._terminators:
            self._end_scan(now, out)
        else:
            self._type(code, now, out)

    def _on_modifier(self, code: int, value: int) -> None:
        if code in _LOCK_KEYS:
            if code == ecodes.KEY_CAPSLOCK and value == KEY_DOWN:
                self.caps_lock = not self.caps_lock
            return
        if value == KEY_UP:
            self._modifiers.discard(code)
        else:
            self._modifiers.add(code)

    def _check_held(self, at: float, now: float, out: list[ScanEvent]) -> None:
        for code, down_at in self._held.items():
            if code not in self._stuck and at - down_at > self.stuck_key_s:
                self._on_stuck(code, f"held {at - down_at:.2f}s", now, out)

    def _on_stuck(self, code: int, how: str, now: float, out: list[ScanEvent]) -> None:
        """Refuse the scan in progress once because key ``code`` is stuck; its repeats type nothing.

        A stuck Enter after a complete scan has nothing left to refuse (empty scans yield nothing anyway):
        it is only logged, and the scan resynchronises when it is released.
        """
        self._stuck.add(code)
        log.warning("hid scanner %s: key %s %s (stuck?)", self.source, _key_name(code), how)
        if code in self._terminators and not self._chars and not self._discarding:
            return
        self._refuse(Reason.MALFORMED, now, out)

    def _type(self, code: int, now: float, out: list[ScanEvent]) -> None:
        if self._discarding:
            return
        char = self._char_for(code)
        if char is None:
            log.debug("hid scanner %s: key %s types nothing in layout %s", self.source, _key_name(code),
                      self.keymap.name)
            self._unmapped = True
            char = "\ufffd"  # counts towards the length limit
        self._chars.append(char)
        if len(self._chars) > self._raw_limit:
            self._refuse(Reason.TOO_LONG, now, out)

    def _char_for(self, code: int) -> str | None:
        mods = self._modifiers
        altgr = ecodes.KEY_RIGHTALT in mods and self.keymap.has_altgr
        if mods & _OTHER_MODIFIERS or (ecodes.KEY_RIGHTALT in mods and not altgr):
            return None
        shift = bool(mods & _SHIFT_KEYS)
        return self.keymap.char(code, shift=shift, caps_lock=self.caps_lock, altgr=altgr)

    def _refuse(self, reason: Reason, now: float, out: list[ScanEvent]) -> None:
        """Refuse the scan in progress once; the rest of it is discarded up to its terminator."""
        if not self._discarding:
            out.append(ScanEvent(None, reason, self.source, now))
            self._discarding = True
        self._chars.clear()
        self._unmapped = False

    def _resync(self) -> None:
        self._chars.clear()
        self._unmapped = False
        self._discarding = False

    def _end_scan(self, now: float, out: list[ScanEvent]) -> None:
        if self._discarding:
            self._resync()
            return
        text, unmapped = "".join(self._chars), self._unmapped
        self._resync()
        if unmapped:
            out.append(ScanEvent(None, Reason.MALFORMED, self.source, now))
            return
        text = text.removeprefix(self.prefix).removesuffix(self.suffix)
        text = text.strip(" ")
        if not text:
            return
        if len(text) > self.max_length:
            out.append(ScanEvent(None, Reason.TOO_LONG, self.source, now))
            return
        out.append(ScanEvent(text, Reason.OK, self.source, now))


def _key_name(code: int) -> str:
    name = ecodes.KEY.get(code, str(code))
    return name if isinstance(name, str) else "/".join(name)


# -- finding and opening the device ------------------------------------------------------------------------


def find_device(
    vendor: int,
    product: int,
    lister: Callable[[], Iterable[str]] = evdev.list_devices,
    opener: Callable[[str], Any] = evdev.InputDevice,
) -> str | None:
    """Return the path of the input device with this USB vendor/product id that has an Enter key, or None.

    A scanner often exposes several event devices (keyboard, consumer control); only one types Enter.
    Devices that cannot be opened (permissions, vanished meanwhile) are skipped.
    """
    for path in sorted(lister()):
        try:
            device = opener(path)
        except OSError:
            continue
        try:
            info = device.info
            if info.vendor != vendor or info.product != product:
                continue
            keys = device.capabilities().get(ecodes.EV_KEY, [])
            if any(code in keys for code in _ENTER_KEYS):
                return path
        except OSError:
            continue
        finally:
            _quietly(device.close)
    return None


def _quietly(action: Callable[[], Any]) -> None:
    try:
        action()
    except (OSError, evdev.EvdevError):  # the device may be gone already; nothing left to release
        log.debug("hid scanner: cleanup step failed", exc_info=True)


class DeviceNotFoundError(OSError):
    """No input device matched the configured vendor/product id."""


class HidScanner(Scanner):
    """Read scans from a USB HID scanner in keyboard mode through evdev.

    Give either ``path`` (``/dev/input/eventN`` or a stable ``/dev/input/by-id/...`` link) or ``vendor`` and
    ``product`` (USB ids, looked up with ``finder`` on every (re)open, as the event number can change after a
    replug). With ``grab`` the device is grabbed exclusively. ``opener`` (default ``evdev.InputDevice``) and
    ``finder`` are injectable for tests. A lost device (ENODEV, ENOENT, any OSError) is reopened with
    exponential backoff between ``backoff_initial`` and ``backoff_max`` seconds; exceptions raised by the scan
    callback are logged and reading continues.
    """

    def __init__(
        self,
        path: str | None = None,
        vendor: int | None = None,
        product: int | None = None,
        keymap: Keymap | str = "us",
        grab: bool = True,
        max_length: int = MAX_SCAN_LENGTH,
        stuck_key_s: float = 0.5,
        tab_terminates: bool = False,
        prefix: str = "",
        suffix: str = "",
        finder: Callable[[int, int], str | None] = find_device,
        opener: Callable[[str], Any] = evdev.InputDevice,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        poll_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if path is None and (vendor is None or product is None):
            raise ValueError("HidScanner needs a device path, or both vendor and product ids")
        if path is not None and (vendor is not None or product is not None):
            raise ValueError("give either a device path or vendor/product ids, not both")
        for label, value in (("vendor", vendor), ("product", product)):
            if value is not None and not 0 <= value <= 0xFFFF:
                raise ValueError(f"{label} id must be within 0x0000-0xffff, got {value!r}")
        self.path = path
        self.vendor = vendor
        self.product = product
        self.grab = grab
        self.label = path if path is not None else f"usb:{vendor:04x}:{product:04x}"
        self.decoder = HidDecoder(keymap, max_length, stuck_key_s, tab_terminates, prefix, suffix,
                                  source=f"hid:{self.label}")
        self._finder = finder
        self._opener = opener
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._poll_s = poll_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._device: Any = None
        self._device_lock = threading.Lock()
        self.opens = 0
        """How many times the device was opened (and grabbed) successfully: 1 + reconnects."""
        self.connected = threading.Event()
        """Set while the device is open."""

    def start(self, on_scan: ScanCallback) -> None:
        """Start the reader thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("scanner already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(on_scan,), name=f"hid-scanner:{self.label}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the reader thread, ungrab and close the device. Safe to call more than once."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2 + self._poll_s)
            if thread.is_alive():
                log.warning("hid scanner %s: reader thread did not stop in time", self.label)
        self._close_device()

    # -- internals ---------------------------------------------------------------------------------------

    def _open(self) -> Any:
        path = self.path
        if path is None:
            assert self.vendor is not None and self.product is not None
            path = self._finder(self.vendor, self.product)
            if path is None:
                raise DeviceNotFoundError(errno.ENODEV, "no input device with this vendor/product id",
                                          self.label)
        device = self._opener(path)
        if self.grab:
            try:
                device.grab()  # EBUSY when another process holds it: its keystrokes would leak, so fail
            except (OSError, evdev.EvdevError):
                _quietly(device.close)
                raise
        return device

    def _close_device(self) -> None:
        with self._device_lock:
            device, self._device = self._device, None
        self.connected.clear()
        if device is None:
            return
        if self.grab:
            _quietly(device.ungrab)
        _quietly(device.close)

    def _run(self, on_scan: ScanCallback) -> None:
        backoff = self._backoff_initial
        while not self._stop.is_set():
            try:
                device = self._open()
            except (OSError, evdev.EvdevError) as exc:
                log.warning("hid scanner %s: open failed: %s; retry in %.1fs", self.label, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._backoff_max)
                continue
            with self._device_lock:
                self._device = device
            self.decoder.reset()
            backoff = self._backoff_initial  # it worked: a later loss starts the backoff afresh
            self.opens += 1
            self.connected.set()
            log.info("hid scanner %s: opened %s (%s), grabbed=%s", self.label, getattr(device, "path", "?"),
                     getattr(device, "name", "?"), self.grab)
            try:
                self._read_loop(device, on_scan)
            except (OSError, ValueError) as exc:  # ValueError: select() on a closed descriptor
                if not self._stop.is_set():
                    log.warning("hid scanner %s: device lost: %s; reopening in %.1fs", self.label, exc,
                                backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self._backoff_max)
            finally:
                self._close_device()

    def _read_loop(self, device: Any, on_scan: ScanCallback) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([device], [], [], self._poll_s)
            if not readable:
                continue
            try:
                events = list(device.read())
            except BlockingIOError:
                continue
            for event in self.decoder.feed(events, self._clock()):
                if self._stop.is_set():
                    return
                log.debug("hid scanner %s: scan %s", self.label, describe_scan(event))
                try:
                    on_scan(event)
                except Exception:
                    log.exception("scan handler failed; scanner keeps reading")


__all__ = ["DeviceNotFoundError", "HidDecoder", "HidScanner", "describe_scan", "find_device"]
