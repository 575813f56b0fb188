"""Reading still images safely: size checked from the header before any pixel is decoded."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from portique.scanner.decoders import Image
from portique.scanner.errors import ImageError, ImageTooLargeError

MAX_PIXELS = 40_000_000
"""Default pixel cap: larger images are refused from their header (a decompression bomb
or a mistake), before their pixels are decoded."""

# Pillow only reads headers here (OpenCV decodes the pixels), and the pixel cap below is
# checked on every header: Pillow's own bomb check would hide the size behind "unknown
# format".
PILImage.MAX_IMAGE_PIXELS = None

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff",
                            ".pgm", ".ppm"})


def read_image(path: Path, *, max_pixels: int = MAX_PIXELS) -> Image:
    """The image at `path` as BGR (or grey) 8-bit pixels; ImageError says what is wrong."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror}") from None
    return decode_image(data, str(path), max_pixels=max_pixels)


def decode_image(data: bytes, name: str, *, max_pixels: int = MAX_PIXELS) -> Image:
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        with PILImage.open(io.BytesIO(data)) as header:
            width, height = header.size
            kind = header.format or "image"
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unknown format)") from None
    except (OSError, ValueError, PILImage.DecompressionBombError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image header ({exc})") from None
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} {kind} is above the {max_pixels:,}-pixel cap; "
            "not decoded")
    if kind == "JPEG" and not _jpeg_has_end(data):
        raise ImageError(f"{name}: truncated JPEG (no end-of-image marker after the image "
                         "data)")
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise ImageError(f"{name}: corrupt {kind} ({width}x{height} header, pixels "
                         "undecodable)")
    array = np.asarray(pixels)
    if array.dtype == np.uint16:  # 16-bit PNG or TIFF: keep the top 8 bits
        array = np.right_shift(array.astype(np.uint16), 8).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageError(f"{name}: {array.dtype} pixels are not supported")
    return np.asarray(array, dtype=np.uint8)



_EOI = b"\xff\xd9"
_SOS = 0xDA
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
"""JPEG markers without a length field (TEM, SOI, RST0-7)."""


def _jpeg_has_end(data: bytes) -> bool:
    """Whether an end-of-image marker follows the JPEG's image data.

    OpenCV decodes a truncated JPEG without an error (the missing part comes out grey),
    so the end is checked here. Data after the marker is allowed: phones append trailers
    (Samsung's), a second image or a video (motion photos). The marker is looked for after
    the first start-of-scan, past the header segments, so the end marker of a thumbnail
    in the EXIF header does not count.
    """
    pos = 2  # after SOI
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:  # not a marker where one should be: cannot walk further
            return data.find(_EOI, pos) != -1
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == _EOI[1]:  # the end before any image data
            return False
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == _SOS:
            # Entropy-coded data cannot hold FF D9 (an FF there is followed by 00 or RSTn).
            return data.find(_EOI, pos + 2 + length) != -1
        pos += 2 + length
    return False


def to_gray(image: Image) -> Image:
    """Grey pixels of a grey, BGR or BGRA image."""
    if image.ndim == 2:
        return image
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return np.asarray(cv2.cvtColor(image, code), dtype=np.uint8)


def letterbox(image: Image, width: int, height: int) -> Image:
    """A photo as a camera frame: grey, scaled to fit (aspect kept), centred, padded with
    the photo's median grey."""
    gray = to_gray(image)
    h, w = gray.shape
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(gray, (nw, nh),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    frame = np.full((height, width), int(np.median(gray)), np.uint8)
    y, x = (height - nh) // 2, (width - nw) // 2
    frame[y:y + nh, x:x + nw] = resized
    return frame
