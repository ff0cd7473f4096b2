"""Synthetic camera frames for tests, benchmarks and demos: codes on phones and paper, and empty scenes.

A code frame is what a gate camera sees when an attendee holds up a phone (a QR code on a lit screen, inside
a dark bezel) or a paper ticket (a Code128 barcode): perspective-warped, tilted, blurred, low in contrast and
noisy, over a cluttered background. Empty frames are noise, gradients, text-like print, barcode-like stripes
and phones showing no code; a decoder must read nothing there. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np

from protocols.codes import ALPHABET, SignedClaims, check_compact, encode_signed
from protocols.reasons import Reason

WIDTH, HEIGHT = 640, 480
QR_QUIET_MODULES = 4
EmptyKind = Literal["noise", "gradient", "text", "stripes", "blank_phone"]
EMPTY_KINDS: tuple[EmptyKind, ...] = ("noise", "gradient", "text", "stripes", "blank_phone")


@dataclass(frozen=True)
class SyntheticFrame:
    """A generated frame, the code it shows (None for an empty frame) and what kind of picture it is."""

    frame: np.ndarray
    expected: str | None
    kind: str


def sample_compact_codes(count: int, seed: int = 0) -> list[str]:
    """Return ``count`` valid compact codes (13 random characters and the check character), reproducibly."""
    rng = np.random.default_rng(seed)
    codes: list[str] = []
    while len(codes) < count:
        payload = "".join(ALPHABET[i] for i in rng.integers(0, len(ALPHABET), 13))
        codes.extend(payload + c for c in ALPHABET if check_compact(payload + c) is Reason.OK)
    return codes[:count]


def sample_signed_code(seed: int = 0, attendee_id: int = 4242, version: int = 1) -> str:
    """Return a genuine signed code made with a key derived from ``seed``.

    Version 1: 136 characters, "VR1:..."; version 2: 149 digits (see ``protocols.codes.signed_short``). The same
    arguments give the same code in every run (version 2's nonce randomness is drawn from ``seed`` and
    ``attendee_id`` too), so a benchmark measures the same frames each time.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(np.random.default_rng(seed).bytes(32))
    start = datetime(2025, 3, 14, 7, 30, tzinfo=UTC)
    claims = SignedClaims(
        key_id=7,
        meeting_id=125,
        attendee_id=attendee_id,
        valid_from=start,
        valid_until=start + timedelta(hours=10),
    )
    aux_random = np.random.default_rng([seed, attendee_id]).bytes(32)
    return encode_signed(claims, key, version=version, aux_random=aux_random)


def qr_matrix(text: str) -> np.ndarray:
    """Return the QR code of ``text`` (error correction M) as a bool array with a 4-module quiet zone."""
    import segno

    qr = segno.make_qr(text, error="m", boost_error=False)
    matrix = np.array([list(row) for row in qr.matrix], dtype=bool)
    return np.pad(matrix, QR_QUIET_MODULES, constant_values=False)


