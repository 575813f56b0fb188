"""Our own module sampler for QR codes zxing-cpp locates but cannot binarise.

At 1.8-3 pixels per module with 1.5-3.5 pixels of blur, moiré and noise, zxing-cpp's own
binariser and sampler lose the code even on a square with its perspective undone: each
module's grey is smeared into its neighbours' (inter-symbol interference), so no
threshold of the grey alone separates dark from light. This module reads such a code in
four steps, on a patch already resampled as a rough upright square:

1. **Finder patterns**: the three 7x7 finder patterns are found by normalised
   cross-correlation with a finder template (and its light separator), coarse to fine:
   on the square at half size at the second smallest of four module sizes, then each
   of the best eight places again at full size, in a window of a module each way, at
   that size and those either side (so the largest size, a version 7-8 code filling
   the square, is not tried; a ticket's code is version 11); the three peaks that form
   a right, roughly isosceles corner give the code's orientation, and the timing
   patterns between them its version (the number of dark and light cycles along each,
   the strongest frequency of the grey profile).
2. **Grid**: a homography from code modules to the square's pixels: the three finder
   centres fix six of its eight degrees of freedom; the last two (the perspective left
   by the rough square) are where the fourth corner's missing finder would be, searched
   coarse to fine (12 modules around the parallelogram's corner, down to a ninth of a
   module) for the grid whose alignment patterns fall on the most alignment-like places
   (correlation with an alignment pattern template, summed over them).
3. **Modules**: the frame is resampled through the grid at 3 pixels per module, grey
   normalised by its local mean and spread, and each module's neighbourhood (7x7
   samples: the module and two thirds of each neighbour) weighed by a linear equaliser
   fitted on this very frame: on the
   modules whose colour the QR standard fixes (finder, separator, timing and alignment
   patterns, version information, the dark module), then again on every module with
   the first decisions (once: a second time read nothing more on the tuning part).
   It undoes the blur's smear and the banding, and it
   follows a light-on-dark code as well.
4. **Read**: the decided modules, the fixed ones forced, are drawn as a clean black and
   white code (a quiet zone, 1 pixel per module) and read by zxing-cpp as a pure
   symbol (nothing to locate or binarise), whose Reed-Solomon check decides whether
   there is a text: a module decided wrongly is an error like any other, and too many
   of them give no read, never a wrong one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

Gray = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float64]

_QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
VERSIONS = range(7, 16)
"""QR versions looked for (45 to 77 modules a side): a ticket's dynamic code is version
11 (61 modules); other codes are left to zxing-cpp's own passes."""
_NONE = np.empty((0, 0), np.float32)
"""No third matrix for cv2.gemm."""
_K = 3
"""Samples per module, each way, of the resampled code."""
_SPAN = 7
"""Samples each way (centred on a module) that its equaliser weighs: 7 at 3 per module
is the module and two thirds of each neighbour (9, the whole neighbours, reads as many
hard tuning frames at twice the cost of the fits)."""
_NORM = 6
"""Half-size, in modules, of the window of the local mean and spread."""
_MIN_SCORE = 0.35
"""Least normalised correlation of a finder pattern candidate."""
_COARSE_PEAKS = 8
"""Peaks per module size kept from the finder search at half size (each then found
again at full size)."""
_COARSE_PLACES = 8
"""Places (the best coarse peak of each) found again at full size."""
_COARSE_SCORE = 0.3
"""Least normalised correlation of a peak of the search at half size."""


def side(version: int) -> int:
    return 4 * version + 17


def alignment_centres(version: int) -> list[int]:
    """The rows (and columns) of the alignment patterns' centres (ISO/IEC 18004 table E.1)."""
    if version < 2:
        return []
    count = version // 7 + 2
    size = side(version)
    step = 26 if version == 32 else (version * 4 + count * 2 + 1) // (count * 2 - 2) * 2
    return [6, *sorted(size - 7 - i * step for i in range(count - 1))]


def _version_bits(version: int) -> int:
    rem = version
    for _ in range(12):
        rem = (rem << 1) ^ ((rem >> 11) * 0x1F25)
    return version << 12 | rem


