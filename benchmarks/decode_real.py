"""Read rate, wrong reads and time of each decoder on the real photos of qr-real.

Photos at native size, and letterboxed into 640x480 and 1280x720 grey frames (scaled to
fit, aspect kept, centred, padded with the photo's median grey), as qr-real's README
describes. Raw zxing-cpp and raw pyzbar are measured in the same run as the pipeline.

    .venv/bin/python benchmarks/decode_real.py     # PORTIQUE_QR_REAL=... to point elsewhere
"""

from __future__ import annotations

import csv
import os
import statistics
import sys
import time
from pathlib import Path

from scanner.decoders import Decoder, PipelineDecoder, ZbarDecoder, ZxingDecoder
from scanner.images import Image, letterbox, read_image, to_gray

ROOT = Path(__file__).resolve().parents[1]
QR_REAL = Path(os.environ.get("PORTIQUE_QR_REAL", ROOT.parent / "shared" / "qr-real"))
SIZES: list[tuple[str, tuple[int, int] | None]] = [
    ("native", None), ("640x480", (640, 480)), ("1280x720", (1280, 720))]
REPEAT = 3  # time each decode this many times, keep the fastest (less noise)


def load() -> list[tuple[str, Image, str]]:
    manifest = QR_REAL / "MANIFEST.tsv"
    if not manifest.is_file():
        sys.exit(f"qr-real not found at {QR_REAL} (set PORTIQUE_QR_REAL)")
    photos = []
    with manifest.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            expected = (QR_REAL / row["expected_text_file"]).read_bytes().decode("utf-8")
            photos.append((row["relpath"], read_image(QR_REAL / row["relpath"]), expected))
    return photos


def measure(decoder: Decoder, frames: list[tuple[Image, str]]) -> tuple[int, int, list[float]]:
    read = wrong = 0
    times = []
    for frame, expected in frames:
        best = float("inf")
        for _ in range(REPEAT):
            start = time.perf_counter()
            texts = decoder.decode(frame)
            best = min(best, (time.perf_counter() - start) * 1000)
        times.append(best)
        read += expected in texts
        wrong += sum(t != expected for t in texts)
    return read, wrong, times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> int:
    photos = load()
    decoders: list[Decoder] = [ZxingDecoder(), ZbarDecoder(), PipelineDecoder()]
    print(f"qr-real: {len(photos)} photos from {QR_REAL}")
    print(f"{'frame':<9} {'decoder':<9} {'read':>8} {'wrong':>6} {'median ms':>10} "
          f"{'p95 ms':>8}  vs raw zxing-cpp")
    for label, size in SIZES:
        frames = [(to_gray(img) if size is None else letterbox(img, *size), expected)
                  for _, img, expected in photos]
        anchor = 0.0
        for decoder in decoders:
            read, wrong, times = measure(decoder, frames)
            median = statistics.median(times)
            if decoder.name == "zxing":
                anchor = median
            ratio = f"{median / anchor:.2f}x median" if anchor else ""
            print(f"{label:<9} {decoder.name:<9} {read:>4}/{len(frames):<3} {wrong:>6} "
                  f"{median:>10.2f} {p95(times):>8.2f}  {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
