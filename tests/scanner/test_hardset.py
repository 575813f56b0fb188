"""The hard evaluation set (benchmarks/hardset.py): deterministic, real credential codes,
a held-aside part that shares no seed with the tuning part."""

from __future__ import annotations

import itertools

import numpy as np

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
