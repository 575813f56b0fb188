"""Cost of judging a camera frame black or frozen, next to one raw zxing-cpp pass over the
same frame, in the same run.

The frames are the committed 1280x720 clip two_phones (tests/fixtures/clips), in memory.
Ours: ``FrameHealth.feed`` (subsample, mean, standard deviation, BLAKE2b digest) on each
frame in turn. Anchor: ``zxingcpp.read_barcodes`` for QR codes (as the gate's decoders ask)
on the same frames, already grey: the least the decoder does with every frame.
Interleaved rounds, median printed.

    .venv/bin/python benchmarks/camera_health.py
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import zxingcpp

from benchmarks._common import interleaved, median, us
from portique.scanner.health import FrameHealth
from portique.scanner.images import read_image

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "tests" / "fixtures" / "clips" / "two_phones"
NUMBER, ROUNDS = 200, 7
QR = zxingcpp.BarcodeFormat.QRCode


def main() -> None:
    doc = json.loads((CLIP / "clip.json").read_text(encoding="utf-8"))
    frames = [read_image(CLIP / f["file"]) for f in doc["frames"]]
    greys = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    judge = FrameHealth()
    colour, grey = itertools.cycle(frames), itertools.cycle(greys)
    samples = interleaved({
        "health": lambda: judge.feed(next(colour)),
        "zxing": lambda: zxingcpp.read_barcodes(next(grey), formats=QR),
    }, number=NUMBER, rounds=ROUNDS)
    ours, anchor = median(samples["health"]), median(samples["zxing"])
    height, width = frames[0].shape[:2]
    print(f"frames {width}x{height}, clip {CLIP.name}, {NUMBER} calls x {ROUNDS} rounds")
    print(f"black/frozen judge per frame   {us(ours)}")
    print(f"raw zxing-cpp pass per frame   {us(anchor)}")
    print(f"ratio                          {ours / anchor:8.3f}")


if __name__ == "__main__":
    main()