def code128_row(text: str) -> np.ndarray:
    """Return the Code128 barcode of ``text`` as a 1-D bool array of bars (one entry per module)."""
    import zxingcpp

    image = np.asarray(zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128).to_image(scale=1))
    row = image[image.shape[0] // 2] < 128
    return np.pad(row, 10, constant_values=False)


def _scene(rng: np.random.Generator) -> np.ndarray:
    """A cluttered background: a lighting gradient, soft blobs and a few straight-edged objects."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys) / max(WIDTH, HEIGHT)
    img = rng.uniform(70, 150) + rng.uniform(20, 70) * ramp
    import cv2

    blobs = rng.normal(0, 1, (HEIGHT // 32, WIDTH // 32)).astype(np.float32)
    img += rng.uniform(10, 30) * cv2.resize(blobs, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(1, 5))):
        x0, y0 = int(rng.integers(0, WIDTH - 60)), int(rng.integers(0, HEIGHT - 60))
        x1, y1 = x0 + int(rng.integers(40, 260)), y0 + int(rng.integers(40, 200))
        cv2.rectangle(img, (x0, y0), (x1, y1), float(rng.uniform(40, 200)), -1)
    return np.asarray(img, dtype=np.float32)


def _text_lines(
    canvas: np.ndarray, rng: np.random.Generator, box: tuple[int, int, int, int], ink: float
) -> None:
    """Write random lines of capitals and digits into ``box`` (x0, y0, x1, y1) of ``canvas``."""
    import cv2

    x0, y0, x1, y1 = box
    scale = (x1 - x0) / 520
    line_h = max(int(40 * scale), 8)
    y = y0 + line_h
    alphabet = string.ascii_uppercase + string.digits + "   "
    mask = np.zeros(canvas.shape, np.uint8)  # OpenCV 5 draws text on 8-bit images only
    while y < y1:
        length = int(rng.integers(6, 22))
        words = "".join(rng.choice(list(alphabet), length))
        cv2.putText(mask, words, (x0, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, max(int(2 * scale), 1))
        y += line_h
    canvas[mask > 0] = ink


def _phone(rng: np.random.Generator, modules: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """A phone (bezel and screen) showing a QR code, or an e-mail-like text screen when ``modules`` is None.

    Returns the canvas and the corners of the code's square (quiet zone included) in canvas pixels.
    """
    import cv2

    side = 392  # the app shows the code at the same size whatever its version
    quiet = side // 12
    screen_w = side + 2 * quiet
    screen_h = int(screen_w * 1.9)
    bezel = int(screen_w * 0.06)
    light = rng.uniform(215, 250)
    dark = rng.uniform(10, 45)
    canvas = np.full((screen_h + 2 * bezel, screen_w + 2 * bezel), rng.uniform(10, 35), np.float32)
    screen = np.full((screen_h, screen_w), light, np.float32)
    screen[: int(screen_h * 0.07)] = rng.uniform(60, 140)  # app title bar
    top = int(screen_h * 0.18)
    left = (screen_w - side) // 2
    if modules is not None:
        cells = cv2.resize(modules.astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST)
        screen[top : top + side, left : left + side] = np.where(cells > 0, dark, light)
        _text_lines(screen, rng, (left, top + side + quiet, left + side, screen_h - 10), dark)
    else:
        _text_lines(screen, rng, (left, top, left + side, screen_h - 10), dark)
    canvas[bezel : bezel + screen_h, bezel : bezel + screen_w] = screen
    cv2.circle(canvas, (bezel + screen_w // 2, bezel // 2), max(bezel // 4, 2), 5.0, -1)  # front camera
    x, y = bezel + left, bezel + top
    corners = np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], np.float32)
    return canvas, corners


def _ticket(rng: np.random.Generator, bars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A paper ticket with a Code128 barcode; returns the canvas and the barcode's corners."""
    module_px = 4
    bar_h = 90
    paper = rng.uniform(200, 245)
    ink = rng.uniform(15, 50)
    width = bars.size * module_px
    canvas = np.full((bar_h + 140, width + 60), paper, np.float32)
    strip = np.where(np.repeat(bars, module_px), ink, paper).astype(np.float32)
    canvas[40 : 40 + bar_h, 30 : 30 + width] = strip
    _text_lines(canvas, rng, (40, 40 + bar_h + 10, width, canvas.shape[0] - 5), ink)
    x, y = 30, 40
    corners = np.array([[x, y], [x + width, y], [x + width, y + bar_h], [x, y + bar_h]], np.float32)
    return canvas, corners


def _place(
    rng: np.random.Generator, corners: np.ndarray, size: tuple[float, float], tilt: float, turn: float
) -> np.ndarray:
    """Pick where the code's corners land in the frame: scaled to ``size``, turned, perspective-jittered."""
    w, h = size
    angle = np.deg2rad(rng.uniform(-turn, turn))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    base = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]], np.float32) @ rot.T
    base += rng.uniform(-tilt, tilt, (4, 2)).astype(np.float32) * np.float32(max(w, h))
    margin = 12
    span_x, span_y = np.ptp(base[:, 0]), np.ptp(base[:, 1])
    shrink = min(1.0, (WIDTH - 2 * margin) / span_x, (HEIGHT - 2 * margin) / span_y)
    base *= np.float32(shrink)
    span_x, span_y = span_x * shrink, span_y * shrink
    cx = rng.uniform(margin + span_x / 2, WIDTH - margin - span_x / 2)
    cy = rng.uniform(margin + span_y / 2, HEIGHT - margin - span_y / 2)
    base -= base.mean(axis=0)
    return (base + np.array([cx, cy], np.float32)).astype(np.float32)


def _camera(
    rng: np.random.Generator, img: np.ndarray, color: bool, blur: tuple[float, float] = (0.6, 1.3)
) -> np.ndarray:
    """Apply what a cheap camera does: blur, low contrast, glare, sensor noise; return uint8 gray or BGR."""
    import cv2

    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(*blur))
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    gx, gy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
    glare = rng.uniform(0, 35) * np.exp(-((xs - gx) ** 2 + (ys - gy) ** 2) / (2 * rng.uniform(60, 160) ** 2))
    alpha = rng.uniform(0.45, 0.7)  # low contrast: the code's dark and light end up 80-140 levels apart
    img = rng.uniform(100, 140) + alpha * (img - 128) + glare
    img += rng.normal(0, rng.uniform(2, 6), img.shape).astype(np.float32)
    gray = np.asarray(np.clip(img, 0, 255), dtype=np.uint8)
    if not color:
        return gray
    tint = rng.uniform(0.8, 1.15, 3)
    return np.asarray(np.clip(gray[:, :, None] * tint[None, None, :], 0, 255), dtype=np.uint8)


