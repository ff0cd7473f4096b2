"""Keyboard layouts for USB HID (keyboard-wedge) scanners: which character a key code types.

A scanner in keyboard mode sends *key positions*, not characters; it assumes the host uses a given layout
(set in the scanner's own configuration). The gate must decode with the same layout, or a German-configured
scanner typing ``Z`` arrives as ``Y``. A layout here is data only: the characters the four main rows type
plain and with Shift (and, for ISO layouts, with AltGr), in the key order of :data:`ROW_KEYS`. Add a layout by
adding a :class:`LayoutSpec` to :data:`LAYOUTS`; no code changes.

Keys that are the same on every layout (space, the keypad) are in :data:`COMMON_KEYS`. Keypad keys always type
their Num Lock-on character: scanners in keypad mode assume Num Lock is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from evdev import ecodes

NO_CHAR = "\x00"
"""In a layout row string: this key types nothing in that shift state (a dead key, or no key there)."""

ROW_KEYS: tuple[tuple[str, ...], ...] = (
    ("KEY_GRAVE", "KEY_1", "KEY_2", "KEY_3", "KEY_4", "KEY_5", "KEY_6", "KEY_7", "KEY_8", "KEY_9", "KEY_0",
     "KEY_MINUS", "KEY_EQUAL"),
    ("KEY_Q", "KEY_W", "KEY_E", "KEY_R", "KEY_T", "KEY_Y", "KEY_U", "KEY_I", "KEY_O", "KEY_P",
     "KEY_LEFTBRACE", "KEY_RIGHTBRACE", "KEY_BACKSLASH"),
    ("KEY_A", "KEY_S", "KEY_D", "KEY_F", "KEY_G", "KEY_H", "KEY_J", "KEY_K", "KEY_L", "KEY_SEMICOLON",
     "KEY_APOSTROPHE"),
    ("KEY_102ND", "KEY_Z", "KEY_X", "KEY_C", "KEY_V", "KEY_B", "KEY_N", "KEY_M", "KEY_COMMA", "KEY_DOT",
     "KEY_SLASH"),
)
"""Evdev key names of the four main rows, left to right. ``KEY_BACKSLASH`` is the key above Enter on ANSI
keyboards and left of Enter on ISO ones; ``KEY_102ND`` is the extra ISO key right of left Shift."""

COMMON_KEYS: Mapping[str, str] = {
    "KEY_SPACE": " ",
    "KEY_KP0": "0", "KEY_KP1": "1", "KEY_KP2": "2", "KEY_KP3": "3", "KEY_KP4": "4",
    "KEY_KP5": "5", "KEY_KP6": "6", "KEY_KP7": "7", "KEY_KP8": "8", "KEY_KP9": "9",
    "KEY_KPDOT": ".", "KEY_KPCOMMA": ",", "KEY_KPMINUS": "-", "KEY_KPPLUS": "+", "KEY_KPASTERISK": "*",
    "KEY_KPSLASH": "/", "KEY_KPEQUAL": "=",
}
"""Keys typing the same character on every layout, with or without Shift."""


@dataclass(frozen=True)
class LayoutSpec:
    """A layout as data.

    ``plain`` and ``shifted`` are four strings, one per row of :data:`ROW_KEYS`, each with one character per
    key (:data:`NO_CHAR` for none). ``altgr`` maps key names to the AltGr character (ISO layouts);
    ``overrides`` replaces :data:`COMMON_KEYS` entries (key name to character).
    """

    name: str
    plain: tuple[str, str, str, str]
    shifted: tuple[str, str, str, str]
    altgr: Mapping[str, str] = field(default_factory=dict)
    overrides: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Keymap:
    """A compiled layout: evdev key code to character, per modifier state. Build with :func:`get_keymap`."""

    name: str
    plain: Mapping[int, str]
    shifted: Mapping[int, str]
    altgr: Mapping[int, str]

    @property
    def has_altgr(self) -> bool:
        """True when Right Alt acts as AltGr in this layout (it is an ordinary modifier otherwise)."""
        return bool(self.altgr)

    def char(
        self, code: int, shift: bool = False, caps_lock: bool = False, altgr: bool = False
    ) -> str | None:
        """Return the character key ``code`` types in this modifier state, or None if it types none.

        Caps Lock inverts Shift for letter keys only (keys whose plain and shifted characters are the lower-
        and upper-case of one letter), as on Linux consoles; it does not affect digits or punctuation.
        """
        if altgr:
            return self.altgr.get(code)
        plain = self.plain.get(code)
        if caps_lock and plain is not None and _is_letter_key(plain, self.shifted.get(code)):
            shift = not shift
        return self.shifted.get(code) if shift else plain


def _is_letter_key(plain: str, shifted: str | None) -> bool:
    return plain.islower() and shifted == plain.upper()


LAYOUTS: Mapping[str, LayoutSpec] = {
    "us": LayoutSpec(
        name="us",
        plain=("`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", NO_CHAR + "zxcvbnm,./"),
        shifted=("~!@#$%^&*()_+", "QWERTYUIOP{}|", 'ASDFGHJKL:"', NO_CHAR + "ZXCVBNM<>?"),
    ),
    # German QWERTZ (T1). ^ and the two accent keys are dead keys: a scanner must not use them.
    "de": LayoutSpec(
        name="de",
        plain=(NO_CHAR + "1234567890ß" + NO_CHAR, "qwertzuiopü+#", "asdfghjklöä", "<yxcvbnm,.-"),
        shifted=("°!\"§$%&/()=?" + NO_CHAR, "QWERTZUIOPÜ*'", "ASDFGHJKLÖÄ", ">YXCVBNM;:_"),
        altgr={
            "KEY_2": "²", "KEY_3": "³", "KEY_7": "{", "KEY_8": "[", "KEY_9": "]", "KEY_0": "}",
            "KEY_MINUS": "\\", "KEY_Q": "@", "KEY_E": "€", "KEY_RIGHTBRACE": "~", "KEY_102ND": "|",
            "KEY_M": "µ",
        },
        overrides={"KEY_KPDOT": ","},
    ),
}
"""Every known layout by name."""


def compile_layout(spec: LayoutSpec) -> Keymap:
    """Turn layout data into a :class:`Keymap`; raises ValueError if a row has the wrong number of keys."""
    plain: dict[int, str] = {}
    shifted: dict[int, str] = {}
    for keys, plain_row, shifted_row in zip(ROW_KEYS, spec.plain, spec.shifted, strict=True):
        if len(plain_row) != len(keys) or len(shifted_row) != len(keys):
            raise ValueError(f"layout {spec.name!r}: a row needs {len(keys)} characters for keys {keys}")
        for key, lower, upper in zip(keys, plain_row, shifted_row, strict=True):
            code = ecodes.ecodes[key]
            if lower != NO_CHAR:
                plain[code] = lower
            if upper != NO_CHAR:
                shifted[code] = upper
    for key, char in {**COMMON_KEYS, **spec.overrides}.items():
        plain[ecodes.ecodes[key]] = char
        shifted[ecodes.ecodes[key]] = char
    altgr = {ecodes.ecodes[key]: char for key, char in spec.altgr.items()}
    return Keymap(spec.name, plain, shifted, altgr)


_COMPILED: dict[str, Keymap] = {}


def get_keymap(name: str) -> Keymap:
    """Return the compiled keymap for layout ``name`` ("us", "de"); raises KeyError for an unknown one."""
    if name not in _COMPILED:
        if name not in LAYOUTS:
            raise KeyError(f"unknown keyboard layout {name!r}; known: {', '.join(sorted(LAYOUTS))}")
        _COMPILED[name] = compile_layout(LAYOUTS[name])
    return _COMPILED[name]
