"""QR decoders behind one interface: every code's text in a frame, never an exception.

Three decoders share the ``Decoder`` protocol:

* ``ZxingDecoder``: zxing-cpp, one pass (the fastest and best single reader here);
* ``ZbarDecoder``: pyzbar over the system's libzbar, one pass (a second, independent
  backend);
* ``PipelineDecoder`` (the default): zxing-cpp first, without its inverted retry; a
  frame it read is returned at once. A frame it read nothing in and that has neither
  module texture (the pre-check below) nor anything zxing-cpp located is done: that is
  most frames a gate sees, and skipping the inverted retry there makes them cheaper than
  raw zxing-cpp's default pass. Otherwise the inverted pass runs (a light-on-dark code;
  on the pre-check's box where there is one), then the fallback, within a per-frame
  budget (``FALLBACK_PIXELS``, cheapest step first): the patches of the frame that look
  like QR modules (grey steps strong both across and along the rows, over a compact
  square-ish area; a pre-check on every fourth pixel rejects a frame without a code's
  worth of such texture, so an empty frame costs little) are resampled as upright
  squares, perspective undone and upscaled 4x, and read again: on tilted, dim,
  moiré-striped phone screens this is what reads the codes zxing-cpp cannot even locate
  (benchmarks/decode_hard.py). Where that read fails, our own module sampler
  (``portique.scanner.sampler``) reads the patch: finder patterns, a grid fitted to them
  and to the alignment patterns, each module decided by an equaliser fitted on the
  frame, the modules drawn clean for zxing-cpp (at 1.8-3 pixels per module with blur,
  zxing-cpp's binariser loses codes whose perspective is undone). Then, only where it
  located something it could not read (finder patterns, a failed checksum), a short
  chain of retries on a window around it: contrast-equalised (CLAHE), upscaled 2x, then
  also equalised or sharpened, or upscaled 3x. A small frame (longer side up to 500
  pixels, which zxing-cpp scans at one size only) in which nothing at all was located
  gets one more pass at half size (a code filling a small photo). pyzbar can be added as
  a last retry (``zbar=True``) but is off: on the measured sets it read nothing
  zxing-cpp's retries missed, and it guesses the character set of non-UTF-8 payloads
  (two wrong texts on real photos). A camera frame (640x480 and up) with nothing
  code-like in it costs one zxing-cpp pass (without inversion) and the texture check, so
  the pipeline runs at or below the raw reader's pace on the frames a gate mostly sees;
  the retries are where the read rate comes from (docs/scanner.md gives the
  measurements).

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

from portique.scanner import sampler
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
_RECTIFY_SCALE = 4.0
"""A rectified code is drawn at this many pixels per frame pixel of its quadrilateral
(4x reads 32 of the tuning part's 60 hard frames, 3x 23, 5x 34 at 1.6 times the pixels
of 4x; 2.5x fewer still)."""
_RECTIFY_MAX = 744
"""Largest side of a rectified code, pixels (bounds the work of one rectification: a
code at most 186 frame pixels across is resampled at its own scale, a larger one
shrunk to that first)."""
_RECTIFY_MARGIN = 0.15
"""Quiet zone kept around a rectified code, as a share of its side."""
_SAMPLER_SCALE = 2.0
"""The rough square the sampler looks for finder patterns in is drawn at this many
pixels per frame pixel of the quadrilateral (1x reads 21 and 20 of the tuning part's 30
hard frames at 640x480 and 1280x720, 2x 23 and 21)."""
_SAMPLER_COST = 4
"""Budget pixels charged per pixel of the sampler's square: its finder search, the grid
search, the resample and the equaliser (charged as a zxing-cpp pass on four times its
pixels; the call now costs about as much as three such passes, the charge kept so that
the retries after it keep the room they had)."""
_SAMPLER_PATCHES = 1
"""Patches of a frame the sampler reads at most (the largest first)."""
FALLBACK_PIXELS = 3_500_000
"""Pixels a frame's fallback may hand to zxing-cpp (rectified squares, retried windows,
the half-size pass), about eleven 640x480 frames: the steps run cheapest first and a
step that does not fit in what is left is skipped, so one hard frame costs at most a
few zxing-cpp passes (benchmarks/decode_hard.py: p99 per frame). At 640x480 it holds
both rectified squares (up to about 940,000 pixels each), the whole frame equalised and
the whole frame upscaled 2x (1.2 million); at 1280x720 a rectified square, a window
equalised and the same window upscaled to the 1.6 million pixels one retry may take."""


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


class _Budget:
    """What is left of one frame's fallback allowance, in pixels handed to zxing-cpp."""

    def __init__(self, pixels: int) -> None:
        self.left = pixels
        self.short = False
        """A step was skipped for want of budget."""

    def spend(self, pixels: int) -> bool:
        """Take `pixels` if they fit in what is left (then True); else note the shortfall."""
        if pixels > self.left:
            self.short = True
            return False
        self.left -= pixels
        return True


