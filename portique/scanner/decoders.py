"""QR decoders behind one interface: every code's text in a frame, never an exception.

Three decoders share the ``Decoder`` protocol:

* ``ZxingDecoder``: zxing-cpp, one pass (the fastest and best single reader here);
* ``ZbarDecoder``: pyzbar over the system's libzbar, one pass (a second, independent
  backend);
* ``PipelineDecoder`` (the default): zxing-cpp first; only where it located something it
  could not read (finder patterns, a failed checksum), a short chain of retries on a
  window around it: upscaled 2x, then also contrast-equalised (CLAHE), sharpened, or
  upscaled 3x. A small frame (longer side up to 500 pixels, which zxing-cpp scans at one
  size only) in which nothing at all was located gets one more pass at half size (a code
  filling a small photo). pyzbar can be added as a last retry (``zbar=True``) but is off:
  on the measured sets it read nothing zxing-cpp's retries missed, and it guesses the
  character set of non-UTF-8 payloads (two wrong texts on real photos).
  A camera frame (640x480 and up) with nothing code-like in it costs one zxing-cpp pass,
  so the pipeline runs at the raw reader's pace on the frames a gate mostly sees; the
  retries are where the read rate comes from (docs/scanner.md gives the measurements).

Only QR codes are looked for (a striped shirt is not a barcode). Decoders never invent
text: QR's own Reed-Solomon check decides what is read, and every retry is a plain image
transform fed to the same readers. A backend error is logged and counted in
``errors``; ``decode`` then returns what it has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

from portique.scanner.config import DecoderName
from portique.scanner.errors import ScannerError, UnknownDecoderError

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
"""A frame: 2-D grey, or 3-D BGR / BGRA, 8 bits per channel (as OpenCV reads it)."""

_QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
_WINDOW = 400
"""Smallest side of the window retried around a located but unread code, pixels."""
_SMALL_FRAME = 640 * 480
"""Frames of at most this many pixels are retried whole."""
_ZXING_DOWNSCALE_ABOVE = 500
"""zxing-cpp also scans a downscaled copy of a frame whose longer side is above this many
pixels (its default ``downscaleThreshold``); smaller frames are scanned at one size only."""


class Decoder(Protocol):
    """Reads every QR code in a frame. Must not raise on any frame."""

    @property
    def name(self) -> str: ...

    def decode(self, image: Image) -> list[str]:
        """The text of every code found, each once, in the order found."""
        ...


DEFAULT_DECODER = DecoderName.PIPELINE


def to_gray(image: Image) -> Image:
    """The frame as 2-D 8-bit grey (the readers binarise grey; colour adds nothing)."""
    if image.dtype != np.uint8:
        raise ScannerError(f"frames must be 8-bit, got {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY), dtype=np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    raise ScannerError(f"frames must be grey, BGR or BGRA, got shape {image.shape}")


def _unique(texts: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(texts))


@dataclass(frozen=True, slots=True)
class Region:
    """Where zxing-cpp located a code it could not read: a box in frame pixels."""

    x0: int
    y0: int
    x1: int
    y1: int


class _Counted:
    """Shared error counting: a decoder logs and counts what its backend raised."""

    name = "?"

    def __init__(self) -> None:
        self.errors = 0
        """Backend exceptions caught so far (each is logged with the decoder's name)."""

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        log.warning("decoder error", extra={"decoder": self.name,
                                            "error": f"{type(exc).__name__}: {exc}"})


class ZxingDecoder(_Counted):
    """zxing-cpp, one pass over the grey frame."""

    name = DecoderName.ZXING.value

    def decode(self, image: Image) -> list[str]:
        try:
            return _unique([b.text for b in zxingcpp.read_barcodes(to_gray(image), formats=_QR)])
        except Exception as exc:  # a decoder error must never stop the gate
            self._failed(exc)
            return []


class ZbarDecoder(_Counted):
    """pyzbar over the system's libzbar (libzbar0), one pass over the grey frame."""

    name = DecoderName.ZBAR.value

    def __init__(self) -> None:
        super().__init__()
        try:
            from pyzbar import pyzbar
        except ImportError as exc:  # pyzbar raises ImportError when libzbar is missing
            raise ScannerError(
                f"the zbar decoder needs the system library libzbar0 ({exc}); install it "
                "with `make system-deps` or `apt-get install libzbar0`") from None
        self._pyzbar = pyzbar
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]

    def decode(self, image: Image) -> list[str]:
        try:
            found = self._pyzbar.decode(to_gray(image), symbols=self._symbols)
            return _unique([_text(symbol.data) for symbol in found])
        except Exception as exc:  # a decoder error must never stop the gate
            self._failed(exc)
            return []


def _text(data: bytes) -> str:
    # zbar hands over the payload already converted to UTF-8; bytes that are not UTF-8
    # (binary payloads) are kept one character per byte rather than dropped.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


Transform = Callable[[Image], Image]


def _scale(factor: float) -> Transform:
    def scale(image: Image) -> Image:
        return np.asarray(cv2.resize(image, None, fx=factor, fy=factor,
                                     interpolation=cv2.INTER_CUBIC), dtype=np.uint8)
    return scale


_CLAHE = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))


def _equalise(image: Image) -> Image:
    return np.asarray(_CLAHE.apply(image), dtype=np.uint8)


def _sharpen(image: Image) -> Image:
    soft = cv2.GaussianBlur(image, (0, 0), 2.0)
    return np.asarray(cv2.addWeighted(image, 1.8, soft, -0.8, 0), dtype=np.uint8)


def _chain(*steps: Transform) -> Transform:
    def run(image: Image) -> Image:
        for step in steps:
            image = step(image)
        return image
    return run


