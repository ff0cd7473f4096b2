"""Hard camera frames for the decoding benchmark: the conditions a gate camera meets in a real lobby.

Each condition is rendered like a photograph, not a clean drawing: the code (a QR on a phone screen, or a Code
128 on a paper ticket) is placed in 3-D and projected through a pinhole camera (perspective), then the optics
blur it, the sensor adds per-pixel noise, and the frame goes through real JPEG compression (OpenCV's encoder,
quality 55-85) before a decoder sees it, as frames from a USB webcam (MJPEG) do.

Conditions (:data:`CONDITIONS`):

- ``baseline``: a phone held 10-35 degrees off square, code symbol 120-200 px;
- ``small``: the symbol spans 60-120 px (code held far away);
- ``motion_blur``: a linear motion blur 5-15 px long in any direction;
- ``low_light``: under-exposed, shot noise and a sensor gain that amplifies it;
- ``glare``: a reflection that washes out part of the code (about 5-25 % of it, off its centre);
- ``moire``: the phone's pixel grid aliased by the camera's sampling (the screen drawn with its sub-pixel gaps
  and resampled without area averaging);
- ``tilt``: the phone tilted 30-50 degrees away from the camera (strong perspective);
- ``dark_mode``: a phone in dark mode: light modules on a dark screen;
- ``code128_far``: a Code 128 on a paper ticket at a distance, 1.4-2.2 px per module (compact codes only).

Frames without a code (:data:`EMPTY_KINDS`): a cluttered room, printed text, barcode-like stripes, a keyboard,
woven fabric, a phone showing a text screen. Everything is deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .synthetic import HEIGHT, WIDTH, _scene, _text_lines, code128_row, empty_scene, qr_matrix

Condition = Literal[
    "baseline", "small", "motion_blur", "low_light", "glare", "moire", "tilt", "dark_mode", "code128_far"
]
CONDITIONS: tuple[Condition, ...] = (
    "baseline", "small", "motion_blur", "low_light", "glare", "moire", "tilt", "dark_mode", "code128_far"
)
QR_CONDITIONS: tuple[Condition, ...] = CONDITIONS[:-1]
EmptyKind = Literal["room", "text", "stripes", "keyboard", "fabric", "phone_text"]
EMPTY_KINDS: tuple[EmptyKind, ...] = ("room", "text", "stripes", "keyboard", "fabric", "phone_text")
FOCAL_PX = 560.0  # a 640 px wide webcam with a 60 degree field of view
_SCREEN_SIDE = 392  # the code's square (quiet zone included) on the phone canvas
_GRID_PERIOD = 3  # canvas pixels per screen pixel when the pixel grid is drawn (moire)


@dataclass(frozen=True)
class HardFrame:
    """One benchmark frame: the picture, the code it shows (None if none), its condition and scheme."""

    frame: np.ndarray
    expected: str | None
    condition: str
    scheme: str
    span: float = 0.0
    """How many pixels the code's symbol (quiet zone excluded) spans when seen square on; 0 without a code."""


