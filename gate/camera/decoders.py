"""Barcode decoders for camera frames: zxing-cpp (the default) and pyzbar, behind one small interface.

``BarcodeDecoder.decode(frame) -> list[str]`` returns the text of every QR code and Code128 barcode in a
frame, in the order found, without duplicates. Only text is returned: a symbol whose bytes are not valid
UTF-8 is skipped (and logged at debug level). A frame that is not a ``uint8`` grayscale/BGR/BGRA array
raises ``ValueError``.
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
    """zxing-cpp (``zxingcpp.read_barcodes``): robust to blur, tilt and low contrast, and fast.

    ``try_invert`` also finds light-on-dark codes (phones in dark mode) at some cost in speed;
    ``try_rotate``/``try_downscale`` are zxing-cpp's own options.
    """

    name = "zxing"

    def __init__(
        self,
        symbologies: Sequence[Symbology] = DEFAULT_SYMBOLOGIES,
        try_rotate: bool = True,
        try_downscale: bool = True,
        try_invert: bool = True,
        denoise: bool = True,
    ) -> None:
        import zxingcpp

        mapping = {"qr": zxingcpp.BarcodeFormat.QRCode, "code128": zxingcpp.BarcodeFormat.Code128}
        unknown = [s for s in symbologies if s not in mapping]
        if unknown or not symbologies:
            raise ValueError(f"unsupported symbologies {unknown or symbologies}; use {sorted(mapping)}")
        self._zxing = zxingcpp
        self._formats = zxingcpp.BarcodeFormats([mapping[s] for s in symbologies])
        self._try_rotate, self._try_downscale, self._try_invert = try_rotate, try_downscale, try_invert
        self.denoise = denoise

    def decode(self, frame: np.ndarray) -> list[str]:
        """Return the texts of the QR codes and Code128 barcodes in ``frame``."""
        gray = to_gray(frame)
        if self.denoise:
            gray = denoise_frame(gray)
        results = self._zxing.read_barcodes(gray, formats=self._formats, try_rotate=self._try_rotate,
                                            try_downscale=self._try_downscale, try_invert=self._try_invert)
        return _texts((r.bytes for r in results if r.valid), self.name)


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
    name: str = "zxing", symbologies: Sequence[Symbology] = DEFAULT_SYMBOLOGIES
) -> BarcodeDecoder:
    """Return the decoder called ``name`` ("zxing" or "pyzbar"); ``ValueError`` for another name."""
    if name == "zxing":
        return ZxingDecoder(symbologies)
    if name == "pyzbar":
        return PyzbarDecoder(symbologies)
    raise ValueError(f"unknown decoder {name!r}; use one of {', '.join(DECODER_NAMES)}")