@dataclass(frozen=True, slots=True)
class Layout:
    """The modules a version's standard fixes: `known` where, `dark` their colour;
    `patterns`: the centres (row, column) of its finder and alignment patterns, each
    with its kind (7 a finder, 5 an alignment pattern)."""

    version: int
    known: npt.NDArray[np.bool_]
    dark: npt.NDArray[np.bool_]
    patterns: list[tuple[float, float, int]]


_LAYOUTS: dict[int, Layout] = {}


def layout(version: int) -> Layout:
    if version in _LAYOUTS:
        return _LAYOUTS[version]
    n = side(version)
    known = np.zeros((n, n), bool)
    dark = np.zeros((n, n), bool)
    patterns: list[tuple[float, float, int]] = []
    for r0, c0 in ((0, 0), (0, n - 7), (n - 7, 0)):
        patterns.append((r0 + 3.5, c0 + 3.5, 7))
        for i in range(-1, 8):
            for j in range(-1, 8):
                r, c = r0 + i, c0 + j
                if 0 <= r < n and 0 <= c < n:
                    known[r, c] = True
                    ring = max(abs(i - 3), abs(j - 3))
                    dark[r, c] = ring <= 1 or ring == 3
    for t in range(8, n - 8):
        known[6, t] = known[t, 6] = True
        dark[6, t] = dark[t, 6] = t % 2 == 0
    centres = alignment_centres(version)
    for r in centres:
        for c in centres:
            if (r < 9 and c < 9) or (r < 9 and c > n - 10) or (r > n - 10 and c < 9):
                continue
            patterns.append((r + 0.5, c + 0.5, 5))
            for i in range(-2, 3):
                for j in range(-2, 3):
                    known[r + i, c + j] = True
                    dark[r + i, c + j] = max(abs(i), abs(j)) != 1
    known[n - 8, 8] = dark[n - 8, 8] = True
    if version >= 7:
        bits = _version_bits(version)
        for i in range(18):
            a, b = n - 11 + i % 3, i // 3
            known[a, b] = known[b, a] = True
            dark[a, b] = dark[b, a] = bool(bits >> i & 1)
    found = Layout(version, known, dark, patterns)
    _LAYOUTS[version] = found
    return found


def _template(kind: int, k: float) -> Floats:
    """A finder (kind 7) or alignment (kind 5) pattern with one light module around it,
    `k` pixels per module, dark 0 and light 1."""
    return _template_of_side(kind, max(3, round((kind + 2) * k)))


@functools.lru_cache(maxsize=128)
def _template_of_side(kind: int, size: int) -> Floats:
    """The pattern of `_template` drawn `size` pixels a side (cached by side, which is
    all that `k` changes: every frame's sizes are then drawn once)."""
    cells = kind + 2
    half = cells // 2
    ii, jj = np.mgrid[:cells, :cells] - half
    ring = np.maximum(abs(ii), abs(jj))
    dark = (ring <= 1) | (ring == half - 1) if kind == 7 else (ring != 1) & (ring < half)
    image = np.asarray(cv2.resize(np.where(dark, 0.0, 1.0).astype(np.float32), (size, size),
                                  interpolation=cv2.INTER_AREA), np.float32)
    image.flags.writeable = False  # shared by every call with the same size (cached)
    return image


def _peaks(score: Floats, radius: int, most: int, floor: float) -> list[tuple[float, int, int]]:
    """The `most` highest local maxima of `score` at least `radius` apart, above `floor`."""
    out: list[tuple[float, int, int]] = []
    work = score.copy()
    for _ in range(most):
        _, top, _, (x, y) = cv2.minMaxLoc(work)
        if top < floor:
            break
        out.append((float(top), x, y))
        cv2.circle(work, (x, y), radius, -1.0, -1)
    return out