def _phone(
    rng: np.random.Generator, modules: np.ndarray | None, dark_mode: bool = False, pixel_grid: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A phone canvas showing a QR code (``modules`` with its quiet zone) or a text screen.

    Returns the canvas and the corners of the code's symbol (quiet zone excluded) in canvas pixels.
    """
    import cv2

    light, dark = rng.uniform(215, 250), rng.uniform(10, 40)
    paper, ink = (dark, light) if dark_mode else (light, dark)
    side = _SCREEN_SIDE
    quiet = side // 12
    screen_w = side + 2 * quiet
    screen_h = int(screen_w * 1.9)
    bezel = int(screen_w * 0.06)
    canvas = np.full((screen_h + 2 * bezel, screen_w + 2 * bezel), rng.uniform(8, 30), np.float32)
    screen = np.full((screen_h, screen_w), paper, np.float32)
    screen[: int(screen_h * 0.07)] = rng.uniform(60, 140)
    top, left = int(screen_h * 0.18), (screen_w - side) // 2
    if modules is not None:
        cells = cv2.resize(modules.astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST)
        screen[top : top + side, left : left + side] = np.where(cells > 0, ink, paper)
        _text_lines(screen, rng, (left, top + side + quiet, left + side, screen_h - 10), ink)
    else:
        _text_lines(screen, rng, (left, top, left + side, screen_h - 10), ink)
    if pixel_grid:  # the dark gaps between the screen's pixels, one row and one column in every period
        grid = np.ones_like(screen)
        depth = rng.uniform(0.35, 0.6)
        grid[::_GRID_PERIOD, :] *= 1 - depth
        grid[:, ::_GRID_PERIOD] *= 1 - depth
        screen *= grid
    canvas[bezel : bezel + screen_h, bezel : bezel + screen_w] = screen
    if modules is None:
        return canvas, np.zeros((4, 2), np.float32)
    module = side / modules.shape[0]
    inset = 4 * module  # the quiet zone (qr_matrix pads 4 modules)
    x0, y0 = bezel + left + inset, bezel + top + inset
    x1, y1 = bezel + left + side - inset, bezel + top + side - inset
    return canvas, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def _ticket(rng: np.random.Generator, bars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A paper ticket with a Code 128 (4 canvas px per module); returns the canvas and the bars' corners."""
    module_px, bar_h = 4, 110
    paper, ink = rng.uniform(190, 240), rng.uniform(15, 55)
    width = bars.size * module_px
    canvas = np.full((bar_h + 150, width + 80), paper, np.float32)
    canvas[40 : 40 + bar_h, 40 : 40 + width] = np.where(np.repeat(bars, module_px), ink, paper)
    _text_lines(canvas, rng, (50, 50 + bar_h + 10, width, canvas.shape[0] - 5), ink)
    x0, y0, x1, y1 = 40, 40, 40 + width, 40 + bar_h
    return canvas, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def project(
    rng: np.random.Generator, size: tuple[float, float], roll_deg: float, tilt_deg: tuple[float, float]
) -> np.ndarray:
    """Where a flat ``size`` (w, h px when square to the camera) rectangle's corners land in the frame.

    The rectangle is turned by up to ``roll_deg`` in its plane, tilted by an angle in ``tilt_deg`` about a
    random axis in its plane, and projected through a pinhole camera (:data:`FOCAL_PX`) at the depth where it
    would span ``size`` seen square on; then moved to a random place that keeps it inside the frame.
    """
    w, h = size
    pts = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]], float)
    roll = np.deg2rad(rng.uniform(-roll_deg, roll_deg))
    rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    axis_angle = rng.uniform(0, np.pi)
    axis = np.array([np.cos(axis_angle), np.sin(axis_angle), 0.0])
    tilt = np.deg2rad(rng.uniform(*tilt_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rt = np.eye(3) + np.sin(tilt) * k + (1 - np.cos(tilt)) * (k @ k)  # Rodrigues
    world = pts @ (rt @ rz).T
    depth = world[:, 2] + FOCAL_PX
    flat = FOCAL_PX * world[:, :2] / depth[:, None]
    margin = 14
    span = np.ptp(flat, axis=0)
    shrink = min(1.0, (WIDTH - 2 * margin) / span[0], (HEIGHT - 2 * margin) / span[1])
    flat = (flat - flat.mean(axis=0)) * shrink
    span = span * shrink
    cx = rng.uniform(margin + span[0] / 2, WIDTH - margin - span[0] / 2)
    cy = rng.uniform(margin + span[1] / 2, HEIGHT - margin - span[1] / 2)
    return np.asarray(flat + np.array([cx, cy]), np.float32)


def _composite(
    background: np.ndarray, canvas: np.ndarray, src: np.ndarray, dst: np.ndarray, area: bool = True
) -> np.ndarray:
    """Warp ``canvas`` so that its points ``src`` land on ``dst`` and lay it over ``background``.

    ``area`` resamples with area averaging (a lens and sensor integrate light); without it the canvas is
    point-sampled, which is what turns a screen's pixel grid into moire.
    """
    import cv2

    matrix = cv2.getPerspectiveTransform(src, dst)
    flags = cv2.INTER_AREA if area else cv2.INTER_LINEAR
    warped = cv2.warpPerspective(canvas, matrix, (WIDTH, HEIGHT), flags=flags)
    mask = cv2.warpPerspective(np.ones_like(canvas), matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
    return np.asarray(background * (1 - mask) + warped * mask, np.float32)


def _motion_kernel(rng: np.random.Generator, length: float) -> np.ndarray:
    """A normalised line kernel ``length`` px long at a random angle (hand or walking motion)."""
    import cv2

    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    angle = rng.uniform(0, np.pi)
    c = (size - 1) / 2
    dx, dy = np.cos(angle) * (length - 1) / 2, np.sin(angle) * (length - 1) / 2
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    total = float(kernel.sum())
    return kernel / total if total > 0 else kernel


def _glare(rng: np.random.Generator, img: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Add a specular reflection near the code's edge that washes out (saturates) about 5-25 % of the code."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    centre = corners.mean(axis=0)
    span = float(np.ptp(corners, axis=0).max())
    towards = corners[int(rng.integers(0, 4))]
    gx, gy = centre + (towards - centre) * rng.uniform(0.3, 0.8)
    radius = span * rng.uniform(0.1, 0.18)
    strength = rng.uniform(220, 320)
    return np.asarray(img + strength * np.exp(-((xs - gx) ** 2 + (ys - gy) ** 2) / (2 * radius**2)), np.float32)


def _photograph(
    rng: np.random.Generator, img: np.ndarray, condition: str, corners: np.ndarray | None
) -> np.ndarray:
    """Optics, exposure, sensor noise and JPEG: turn a scene (float, 0-255 radiance) into a uint8 frame."""
    import cv2

    if condition == "glare" and corners is not None:
        img = _glare(rng, img, corners)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.0))  # lens
    if condition == "motion_blur":
        img = cv2.filter2D(img, -1, _motion_kernel(rng, rng.uniform(5, 15)), borderType=cv2.BORDER_REFLECT)
    alpha = rng.uniform(0.6, 0.85)
    img = rng.uniform(110, 140) + alpha * (img - 128)
    if condition == "low_light":
        exposure = rng.uniform(0.12, 0.25)
        signal = np.clip(img * exposure, 0, None)
        shot = rng.normal(0, 1, img.shape).astype(np.float32) * np.sqrt(signal * 0.8)
        gain = rng.uniform(1.2, 2.4)
        img = (signal + shot + rng.normal(0, 2.0, img.shape).astype(np.float32)) * gain
    else:
        img = img + rng.normal(0, rng.uniform(2, 5), img.shape).astype(np.float32)
    gray = np.asarray(np.clip(img + 0.5, 0, 255), dtype=np.uint8)
    quality = int(rng.integers(55, 86))
    ok, jpeg = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE), dtype=np.uint8)


