"""Barcode decoders for camera frames: zxing-cpp in passes (the default) and pyzbar, behind one small interface.

``BarcodeDecoder.decode(frame) -> list[str]`` returns the text of every QR code and Code128 barcode in a
frame, in the order found, without duplicates. Only text is returned: a symbol whose bytes are not valid
UTF-8 is skipped (and logged at debug level). A frame that is not a ``uint8`` grayscale/BGR/BGRA array
raises ``ValueError``.

:class:`ZxingDecoder` reads a frame in passes, each only when the earlier ones found nothing (:data:`PASSES`):
``raw`` (the frame as it is: small and distant codes keep their 1-2 px modules), ``denoise`` (a 3x3 Gaussian
first: what rescues low light and sensor noise), ``global`` (zxing-cpp's GlobalHistogram binariser, another
threshold), ``upscale`` (the frame enlarged twice with a sharp cubic kernel: small codes), ``flatten`` (the
frame minus its local mean over a 33 px box, contrast doubled: a glare's bright slope is taken off the code's
modules) and ``deblur`` (a linear motion blur estimated in the frame's busiest window and undone there,
:mod:`gate.camera.deblur`: codes waved at the camera). The default here is ``raw`` then ``denoise``; a gate's
config defaults to ``raw``, ``denoise``, ``deblur`` on every frame. With ``alternate`` the passes after the second
run one per frame in turn, since a code held up stays in view for many frames, and with ``extra_every=N`` they
run on one frame in N only, which bounds their cost on frames without a code. Measured in
``benchmarks/camera_decode.py``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

Symbology = Literal["qr", "code128"]
DEFAULT_SYMBOLOGIES: tuple[Symbology, ...] = ("qr", "code128")
DECODER_NAMES = ("zxing", "pyzbar")
PassName = Literal["raw", "denoise", "global", "upscale", "flatten", "deblur"]
PASSES: tuple[PassName, ...] = ("raw", "denoise", "global", "upscale", "flatten", "deblur")
FLATTEN_RADIUS = 16
"""Half the side (px) of the box whose mean is the background the ``flatten`` pass subtracts."""
FLATTEN_GAIN = 2
DEFAULT_PASSES: tuple[PassName, ...] = ("raw", "denoise")


def to_gray(frame: Any) -> np.ndarray:
    """Return ``frame`` as a contiguous 2-D ``uint8`` grayscale array (BGR/BGRA are converted).

    Raises ``ValueError`` for anything else (wrong type, dtype, shape or an empty image).
    """
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame is a {type(frame).__name__}, not a numpy array")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame dtype is {frame.dtype}, expected uint8")
    if frame.size == 0:
        raise ValueError("frame is empty")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    if frame.ndim == 3 and frame.shape[2] in (3, 4):
        import cv2  # lazy: only camera gates need OpenCV

        code = cv2.COLOR_BGR2GRAY if frame.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        return cv2.cvtColor(np.ascontiguousarray(frame), code)
    raise ValueError(f"frame shape {frame.shape} is not grayscale, BGR or BGRA")


def denoise_frame(gray: np.ndarray) -> np.ndarray:
    """Smooth sensor noise with a 3x3 Gaussian: both decoders then read more codes, and faster.

    Measured on synthetic camera frames: pyzbar reads Code128 under noise far more often with it, and both
    decoders spend less time on noise edges. Set ``denoise=False`` on a decoder to skip it.

    The kernel is OpenCV's ``GaussianBlur(gray, (3, 3), 0)`` one, ``[1 2 1] / 4`` across and down with mirrored
    borders, computed with numpy in integers (rounded), so that a Pi camera gate, whose picamera2 frames are
    already grayscale, needs no OpenCV at all.
    """
    padded = np.pad(gray, 1, mode="reflect").astype(np.uint16)
    columns = padded[:-2] + 2 * padded[1:-1] + padded[2:]
    total = columns[:, :-2] + 2 * columns[:, 1:-1] + columns[:, 2:]
    smoothed: np.ndarray = ((total + 8) >> 4).astype(np.uint8)
    return smoothed


def upscale_frame(gray: np.ndarray) -> np.ndarray:
    """Return ``gray`` enlarged twice in each direction with a sharp cubic kernel (OpenCV when present).

    Without OpenCV (a Pi camera gate) the pixels are repeated, which still gives zxing-cpp's detector twice
    the samples per module.
    """
    try:
        import cv2
    except ImportError:
        return np.ascontiguousarray(np.repeat(np.repeat(gray, 2, axis=0), 2, axis=1))
    return np.asarray(cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC), dtype=np.uint8)


def _box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """The mean of ``image`` (2-D ``int32``) over a ``2 * radius + 1`` px box around each pixel, edges repeated."""
    side = 2 * radius + 1
    height, width = image.shape
    padded = np.pad(image, radius, mode="edge")
    # the column sums over the box: one running sum down the rows (numpy's cumsum along axis 0 is far slower)
    columns = np.empty((height, padded.shape[1]), np.int32)
    running = padded[:side].sum(axis=0, dtype=np.int32)
    columns[0] = running
    for row in range(1, height):
        running += padded[row + side - 1] - padded[row - 1]
        columns[row] = running
    sums = np.zeros((height, padded.shape[1] + 1), np.int32)
    np.cumsum(columns, axis=1, dtype=np.int32, out=sums[:, 1:])
    mean: np.ndarray = (sums[:, side:] - sums[:, :width]) // (side * side)
    return mean


def flatten_frame(gray: np.ndarray, radius: int = FLATTEN_RADIUS, gain: int = FLATTEN_GAIN) -> np.ndarray:
    """``gray`` minus its local mean (a box about ``2 * radius + 1`` px wide), times ``gain``, around 128.

    A reflection on a phone screen raises the light level smoothly over a part of the code and squeezes the
    modules' contrast there; taking the local background off leaves the modules' edges alone. Pixels the
    reflection saturated stay lost. The background is computed at half size (numpy only).
    """
    height, width = gray.shape
    even = gray[: height // 2 * 2, : width // 2 * 2].astype(np.int32)
    half = (even[0::2, 0::2] + even[1::2, 0::2] + even[0::2, 1::2] + even[1::2, 1::2]) // 4
    background = np.repeat(np.repeat(_box_mean(half, max(radius // 2, 1)), 2, axis=0), 2, axis=1)
    if background.shape != gray.shape:
        background = np.pad(background, ((0, height - background.shape[0]), (0, width - background.shape[1])),
                            mode="edge")
    flattened: np.ndarray = np.clip(128 + gain * (gray.astype(np.int32) - background), 0, 255).astype(np.uint8)
    return flattened


def _texts(payloads: Iterable[bytes], decoder: str) -> list[str]:
    """Decode symbol payloads as UTF-8, dropping undecodable and repeated ones, keeping order."""
    texts: list[str] = []
    for payload in payloads:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            log.debug("decoder=%s skipped a symbol of %d bytes that is not UTF-8", decoder, len(payload))
            continue
        if text and text not in texts:
            texts.append(text)
    return texts


class BarcodeDecoder(ABC):
    """Find codes in one frame."""

    name: str = "decoder"

    @abstractmethod
    def decode(self, frame: np.ndarray) -> list[str]:
        """Return the texts of the codes found in ``frame`` (empty when none)."""


class ZxingDecoder(BarcodeDecoder):
    """zxing-cpp (``zxingcpp.read_barcodes``) in passes: robust to blur, tilt and low contrast, and fast.

    ``passes`` (see :data:`PASSES`) run in order until one finds a code; ``alternate`` runs the passes after
    the second one per frame in turn. ``try_invert`` also finds light-on-dark codes (phones in dark mode);
    ``try_rotate``/``try_downscale`` are zxing-cpp's own options, used by the first pass (later passes look
    for QR codes again, which need no rotation, and Code 128 is read upright or sideways by the first).
    ``denoise=False`` is the old single pass without the 3x3 Gaussian, ``denoise=True`` with it (both kept
    for the benchmark's comparison with the single-pass decoder of before); ``passes`` overrides them.
    ``extra_every`` (>= 1): the passes after the second run on one frame in that many (the others stop after
    two passes), which bounds their cost on frames without a code.
    """

    name = "zxing"

    def __init__(
        self,
        symbologies: Sequence[Symbology] = DEFAULT_SYMBOLOGIES,
        try_rotate: bool = True,
        try_downscale: bool = True,
        try_invert: bool = True,
        denoise: bool | None = None,
        passes: Sequence[PassName] | None = None,
        alternate: bool = False,
        extra_every: int = 1,
    ) -> None:
        import zxingcpp

        mapping = {"qr": zxingcpp.BarcodeFormat.QRCode, "code128": zxingcpp.BarcodeFormat.Code128}
        unknown = [s for s in symbologies if s not in mapping]
        if unknown or not symbologies:
            raise ValueError(f"unsupported symbologies {unknown or symbologies}; use {sorted(mapping)}")
        if passes is None:
            passes = DEFAULT_PASSES if denoise is None else ("denoise",) if denoise else ("raw",)
        bad = [p for p in passes if p not in PASSES]
        if bad or not passes or len(set(passes)) != len(passes):
            raise ValueError(f"bad passes {list(passes)}; use distinct names among {', '.join(PASSES)}")
        if extra_every < 1:
            raise ValueError(f"extra_every must be >= 1, not {extra_every}")
        self._zxing = zxingcpp
        self.extra_every = extra_every
        self._frame_turn = 0
        self.symbologies = tuple(symbologies)
        self._formats = zxingcpp.BarcodeFormats([mapping[s] for s in symbologies])
        self._try_rotate, self._try_downscale, self._try_invert = try_rotate, try_downscale, try_invert
        self.passes: tuple[PassName, ...] = tuple(passes)
        self.alternate = alternate
        self._turn = 0
        self.pass_hits: dict[str, int] = dict.fromkeys(self.passes, 0)
        """How many frames each pass decoded (for the benchmark and the guard's page)."""

    def _read(self, gray: np.ndarray, first: bool, binarizer: Any = None) -> list[str]:
        options: dict[str, Any] = {"formats": self._formats, "try_invert": self._try_invert}
        if first:
            options.update(try_rotate=self._try_rotate, try_downscale=self._try_downscale)
        else:
            options.update(try_rotate=False, try_downscale=self._try_downscale)
        if binarizer is not None:
            options["binarizer"] = binarizer
        results = self._zxing.read_barcodes(gray, **options)
        return _texts((r.bytes for r in results if r.valid), self.name)

    def _run_pass(self, name: PassName, gray: np.ndarray, first: bool) -> list[str]:
        if name == "raw":
            return self._read(gray, first)
        if name == "denoise":
            return self._read(denoise_frame(gray), first)
        if name == "global":
            return self._read(gray, first, self._zxing.Binarizer.GlobalHistogram)
        if name == "flatten":
            return self._read(flatten_frame(gray), first)
        if name == "deblur":
            return self._deblur(gray)
        return self._read(upscale_frame(gray), first)

    def _deblur(self, gray: np.ndarray) -> list[str]:
        """Read the busiest window restored from motion blur (tries a few estimates, stops at a read)."""
        from .deblur import deblurred_crops

        for restored in deblurred_crops(gray):
            texts = self._read(restored, first=False)
            if texts:
                return texts
        return []

    def schedule(self) -> tuple[PassName, ...]:
        """The passes the next frame gets: all of them, or with ``alternate`` the first two and one more; with
        ``extra_every=N`` the first two only, except on one frame in N."""
        if len(self.passes) <= 2:
            return self.passes
        turn, self._frame_turn = self._frame_turn, self._frame_turn + 1
        if turn % self.extra_every:
            return self.passes[:2]
        if not self.alternate:
            return self.passes
        extra = self.passes[2:]
        chosen = extra[self._turn % len(extra)]
        self._turn += 1
        return (*self.passes[:2], chosen)

    def decode(self, frame: np.ndarray) -> list[str]:
        """Return the texts of the codes in ``frame``, from the first pass that finds any."""
        gray = to_gray(frame)
        for index, name in enumerate(self.schedule()):
            texts = self._run_pass(name, gray, first=index == 0)
            if texts:
                self.pass_hits[name] += 1
                return texts
        return []


class PyzbarDecoder(BarcodeDecoder):
    """pyzbar (the ZBar library): widely packaged, weaker than zxing-cpp on tilted or blurred codes.

    It drives ZBar through pyzbar's ctypes wrapper rather than ``pyzbar.decode`` so that it can ask ZBar for
    the raw bytes (``ZBAR_CFG_BINARY``, ZBar >= 0.23): otherwise ZBar guesses a charset and turns bytes that
    are not UTF-8 into Latin-1 text. With an older ZBar the option is refused and logged once.
    """

    name = "pyzbar"
    _CFG_BINARY = 4  # ZBAR_CFG_BINARY in zbar.h (0.23+); pyzbar's enum predates it
    _FOURCC_GRAY8 = 808466521  # fourcc("Y800"), ZBar's 8-bit grayscale

    def __init__(self, symbologies: Sequence[Symbology] = DEFAULT_SYMBOLOGIES, denoise: bool = True) -> None:
        from pyzbar import pyzbar, wrapper

        mapping = {"qr": pyzbar.ZBarSymbol.QRCODE, "code128": pyzbar.ZBarSymbol.CODE128}
        unknown = [s for s in symbologies if s not in mapping]
        if unknown or not symbologies:
            raise ValueError(f"unsupported symbologies {unknown or symbologies}; use {sorted(mapping)}")
        self.denoise = denoise
        self._zbar = wrapper
        self._scanner = wrapper.zbar_image_scanner_create()
        self.raw_bytes = True
        wanted = {mapping[s] for s in symbologies}
        for symbol in pyzbar.ZBarSymbol:
            wrapper.zbar_image_scanner_set_config(self._scanner, symbol, wrapper.ZBarConfig.CFG_ENABLE, 0)
        for symbol in wanted:
            wrapper.zbar_image_scanner_set_config(self._scanner, symbol, wrapper.ZBarConfig.CFG_ENABLE, 1)
            if wrapper.zbar_image_scanner_set_config(self._scanner, symbol, self._CFG_BINARY, 1) != 0:
                self.raw_bytes = False
        if not self.raw_bytes:
            log.warning("decoder=pyzbar this ZBar cannot return raw bytes; it transcodes non-UTF-8 codes")

    def decode(self, frame: np.ndarray) -> list[str]:
        """Return the texts of the QR codes and Code128 barcodes in ``frame``."""
        from ctypes import c_char_p, c_void_p, cast, string_at

        gray = to_gray(frame)
        if self.denoise:
            gray = denoise_frame(gray)
        height, width = gray.shape
        pixels = gray.tobytes()
        zbar = self._zbar
        image = zbar.zbar_image_create()
        payloads: list[bytes] = []
        try:
            zbar.zbar_image_set_format(image, self._FOURCC_GRAY8)
            zbar.zbar_image_set_size(image, width, height)
            zbar.zbar_image_set_data(image, cast(c_char_p(pixels), c_void_p), len(pixels), None)
            if zbar.zbar_scan_image(self._scanner, image) < 0:
                raise ValueError("ZBar refused the image")
            symbol = zbar.zbar_image_first_symbol(image)
            while symbol:
                data = zbar.zbar_symbol_get_data(symbol)
                payloads.append(string_at(data, zbar.zbar_symbol_get_data_length(symbol)))
                symbol = zbar.zbar_symbol_next(symbol)
        finally:
            zbar.zbar_image_destroy(image)
        return _texts(payloads, self.name)

    def __del__(self) -> None:
        scanner = getattr(self, "_scanner", None)
        if scanner:
            self._zbar.zbar_image_scanner_destroy(scanner)
            self._scanner = None


def build_decoder(
    name: str = "zxing",
    symbologies: Sequence[Symbology] = DEFAULT_SYMBOLOGIES,
    passes: Sequence[PassName] = DEFAULT_PASSES,
    alternate: bool = False,
    extra_every: int = 1,
) -> BarcodeDecoder:
    """Return the decoder called ``name`` ("zxing" or "pyzbar"); ``ValueError`` for another name.

    ``passes``, ``alternate`` and ``extra_every`` are zxing-cpp's (see :class:`ZxingDecoder`); pyzbar reads
    in one pass.
    """
    if name == "zxing":
        return ZxingDecoder(symbologies, passes=passes, alternate=alternate, extra_every=extra_every)
    if name == "pyzbar":
        return PyzbarDecoder(symbologies)
    raise ValueError(f"unknown decoder {name!r}; use one of {', '.join(DECODER_NAMES)}")
