from __future__ import annotations

import pytest

from portique.scanner.debounce import Debouncer


def test_same_text_in_consecutive_frames_is_reported_once() -> None:
    d = Debouncer(2.0)
    seen = [d.feed(["A"], t / 10) for t in range(100)]  # held 10 s, seen every frame
    assert seen[0] == ["A"] and all(s == [] for s in seen[1:])


def test_reported_again_after_a_gap_longer_than_the_hold() -> None:
    d = Debouncer(2.0)
    assert d.feed(["A", "B"], 0.0) == ["A", "B"]
    assert d.feed(["A"], 1.9) == []
    assert d.feed(["B"], 2.5) == ["B"]  # B was last seen at 0.0
    assert d.feed(["A"], 3.8) == []  # A renewed at 1.9
    assert d.feed(["A"], 6.5) == ["A"]


def test_duplicates_in_one_frame_and_clock_going_back() -> None:
    d = Debouncer(1.0)
    assert d.feed(["A", "A"], 10.0) == ["A"]
    assert d.feed(["A"], 5.0) == ["A"]  # another clip, earlier clock: a new sighting


def test_negative_hold_refused() -> None:
    with pytest.raises(ValueError, match="hold_seconds"):
        Debouncer(-1)