def render_hard_frame(text: str, condition: Condition, seed: int) -> np.ndarray:
    """Return a 640x480 grayscale frame showing ``text`` under ``condition`` (see :data:`CONDITIONS`)."""
    return render_hard_frame_span(text, condition, seed)[0]


def render_hard_frame_span(text: str, condition: Condition, seed: int) -> tuple[np.ndarray, float]:
    """:func:`render_hard_frame` and the span of the code's symbol in pixels (seen square on)."""
    rng = np.random.default_rng(seed)
    background = _scene(rng)
    if condition == "code128_far":
        bars = code128_row(text)
        canvas, corners = _ticket(rng, bars)
        width = bars.size * rng.uniform(1.4, 2.2)
        dst = project(rng, (width, width * 110 / (bars.size * 4)), roll_deg=12, tilt_deg=(0, 25))
        return _photograph(rng, _composite(background, canvas, corners, dst), condition, dst), float(width)
    modules = qr_matrix(text)
    canvas, corners = _phone(rng, modules, dark_mode=condition == "dark_mode", pixel_grid=condition == "moire")
    span = {"small": (60, 120), "tilt": (130, 200), "moire": (140, 220)}.get(condition, (120, 200))
    tilt = (30, 50) if condition == "tilt" else (0, 20) if condition == "small" else (10, 35)
    side = rng.uniform(*span)
    dst = project(rng, (side, side), roll_deg=30, tilt_deg=tilt)
    scene = _composite(background, canvas, corners, dst, area=condition != "moire")
    return _photograph(rng, scene, condition, dst), float(side)


