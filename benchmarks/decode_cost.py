"""Where the pipeline's time goes on the hard set (benchmarks/hardset.py), per part:
per frame size and kind of frame (no code; a code zxing-cpp reads at its first pass; a
code it does not), the median of each stage's best-of-3 time, next to raw zxing-cpp's
pass on the same frames (the anchor), in one run.

Stages: the coarse pre-check, the finer texture search in its box, the resample of the
first patch (the two-step one in use, and the single bicubic warp straight to 3x it
replaced), zxing-cpp on the rectified square, our module sampler on the first patch, and
the whole pipeline's call.

    .venv/bin/python benchmarks/decode_cost.py            # --per-cell 10 --part tuning held
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zxingcpp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import hardset
from portique.scanner import decoders
from portique.scanner.decoders import PipelineDecoder, to_gray


def best(call: Callable[..., Any], *args: Any, repeat: int = 3) -> float:
    """Best of `repeat` calls, ms (the least disturbed by other work on the machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call(*args)
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def single_warp(gray: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The resample replaced: one bicubic perspective warp straight to the rectified
    size (``_RECTIFY_SCALE`` times, at most ``_RECTIFY_MAX`` pixels for the code, 15%
    margin), for comparison only."""
    centre = quad.mean(axis=0)
    quad = quad[np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))]
    side = float(np.mean([np.linalg.norm(quad[i] - quad[(i + 1) % 4]) for i in range(4)]))
    size = int(min(decoders._RECTIFY_MAX, max(120.0, side * decoders._RECTIFY_SCALE)))
    margin = int(size * 0.15)
    square = np.array([[margin, margin], [margin + size, margin],
                       [margin + size, margin + size], [margin, margin + size]], np.float32)
    out = size + 2 * margin
    return np.asarray(cv2.warpPerspective(gray, cv2.getPerspectiveTransform(quad, square),
                                          (out, out), flags=cv2.INTER_CUBIC,
                                          borderMode=cv2.BORDER_REPLICATE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-cell", type=int, default=10)
    parser.add_argument("--part", nargs="+", default=list(hardset.PARTS),
                        choices=list(hardset.PARTS))
    args = parser.parse_args()
    for part in args.part:
        report(part, args.per_cell)
    return 0


def report(part: str, per_cell: int) -> None:
    stages: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list))
    for sample in hardset.samples(part, per_cell=per_cell, empty=per_cell):
        gray = to_gray(sample.image())
        first = [b for b in zxingcpp.read_barcodes(gray, formats=decoders._QR) if b.text]
        kind = "no code" if sample.text is None else "read" if first else "not read"
        s = stages[(kind, sample.size[0])]
        s["zxing-cpp"].append(best(zxingcpp.read_barcodes, gray, decoders._QR))
        s["pipeline"].append(best(PipelineDecoder().decode, gray))
        s["pre-check"].append(best(decoders._code_like, gray))
        if kind == "read":
            continue
        quads = decoders._code_quads(gray)
        s["search"].append(best(decoders._code_quads, gray) - s["pre-check"][-1])
        if quads:
            square = decoders._rectify(gray, quads[0])
            s["resample"].append(best(decoders._rectify, gray, quads[0]))
            s["single warp"].append(best(single_warp, gray, quads[0]))
            s["zxing on square"].append(best(partial(
                zxingcpp.read_barcodes, formats=decoders._QR, try_downscale=False,
                try_invert=False), square))
            # our module sampler on the first patch (as the pipeline calls it, budget aside)
            s["sampler"].append(best(PipelineDecoder()._sampled, gray,
                                     decoders._square(quads[0]), decoders._Budget(10**12)))
    order = ("zxing-cpp", "pipeline", "pre-check", "search", "resample", "single warp",
             "zxing on square", "sampler")
    print(f"{part} part: median of best-of-3 ms per stage (x raw zxing-cpp's pass on the "
          "same frames)")
    print(f"{'frames':<9} {'size':<9} {'n':>3} " + " ".join(f"{n:>16}" for n in order))
    for (kind, width), s in sorted(stages.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        anchor = statistics.median(s["zxing-cpp"])
        cells = []
        for name in order:
            if s[name]:
                ms = statistics.median(s[name])
                cells.append(f"{ms:>8.2f} ({ms / anchor:>4.2f}x)")
            else:
                cells.append(f"{'-':>16}")
        size = f"{width}x{dict(hardset.SIZES)[width]}"
        print(f"{kind:<9} {size:<9} {len(s['zxing-cpp']):>3} " + " ".join(cells))


if __name__ == "__main__":
    raise SystemExit(main())