def _subpixel(score: Floats, x: int, y: int) -> tuple[float, float]:
    """The peak at (x, y) refined by a parabola through its neighbours each way."""
    def offset(minus: float, centre: float, plus: float) -> float:
        denom = minus - 2 * centre + plus
        return 0.0 if denom >= 0 else max(-0.5, min(0.5, 0.5 * (minus - plus) / denom))
    h, w = score.shape
    dx = offset(score[y, x - 1], score[y, x], score[y, x + 1]) if 0 < x < w - 1 else 0.0
    dy = offset(score[y - 1, x], score[y, x], score[y + 1, x]) if 0 < y < h - 1 else 0.0
    return x + dx, y + dy


@dataclass(frozen=True, slots=True)
class Corner:
    """Three finder centres (pixels of the square) in the code's order, and the module
    size the best matched at."""

    top_left: tuple[float, float]
    top_right: tuple[float, float]
    bottom_left: tuple[float, float]
    module: float


def find_finders(square: Gray, modules: tuple[float, ...]) -> list[Corner]:
    """Triples of finder patterns in `square` forming a code's corner, best first;
    `modules`: the module sizes (pixels) tried. Searched coarse to fine: the finder
    template correlated with the square at half size at the second smallest module
    size (with the third as well as many tuning codes read, for 8% more of the call),
    then each peak found again by the full-size template in a window around it (a
    module each way) at that size and those either side."""
    grey = square.astype(np.float32)
    h, w = grey.shape
    small = np.asarray(cv2.resize(grey, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
                       np.float32)
    rough: list[tuple[float, float, float, float]] = []  # score, x, y, module
    for k in modules[1:2] if len(modules) > 2 else modules:
        coarse = _template(7, k / 2)
        if round(9 * k) >= min(grey.shape) or coarse.shape[0] >= min(small.shape):
            continue
        score = np.asarray(cv2.matchTemplate(small, coarse, cv2.TM_CCOEFF_NORMED), np.float32)
        half_coarse = (coarse.shape[0] - 1) / 2
        for top, x, y in _peaks(score, max(2, round(1.5 * k)), _COARSE_PEAKS, _COARSE_SCORE):
            rough.append((top, 2 * (x + half_coarse) + 0.5, 2 * (y + half_coarse) + 0.5, k))
    # one coarse peak per place (its best scale), the best few found again at full size
    rough.sort(key=lambda c: -c[0])
    places: list[tuple[float, float, float, float]] = []
    for c in rough:
        if all(math.hypot(c[1] - o[1], c[2] - o[2]) > 3 * c[3] for o in places):
            places.append(c)
        if len(places) == _COARSE_PLACES:
            break
    candidates: list[tuple[float, float, float, float]] = []  # score, x, y, module
    for _, cx, cy, k in places:
        # at its coarse scale and the scales either side (the best kept)
        i = modules.index(k)
        found = [_refine(grey, cx, cy, modules[j]) for j in range(max(0, i - 1),
                                                                  min(len(modules), i + 2))]
        best = max((f for f in found if f is not None), default=None)
        if best is not None and best[0] >= _MIN_SCORE:
            candidates.append(best)
    # one candidate per place: the best scale
    candidates.sort(key=lambda c: -c[0])
    kept: list[tuple[float, float, float, float]] = []
    for c in candidates:
        if all(math.hypot(c[1] - o[1], c[2] - o[2]) > 4 * c[3] for o in kept):
            kept.append(c)
        if len(kept) == 7:
            break
    corners: list[tuple[float, Corner]] = []
    for i in range(len(kept)):
        for j in range(i + 1, len(kept)):
            for m in range(j + 1, len(kept)):
                corner = _corner(kept[i], kept[j], kept[m])
                if corner is not None:
                    corners.append((kept[i][0] + kept[j][0] + kept[m][0], corner))
    corners.sort(key=lambda item: -item[0])
    return [corner for _, corner in corners]


def _refine(grey: Floats, cx: float, cy: float, k: float
            ) -> tuple[float, float, float, float] | None:
    """The finder pattern near (cx, cy) found again by the full-size template of `k`
    pixels per module, within a module each way: its score, centre and `k`."""
    template = _template(7, k)
    t = template.shape[0]
    h, w = grey.shape
    half = (t - 1) / 2
    reach = max(2, round(k))
    left, top = round(cx - half), round(cy - half)  # the template's corner
    x0, y0 = max(0, left - reach), max(0, top - reach)
    x1, y1 = min(w, left + reach + t), min(h, top + reach + t)
    if x1 - x0 < t or y1 - y0 < t:
        return None
    local = np.asarray(cv2.matchTemplate(grey[y0:y1, x0:x1], template,
                                         cv2.TM_CCOEFF_NORMED), np.float32)
    _, best, _, (lx, ly) = cv2.minMaxLoc(local)
    sx, sy = _subpixel(local, lx, ly)
    return float(best), x0 + sx + half, y0 + sy + half, k


def _corner(*three: tuple[float, float, float, float]) -> Corner | None:
    # plain floats, not numpy arrays: tried on every triple of candidates
    points = [(float(t[1]), float(t[2])) for t in three]
    module = (three[0][3] + three[1][3] + three[2][3]) / 3
    for i in range(3):
        apex, p, q = points[i], points[(i + 1) % 3], points[(i + 2) % 3]
        ux, uy, vx, vy = p[0] - apex[0], p[1] - apex[1], q[0] - apex[0], q[1] - apex[1]
        lu, lv = math.hypot(ux, uy), math.hypot(vx, vy)
        if min(lu, lv) < 10 * module or max(lu, lv) > 1.35 * min(lu, lv):
            continue
        cos = (ux * vx + uy * vy) / (lu * lv)
        if abs(cos) > 0.35:
            continue
        if ux * vy - uy * vx < 0:
            p, q = q, p
        return Corner(apex, p, q, float(module))
    return None


def _timing_version(square: Gray, corner: Corner) -> float:
    """The version the timing patterns count: along each (from one finder's centre to
    the other's, three modules in, on the timing row or column) the number of dark and
    light cycles is the strongest frequency of the grey profile, (n - 7) / 2 of them."""
    tl, tr, bl = (np.array(p) for p in (corner.top_left, corner.top_right, corner.bottom_left))
    counts = []
    for start, end, across in ((tl, tr, bl), (tl, bl, tr)):
        length = float(np.hypot(*(end - start)))
        step_in = (across - start) / float(np.hypot(*(across - start))) * 3 * corner.module
        samples = max(64, round(length / corner.module * 6))
        t = np.linspace(0, 1, samples, dtype=np.float32)[:, None]
        line = (start + step_in) + t * (end - start)
        profile = cv2.remap(square.astype(np.float32),
                            line[:, 0].reshape(1, -1).astype(np.float32),
                            line[:, 1].reshape(1, -1).astype(np.float32), cv2.INTER_LINEAR)[0]
        spectrum = np.abs(np.fft.rfft(profile - profile.mean()))
        low, high = (side(VERSIONS[0]) - 7) // 2 - 2, (side(VERSIONS[-1]) - 7) // 2 + 3
        band = spectrum[low:min(high, len(spectrum))]
        if len(band) == 0:
            continue
        counts.append(low + int(np.argmax(band)))
    if not counts:
        return 0.0
    modules = 2 * float(np.mean(counts)) + 7
    return (modules - 17) / 4


def _grid_from_corner(corner: Corner, n: int, fourth: tuple[float, float] = (0.0, 0.0)
                      ) -> Matrix:
    """Code modules (column, row) -> square pixels, from the three finder centres and
    where the fourth corner's (absent) finder would be: the parallelogram's fourth
    corner moved by `fourth` (pixels)."""
    tl, tr, bl = (np.array(p) for p in (corner.top_left, corner.top_right, corner.bottom_left))
    src = np.array([[3.5, 3.5], [n - 3.5, 3.5], [3.5, n - 3.5], [n - 3.5, n - 3.5]], np.float32)
    dst = np.array([tl, tr, bl, tr + bl - tl + np.array(fourth)], np.float32)
    return np.asarray(cv2.getPerspectiveTransform(src, dst), np.float64)


def _homographies(n: int, dst: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The homographies mapping the centres of the finder patterns' corners of an
    `n`-module code ((3.5, 3.5), (n - 3.5, 3.5), (3.5, n - 3.5), (n - 3.5, n - 3.5))
    to each of the 4-point sets `dst` (shape m, 4, 2, same order), in closed form: the
    unit square's map to a quadrilateral (Heckbert, "Fundamentals of Texture Mapping",
    1989) after the code's square is scaled to the unit one. Shape m, 3, 3; raises
    `numpy.linalg.LinAlgError` where the top-right, bottom-right and bottom-left points
    of a set are in a line (the formula's one division). The callers' sets cannot be
    degenerate otherwise: their three finders form a right corner (`_corner`)."""
    x0, y0 = dst[:, 0, 0], dst[:, 0, 1]  # (0, 0)
    x1, y1 = dst[:, 1, 0], dst[:, 1, 1]  # (1, 0)
    x2, y2 = dst[:, 3, 0], dst[:, 3, 1]  # (1, 1)
    x3, y3 = dst[:, 2, 0], dst[:, 2, 1]  # (0, 1)
    dx1, dx2, dx3 = x1 - x2, x3 - x2, x0 - x1 + x2 - x3
    dy1, dy2, dy3 = y1 - y2, y3 - y2, y0 - y1 + y2 - y3
    det = dx1 * dy2 - dx2 * dy1
    if np.abs(det).min() < 1e-9:
        raise np.linalg.LinAlgError("a degenerate quadrilateral")
    g = (dx3 * dy2 - dx2 * dy3) / det
    h = (dx1 * dy3 - dx3 * dy1) / det
    unit = np.empty((len(dst), 3, 3))  # filled entry by entry (np.c_ costs 5x more)
    unit[:, 0, 0], unit[:, 0, 1], unit[:, 0, 2] = x1 - x0 + g * x1, x3 - x0 + h * x3, x0
    unit[:, 1, 0], unit[:, 1, 1], unit[:, 1, 2] = y1 - y0 + g * y1, y3 - y0 + h * y3, y0
    unit[:, 2, 0], unit[:, 2, 1], unit[:, 2, 2] = g, h, 1.0
    span = n - 7.0
    to_unit = np.array([[1 / span, 0, -3.5 / span], [0, 1 / span, -3.5 / span], [0, 0, 1]])
    return np.asarray(unit @ to_unit, np.float64)


def _alignment_score(square: Gray, module: float) -> tuple[Floats, int]:
    """How alignment-like each place of `square` is (normalised correlation with an
    alignment pattern of `module` pixels per module, indexed by the full-size
    template's corner), and that template's side. Correlated at half size, where it
    costs a third as much, and drawn back at full size (on the tuning part as many
    codes read as with the full-size correlation)."""
    t = _template(5, module).shape[0]
    h, w = square.shape
    # an even crop, so that half size is exactly half (an odd side would stretch it)
    even = square[:h - h % 2, :w - w % 2].astype(np.float32)
    small = np.asarray(cv2.resize(even, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
                       np.float32)
    template = _template(5, module / 2)
    if template.shape[0] > min(small.shape) or t > min(h, w):
        return np.full((max(1, h - t + 1), max(1, w - t + 1)), -1.0, np.float32), t
    score = cv2.matchTemplate(small, template, cv2.TM_CCOEFF_NORMED)
    # full-size corner i: centre i + (t - 1) / 2, at half size (centre - 0.5) / 2, whose
    # corner is that less (side - 1) / 2
    shift = ((t - 1) / 2 - 0.5) / 2 - (template.shape[0] - 1) / 2
    back = np.array([[0.5, 0, shift], [0, 0.5, shift]])
    # (the last pixel or two along the far edges replicate their neighbours' scores)
    full = cv2.warpAffine(score, back, (w - t + 1, h - t + 1),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(full, np.float32), t


def _alignment_scores(square: Gray, module: float) -> tuple[Floats, Floats, int]:
    """`_alignment_score`'s score, the same dilated by a pixel each way (the best score
    near each place: the grid search's coarse levels) and the template's side."""
    fine, t = _alignment_score(square, module)
    return fine, np.asarray(cv2.dilate(fine, np.ones((3, 3), np.uint8)), np.float32), t


def _offsets(half: int) -> npt.NDArray[np.float64]:
    """The (dx, dy) of a (2 half + 1) x (2 half + 1) grid of unit steps, row by row."""
    steps = np.arange(-half, half + 1, dtype=np.float64)
    dx, dy = np.meshgrid(steps, steps)
    return np.stack([dx.ravel(), dy.ravel()], axis=1)


_GRID_9, _GRID_7 = _offsets(4), _offsets(3)


def _perspective(square: Gray, corner: Corner, lay: Layout,
                 scored: tuple[Floats, Floats, int] | None = None) -> tuple[float, Matrix]:
    """The grid whose alignment patterns fall best on alignment-like places of the
    square: the fourth corner searched coarse to fine (the three finders fix the rest);
    with the mean correlation of its alignment patterns."""
    n = lay.known.shape[0]
    centres = np.array([(c, r, 1.0) for r, c, kind in lay.patterns if kind == 5]).T
    fine, coarse, t = _alignment_scores(square, corner.module) if scored is None else scored
    h, w = fine.shape
    tl, tr, bl = (np.array(p) for p in (corner.top_left, corner.top_right, corner.bottom_left))
    base = np.array([tl, tr, bl, tr + bl - tl])
    best = np.zeros(2)
    step = 3.0 * corner.module
    for level in range(4):
        # 9 x 9 places 3 modules apart, then 7 x 7 a third as far apart, three times
        fourth = best + (_GRID_9 if level == 0 else _GRID_7) * step
        dst = np.repeat(base[None], len(fourth), axis=0)
        dst[:, 3] += fourth
        grids = _homographies(n, dst)
        p = grids @ centres  # m, 3, patterns
        x = p[:, 0] / p[:, 2] - (t - 1) / 2
        y = p[:, 1] / p[:, 2] - (t - 1) / 2
        inside = (x >= 0) & (x < w - 1) & (y >= 0) & (y < h - 1)
        x, y = np.clip(x, 0, w - 1.001), np.clip(y, 0, h - 1.001)
        if level < 2:  # coarse: the best score near each place
            values = coarse[np.rint(y).astype(int), np.rint(x).astype(int)]
        else:  # fine: the score between pixels, bilinear
            x0, y0 = x.astype(int), y.astype(int)
            fx, fy = x - x0, y - y0
            values = ((fine[y0, x0] * (1 - fx) + fine[y0, x0 + 1] * fx) * (1 - fy)
                      + (fine[y0 + 1, x0] * (1 - fx) + fine[y0 + 1, x0 + 1] * fx) * fy)
        total = np.where(inside, values, -1.0).sum(1)
        top = int(np.argmax(total))
        best = fourth[top]
        step /= 3
    return (float(total[top]) / centres.shape[1],
            _grid_from_corner(corner, n, (float(best[0]), float(best[1]))))


def _scaled(k: float, margin: float) -> Matrix:
    """Resampled pixel (centre-based) -> code modules, at `k` pixels per module with
    `margin` modules before the code."""
    return np.array([[1 / k, 0, 0.5 / k - margin], [0, 1 / k, 0.5 / k - margin], [0, 0, 1]])


def sample(gray: Gray, to_frame: Matrix, lay: Layout, passes: int = 1
           ) -> Iterator[npt.NDArray[np.bool_]]:
    """The code's modules (True dark) through `to_frame` (code modules -> frame pixels,
    pixel centres at integers), by the equaliser fitted on this frame: first fitted on
    the modules the standard fixes, then `passes` times on every module with the last
    decisions (each decision yielded in turn, the fixed modules forced)."""
    n = lay.known.shape[0]
    margin = 2
    size = (n + 2 * margin) * _K
    code = cv2.warpPerspective(gray, to_frame @ _scaled(_K, margin), (size, size),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    win = (2 * _NORM + 1) * _K
    mean = cv2.blur(code, (win, win))
    spread = np.sqrt(np.maximum(cv2.blur(code * code, (win, win)) - mean * mean, 1.0))
    z = (code - mean) / spread
    span = _SPAN
    start = margin * _K + _K // 2 - span // 2
    windows = np.lib.stride_tricks.sliding_window_view(z[start:, start:], (span, span))
    # each module's span x span samples and a constant, gathered by one copy into the
    # rows (a view by construction: a reshape could silently copy)
    x = np.empty((n * n, span * span + 1), np.float32)
    x[:, -1] = 1.0
    row, item = x.strides
    rows_view = np.lib.stride_tricks.as_strided(
        x, shape=(n, n, span, span), strides=(n * row, row, span * item, item))
    np.copyto(rows_view, windows[::_K, ::_K][:n, :n])
    known = lay.known.ravel()
    target = np.where(lay.dark.ravel(), 1.0, -1.0).astype(np.float32)
    ridge = np.eye(x.shape[1])

    def gram(rows: Floats) -> Matrix:
        # OpenCV's product, not numpy's: on a busy machine OpenBLAS's threads make the
        # normal equations several times slower (and its gemm, not mulTransposed: a
        # third of the time)
        return np.asarray(cv2.gemm(rows, rows, 1.0, _NONE, 0.0, flags=cv2.GEMM_1_T),
                          np.float64) + ridge

    def decide(normal: Matrix, rows: Floats, labels: Floats) -> npt.NDArray[np.bool_]:
        weights = np.linalg.solve(normal, (labels @ rows).astype(np.float64))
        dark = (x @ weights.astype(np.float32) > 0).reshape(n, n)
        dark[lay.known] = lay.dark[lay.known]
        return np.asarray(dark)

    rows = np.ascontiguousarray(x[known])
    dark = decide(gram(rows), rows, target[known])
    yield dark
    normal = gram(x)  # every module's rows: the same for each pass below
    for _ in range(passes):
        dark = decide(normal, x, np.where(dark.ravel(), 1.0, -1.0).astype(np.float32))
        yield dark


def draw(dark: npt.NDArray[np.bool_], module: int = 1) -> Gray:
    """The modules as a clean code: black on white, a 4-module quiet zone, `module`
    pixels a module (1: what zxing-cpp's read of a pure symbol needs)."""
    image = np.pad(np.where(dark, 0, 255).astype(np.uint8), 4, constant_values=255)
    if module == 1:
        return image
    return np.asarray(cv2.resize(image, None, fx=module, fy=module,
                                 interpolation=cv2.INTER_NEAREST), np.uint8)


def read_square(gray: Gray, to_square: Matrix, square: Gray, *, tries: int = 1,
                grids_sampled: int = 1) -> list[str]:
    """The text of a code in `square` (frame -> square: `to_square`), sampled from the
    frame `gray` itself, or nothing. `tries`: finder triples tried, best first, each
    with the version its timing patterns count (the nearest; both at a count half-way
    between two);
    `grids_sampled`: how many of the grids so found are sampled, best matched first."""
    short = min(square.shape)
    # finder module sizes: the rough square is about 1.3 times the code's side, give or
    # take 15%, for codes of 45 to 77 modules
    modules = tuple(float(k) for k in np.geomspace(short / 115, short / 50, 4))
    from_square = np.linalg.inv(to_square)
    grids: list[tuple[float, Matrix, Layout]] = []
    for corner in find_finders(square, modules)[:tries]:
        estimate = _timing_version(square, corner)
        scored = _alignment_scores(square, corner.module)  # the same for each version
        for version in VERSIONS:
            if abs(version - estimate) <= 0.5:
                lay = layout(version)
                try:
                    grids.append((*_perspective(square, corner, lay, scored), lay))
                except np.linalg.LinAlgError:  # a degenerate grid: finders in a line
                    continue
    # only the grid whose alignment patterns match best is sampled (the costly part)
    for _, grid, lay in sorted(grids, key=lambda g: -g[0])[:grids_sampled]:
        for dark in sample(gray, from_square @ grid, lay):
            # read as a pure symbol (its grid is the image's: no locating, no
            # binarising; a third of the time of a located read at 4 pixels a module,
            # the same reads on the tuning part); a failed pure read comes back as an
            # invalid result with no text, hence the `valid`
            texts = [b.text for b in zxingcpp.read_barcodes(
                draw(dark), formats=_QR, try_rotate=False, try_invert=False,
                try_downscale=False, is_pure=True) if b.valid]
            if texts:
                return texts
    return []