class PipelineDecoder(_Counted):
    """The default: zxing-cpp, then a bounded fallback on frames it read nothing in.

    ``max_retry_pixels`` bounds the work of one retry (an upscaled region larger than this
    is upscaled less); ``fallback_pixels`` bounds the whole fallback of one frame (pixels
    handed to zxing-cpp, steps cheapest first, a step that does not fit is skipped), so
    one hard frame cannot stall the camera loop: a frame that runs out is left unread and
    the next frames, which show the same code, try again.

    ``fallback_every`` paces the fallback on a stream of frames: after a frame on which
    it ran (whatever it read), the next ``fallback_every - 1`` frames get zxing-cpp's
    pass only. 1 (the default, and the camera loop's) runs it on every frame that needs
    it; 2 halves the fallback's share of the frames, at the cost of reads: a frame's wait
    on a code only the fallback reads, and codes it reads on few frames
    (docs/PERFORMANCE.md, "The lane's speed").
    """

    name = DecoderName.PIPELINE.value

    def __init__(self, *, zbar: bool = False, max_retry_pixels: int = 1_600_000,
                 rectify: bool = True, fallback_pixels: int = FALLBACK_PIXELS,
                 fallback_every: int = 1, sample: bool = True) -> None:
        super().__init__()
        if fallback_every < 1:
            raise ScannerError(f"fallback_every must be at least 1, got {fallback_every}")
        self._rectify = rectify
        self._sampler = sample
        self._zbar: ZbarDecoder | None = None
        if zbar:
            try:
                self._zbar = ZbarDecoder()
            except ScannerError as exc:
                log.warning("pipeline runs without zbar", extra={"reason": str(exc)})
        self._max_retry_pixels = max_retry_pixels
        self._fallback_pixels = fallback_pixels
        self._every = fallback_every
        self._rest = 0
        self.retries = 0
        """Frames on which the fallback (rectification or the retry chain) ran."""
        self.rescued = 0
        """Frames read only thanks to the fallback."""
        self.short = 0
        """Frames on which the fallback skipped a step for want of budget."""
        self.paced = 0
        """Frames read nothing in at the first pass whose fallback was left to a later
        frame (``fallback_every``)."""

    def decode(self, image: Image) -> list[str]:
        resting = self._rest > 0
        if resting:
            self._rest -= 1
        try:
            gray = to_gray(image)
            # zxing-cpp's pass without its inverted retry (half of its time on a frame
            # with nothing in it): that retry runs below, only on a frame that has
            # something code-like
            found = list(zxingcpp.read_barcodes(gray, formats=_QR, return_errors=True,
                                                try_invert=False))
            texts = _unique([b.text for b in found if b.valid])
            if texts:
                # read at the first pass: the frame pays for no fallback nor retry (a
                # second code in the same frame that zxing-cpp located but could not
                # read is left to the next frames, where the camera sees it again)
                return texts
            small = max(gray.shape) <= _ZXING_DOWNSCALE_ABOVE
            roi = _code_like(gray) if min(gray.shape) >= 4 * _TEXTURE_BOX else None
            if roi is None and not found and not small:
                # nothing code-like and nothing located: the frame is done (most frames
                # a gate sees); a light-on-dark code has the same module texture
                return []
            # zxing-cpp's own inverted retry, for a light-on-dark code: on the pre-check's
            # box only where there is one (the code's texture is there whatever its
            # colours; a fifth of the frame's pixels on a hard 640x480 frame)
            area = roi if roi is not None else Region(0, 0, gray.shape[1], gray.shape[0])
            inverted = zxingcpp.read_barcodes(
                cv2.bitwise_not(gray[area.y0:area.y1, area.x0:area.x1]), formats=_QR,
                return_errors=True, try_invert=False)
        except Exception as exc:  # a decoder error must never stop the gate
            self._failed(exc)
            return []
        texts = _unique([b.text for b in inverted if b.valid])
        if texts:
            return texts
        located = [_box(b.position) for b in found] + [
            _shifted(_box(b.position), area.x0, area.y0) for b in inverted]
        if resting:
            self.paced += 1
            return []
        budget = _Budget(self._fallback_pixels)
        try:
            texts = self._fallback(gray, located, budget, roi)
        except Exception as exc:  # a decoder error must never stop the gate
            self._failed(exc)
            texts = []
        if budget.left < self._fallback_pixels or budget.short:
            # the fallback did some work (or wanted to): the next frames rest
            self.retries += 1
            self._rest = self._every - 1
            self.rescued += bool(texts)
            self.short += budget.short
        return texts

    def _fallback(self, gray: Image, found: Sequence[Region], budget: _Budget,
                  roi: Region | None) -> list[str]:
        """Nothing read at the first pass: rectification where the frame looks like QR
        modules (`roi`, the pre-check's box), then retries around what zxing-cpp
        located (`found`, frame pixels), within `budget`."""
        if self._rectify and roi is not None:
            # a code zxing-cpp could not locate (tilted, dim, small) or located but not
            # read is most often read once its perspective is undone
            texts = self._rectified(gray, roi, budget)
            if texts:
                return texts
        if not found and max(gray.shape) <= _ZXING_DOWNSCALE_ABOVE:
            return self._half(gray, budget)
        # only where zxing-cpp located something it could not read (none was valid)
        regions = _merge([_window(box, gray.shape) for box in found])
        texts = []
        for region in regions:
            window = gray[region.y0:region.y1, region.x0:region.x1]
            texts += self._retry_window(window, budget)
        return _unique(texts)

    def _half(self, gray: Image, budget: _Budget) -> list[str]:
        """One more pass at half size on a small frame where nothing was located: a
        large code filling a small photo can be found only with fewer pixels per module."""
        if min(gray.shape) < 2 or not budget.spend(gray.size // 4):
            return []
        half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        return self._read(np.asarray(half, dtype=np.uint8))

    def _rectified(self, gray: Image, roi: Region, budget: _Budget) -> list[str]:
        """Where a patch looks like QR modules, its quadrilateral is resampled square
        (perspective undone, upscaled) and read again, largest patch first; where that
        fails, our own module sampler reads the patch (``portique.scanner.sampler``)."""
        plans = [_square(quad) for quad in _code_quads(gray, roi=roi)]
        for plan in plans:
            if budget.spend(plan.pixels):
                rectified = _rectify(gray, plan)
                texts = _unique([b.text for b in zxingcpp.read_barcodes(
                    rectified, formats=_QR, try_downscale=False, try_invert=False)])
                if texts:
                    return texts
        # the costlier read, after them, on the largest patch only: a bound on the
        # frame's work (on the tuning part no second patch's sampler call ever read)
        for plan in plans[:_SAMPLER_PATCHES] if self._sampler else []:
            texts = self._sampled(gray, plan, budget)
            if texts:
                return texts
        return []

    def _sampled(self, gray: Image, plan: _Square, budget: _Budget) -> list[str]:
        """The patch read by our own module sampler: finder patterns found on a rough
        square, the grid fitted to them and to the alignment patterns, each module
        decided by an equaliser fitted on the frame, the modules drawn clean and read
        by zxing-cpp (its Reed-Solomon check decides)."""
        out = round(plan.out * _SAMPLER_SCALE)
        if not budget.spend(out * out * _SAMPLER_COST):
            return []
        offset = (_SAMPLER_SCALE - 1) / 2  # pixel centres at integers, both sides
        to_square = np.array([[_SAMPLER_SCALE, 0, offset], [0, _SAMPLER_SCALE, offset],
                              [0, 0, 1]]) @ plan.homography
        square = np.asarray(cv2.warpPerspective(gray, to_square, (out, out),
                                                flags=cv2.INTER_LINEAR,
                                                borderMode=cv2.BORDER_REPLICATE), np.uint8)
        return _unique(sampler.read_square(gray, to_square, square))

    def _retry_window(self, window: Image, budget: _Budget) -> list[str]:
        pixels = window.shape[0] * window.shape[1]
        for factor, transform in self._transforms(window):
            if not budget.spend(round(pixels * factor * factor)):
                continue
            texts = self._read(transform(window))
            if texts:
                return texts
        factor = self._upscale(window, 2.0)
        if self._zbar is not None and budget.spend(round(pixels * factor * factor)):
            return self._zbar.decode(_scale(factor)(window))
        return []

    def _upscale(self, window: Image, wanted: float) -> float:
        pixels = window.shape[0] * window.shape[1]
        fit: float = (self._max_retry_pixels / max(pixels, 1)) ** 0.5
        return min(wanted, max(1.0, fit))

    def _transforms(self, window: Image) -> list[tuple[float, Transform]]:
        """The retries on a window, each with its scale, cheapest first: contrast at the
        size seen (a crumpled code in uneven light that upscaled passes blur rather
        than sharpen), upscaled 2x, also equalised or sharpened, then upscaled 3x."""
        factor = self._upscale(window, 2.0)
        up = _scale(factor)
        steps: list[tuple[float, Transform]] = [
            (1.0, _equalise), (factor, up), (factor, _chain(up, _equalise)),
            (factor, _chain(up, _sharpen))]
        if self._upscale(window, 3.0) == 3.0:
            steps.append((3.0, _scale(3.0)))
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


def _above(texture: Image) -> int:
    """How many of `texture`'s pixels are above ``_TEXTURE``."""
    _, mask = cv2.threshold(texture, _TEXTURE, 255, cv2.THRESH_BINARY)
    return int(cv2.countNonZero(mask))


def _code_like(gray: Image) -> Region | None:
    """The pre-check: on every fourth pixel of every fourth row (a sixteenth of the
    frame, copied contiguous: half the cost of working on the strided view), at least
    ``_CODE_AREA`` frame pixels' worth of QR-module texture? Then the box around it,
    in frame pixels with a margin, where the finer search runs; else None, and the
    frame is neither searched further nor resampled (most frames a gate sees).

    Texture needs strong steps both across the rows and along them: a frame with too
    few across them is rejected before the steps along them are worked out (the same
    answer, for two thirds of the work on about half of the frames without a code)."""
    small = np.ascontiguousarray(gray[::4, ::4])
    box = _TEXTURE_BOX // 2 + 1
    across = np.asarray(cv2.blur(cv2.absdiff(small[:, 1:], small[:, :-1])[:-1, :], (box, box)),
                        dtype=np.uint8)
    if _above(across) * 16 < _CODE_AREA:
        return None
    along = cv2.blur(cv2.absdiff(small[1:, :], small[:-1, :])[:, :-1], (box, box))
    _, mask = cv2.threshold(cv2.min(across, along), _TEXTURE, 255, cv2.THRESH_BINARY)
    if cv2.countNonZero(mask) * 16 < _CODE_AREA:
        return None
    x, y, w, h = cv2.boundingRect(mask)
    height, width = gray.shape[:2]
    margin = 4 * _TEXTURE_BOX  # frame pixels: the finer boxes reach past the coarse ones
    return Region(max(0, 4 * x - margin), max(0, 4 * y - margin),
                  min(width, 4 * (x + w) + margin), min(height, 4 * (y + h) + margin))


def _code_quads(gray: Image, most: int = 2, roi: Region | None = None
                ) -> list[npt.NDArray[np.float32]]:
    """Quadrilaterals (frame pixels) of the patches that look like QR modules, largest
    first: grey steps strong both across and along the rows over a compact, roughly
    square area. Cheap (the pre-check on every fourth pixel, then every second pixel of
    every second row in its box only, 8-bit box sums), so a frame with nothing
    code-like costs little more than its one zxing-cpp pass. `roi`: the pre-check's box
    when already worked out."""
    if min(gray.shape) < 4 * _TEXTURE_BOX:
        return []
    if roi is None:
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


@dataclass(frozen=True, slots=True)
class _Square:
    """How a quadrilateral is resampled: the homography to an upright square of `out`
    pixels a side (the code and its margin), then upscaled ``_RECTIFY_SCALE`` times."""

    homography: npt.NDArray[np.float64]
    out: int

    @property
    def pixels(self) -> int:
        """The pixels of the upscaled square (what zxing-cpp then reads)."""
        side = round(self.out * _RECTIFY_SCALE)
        return side * side


def _square(quad: npt.NDArray[np.float32]) -> _Square:
    centre = quad.mean(axis=0)
    quad = quad[np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))]
    side = float(np.mean([np.linalg.norm(quad[i] - quad[(i + 1) % 4]) for i in range(4)]))
    # the perspective is undone at about the frame's own scale (a small bicubic warp),
    # then the square is upscaled by a separable bicubic resize: the same reads as one
    # warp straight to the large size, at a fraction of its cost
    size = int(min(_RECTIFY_MAX / _RECTIFY_SCALE, max(40.0, side)))
    margin = int(size * _RECTIFY_MARGIN)
    square = np.array([[margin, margin], [margin + size, margin],
                       [margin + size, margin + size], [margin, margin + size]], np.float32)
    homography = np.asarray(cv2.getPerspectiveTransform(quad, square), dtype=np.float64)
    return _Square(homography, size + 2 * margin)


def _rectify(gray: Image, plan: _Square | npt.NDArray[np.float32]) -> Image:
    """The quadrilateral (or its plan) resampled as an upright square with a margin
    around it (the frame's own pixels there: the quiet zone), perspective undone."""
    if not isinstance(plan, _Square):
        plan = _square(plan)
    flat = cv2.warpPerspective(gray, plan.homography, (plan.out, plan.out),
                               flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
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


def _shifted(box: Region, dx: int, dy: int) -> Region:
    return Region(box.x0 + dx, box.y0 + dy, box.x1 + dx, box.y1 + dy)


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


def make_decoder(name: str = DEFAULT_DECODER, *, sampler: bool = True) -> Decoder:
    """The decoder called `name` (pipeline, zxing or zbar); `sampler`: the pipeline's own
    module sampler as its last step."""
    try:
        which = DecoderName(name)
    except ValueError:
        known = ", ".join(d.value for d in DecoderName)
        raise UnknownDecoderError(f"unknown decoder {name!r} (known: {known})") from None
    if which is DecoderName.ZXING:
        return ZxingDecoder()
    if which is DecoderName.ZBAR:
        return ZbarDecoder()
    return PipelineDecoder(sample=sampler)
