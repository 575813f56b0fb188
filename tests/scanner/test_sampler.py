"""Our own module sampler (portique/scanner/sampler.py) on real pixels: hard frames of
the hard set's tuning part, made here by its seeded generator."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno

from benchmarks import hardset
from portique.commands.main import main
from portique.runtime.config import from_dict
from portique.scanner import sampler
from portique.scanner.config import ScannerConfig
from portique.scanner.decoders import PipelineDecoder, make_decoder
from portique.ticket import credential


def _tuning(seed: int) -> hardset.Sample:
    return next(s for s in hardset.samples("tuning", per_cell=30, empty=0) if s.seed == seed)


def test_the_fixed_modules_of_a_version_are_those_of_a_real_code() -> None:
    """The layout's fixed modules (finder, separator, timing, alignment, version
    information, the dark module) are those segno draws for a ticket's code."""
    text = hardset.ticket_code(1)
    matrix = np.array(segno.make(text, error="m").matrix, dtype=bool)
    version = (matrix.shape[0] - 17) // 4
    lay = sampler.layout(version)
    assert lay.known.shape == matrix.shape
    assert np.array_equal(lay.dark[lay.known], matrix[lay.known])
    # finders with their separators, timing, six alignment patterns, version info, dark
    assert lay.known.sum() == 3 * 64 + 2 * 45 + 6 * 25 - 2 * 5 + 2 * 18 + 1
    assert sampler.alignment_centres(2) == [6, 18]
    assert sampler.alignment_centres(7) == [6, 22, 38]
    assert sampler.alignment_centres(32) == [6, 34, 60, 86, 112, 138]


def test_the_grid_search_homographies_are_those_opencv_solves() -> None:
    """The closed-form maps from a code's finder-corner centres to candidate grids are
    the homographies cv2.getPerspectiveTransform solves for the same points; a
    degenerate quadrilateral (three corners in a line) is refused."""
    n = 61
    src = np.array([[3.5, 3.5], [n - 3.5, 3.5], [3.5, n - 3.5], [n - 3.5, n - 3.5]],
                   np.float32)
    rng = np.random.default_rng(7)
    quads = np.array([[12, 10], [310, 24], [18, 296], [305, 300]], float) \
        + rng.normal(0, 12, (16, 4, 2))
    grids = sampler._homographies(n, quads)
    for quad, grid in zip(quads, grids, strict=True):
        expected = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
        assert np.allclose(grid / grid[2, 2], expected, atol=1e-4)
    # top-right, bottom-left and bottom-right in a line, the top-left off it
    line = np.array([[[0, 0], [100, 50], [0, 100], [50, 75]]], float)
    with pytest.raises(np.linalg.LinAlgError):
        sampler._homographies(n, line)


def _alignment_peak(score: np.ndarray) -> tuple[float, float]:
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    return sampler._subpixel(score, int(x), int(y))


@pytest.mark.parametrize("module", [3.6, 4.5])
@pytest.mark.parametrize("side", [240, 241])
@pytest.mark.parametrize(("left", "top"), [(131, 77), (130, 78), (57, 160)])
def test_the_alignment_score_peaks_on_an_alignment_pattern(
        module: float, side: int, left: int, top: int) -> None:
    """The alignment score, correlated at half size and drawn back at full size, peaks
    where the full-size correlation does, on the same indexing: within half a pixel
    (sub-pixel peaks), at both parities of the pattern's place and of the square's side
    (an odd side must not stretch the half-size image)."""
    square = np.full((side, side), 200, np.uint8)
    pattern = cv2.resize(np.where(sampler._template(5, 1.0) < 0.5, 30, 200).astype(np.uint8),
                         (round(7 * module), round(7 * module)), interpolation=cv2.INTER_AREA)
    square[top:top + pattern.shape[0], left:left + pattern.shape[1]] = pattern
    score, t = sampler._alignment_score(square, module)
    assert score.shape == (side - t + 1, side - t + 1)
    full = np.asarray(cv2.matchTemplate(square.astype(np.float32), sampler._template(5, module),
                                        cv2.TM_CCOEFF_NORMED), np.float32)
    fx, fy = _alignment_peak(full)
    assert abs(fx - left) <= 1 and abs(fy - top) <= 1  # the pattern drawn (its light ring)
    x, y = _alignment_peak(score)
    assert abs(x - fx) <= 0.55 and abs(y - fy) <= 0.55


