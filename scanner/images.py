"""Reading still images safely: size checked from the header before any pixel is decoded."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from scanner.decoders import Image
from scanner.errors import ImageError, ImageTooLargeError

MAX_PIXELS = 40_000_000
"""Default pixel cap: larger images are refused from their header (a decompression bomb
or a mistake), before their pixels are decoded."""

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's own bomb warning: we check below
            with PILImage.open(io.BytesIO(data)) as header:
                width, height = header.size
                kind = header.format or "image"
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unknown format)") from None
    except (OSError, ValueError, PILImage.DecompressionBombError) as exc:
        raise ImageError(f"{name}: unreadable image header ({exc})") from None
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} {kind} is above the {max_pixels:,}-pixel cap; "
            "not decoded")
    if kind == "JPEG" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise ImageError(f"{name}: truncated JPEG (no end-of-image marker)")
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