def _composite(background: np.ndarray, canvas: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Warp ``canvas`` so that its points ``src`` land on ``dst`` and lay it over ``background``."""
    import cv2

    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(canvas, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.ones_like(canvas), matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
    return background * (1 - mask) + warped * mask


def render_code_frame(
    text: str,
    seed: int,
    symbology: Literal["qr", "code128"] = "qr",
    color: bool = False,
    steady: bool = False,
) -> np.ndarray:
    """Return a 640x480 camera frame showing ``text`` as a QR on a phone or a Code128 on paper.

    By default the code is turned up to 25 degrees (QR) and tilted; ``steady`` frames show it held nearly
    square to the camera and sharper (the case every decoder must read).
    """
    rng = np.random.default_rng(seed)
    background = _scene(rng)
    if symbology == "qr":
        modules = qr_matrix(text)
        canvas, corners = _phone(rng, modules)
        # The code (quiet zone included) spans 150-240 px: 3-5 px per module for a signed code (version 6).
        side = rng.uniform(150, 240)
        dst = _place(rng, corners, (side, side), tilt=0.02 if steady else 0.06, turn=8 if steady else 25)
        blur = (0.5, 0.9) if steady else (0.6, 1.3)
    else:
        bars = code128_row(text)
        canvas, corners = _ticket(rng, bars)
        # 2.6-2.8 px per module: a paper ticket held close (a 1-D code needs more pixels than a QR).
        width = min(bars.size * rng.uniform(2.6, 2.8), WIDTH - 60)
        dst = _place(rng, corners, (width, width * 90 / (bars.size * 4)), tilt=0.01, turn=2 if steady else 5)
        blur = (0.4, 0.6) if steady else (0.5, 0.9)
    return _camera(rng, _composite(background, canvas, corners, dst), color, blur)


def empty_scene(rng: np.random.Generator, kind: str) -> np.ndarray:
    """A scene without a code (float, 640x480) for ``kind``: noise, gradient, text, stripes, or any other kind:
    a phone showing no code."""
    if kind == "noise":
        return rng.normal(128, rng.uniform(20, 60), (HEIGHT, WIDTH)).astype(np.float32)
    if kind == "gradient":
        return _scene(rng)
    if kind == "text":
        img = np.full((HEIGHT, WIDTH), rng.uniform(190, 240), np.float32)
        _text_lines(img, rng, (20, 10, WIDTH - 20, HEIGHT - 10), rng.uniform(10, 60))
        return img
    if kind == "stripes":
        img = _scene(rng)
        x = int(rng.integers(20, 100))
        y0, y1 = int(rng.integers(40, 200)), int(rng.integers(260, 440))
        while x < WIDTH - 20:
            w = int(rng.integers(1, 9))
            if rng.random() < 0.5:
                img[y0:y1, x : x + w] = rng.uniform(10, 40)
            x += w
        return img
    background = _scene(rng)
    canvas, corners = _phone(rng, None)
    side = rng.uniform(150, 240)
    return _composite(background, canvas, corners, _place(rng, corners, (side, side), 0.08, 25))


def render_empty_frame(seed: int, kind: EmptyKind = "noise", color: bool = False) -> np.ndarray:
    """Return a 640x480 frame with no code: noise, a gradient, print, stripes or a phone without a code."""
    import cv2

    rng = np.random.default_rng(seed)
    img = empty_scene(rng, kind)
    return _camera(rng, cv2.GaussianBlur(img, (0, 0), 0.8), color)


def make_frames(
    count: int, codes: list[str], seed: int = 0, code_fraction: float = 0.5, color_fraction: float = 0.25
) -> list[SyntheticFrame]:
    """Return ``count`` frames: about ``code_fraction`` show one of ``codes`` (in turn), the rest are empty.

    Codes of at most 20 characters alternate between a QR on a phone and a Code128 on paper; longer ones
    (signed codes) are QR only. About ``color_fraction`` of frames are BGR, the rest grayscale.
    """
    rng = np.random.default_rng(seed)
    frames: list[SyntheticFrame] = []
    code_index = 0
    for i in range(count):
        frame_seed = seed * 1_000_003 + i
        color = bool(rng.random() < color_fraction)
        if codes and rng.random() < code_fraction:
            text = codes[code_index % len(codes)]
            symbology: Literal["qr", "code128"] = (
                "code128" if len(text) <= 20 and code_index % 3 == 2 else "qr"
            )
            code_index += 1
            frame = render_code_frame(text, frame_seed, symbology, color)
            frames.append(SyntheticFrame(frame, text, f"{symbology}{'-bgr' if color else ''}"))
        else:
            kind = EMPTY_KINDS[int(rng.integers(0, len(EMPTY_KINDS)))]
            frames.append(SyntheticFrame(render_empty_frame(frame_seed, kind, color), None, kind))
    return frames
