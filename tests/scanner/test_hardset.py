"""The hard evaluation set (benchmarks/hardset.py): deterministic, real credential codes,
a held-aside part that shares no seed with the tuning part."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks import hardset
from portique import keyfiles
from portique.ticket import credential

from ..appliance.conftest import FIXTURES


def test_the_same_seed_gives_the_same_frame_and_another_seed_another() -> None:
    first = next(iter(hardset.samples("tuning", per_cell=1, empty=0)))
    again = next(iter(hardset.samples("tuning", per_cell=1, empty=0)))
    assert first == again
    assert np.array_equal(first.image(), again.image())
    held = next(iter(hardset.samples("held", per_cell=1, empty=0)))
    assert held.seed != first.seed and held.text != first.text
    assert not np.array_equal(held.image(), first.image())


def test_the_held_aside_part_shares_no_seed_and_no_code_with_the_tuning_part() -> None:
    tuning = list(hardset.samples("tuning", per_cell=3, empty=2))
    held = list(hardset.samples("held", per_cell=3, empty=2))
    assert not {s.seed for s in tuning} & {s.seed for s in held}
    assert not {s.text for s in tuning if s.text} & {s.text for s in held if s.text}
    cells = {(s.tier, s.size) for s in tuning}
    assert cells == set(itertools.product((*hardset.TIERS, "empty"), hardset.SIZES))


def test_every_code_is_a_real_credential_of_the_fixture_issuer() -> None:
    trust = keyfiles.load_trust_dir(FIXTURES / "keys")
    for sample in itertools.islice(hardset.samples("held", per_cell=2, empty=0), 6):
        assert sample.text is not None
        parsed = credential.parse_code(sample.text)  # the strict decoding
        assert parsed.fields.event == hardset.EVENT
        assert credential.verify_issuer(parsed, trust.public_key(parsed.fields.kid))
        assert credential.verify_device(parsed)


def test_the_tiers_grow_harder_in_every_nuisance_they_share() -> None:
    easy, medium, hard = (hardset.RANGES[t] for t in hardset.TIERS)
    assert easy["ppm"][0] >= medium["ppm"][0] >= hard["ppm"][0]
    assert easy["tilt"][1] <= medium["tilt"][1] <= hard["tilt"][1] == 45
    assert easy["brightness"][0] >= medium["brightness"][0] >= hard["brightness"][0] == 0.2
    assert easy["jpeg"][0] >= medium["jpeg"][0] >= hard["jpeg"][0]


def _tuning(seed: int) -> hardset.Sample:
    return next(s for s in hardset.samples("tuning", per_cell=8, empty=0) if s.seed == seed)


def test_a_tilted_dim_code_zxing_cannot_locate_is_read_once_its_perspective_is_undone() -> None:
    """Two medium frames of the tuning part (640x480, ~18 and ~16 degrees of tilt, dim
    screens, motion blur): raw zxing-cpp and the pipeline without rectification read
    nothing, the pipeline reads the right text."""
    from portique.scanner.decoders import PipelineDecoder, ZxingDecoder

    for seed in (2001, 2003):
        sample = _tuning(seed)
        image = sample.image()
        assert ZxingDecoder().decode(image) == []
        assert PipelineDecoder(rectify=False).decode(image) == []
        assert PipelineDecoder().decode(image) == [sample.text]


def test_frames_without_a_code_get_no_rectification() -> None:
    from portique.scanner.decoders import PipelineDecoder

    decoder = PipelineDecoder()
    for sample in hardset.samples("tuning", per_cell=0, empty=4):
        assert decoder.decode(sample.image()) == []
    assert decoder.retries == 0  # nothing code-like: one zxing-cpp pass each


def test_the_pre_check_keeps_every_code_and_its_box_holds_the_rectified_patch() -> None:
    """The coarse pre-check (every fourth pixel) lets through every frame with a code,
    easy to hard at both sizes, and the finer search in its box finds a patch there; on
    the first empty frames of each size it stops the search before any resample."""
    from portique.scanner.decoders import _code_like, _code_quads, to_gray

    for sample in hardset.samples("tuning", per_cell=2, empty=3):
        gray = to_gray(sample.image())
        box = _code_like(gray)
        if sample.text is None:
            assert box is None and _code_quads(gray) == []
            continue
        assert box is not None
        quads = _code_quads(gray)
        assert quads
        for x, y in quads[0]:
            assert box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1


def test_the_pre_check_rejecting_on_steps_across_the_rows_first_gives_the_same_answer(
        ) -> None:
    """The early rejection (too few strong steps across the rows) is a shortcut, not a
    new rule: on frames with and without a code, the pre-check's answer is that of the
    full texture mask."""
    import cv2

    from portique.scanner import decoders

    rejected_early = 0
    for sample in hardset.samples("tuning", per_cell=2, empty=6):
        gray = decoders.to_gray(sample.image())
        mask = decoders._texture_mask(np.ascontiguousarray(gray[::4, ::4]), 4)
        full = cv2.countNonZero(mask) * 16 >= decoders._CODE_AREA
        assert (decoders._code_like(gray) is not None) == full
        small = np.ascontiguousarray(gray[::4, ::4])
        across = cv2.blur(cv2.absdiff(small[:, 1:], small[:, :-1])[:-1, :], (4, 4))
        rejected_early += decoders._above(across) * 16 < decoders._CODE_AREA
    assert rejected_early  # the shortcut is taken on some of these frames


def test_a_frame_that_runs_out_of_fallback_budget_is_left_unread_and_the_next_reads() -> None:
    """With a budget too small for its rectified square, a frame only the fallback reads
    comes back unread, without error, counted as short; the decoder is not stuck: the
    next frame (a code zxing-cpp reads at once) is read, and the budget is per frame:
    the default one reads the starved frame."""
    from portique.scanner.decoders import PipelineDecoder

    starved = _tuning(2001)
    easy = next(s for s in hardset.samples("tuning", per_cell=8, empty=0)
                if s.tier == "easy" and s.size == (640, 480))
    decoder = PipelineDecoder(fallback_pixels=50_000)
    assert decoder.decode(starved.image()) == []
    assert decoder.short == 1 and decoder.errors == 0
    assert decoder.decode(easy.image()) == [easy.text]
    assert PipelineDecoder().decode(starved.image()) == [starved.text]


def test_the_default_budget_bounds_a_hard_frame_that_would_run_every_retry() -> None:
    """A hard tuning frame (640x480) where rectification fails and zxing-cpp located
    something: the retry chain on the whole frame no longer runs to its end; the frame
    is left unread, without error. (The module sampler, off here, reads this frame.)"""
    from portique.scanner.decoders import PipelineDecoder

    sample = next(s for s in hardset.samples("tuning", per_cell=45, empty=0)
                  if s.seed == 3044)
    decoder = PipelineDecoder(sample=False)
    assert decoder.decode(sample.image()) == []
    assert decoder.short == 1 and decoder.errors == 0
    assert PipelineDecoder(fallback_pixels=10**9, sample=False).decode(sample.image()) == []
    # (unbounded, it reads nothing more: the budget cost no read here)


def test_a_paced_fallback_skips_the_frame_after_one_it_ran_on() -> None:
    """fallback_every=2 on a stream of the same frame (one only the fallback reads):
    read, skipped (zxing-cpp's pass only, counted as paced), read again. The rest is
    the next frame, whatever it shows: an empty frame there uses it up (and, needing no
    fallback, is not counted as paced)."""
    from portique.scanner.decoders import PipelineDecoder

    sample = _tuning(2001)
    image = sample.image()
    empty = next(iter(hardset.samples("tuning", per_cell=0, empty=1))).image()
    paced = PipelineDecoder(fallback_every=2)
    assert [paced.decode(image) for _ in range(3)] == [[sample.text], [], [sample.text]]
    assert paced.paced == 1 and paced.retries == 2
    assert paced.decode(empty) == []  # the rest after the third frame's fallback
    assert paced.decode(image) == [sample.text]
    assert paced.paced == 1 and paced.retries == 3  # the empty frame put nothing off
    every = PipelineDecoder()
    assert [every.decode(image) for _ in range(3)] == [[sample.text]] * 3
    assert every.paced == 0


def test_a_light_on_dark_code_is_still_read_after_the_first_pass_without_inversion() -> None:
    """The first pass no longer runs zxing-cpp's inverted retry; a frame with module
    texture gets it afterwards: an inverted frame of the tuning part is read as before."""
    import cv2

    from portique.scanner.decoders import PipelineDecoder, ZxingDecoder

    sample = next(s for s in hardset.samples("tuning", per_cell=8, empty=0)
                  if s.tier == "easy" and s.size == (640, 480))
    inverted = np.asarray(cv2.bitwise_not(sample.image()), dtype=np.uint8)
    assert ZxingDecoder().decode(inverted) == [sample.text]  # zxing-cpp's own retry
    decoder = PipelineDecoder()
    assert decoder.decode(inverted) == [sample.text]
    assert decoder.retries == 0  # read by the inverted pass: no fallback


def test_the_inverted_pass_reads_the_pre_check_box_and_reports_frame_pixels(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The inverted pass runs on the pre-check's box, not the whole frame, and still
    reads a light-on-dark code; a light-on-dark code it locates but cannot read (its
    middle scrambled) reaches the fallback as a box in frame pixels, where zxing-cpp
    locates it on the whole inverted frame (a box left in the crop's pixels would be
    hundreds of pixels off at 1280x720)."""
    import cv2
    import zxingcpp

    from portique.scanner import decoders
    from portique.scanner.decoders import PipelineDecoder, Region

    real = zxingcpp.read_barcodes
    shapes: list[tuple[int, ...]] = []

    def spy(image: np.ndarray, *args: object, **kwargs: object) -> list[object]:
        shapes.append(image.shape)
        return real(image, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zxingcpp, "read_barcodes", spy)
    for size in hardset.SIZES:
        sample = next(s for s in hardset.samples("tuning", per_cell=8, empty=0)
                      if s.tier == "easy" and s.size == size)
        inverted = np.asarray(cv2.bitwise_not(sample.image()), dtype=np.uint8)
        roi = decoders._code_like(inverted)
        assert roi is not None
        shapes.clear()
        assert PipelineDecoder().decode(inverted) == [sample.text]
        assert shapes[1] == (roi.y1 - roi.y0, roi.x1 - roi.x0)  # the second pass: the box
        assert shapes[1][0] * shapes[1][1] < 0.5 * size[0] * size[1]

    sample = next(s for s in hardset.samples("tuning", per_cell=8, empty=0)
                  if s.tier == "easy" and s.size == (1280, 720))
    frame = sample.image().copy()
    (code,) = real(frame, formats=decoders._QR)
    box = decoders._box(code.position)
    w, h = box.x1 - box.x0, box.y1 - box.y0
    middle = frame[box.y0 + h * 3 // 10:box.y1 - h * 3 // 10,
                   box.x0 + w * 3 // 10:box.x1 - w * 3 // 10]
    middle[:] = np.random.default_rng(5).integers(0, 256, middle.shape, dtype=np.uint8)
    located = [decoders._box(b.position) for b in real(
        frame, formats=decoders._QR, return_errors=True, try_invert=False) if not b.valid]
    assert located, "the scrambled code is still located by zxing-cpp"
    roi = decoders._code_like(frame)
    assert roi is not None and min(roi.x0, roi.y0) > 100  # a crop's origin far off 0
    seen: list[Region] = []

    def fallback(self: PipelineDecoder, gray: np.ndarray, found: list[Region],
                 *args: object) -> list[str]:
        seen.extend(found)
        return []

    monkeypatch.setattr(PipelineDecoder, "_fallback", fallback)
    assert PipelineDecoder().decode(np.asarray(cv2.bitwise_not(frame), np.uint8)) == []
    # what the crop's pass located (the symbol, and parts of it zxing-cpp guessed at:
    # finder triples) lies where the whole frame's pass located them, in frame pixels
    # (left in the crop's, they would be hundreds of pixels up and to the left)
    x0, y0 = min(b.x0 for b in located), min(b.y0 for b in located)
    x1, y1 = max(b.x1 for b in located), max(b.y1 for b in located)
    margin = 40
    assert seen and all(x0 - margin <= a.x0 and a.x1 <= x1 + margin
                        and y0 - margin <= a.y0 and a.y1 <= y1 + margin for a in seen)
    assert any(max(abs(a.x0 - box.x0), abs(a.y0 - box.y0), abs(a.x1 - box.x1),
                   abs(a.y1 - box.y1)) <= 3 for a in seen)  # the symbol itself
