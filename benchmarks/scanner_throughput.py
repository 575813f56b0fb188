"""Frames per second of source -> pipeline decoder -> debouncer on a 1280x720 clip, next
to raw zxing-cpp on the same grey frames, in the same run.

The clip is rendered by tests/fixtures/make_clips.py (two phones held up in front of a
1280x720 camera, 60 frames per appearance) into a temporary folder. Every path reads the
same JPEG files and turns them grey with OpenCV; what differs is what reads the codes
(raw zxing-cpp, one pass, or the pipeline decoder and the debouncer) and how many threads
do the work:

* one thread: read JPEG, grey, decode (and debounce), frame after frame;
* two threads: ClipSource (fast, lossless) reads and decodes JPEG on its grabber thread
  while the consumer turns the frame grey and decodes; the anchor of this row is the same
  ClipSource feeding raw zxing-cpp.

Each subject runs ROUNDS times, interleaved with the others so machine noise hits all
alike; the median of the rounds is printed.

    .venv/bin/python benchmarks/scanner_throughput.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import zxingcpp

from portique.scanner.debounce import Debouncer
from portique.scanner.decoders import Image, PipelineDecoder, to_gray
from portique.scanner.images import read_image
from portique.scanner.sources import ClipSource

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 5
QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
HOLD = 3.0


def render(out: Path) -> Path:
    subprocess.run([sys.executable, str(ROOT / "tests" / "fixtures" / "make_clips.py"),
                    "--out", str(out), "--frames", "60", "--only", "two_phones"],
                   check=True, stderr=subprocess.DEVNULL)
    return out / "clips" / "two_phones"


def frame_files(clip: Path) -> list[tuple[Path, float]]:
    doc = json.loads((clip / "clip.json").read_text(encoding="utf-8"))
    return [(clip / f["file"], float(f["captured_at"])) for f in doc["frames"]]


def raw(image: Image) -> list[str]:
    """Raw zxing-cpp on the grey frame, grey made by OpenCV as in the pipeline."""
    return [b.text for b in zxingcpp.read_barcodes(to_gray(image), formats=QR)]


def loop_raw(clip: Path) -> int:
    return sum(len(raw(read_image(path))) for path, _ in frame_files(clip))


def loop_pipeline(clip: Path) -> int:
    decoder, debouncer = PipelineDecoder(), Debouncer(HOLD)
    return sum(len(debouncer.feed(decoder.decode(read_image(path)), at))
               for path, at in frame_files(clip))


def chain_raw(clip: Path) -> int:
    with ClipSource.open(clip, pace="fast", lossless=True) as source:
        return sum(len(raw(frame.image)) for frame in source)


def chain_pipeline(clip: Path) -> int:
    decoder, debouncer = PipelineDecoder(), Debouncer(HOLD)
    with ClipSource.open(clip, pace="fast", lossless=True) as source:
        return sum(len(debouncer.feed(decoder.decode(frame.image), frame.captured_at))
                   for frame in source)


def in_memory(images: list[Image], decode: Callable[[Image], list[str]]) -> int:
    return sum(len(decode(image)) for image in images)


def fps(run: Callable[[], int], frames: int) -> tuple[float, int]:
    start = time.perf_counter()
    found = run()
    return frames / (time.perf_counter() - start), found


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        clip = render(Path(tmp))
        count = len(frame_files(clip))
        greys = [to_gray(read_image(path)) for path, _ in frame_files(clip)]
        pipeline = PipelineDecoder()
        subjects: dict[str, Callable[[], int]] = {
            "loop_raw": lambda: loop_raw(clip),
            "loop_pipeline": lambda: loop_pipeline(clip),
            "chain_raw": lambda: chain_raw(clip),
            "chain_pipeline": lambda: chain_pipeline(clip),
            "mem_raw": lambda: in_memory(greys, raw),
            "mem_pipeline": lambda: in_memory(greys, pipeline.decode),
        }
        for run in subjects.values():  # warm the file cache and the readers
            run()
        rates: dict[str, list[float]] = {name: [] for name in subjects}
        found: dict[str, int] = {}
        for _ in range(ROUNDS):
            for name, run in subjects.items():
                rate, found[name] = fps(run, count)
                rates[name].append(rate)
        fps_of = {name: statistics.median(values) for name, values in rates.items()}

    def row(label: str, ours: str, anchor: str, what: str) -> None:
        ratio = fps_of[ours] / fps_of[anchor]
        print(f"{label:<42} {fps_of[anchor]:7.1f} {fps_of[ours]:9.1f}   ratio {ratio:.2f}"
              f"   ({what})")

    print(f"1280x720 clip, {count} frames; frames/s, median of {ROUNDS} interleaved rounds")
    print(f"{'path':<42} {'raw zxing':>7} {'pipeline':>9}")
    row("one thread: read JPEG, grey, decode", "loop_pipeline", "loop_raw",
        f"pipeline reported {found['loop_pipeline']} codes after debounce")
    row("two threads: ClipSource -> grey, decode", "chain_pipeline", "chain_raw",
        f"pipeline reported {found['chain_pipeline']} codes after debounce")
    row("decode only, grey frames in memory", "mem_pipeline", "mem_raw",
        f"texts per pass: raw {found['mem_raw']}, pipeline {found['mem_pipeline']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
