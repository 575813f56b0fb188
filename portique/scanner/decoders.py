"""QR decoders behind one interface: every code's text in a frame, never an exception.

Three decoders share the ``Decoder`` protocol:

* ``ZxingDecoder``: zxing-cpp, one pass (the fastest and best single reader here);
* ``ZbarDecoder``: pyzbar over the system's libzbar, one pass (a second, independent
  backend);
* ``PipelineDecoder`` (the default): zxing-cpp first; a frame it read is returned at
  once. When it read nothing, the patches of the frame that look like QR modules (grey
  steps strong both across and along the rows, over a compact square-ish area; a
  pre-check on every fourth pixel rejects a frame without a code's worth of such
  texture, so an empty frame costs little) are resampled as upright squares,
  perspective undone and upscaled 3x, and read again: on tilted, dim, moiré-striped
  phone screens this is what reads the codes zxing-cpp cannot even locate
  (benchmarks/decode_hard.py). Then, only where it located something it could not read
  (finder patterns, a failed checksum), a short chain of retries on a window around it:
  upscaled 2x, then also contrast-equalised (CLAHE), sharpened, or
  upscaled 3x. A small frame (longer side up to 500 pixels, which zxing-cpp scans at one
  size only) in which nothing at all was located gets one more pass at half size (a code
  filling a small photo). pyzbar can be added as a last retry (``zbar=True``) but is off:
  on the measured sets it read nothing zxing-cpp's retries missed, and it guesses the
  character set of non-UTF-8 payloads (two wrong texts on real photos).
  A camera frame (640x480 and up) with nothing code-like in it costs one zxing-cpp pass
  and the texture check, so the pipeline runs near the raw reader's pace on the frames a
  gate mostly sees; the
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
_TEXTURE = 16
"""Mean absolute grey step, across and along the rows alike, above which a patch of the
frame looks like QR modules (on every second pixel of every second row)."""
_TEXTURE_BOX = 7
_CODE_AREA = 8000
"""Frame pixels of QR-module texture (on the coarse pre-check) below which a frame is not
searched for codes to rectify: a ticket's code (71 modules and more across) at 1.5 pixels
per module and tilted 45 degrees covers about 8000, and its texture spreads past its
edges (tuning part of benchmarks/decode_hard.py: every frame with a code at 15000 and
more, 2 of 40 empty frames above 8000)."""
_RECTIFY_SCALE = 3.0
"""A rectified code is drawn at this many pixels per frame pixel of its quadrilateral."""
_RECTIFY_MAX = 560
"""Largest side of a rectified code, pixels (bounds the work of one rectification)."""


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

    def __init__(self, *, zbar: bool = False, max_retry_pixels: int = 1_600_000,
                 rectify: bool = True) -> None:
        super().__init__()
        self._rectify = rectify
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
        texts = _unique([b.text for b in found if b.valid])
        if texts:
            # read at the first pass: the frame pays for no fallback nor retry (a second
            # code in the same frame that zxing-cpp located but could not read is left
            # to the next frames, where the camera sees it again)
            return texts
        if self._rectify:
            # nothing read: a code zxing-cpp could not locate (tilted, dim, small) or
            # located but not read is most often read once its perspective is undone
            try:
                texts = self._rectified(gray)
            except Exception as exc:  # a decoder error must never stop the gate
                self._failed(exc)
            if texts:
                return texts
        if not found and max(gray.shape) <= _ZXING_DOWNSCALE_ABOVE:
            return texts or self._half(gray)
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

    def _rectified(self, gray: Image) -> list[str]:
        """Nothing read: where a patch looks like QR modules, its quadrilateral is
        resampled square (perspective undone, upscaled) and read again."""
        quads = _code_quads(gray)
        if not quads:
            return []
        self.retries += 1
        for quad in quads:
            rectified = _rectify(gray, quad)
            texts = _unique([b.text for b in zxingcpp.read_barcodes(
                rectified, formats=_QR, try_downscale=False, try_invert=False)])
            if texts:
                self.rescued += 1
                return texts
        return []

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


def _texture_mask(small: Image, box: int) -> Image:
    """255 where the mean absolute grey step, across and along the rows alike, over a
    box x box neighbourhood of `small` is above ``_TEXTURE``."""
    across = cv2.absdiff(small[:, 1:], small[:, :-1])[:-1, :]
    along = cv2.absdiff(small[1:, :], small[:-1, :])[:, :-1]
    texture = cv2.min(cv2.blur(across, (box, box)), cv2.blur(along, (box, box)))
    _, mask = cv2.threshold(texture, _TEXTURE, 255, cv2.THRESH_BINARY)
    return np.asarray(mask, dtype=np.uint8)


def _code_like(gray: Image) -> Region | None:
    """The pre-check: on every fourth pixel of every fourth row (a sixteenth of the
    frame, copied contiguous: half the cost of working on the strided view), at least
    ``_CODE_AREA`` frame pixels' worth of QR-module texture? Then the box around it,
    in frame pixels with a margin, where the finer search runs; else None, and the
    frame is neither searched further nor resampled (most frames a gate sees)."""
    mask = _texture_mask(np.ascontiguousarray(gray[::4, ::4]), _TEXTURE_BOX // 2 + 1)
    if cv2.countNonZero(mask) * 16 < _CODE_AREA:
        return None
    x, y, w, h = cv2.boundingRect(mask)
    height, width = gray.shape[:2]
    margin = 4 * _TEXTURE_BOX  # frame pixels: the finer boxes reach past the coarse ones
    return Region(max(0, 4 * x - margin), max(0, 4 * y - margin),
                  min(width, 4 * (x + w) + margin), min(height, 4 * (y + h) + margin))


def _code_quads(gray: Image, most: int = 2) -> list[npt.NDArray[np.float32]]:
    """Quadrilaterals (frame pixels) of the patches that look like QR modules, largest
    first: grey steps strong both across and along the rows over a compact, roughly
    square area. Cheap (the pre-check on every fourth pixel, then every second pixel of
    every second row in its box only, 8-bit box sums), so a frame with nothing
    code-like costs little more than its one zxing-cpp pass."""
    if min(gray.shape) < 4 * _TEXTURE_BOX:
        return []
    roi = _code_like(gray)
    if roi is None:
        return []
    # the finer search on the pre-check's box only (offsets kept even: every second
    # pixel of the frame, as on the whole frame)
    x0, y0 = roi.x0 & ~1, roi.y0 & ~1
    mask = _texture_mask(np.ascontiguousarray(gray[y0:roi.y1:2, x0:roi.x1:2]), _TEXTURE_BOX)
    if min(mask.shape) < 2:
        return []
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    found: list[tuple[float, npt.NDArray[np.float32]]] = []
    for contour in contours:
        area = float(cv2.contourArea(contour))
        if area < 200:  # below ~28x28 frame pixels: too small for a ticket's code
            continue
        _, _, w, h = cv2.boundingRect(contour)
        if max(w, h) > 3 * min(w, h) or area < 0.3 * w * h:
            continue  # a line of text, a stripe, a ragged texture
        hull = cv2.convexHull(contour)
        perimeter = cv2.arcLength(hull, True)
        quad = None
        for epsilon in (0.02, 0.04, 0.06, 0.08, 0.1):
            corners = cv2.approxPolyDP(hull, epsilon * perimeter, True)
            if len(corners) == 4:
                quad = corners[:, 0, :].astype(np.float32)
                break
        if quad is None:
            quad = cv2.boxPoints(cv2.minAreaRect(contour)).astype(np.float32)
        found.append((area, quad * 2 + 1 + np.array([x0, y0], np.float32)))
    found.sort(key=lambda item: -item[0])
    return [quad for _, quad in found[:most]]


def _rectify(gray: Image, quad: npt.NDArray[np.float32]) -> Image:
    """The quadrilateral resampled as an upright square with a margin around it (the
    frame's own pixels there: the quiet zone), perspective undone."""
    centre = quad.mean(axis=0)
    quad = quad[np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))]
    side = float(np.mean([np.linalg.norm(quad[i] - quad[(i + 1) % 4]) for i in range(4)]))
    # the perspective is undone at about the frame's own scale (a small bicubic warp),
    # then the square is upscaled by a separable bicubic resize: the same reads as one
    # warp straight to the large size, at a fraction of its cost
    size = int(min(_RECTIFY_MAX / _RECTIFY_SCALE, max(40.0, side)))
    margin = int(size * 0.15)
    square = np.array([[margin, margin], [margin + size, margin],
                       [margin + size, margin + size], [margin, margin + size]], np.float32)
    homography = cv2.getPerspectiveTransform(quad, square)
    out = size + 2 * margin
    flat = cv2.warpPerspective(gray, homography, (out, out), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(cv2.resize(flat, None, fx=_RECTIFY_SCALE, fy=_RECTIFY_SCALE,
                                 interpolation=cv2.INTER_CUBIC), dtype=np.uint8)


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
