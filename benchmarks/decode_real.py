"""Read rate, wrong reads and time of each decoder on the real photos of qr-real.

Photos at native size, and letterboxed into 640x480 and 1280x720 grey frames (scaled to
fit, aspect kept, centred, padded with the photo's median grey), as qr-real's README
describes. Raw zxing-cpp, raw pyzbar and raw OpenCV (QRCodeDetector, when this OpenCV has
it) are measured in the same run as the pipeline. At native size it also prints the union
of the raw decoders (photos read by at least one of them), the figure the pipeline is
held to, and the photos each side reads that the other does not.

    .venv/bin/python benchmarks/decode_real.py     # PORTIQUE_QR_REAL=... to point elsewhere
"""

from __future__ import annotations

import csv
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2

from benchmarks._common import skip
from portique.scanner.decoders import Decoder, Image, PipelineDecoder, ZbarDecoder, ZxingDecoder
from portique.scanner.images import letterbox, read_image, to_gray

ROOT = Path(__file__).resolve().parents[1]
QR_REAL = Path(os.environ.get("PORTIQUE_QR_REAL", ROOT.parent / "shared" / "qr-real"))
SIZES: list[tuple[str, tuple[int, int] | None]] = [
    ("native", None), ("640x480", (640, 480)), ("1280x720", (1280, 720))]
REPEAT = 3  # time each decode this many times, keep the fastest (less noise)
# (the decoders take turns photo by photo: see measure)


def load() -> list[tuple[str, Image, str]]:
    manifest = QR_REAL / "MANIFEST.tsv"
    if not manifest.is_file():
        skip(f"the real photos (qr-real) are not at {QR_REAL}: set PORTIQUE_QR_REAL to "
             "their folder to run this benchmark")
    photos = []
    with manifest.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            expected = (QR_REAL / row["expected_text_file"]).read_bytes().decode("utf-8")
            photos.append((row["relpath"], read_image(QR_REAL / row["relpath"]), expected))
    return photos


class OpenCVDecoder:
    """OpenCV's own QR reader (QRCodeDetector.detectAndDecode), one pass, as a raw anchor.

    The single-code call: on these photos it reads more than detectAndDecodeMulti (114
    against 100 at native size) and everything the multi-code call reads."""

    name = "opencv"

    def __init__(self) -> None:
        self._detector = cv2.QRCodeDetector()

    def decode(self, image: Image) -> list[str]:
        try:
            text, _, _ = self._detector.detectAndDecode(image)
        except cv2.error:
            return []
        return [text] if text else []


def raw_decoders() -> list[Decoder]:
    decoders: list[Decoder] = [ZxingDecoder(), ZbarDecoder()]
    if hasattr(cv2, "QRCodeDetector"):
        decoders.append(OpenCVDecoder())
    else:
        print("(this OpenCV has no QRCodeDetector: the union is of zxing-cpp and pyzbar)")
    return decoders


def measure(decoders: list[Decoder], frames: list[tuple[Image, str]]
            ) -> list[tuple[set[int], int, list[float]]]:
    """Per decoder: the photos read (their indexes), the wrong texts, and the time of
    each decode. The decoders take turns on each photo, so a burst of load on the
    machine hits them alike."""
    results: list[tuple[set[int], int, list[float]]] = [(set(), 0, []) for _ in decoders]
    for index, (frame, expected) in enumerate(frames):
        for k, decoder in enumerate(decoders):
            read, wrong, times = results[k]
            best = float("inf")
            for _ in range(REPEAT):
                start = time.perf_counter()
                texts = decoder.decode(frame)
                best = min(best, (time.perf_counter() - start) * 1000)
            times.append(best)
            if expected in texts:
                read.add(index)
            results[k] = (read, wrong + sum(t != expected for t in texts), times)
    return results


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> int:
    photos = load()
    raw = raw_decoders()
    decoders: list[Decoder] = [*raw, PipelineDecoder()]
    print(f"qr-real: {len(photos)} photos from {QR_REAL}")
    print(f"{'frame':<9} {'decoder':<9} {'read':>8} {'wrong':>6} {'median ms':>10} "
          f"{'p95 ms':>8}  vs raw zxing-cpp")
    for label, size in SIZES:
        frames = [(to_gray(img) if size is None else letterbox(img, *size), expected)
                  for _, img, expected in photos]
        anchor = 0.0
        union: set[int] = set()
        for decoder, (read, wrong, times) in zip(decoders, measure(decoders, frames),
                                                 strict=True):
            median = statistics.median(times)
            if decoder.name == "zxing":
                anchor = median
            ratio = f"{median / anchor:.2f}x median" if anchor else ""
            print(f"{label:<9} {decoder.name:<9} {len(read):>4}/{len(frames):<3} {wrong:>6} "
                  f"{median:>10.2f} {p95(times):>8.2f}  {ratio}")
            if decoder in raw:
                union |= read
            elif size is None:
                names = "+".join(d.name for d in raw)
                print(f"{label:<9} {'union':<9} {len(union):>4}/{len(frames):<3}"
                      f"{'':>37}photos read by at least one of {names}")
                for which, indexes in (("only the pipeline", read - union),
                                       ("only a raw decoder", union - read)):
                    print(f"  read by {which}: "
                          f"{', '.join(photos[i][0] for i in sorted(indexes)) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
