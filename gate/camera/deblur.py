"""Undo a linear motion blur in the busiest part of a frame: the camera's last-chance pass, numpy only.

A code waved in front of the camera is smeared along the motion: each point becomes a short line (a box blur
5-15 px long at some angle). Once the line is two or three modules long no binariser separates the modules
again, but the blur is known up to two numbers, its direction and length, and both can be read off the frame:

- **where**: the square window (:data:`CROP` px) with the most gradient energy, found on a quarter-size copy;
- **whether**: only a window whose gradients mostly run one way (:data:`SMEAR_MIN`) is restored, and not one
  whose spectrum sits on a few peaks (stripes, :data:`STRIPES_MIN`), nor one whose restoration at the estimate
  is not two-toned (a room, a screen of text: :data:`KURTOSIS_MAX`), so that a frame without a code costs little
  and the pass can run on every frame;
- **direction**: a box blur along an angle removes the crop's mid frequencies along that angle, so the angle
  is the axis of least spectral magnitude in a band of frequencies (:data:`BAND`; the magnitude, not the power,
  so that a code's own strong grid frequencies do not decide it);
- **length**: the derivative along the blur of a box-blurred picture is the difference of two copies of the
  sharp picture ``length`` apart, so its autocorrelation along the blur dips most at that lag.

The crop is then deconvolved with a Wiener filter (:data:`WIENER_K`) for the line blurred further by the lens
(:data:`LENS_SIGMA`), smoothed a little (:data:`SMOOTH_SIGMA`, in the same filter) and enlarged twice by linear
interpolation: zxing-cpp reads the restored modules more often when each spans more pixels (linear read as
many as OpenCV's cubic or a zero-padded spectrum, and costs least). Since the direction is the estimate's
weakest part, the crop is restored at the estimated angle and at a few around it (:data:`ANGLE_OFFSETS_DEG`),
and the most two-toned restorations (least kurtosis) are handed to the decoder, the most two-toned first.
Nothing here knows how the frame was blurred; everything is estimated from the pixels. Measured in
``benchmarks/camera_decode.py`` (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CROP = 320
"""Side of the square crop that is restored (px): a code of up to ~200 px plus the blur and some margin."""
BAND = (0.04, 0.25)
"""Frequencies (cycles/px) whose magnitudes give the blur's direction."""
WIENER_K = 0.005
"""Noise-to-signal ratio of the Wiener filter: smaller restores more and amplifies more noise (which
:data:`SMOOTH_SIGMA` then takes off). 0.01 before :data:`LENS_SIGMA` and :data:`SMOOTH_SIGMA` came in; with them,
on development frames (seeds 2 and 3, not the benchmark's; see :data:`SMOOTH_SIGMA`) 0.005 read 72 + 80 of the
blurred signed + signed-v2 codes the raw and denoised passes missed, 0.003 73 + 78, 0.008 63 + 77."""
LENS_SIGMA = 0.7
"""Standard deviation (px) of a Gaussian lens blur taken as part of the blur to undo, besides the motion: a
camera's optics are never sharp to the pixel. On development frames 0.7 read 72 + 80 blurred signed + signed-v2
codes, 0.5 67 + 77, 0.9 71 + 79 (all with :data:`WIENER_K` 0.005 and :data:`SMOOTH_SIGMA` 0.7). The frame
generator (``hard_frames``) blurs with a lens of 0.5-1.0 px before the motion, so this is the one figure here
that is close to what made the frames; a real gate's lens and focus may want another value."""
SMOOTH_SIGMA = 0.7
"""Standard deviation (px) of a Gaussian low-pass applied with the Wiener filter (one product in the spectrum,
no extra transform): it takes off the restoration's speckle and ringing at the highest frequencies, which a
smaller :data:`WIENER_K` amplifies and which a code's modules (3 px and more) do not need. Of the 120 + 120
motion-blurred signed + signed-v2 codes of development frames (seeds 2 and 3) the deblur pass read 58 + 66 with
K = 0.01 and neither Gaussian; 66 + 77 with K = 0.003 and this smoothing; 72 + 80 with K = 0.005, this and
:data:`LENS_SIGMA`; 0.5 read 72 + 78. No false read on the 240 frames without a code, same cost on them (the
filter only changes for windows that pass the smear and stripes tests)."""
ANGLE_OFFSETS_DEG = (0.0, -3.0, 3.0, -6.0, 6.0)
"""Angles around the estimated direction at which the window is restored; the restoration with the least
kurtosis (the most two-toned: a code's modules are dark or light) is read first (see :data:`READS`).
Choosing this way read a quarter more blurred signed codes on development frames than the estimate alone;
reading each of three angles with zxing-cpp read about as many at 2.5 times the cost (BENCHMARKS.md). Steps
of 3 degrees read 117 of the 181 blurred signed codes of development frames (seeds 2 and 3, not the
benchmark's) that the raw and denoised passes missed, where steps of 4 read 105 and of 2 or 2.5 115-117 (with
the filter of then, K 0.01 and no Gaussians). With the present filter, steps of 2 to 6 degrees read 73 + 78
against 72 + 80 (signed + signed-v2, seeds 2 and 3), adding ±9 degrees 71 + 80, and restoring the least
kurtotic also 1 px shorter and longer 70 + 79: the angle and length are rarely what is missing now."""
READS = 2
"""How many of those restorations are handed to the decoder, least kurtotic first, until one reads: the second
costs one more read of the crop (no transform) and read a fifth of the signed codes the first missed on
development frames (BENCHMARKS.md). With the present filter three reads read 73 + 80 against 72 + 80 (seeds 2
and 3) and 38 + 37 against 36 + 37 (seed 4): not worth a third read of the crop on every blurred frame."""
MIN_LENGTH, MAX_LENGTH = 3.0, 20.0
"""Blur lengths (px) considered."""
SMEAR_MIN = 0.25
"""Least anisotropy of the busiest window's gradients for a frame to be restored at all (0 = the same in every
direction, 1 = all along one). Measured on the benchmark's frames: 94 % of the motion-blurred frames that the
other passes miss are above it, sharp codes are below it, and of the frames without a code only stripes
(always), and a fifth of rooms and phone text screens pass."""
STRIPES_MIN = 0.5
"""Share of the spectral power in :data:`BAND` of the window's middle :data:`STRIPES_SIDE` px that its strongest
1 % of frequencies hold, from which the window is taken for stripes (a 1-D pattern: its power sits on a few
peaks along one line) and not restored. On development frames (seeds 2-4, not the benchmark's) the 174 blurred
codes that the raw and denoised passes missed held at most 0.45 (median 0.26), stripes at least 0.60, phone
screens of text 0.47-0.66, and rooms that pass :data:`SMEAR_MIN` 0.36-0.83. Taken on the middle only, since it
is four times cheaper than on the whole window and separates better (on the whole window: codes up to 0.71,
stripes from 0.59)."""
STRIPES_SIDE = 160
KURTOSIS_MAX = 4.0
"""Most kurtosis of the restoration at the estimated angle for the window to be restored at the other angles
and read at all: a restored code is two-toned (development frames: at most 2.7), a restored room or phone
screen is not (6-9); restoring and reading those was most of what the pass cost on a frame without a code.
With the present filter (:data:`LENS_SIGMA`, :data:`SMOOTH_SIGMA`), on development frames of seeds 2-4: the 331
signed codes whose window passes the smear and stripes tests at most 3.6 (95 % below 2.5), the 7 frames without
a code that pass them 2.9, 4.1, 5.4-6.4 and 13 (2.9, 3.9, 4.8-5.5 and 11 with the filter before)."""
_TOP_SHARE = 0.01  # the strongest share of the band's frequencies whose power STRIPES_MIN bounds
_STEP = 4  # the busiest window is looked for on every _STEP-th pixel
_WINDOW = 36  # the busiest window's side on that copy (144 px)
_TAPER = 24  # px of the crop's border faded to its mean before a transform (no wrap-around edges)


