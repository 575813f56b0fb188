"""`gate decode` end to end on committed clips and broken files."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from portique.commands.main import main
from portique.scanner.errors import ImageError, ImageTooLargeError
from portique.scanner.images import read_image
from tests.scanner.conftest import CLIPS, sidecar


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data)))


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height, with a small start of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\0" * 4096)))


@pytest.fixture
def broken(tmp_path: Path) -> dict[str, Path]:
    files = {
        "empty": tmp_path / "empty.png",
        "huge": tmp_path / "huge.png",
        "text": tmp_path / "notes.jpg",
        "corrupt": tmp_path / "corrupt.png",
        "truncated": tmp_path / "truncated.jpg",
    }
    files["empty"].write_bytes(b"")
    files["huge"].write_bytes(_png_header(16000, 16000))
    files["text"].write_text("not a picture\n")
    files["corrupt"].write_bytes(_png_header(64, 64) + b"garbage" * 10)
    files["truncated"].write_bytes((CLIPS / "paper" / "005.jpg").read_bytes()[:5000])
    return files


@pytest.mark.parametrize(("kind", "message"), [
    ("empty", "empty file"), ("huge", "16000x16000 PNG is above the"),
    ("text", "not an image"), ("corrupt", "corrupt"), ("truncated", "truncated JPEG"),
])
def test_broken_images_give_a_clear_error(broken: dict[str, Path], kind: str,
                                          message: str) -> None:
    with pytest.raises(ImageError, match=message) as info:
        read_image(broken[kind])
    assert str(broken[kind]) in str(info.value)
    if kind == "huge":
        assert isinstance(info.value, ImageTooLargeError)


def test_decode_json_lines_for_images_clips_and_broken_files(
        broken: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    image = CLIPS / "paper" / "008.jpg"
    code = main(["decode", "--json", str(image), str(broken["huge"]), str(CLIPS / "empty"),
                 str(broken["text"])])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    expected = sidecar("paper")["frames"][8]["codes"][0]["text"]
    assert rows[0] == {"source": str(image), "frame": 0, "codes": [expected],
                       "ms": rows[0]["ms"]}
    assert "above the" in rows[1]["error"]
    clip_rows = rows[2:-1]
    assert [r["frame"] for r in clip_rows] == list(range(len(sidecar("empty")["frames"])))
    assert all(r["codes"] == [] for r in clip_rows)
    assert "not an image" in rows[-1]["error"]


def test_decode_folder_of_images_and_decoder_choice(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes((CLIPS / "tampered" / "007.jpg").read_bytes())
    assert main(["decode", "--decoder", "zxing", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    text = sidecar("tampered")["frames"][7]["codes"][0]["text"]
    assert [line.split("  ")[0] for line in out] == [f"{tmp_path / 'a.jpg'}#0",
                                                    f"{tmp_path / 'b.jpg'}#1"]
    assert all(line.endswith(text) for line in out)


def test_decode_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["decode", "--decoder", "opencv", "x.png"])
    assert info.value.code == 2
    capsys.readouterr()
    assert main(["decode", "/no/such/file.png"]) == 1
    assert capsys.readouterr().out == "/no/such/file.png  error: no such file or folder\n"
    assert main(["decode", "--json", "/no/such/file.png"]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "source": "/no/such/file.png", "frame": None,
        "error": "/no/such/file.png: no such file or folder"}


def test_a_folder_without_images_says_so_without_a_frame_number(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("not an image\n")
    assert main(["decode", str(tmp_path)]) != 0
    out = capsys.readouterr().out
    assert out == f"{tmp_path}  error: folder holds no images\n"  # its name once
    assert "#None" not in out