@pytest.mark.parametrize("seed", [3001, 3005, 3017, 13000, 13014])
def test_hard_frames_read_only_by_the_sampler(seed: int) -> None:
    """Hard tuning frames (640x480 and 1280x720: 25-45 degrees of tilt, 1.8-2.8 pixels
    per module, motion blur, moiré, glare) that the pipeline without the sampler reads
    nothing in: with it, the right text, which passes the credential's strict decoding."""
    sample = _tuning(seed)
    image = sample.image()
    assert PipelineDecoder(sample=False).decode(image) == []
    decoder = PipelineDecoder()
    assert decoder.decode(image) == [sample.text]
    assert sample.text is not None
    credential.parse_code(sample.text)
    assert decoder.errors == 0 and decoder.rescued == 1


def test_frames_without_a_code_give_nothing() -> None:
    """The empty frames of the tuning part, squares of noise and of stripes handed to
    the sampler itself, and a code-like frame that is no code (a version 11 symbol's
    fixed patterns around random modules, tilted, blurred: the sampler finds its
    finders and grid, and Reed-Solomon refuses the modules): no text."""
    for sample in hardset.samples("tuning", per_cell=0, empty=20):
        assert PipelineDecoder().decode(sample.image()) == []
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (400, 400), dtype=np.uint8)
    stripes = np.tile((np.arange(400) // 3 % 2 * 255).astype(np.uint8), (400, 1))
    for square in (noise, stripes):
        assert sampler.read_square(square, np.eye(3), square) == []
    lay = sampler.layout(11)
    for seed in range(3):
        modules = np.random.default_rng(seed).random(lay.known.shape) < 0.5
        modules[lay.known] = lay.dark[lay.known]
        code = sampler.draw(modules, 4).astype(np.float32)  # 4 pixels per module
        side = code.shape[0]
        corners = np.array([[0, 0], [side, 0], [side, side], [0, side]], np.float32)
        placed = np.array([[200, 90], [400, 110], [390, 300], [190, 280]], np.float32)
        warp = cv2.getPerspectiveTransform(corners, placed)
        frame = cv2.warpPerspective(code, warp, (640, 480), borderValue=200.0)
        frame = cv2.GaussianBlur(frame, (0, 0), 1.0)
        image = np.clip(frame * 0.7 + 30, 0, 255).astype(np.uint8)
        decoder = PipelineDecoder()
        assert decoder.decode(image) == []
        assert decoder.retries == 1 and decoder.errors == 0  # the fallback ran


def test_the_sampler_is_bounded_by_the_frame_budget() -> None:
    """A fallback budget too small for the sampler's square skips it (counted short):
    the frame only the sampler reads is then left unread, without error."""
    sample = _tuning(3001)
    decoder = PipelineDecoder(fallback_pixels=1_000_000)
    assert decoder.decode(sample.image()) == []
    assert decoder.short == 1 and decoder.errors == 0


def test_the_sampler_can_be_left_out_by_config_and_by_gate_decode(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`scanner.sampler = false` (a gate whose CPU cannot afford it) and `gate decode
    --no-sampler` build the pipeline without its last step: a frame only the sampler reads
    gives nothing, and the same frame is read with it."""
    sample = _tuning(3001)
    assert make_decoder("pipeline", sampler=False).decode(sample.image()) == []
    assert make_decoder("pipeline").decode(sample.image()) == [sample.text]
    assert ScannerConfig().sampler and not from_dict(
        {"gate": {"id": "1", "event": "PAR24-ATH05", "entrance": 1},
         "keys": {"trust_dir": str(tmp_path)}, "scanner": {"sampler": False}}).scanner.sampler
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), sample.image())
    assert main(["decode", "--json", "--no-sampler", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["codes"] == []
    assert main(["decode", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["codes"] == [sample.text]
