"""Frames per second of clip source -> pipeline decoder -> debouncer on a 1280x720 clip,
next to a plain loop reading the same frames and running raw zxing-cpp on them.

The clip is rendered by tests/fixtures/make_clips.py (two phones held up in front of a
1280x720 camera, 60 frames per appearance) into a temporary folder.

    .venv/bin/python benchmarks/scanner_throughput.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zxingcpp

from scanner.debounce import Debouncer
from scanner.decoders import PipelineDecoder
from scanner.images import read_image
from scanner.sources import ClipSource

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3


def render(out: Path) -> Path:
    subprocess.run([sys.executable, str(ROOT / "tests" / "fixtures" / "make_clips.py"),
                    "--out", str(out), "--frames", "60", "--only", "two_phones"],
                   check=True, stderr=subprocess.DEVNULL)
    return out / "clips" / "two_phones"


def pipeline_fps(clip: Path) -> tuple[float, int]:
    decoder, debouncer = PipelineDecoder(), Debouncer(3.0)
    start = time.perf_counter()
    frames = reported = 0
    with ClipSource.open(clip, pace="fast", lossless=True) as source:
        for frame in source:
            reported += len(debouncer.feed(decoder.decode(frame.image), frame.captured_at))
            frames += 1
    return frames / (time.perf_counter() - start), reported


def raw_fps(clip: Path) -> float:
    files = [f["file"] for f in json.loads((clip / "clip.json").read_text())["frames"]]
    formats = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    start = time.perf_counter()
    for name in files:
        zxingcpp.read_barcodes(read_image(clip / name), formats=formats)
    return len(files) / (time.perf_counter() - start)


def decode_only(clip: Path) -> tuple[float, float]:
    """Frames per second of raw zxing-cpp and of the pipeline on frames already in memory."""
    files = [f["file"] for f in json.loads((clip / "clip.json").read_text())["frames"]]
    images = [read_image(clip / name) for name in files]
    formats = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    start = time.perf_counter()
    for image in images:
        zxingcpp.read_barcodes(image, formats=formats)
    raw = len(images) / (time.perf_counter() - start)
    decoder = PipelineDecoder()
    start = time.perf_counter()
    for image in images:
        decoder.decode(image)
    return raw, len(images) / (time.perf_counter() - start)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        clip = render(Path(tmp))
        raw_fps(clip)  # warm the file cache and the readers
        raw = max(raw_fps(clip) for _ in range(ROUNDS))
        runs = [pipeline_fps(clip) for _ in range(ROUNDS)]
        pipe = max(fps for fps, _ in runs)
        print(f"1280x720 clip, {len(list(clip.glob('*.jpg')))} frames (JPEG read + decode)")
        print(f"raw zxing-cpp loop                 {raw:7.1f} frames/s")
        print(f"source -> pipeline -> debounce     {pipe:7.1f} frames/s   "
              f"ratio {pipe / raw:.2f}   codes reported {runs[0][1]}")
        raw_mem, pipe_mem = max(decode_only(clip) for _ in range(ROUNDS))
        print(f"decode only, frames in memory: raw zxing-cpp {raw_mem:.1f} frames/s, "
              f"pipeline {pipe_mem:.1f} frames/s, ratio {pipe_mem / raw_mem:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