class PipelineDecoder(_Counted):
    """The default: zxing-cpp, then cheap retries on regions it located but could not read.

    ``max_retry_pixels`` bounds the work of one retry (an upscaled region larger than this
    is upscaled less), so one hard frame cannot stall the camera loop.
    """

    name = DecoderName.PIPELINE.value

    def __init__(self, *, zbar: bool = False, max_retry_pixels: int = 1_600_000) -> None:
        super().__init__()
        self._zbar: ZbarDecoder | None = None
        if zbar:
            try:
                self._zbar = ZbarDecoder()
            except ScannerError as exc:
                log.warning("pipeline runs without zbar", extra={"reason": str(exc)})
        self._max_retry_pixels = max_retry_pixels
        self.retries = 0
        """Frames on which the retry chain ran."""
        self.rescued = 0
        """Frames read only thanks to a retry."""

    def decode(self, image: Image) -> list[str]:
        try:
            gray = to_gray(image)
            found = zxingcpp.read_barcodes(gray, formats=_QR, return_errors=True)
        except Exception as exc:  # a decoder error must never stop the gate
            self._failed(exc)
            return []
        if not found and max(gray.shape) <= _ZXING_DOWNSCALE_ABOVE:
            return self._half(gray)
        texts = _unique([b.text for b in found if b.valid])
        read = [_box(b.position) for b in found if b.valid]
        # A located code that overlaps one already read is that code, seen again.
        unread = [_box(b.position) for b in found if not b.valid]
        regions = _merge([_window(box, gray.shape) for box in unread
                          if not any(_overlap(box, done) for done in read)])
        if not regions:
            return texts
        self.retries += 1
        try:
            more = self._retry(gray, regions)
        except Exception as exc:  # a decoder error must never stop the gate
            self._failed(exc)
            return texts
        if set(more) - set(texts):
            self.rescued += 1
        return _unique(texts + more)

    def _half(self, gray: Image) -> list[str]:
        """One more pass at half size on a small frame where nothing was located: a
        large code filling a small photo can be found only with fewer pixels per module."""
        if min(gray.shape) < 2:
            return []
        self.retries += 1
        try:
            half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
            texts = self._read(np.asarray(half, dtype=np.uint8))
        except Exception as exc:  # a decoder error must never stop the gate
            self._failed(exc)
            return []
        if texts:
            self.rescued += 1
        return texts

    def _retry(self, gray: Image, regions: list[Region]) -> list[str]:
        texts: list[str] = []
        for region in regions:
            window = gray[region.y0:region.y1, region.x0:region.x1]
            texts += self._retry_window(window)
        return texts

    def _retry_window(self, window: Image) -> list[str]:
        for transform in self._transforms(window):
            texts = self._read(transform(window))
            if texts:
                return texts
        if self._zbar is not None:
            return self._zbar.decode(_scale(self._upscale(window, 2.0))(window))
        return []

    def _upscale(self, window: Image, wanted: float) -> float:
        pixels = window.shape[0] * window.shape[1]
        fit: float = (self._max_retry_pixels / max(pixels, 1)) ** 0.5
        return min(wanted, max(1.0, fit))

    def _transforms(self, window: Image) -> list[Transform]:
        up = _scale(self._upscale(window, 2.0))
        steps: list[Transform] = [up, _chain(up, _equalise), _chain(up, _sharpen)]
        if self._upscale(window, 3.0) == 3.0:
            steps.append(_scale(3.0))
        # last, contrast at the size seen: a crumpled code in uneven light that the
        # upscaled passes blur rather than sharpen
        steps.append(_equalise)
        return steps

    def _read(self, image: Image) -> list[str]:
        return _unique([b.text for b in zxingcpp.read_barcodes(image, formats=_QR)])


def _window(box: Region, shape: tuple[int, ...]) -> Region:
    """The window retried around a located but unread code (the whole of a small frame)."""
    height, width = shape[:2]
    if width * height <= _SMALL_FRAME:
        return Region(0, 0, width, height)
    # zxing-cpp often locates only part of a code it cannot read (a wrong version guess,
    # three finder patterns): look at a generous window around it.
    half = max(3 * max(box.x1 - box.x0, box.y1 - box.y0), _WINDOW) // 2
    cx, cy = (box.x0 + box.x1) // 2, (box.y0 + box.y1) // 2
    return Region(max(0, cx - half), max(0, cy - half), min(width, cx + half),
                  min(height, cy + half))


def _box(position: Any) -> Region:
    points = [position.top_left, position.top_right, position.bottom_right,
              position.bottom_left]
    xs, ys = [p.x for p in points], [p.y for p in points]
    return Region(min(xs), min(ys), max(xs), max(ys))


def _overlap(a: Region, b: Region) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _merge(regions: list[Region]) -> list[Region]:
    """Overlapping boxes as one (zxing-cpp often reports one code several times)."""
    merged: list[Region] = []
    for r in sorted(regions, key=lambda r: (r.x1 - r.x0) * (r.y1 - r.y0), reverse=True):
        for i, m in enumerate(merged):
            if _overlap(r, m):
                merged[i] = Region(min(r.x0, m.x0), min(r.y0, m.y0), max(r.x1, m.x1),
                                   max(r.y1, m.y1))
                break
        else:
            merged.append(r)
    return merged


def make_decoder(name: str = DEFAULT_DECODER) -> Decoder:
    """The decoder called `name` (pipeline, zxing or zbar)."""
    try:
        which = DecoderName(name)
    except ValueError:
        known = ", ".join(d.value for d in DecoderName)
        raise UnknownDecoderError(f"unknown decoder {name!r} (known: {known})") from None
    if which is DecoderName.ZXING:
        return ZxingDecoder()
    if which is DecoderName.ZBAR:
        return ZbarDecoder()
    return PipelineDecoder()