def _keyboard(rng: np.random.Generator) -> np.ndarray:
    """A keyboard seen from above: rows of keys with letters on them."""
    import cv2

    img = _scene(rng)
    key = int(rng.integers(26, 44))
    gap = max(key // 8, 3)
    body, cap, ink = rng.uniform(20, 60), rng.uniform(60, 120), rng.uniform(180, 240)
    x0, y0 = int(rng.integers(0, 60)), int(rng.integers(20, 120))
    img[y0 : y0 + 5 * (key + gap) + gap, x0:WIDTH] = body
    letters = "QWERTYUIOPASDFGHJKLZXCVBNM1234567890"
    for row in range(5):
        x = x0 + gap + row * key // 3
        while x + key < WIDTH:
            y = y0 + gap + row * (key + gap)
            cv2.rectangle(img, (x, y), (x + key, y + key), cap, -1)
            mark = np.zeros(img.shape, np.uint8)
            cv2.putText(mark, str(rng.choice(list(letters))), (x + key // 4, y + 3 * key // 4),
                        cv2.FONT_HERSHEY_SIMPLEX, key / 50, 255, 1)
            img[mark > 0] = ink
            x += key + gap
    return img


def render_empty_frame(kind: EmptyKind, seed: int) -> np.ndarray:
    """Return a 640x480 grayscale frame with no code but textures a decoder might mistake for one."""
    rng = np.random.default_rng(seed)
    if kind in ("room", "text", "stripes"):
        img = empty_scene(rng, "gradient" if kind == "room" else kind)
    elif kind == "keyboard":
        img = _keyboard(rng)
    elif kind == "fabric":
        ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        period = rng.uniform(3, 9)
        angle = rng.uniform(0, np.pi)
        u = np.cos(angle) * xs + np.sin(angle) * ys
        v = -np.sin(angle) * xs + np.cos(angle) * ys
        weave = np.sign(np.sin(2 * np.pi * u / period)) * np.sign(np.sin(2 * np.pi * v / period))
        img = rng.uniform(90, 160) + rng.uniform(30, 70) * weave
    else:
        canvas, _ = _phone(rng, None, dark_mode=bool(rng.random() < 0.3))
        side = rng.uniform(150, 240)
        src = np.array([[0, 0], [canvas.shape[1], 0], [canvas.shape[1], canvas.shape[0]], [0, canvas.shape[0]]],
                       np.float32)
        height = side * canvas.shape[0] / canvas.shape[1]
        dst = project(rng, (side, height), roll_deg=30, tilt_deg=(0, 30))
        img = _composite(_scene(rng), canvas, src, dst)
    return _photograph(rng, np.asarray(img, np.float32), "empty", None)


def make_hard_frames(
    per_condition: int, compact_codes: list[str], signed_codes: list[str], seed: int = 0,
    empty: int | None = None, conditions: tuple[Condition, ...] = CONDITIONS,
    short_codes: list[str] | None = None,
) -> list[HardFrame]:
    """Return the benchmark's frames: ``per_condition`` frames per condition and scheme, then empties.

    QR conditions get ``per_condition`` frames with compact codes and as many with signed codes, and with
    ``short_codes`` (version 2 signed codes, scheme "signed-v2") as many again (the codes are used in turn);
    ``code128_far`` gets compact codes only. ``empty`` (default ``2 * per_condition``) frames
    without a code follow, spread over :data:`EMPTY_KINDS`.
    """
    frames: list[HardFrame] = []
    n = 0
    for condition in conditions:
        schemes = [("compact", compact_codes)]
        if condition != "code128_far":
            schemes.append(("signed", signed_codes))
            if short_codes:
                schemes.append(("signed-v2", short_codes))
        for scheme, codes in schemes:
            for i in range(per_condition):
                n += 1
                text = codes[i % len(codes)]
                frame, span = render_hard_frame_span(text, condition, seed * 1_000_003 + n)
                frames.append(HardFrame(frame, text, condition, scheme, span))
    for i in range(2 * per_condition if empty is None else empty):
        kind = EMPTY_KINDS[i % len(EMPTY_KINDS)]
        frames.append(HardFrame(render_empty_frame(kind, seed * 1_000_003 + 500_000 + i), None, kind, "-"))
    return frames
