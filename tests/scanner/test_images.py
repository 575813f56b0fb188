"""Reading still images: JPEG ends, with and without data after the end marker."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from portique.scanner.decoders import Image, PipelineDecoder
from portique.scanner.errors import ImageError
from portique.scanner.images import decode_image, read_image
from tests.scanner.conftest import CLIPS, sidecar

EOI = b"\xff\xd9"


def jpeg(image: Image, quality: int = 90) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def with_thumbnail(main: bytes, thumbnail: bytes) -> bytes:
    """`main` with a whole JPEG inside an EXIF (APP1) segment, as cameras store thumbnails."""
    body = b"Exif\0\0" + thumbnail
    return main[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + main[2:]


@pytest.fixture(scope="module")
def frame() -> tuple[Image, str]:
    """A clip frame showing a code, and the code's text."""
    for item in sidecar("paper")["frames"]:
        texts = [c["text"] for c in item["codes"] if c["visible"] and not c["moving"]]
        if texts:
            return read_image(CLIPS / "paper" / item["file"]), texts[0]
    raise AssertionError("the paper clip should show a code held still")


@pytest.mark.parametrize("trailer", [
    # A trailer as Samsung phones write: tagged records, then a directory ending in SEFT.
    b"\0\0\x01\x0aImage_UTC_Data1722877199000" + b"SEFH\0\0\0\0SEFT",
    # A motion photo: an MP4 after the picture (an ftyp box, then more boxes).
    b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom" + bytes(range(256)) * 8,
    # Zero padding, as some encoders leave.
    b"\0" * 64,
])
def test_jpeg_with_data_after_its_end_is_read(frame: tuple[Image, str], trailer: bytes) -> None:
    image, text = frame
    data = jpeg(image)
    assert data.endswith(EOI)
    got = decode_image(data + trailer, "phone.jpg")
    assert (got == decode_image(data, "plain.jpg")).all()
    assert PipelineDecoder().decode(got) == [text]


def test_truncated_jpeg_is_refused(frame: tuple[Image, str]) -> None:
    data = jpeg(frame[0])
    with pytest.raises(ImageError, match=r"cut\.jpg: truncated JPEG"):
        decode_image(data[:len(data) * 2 // 3], "cut.jpg")


def test_truncated_jpeg_with_a_thumbnail_is_refused(frame: tuple[Image, str]) -> None:
    # The thumbnail's own end marker, in the header, must not pass for the image's end.
    image = frame[0]
    thumbnail = jpeg(np.asarray(cv2.resize(image, (160, 120)), np.uint8), quality=70)
    data = with_thumbnail(jpeg(image), thumbnail)
    assert decode_image(data, "whole.jpg").shape == image.shape
    with pytest.raises(ImageError, match=r"cut\.jpg: truncated JPEG"):
        decode_image(data[:len(data) * 2 // 3], "cut.jpg")