@dataclass(frozen=True)
class MotionBlur:
    """A linear motion blur: ``angle`` in radians (0 = along x, [0, pi)) and ``length`` in pixels."""

    angle: float
    length: float


def busiest_window(gray: np.ndarray, size: int = CROP) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the ``size`` px square around the region with most gradient energy.

    Found on a quarter-size copy (every fourth pixel) with a box sum over :data:`_WINDOW` of its pixels; the
    window is clamped inside the frame (and to the frame's size for a smaller frame).
    """
    height, width = gray.shape
    crop_h, crop_w = min(size, height), min(size, width)
    small = gray[::_STEP, ::_STEP].astype(np.float32)
    energy = np.abs(np.diff(small, axis=0))[:, :-1] + np.abs(np.diff(small, axis=1))[:-1, :]
    win = min(_WINDOW, *energy.shape)
    if win < 1:
        return 0, 0, crop_h, crop_w
    sums = np.zeros((energy.shape[0] + 1, energy.shape[1] + 1), np.float32)  # summed-area table (np.pad is slow)
    np.cumsum(energy, axis=0, out=sums[1:, 1:])
    np.cumsum(sums[1:, 1:], axis=1, out=sums[1:, 1:])
    boxes = sums[win:, win:] - sums[:-win, win:] - sums[win:, :-win] + sums[:-win, :-win]
    y, x = np.unravel_index(int(np.argmax(boxes)), boxes.shape)
    cy, cx = (y + win / 2) * _STEP, (x + win / 2) * _STEP
    top = int(min(max(cy - crop_h / 2, 0), height - crop_h))
    left = int(min(max(cx - crop_w / 2, 0), width - crop_w))
    return top, left, crop_h, crop_w


@lru_cache(maxsize=8)
def _taper(height: int, width: int, border: int = _TAPER) -> np.ndarray:
    """A window that is 1 inside and falls to 0 over ``border`` px at each edge (raised cosine)."""
    def ramp(n: int) -> np.ndarray:
        weights = np.ones(n, np.float32)
        edge = min(border, n // 2)
        if edge > 0:
            rise = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, edge))).astype(np.float32)
            weights[:edge], weights[n - edge:] = rise, rise[::-1]
        return weights

    window: np.ndarray = ramp(height)[:, None] * ramp(width)[None, :]
    return window


@lru_cache(maxsize=8)
def _frequencies(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The (rows, columns) frequency grids of an ``rfft2`` of a ``height`` x ``width`` array, cycles/px."""
    fy = np.fft.fftfreq(height).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(width).astype(np.float32)[None, :]
    return fy, fx


def smear(gray: np.ndarray, window: tuple[int, int, int, int]) -> float:
    """How much the gradients in ``window`` of ``gray`` run one way: 0 (every way alike) to 1 (all one way).

    A motion blur flattens the gradients along the motion, so a blurred code's window is anisotropic where a
    sharp code's is not (its modules have edges both ways). Computed on every other pixel (cheap).
    """
    top, left, height, width = window
    crop = gray[top:top + height:2, left:left + width:2].astype(np.float32)
    if crop.shape[0] < 3 or crop.shape[1] < 3:
        return 0.0
    gx = crop[1:-1, 2:] - crop[1:-1, :-2]
    gy = crop[2:, 1:-1] - crop[:-2, 1:-1]
    jxx, jyy, jxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    spread = float(np.hypot(jxx - jyy, 2 * jxy))  # the difference of the structure tensor's eigenvalues
    return spread / (jxx + jyy) if jxx + jyy > 0 else 0.0


@lru_cache(maxsize=8)
def _band(height: int, width: int) -> np.ndarray:
    """Flat indices of the ``rfft2`` bins of a ``height`` x ``width`` array whose frequency is in :data:`BAND`."""
    fy, fx = _frequencies(height, width)
    r2 = fx * fx + fy * fy
    lo, hi = BAND
    indices: np.ndarray = np.flatnonzero((r2 >= lo * lo) & (r2 <= hi * hi))
    return indices


def _spectrum(crop: np.ndarray, taper: np.ndarray) -> np.ndarray:
    """The ``rfft2`` (``complex64``) of ``crop`` less its mean, faded to it at the border by ``taper``.

    Transformed in float64: numpy's forward transform of a float32 array took six times as long (3 ms against
    0.5 ms for 320 x 320, numpy 2.4) where its inverse transforms of complex64 are fast."""
    spectrum: np.ndarray = np.fft.rfft2(((crop - crop.mean()) * taper).astype(np.float64)).astype(np.complex64)
    return spectrum


def stripiness(spectrum: np.ndarray, shape: tuple[int, int]) -> float:
    """The share of ``spectrum``'s power in :data:`BAND` held by its strongest 1 % of bins (0 to 1).

    Stripes put their power on a few harmonics of one period along one line, so the share is high (above
    :data:`STRIPES_MIN`); a code, even blurred, spreads its power over a 2-D grid of frequencies."""
    band = spectrum.reshape(-1)[_band(*shape)]
    power = band.real * band.real + band.imag * band.imag
    total = float(power.sum())
    if total <= 0:
        return 0.0
    top = max(1, int(_TOP_SHARE * power.size))
    return float(np.partition(power, power.size - top)[-top:].sum()) / total


def blur_direction(spectrum: np.ndarray, shape: tuple[int, int]) -> float:
    """The angle (radians, [0, pi)) along which ``spectrum`` (an ``rfft2``) is weakest in :data:`BAND`."""
    fy, fx = _frequencies(*shape)
    r2 = fx * fx + fy * fy
    lo, hi = BAND
    weight = np.where((r2 >= lo * lo) & (r2 <= hi * hi), np.abs(spectrum) / np.maximum(r2, 1e-9), 0.0)
    jxx = float((weight * fx * fx).sum())
    jyy = float((weight * fy * fy).sum())
    jxy = float((weight * fx * fy).sum())
    # the spectrum's strongest axis is across the blur; the blur runs along the weakest one
    return float((0.5 * np.arctan2(2 * jxy, jxx - jyy) + np.pi / 2) % np.pi)


def _sample(values: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples of the periodic array ``values`` at (``xs``, ``ys``)."""
    height, width = values.shape
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    x1, y1 = (x0 + 1) % width, (y0 + 1) % height
    x0, y0 = x0 % width, y0 % height
    sampled: np.ndarray = (
        (1 - fx) * (1 - fy) * values[y0, x0] + fx * (1 - fy) * values[y0, x1]
        + (1 - fx) * fy * values[y1, x0] + fx * fy * values[y1, x1]
    )
    return sampled


class _Autocorrelation:
    """The crop's autocorrelation (from its spectrum), read along any angle to find the blur's length."""

    def __init__(self, spectrum: np.ndarray, shape: tuple[int, int]) -> None:
        power = (spectrum * np.conj(spectrum)).real.astype(np.complex64)  # numpy is slow on a real input here
        self.values = np.fft.irfft2(power, s=shape)

    def length_along(self, angle: float) -> float:
        """The lag (px) where the autocorrelation of the derivative along ``angle`` dips most.

        That autocorrelation is minus the second derivative along ``angle`` of the picture's own, taken here
        as a difference over 1 px on either side of each lag.
        """
        lags = np.arange(MIN_LENGTH - 1, MAX_LENGTH + 1.01, 0.5)
        profile = _sample(self.values, lags * np.cos(angle), lags * np.sin(angle))
        curvature = profile[:-4] - 2 * profile[2:-2] + profile[4:]  # lags MIN_LENGTH..MAX_LENGTH
        return float(lags[2 + int(np.argmax(curvature))])


@lru_cache(maxsize=8)
def _gaussians(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``rfft2``-shaped transfer functions of the lens (:data:`LENS_SIGMA`) and of the smoothing
    (:data:`SMOOTH_SIGMA`) for a ``height`` x ``width`` array: ``exp(-2 pi^2 sigma^2 f^2)``."""
    fy, fx = _frequencies(height, width)
    r2 = fx * fx + fy * fy
    lens = np.exp(np.float32(-2 * (np.pi * LENS_SIGMA) ** 2) * r2).astype(np.float32)
    smooth = np.exp(np.float32(-2 * (np.pi * SMOOTH_SIGMA) ** 2) * r2).astype(np.float32)
    return lens, smooth


def wiener(shape: tuple[int, int], blur: MotionBlur) -> np.ndarray:
    """The ``rfft2``-shaped filter that undoes ``blur`` seen through the lens: the Wiener filter
    ``H / (H^2 + K)`` of the line's transfer function times the lens's (``H``, real), times the smoothing."""
    lens, smooth = _gaussians(*shape)
    otf = _line_otf(shape, blur) * lens
    wiener_filter: np.ndarray = otf * smooth / (otf * otf + np.float32(WIENER_K))
    return wiener_filter


def _line_otf(shape: tuple[int, int], blur: MotionBlur) -> np.ndarray:
    """The ``rfft2``-shaped transfer function of a centred line ``blur.length`` px long at ``blur.angle``.

    A uniform line's spectrum is a sinc across it: ``sinc(length * (fx cos a + fy sin a))``, real because the
    line is centred on the origin.
    """
    fy, fx = _frequencies(*shape)
    along = fx * np.float32(np.cos(blur.angle)) + fy * np.float32(np.sin(blur.angle))
    otf: np.ndarray = np.sinc(np.float32(blur.length) * along).astype(np.float32)
    return otf


def _stretch(picture: np.ndarray) -> np.ndarray:
    """``picture`` stretched to 0-255 between robust lows and highs (mean -/+ 2.5 standard deviations)."""
    sample = picture[::4, ::4]
    mean, spread = float(sample.mean()), float(sample.std()) * 2.5
    lo, hi = mean - spread, mean + spread
    stretched: np.ndarray = np.clip((picture - lo) * np.float32(255.0 / max(hi - lo, 1e-3)), 0, 255)
    return stretched


def estimate_blur(gray: np.ndarray) -> tuple[tuple[int, int, int, int], MotionBlur]:
    """The busiest window of ``gray`` and the motion blur estimated in it (see the module's docstring)."""
    top, left, height, width = window = busiest_window(gray)
    crop = gray[top:top + height, left:left + width].astype(np.float32)
    taper = _taper(height, width)
    spectrum = _spectrum(crop, taper)
    angle = blur_direction(spectrum, (height, width))
    return window, MotionBlur(angle, _Autocorrelation(spectrum, (height, width)).length_along(angle))


def _kurtosis(picture: np.ndarray) -> float:
    """The kurtosis of ``picture``'s values inside a 32 px border: low for a two-toned picture."""
    inner = picture[32:-32, 32:-32] if min(picture.shape) > 96 else picture
    spread = float(inner.std())
    if spread == 0:
        return float("inf")
    z = (inner - float(inner.mean())) / spread
    return float((z * z * z * z).mean())


def _striped(crop: np.ndarray) -> bool:
    """Whether the middle :data:`STRIPES_SIDE` px of ``crop`` look like stripes (see :data:`STRIPES_MIN`)."""
    height, width = crop.shape
    side_y, side_x = min(STRIPES_SIDE, height), min(STRIPES_SIDE, width)
    top, left = (height - side_y) // 2, (width - side_x) // 2
    middle = crop[top:top + side_y, left:left + side_x]
    spectrum = _spectrum(middle, _taper(side_y, side_x))
    return stripiness(spectrum, (side_y, side_x)) >= STRIPES_MIN


def deblurred_crops(gray: np.ndarray, smear_min: float = SMEAR_MIN) -> Iterator[np.ndarray]:
    """Restorations of ``gray``'s busiest window as ``uint8``, twice enlarged: of those at the angles of
    :data:`ANGLE_OFFSETS_DEG` around the estimate (each with its own length), the :data:`READS` least kurtotic,
    least kurtotic first (the caller stops at a read).

    None when the window does not look smeared (:func:`smear` below ``smear_min``): a sharp frame, or most
    frames without a code, cost a gradient sum and no transform."""
    window = top, left, height, width = busiest_window(gray, CROP)
    if height < 32 or width < 32 or smear(gray, window) < smear_min:
        return
    crop = gray[top:top + height, left:left + width].astype(np.float32)
    if _striped(crop):
        return
    shape = (height, width)
    spectrum = _spectrum(crop, _taper(height, width))
    angle = blur_direction(spectrum, shape)
    correlations = _Autocorrelation(spectrum, shape)
    restorations: list[tuple[float, int, np.ndarray]] = []
    for index, offset in enumerate(ANGLE_OFFSETS_DEG):
        theta = (angle + np.radians(offset)) % np.pi
        blur = MotionBlur(float(theta), correlations.length_along(theta))
        picture = np.fft.irfft2(spectrum * wiener(shape, blur), s=shape)
        kurtosis = _kurtosis(picture)
        if index == 0 and kurtosis > KURTOSIS_MAX:
            return  # not a code: a room, a screen of text (the estimate itself gives a two-toned code)
        restorations.append((kurtosis, index, picture))
    restorations.sort(key=lambda restoration: restoration[:2])
    for _, _, picture in restorations[:READS]:
        yield _linear2x(_stretch(picture)).astype(np.uint8)


def _linear2x(picture: np.ndarray) -> np.ndarray:
    """``picture`` enlarged twice in each direction by linear interpolation (numpy only): along the rows, then
    down the columns, each midpoint written in place (a fifth of the time of interpolating in the output)."""
    height, width = picture.shape
    rows = np.empty((height, 2 * width), np.float32)
    rows[:, 0::2] = picture
    np.add(picture[:, :-1], picture[:, 1:], out=rows[:, 1:-1:2])
    rows[:, 1:-1:2] *= np.float32(0.5)
    rows[:, -1] = picture[:, -1]
    big = np.empty((2 * height, 2 * width), np.float32)
    big[0::2] = rows
    np.add(rows[:-1], rows[1:], out=big[1:-1:2])
    big[1:-1:2] *= np.float32(0.5)
    big[-1] = rows[-1]
    return big
