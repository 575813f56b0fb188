"""`gate decode PATH...`: the codes in images, clip frames and folders of images.

One line per image or frame: ``SOURCE#FRAME  MS ms  TEXT...``, or with --json
``{"source": ..., "frame": N, "codes": [...], "ms": ...}``. A file that cannot be read
gets an error line (``"error"`` in JSON) and the others go on. Exit code 1 if any file
failed, 0 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mkv", ".mov", ".webm", ".mjpeg"})


def register(subparsers: Any) -> None:
    from portique.scanner.config import DecoderName
    from portique.scanner.images import MAX_PIXELS

    decode = subparsers.add_parser(
        "decode", help="print the QR codes in images, recorded clips or folders of images")
    decode.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="an image, a clip (folder with clip.json, or a video file with "
                        "its .json sidecar) or a folder of images")
    decode.add_argument("--decoder", choices=[d.value for d in DecoderName],
                        default=DecoderName.PIPELINE.value, help="default: pipeline")
    decode.add_argument("--no-sampler", action="store_true", help="the pipeline without its "
                        "own module sampler (the cheaper last steps only)")
    decode.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help=f"refuse larger images from their header (default {MAX_PIXELS:,})")
    decode.add_argument("--json", action="store_true", help="one JSON object per line")
    decode.set_defaults(handler=_decode)


def _decode(args: argparse.Namespace) -> int:
    from portique.scanner.decoders import make_decoder
    from portique.scanner.errors import ScannerError

    try:
        decoder = make_decoder(args.decoder, sampler=not args.no_sampler)
    except ScannerError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    failed = False
    for path in args.paths:
        try:
            for source, index, image in _frames(path, args.max_pixels):
                if isinstance(image, ScannerError):
                    failed = True
                    _emit(args, {"source": source, "frame": index, "error": str(image)})
                    continue
                start = time.perf_counter()
                codes = decoder.decode(image)
                ms = round((time.perf_counter() - start) * 1000, 2)
                _emit(args, {"source": source, "frame": index, "codes": codes, "ms": ms})
        except ScannerError as exc:
            failed = True
            _emit(args, {"source": str(path), "frame": None, "error": str(exc)})
    sys.stdout.flush()
    return EXIT_FAILED if failed else EXIT_OK


def _frames(path: Path, max_pixels: int) -> Iterator[tuple[str, int, Any]]:
    """(source, frame number, pixels or the error of that one file)."""
    from portique.scanner.errors import ImageError, ScannerError
    from portique.scanner.images import read_image
    from portique.scanner.sources import SIDECAR, ClipSource, image_files

    if (path.is_dir() and (path / SIDECAR).is_file()) or (
            path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES):
        with ClipSource.open(path, pace="fast", lossless=True,
                             max_pixels=max_pixels) as clip:
            for frame in clip:
                yield str(path), frame.index, frame.image
        return
    if not path.exists():
        raise ImageError(f"{path}: no such file or folder")
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise ImageError(f"{path}: folder holds no images")
    else:
        files = [path]
    for index, file in enumerate(files):
        source = str(file)
        try:
            yield source, 0 if file == path else index, read_image(file, max_pixels=max_pixels)
        except ScannerError as exc:
            yield source, 0 if file == path else index, exc


def _emit(args: argparse.Namespace, row: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(row, ensure_ascii=False))
    elif "error" in row:  # a whole source's error has no frame number to show
        where = row["source"] if row["frame"] is None else f"{row['source']}#{row['frame']}"
        error = str(row["error"]).removeprefix(f"{row['source']}: ")  # named once, first
        print(f"{where}  error: {error}")
    else:
        codes = "  ".join(row["codes"]) if row["codes"] else "(no code)"
        print(f"{row['source']}#{row['frame']}  {row['ms']:.2f} ms  {codes}")
