"""Debouncing: a code seen in consecutive frames is reported once.

A text is new when it was not seen in the last ``hold_seconds`` (by capture time). Each
sighting renews the hold, so a code held up for ten seconds is reported once; shown again
after a gap longer than the hold, it is reported again (and the decision core, not the
debouncer, knows whether that second scan may pass).
"""

from __future__ import annotations

from collections.abc import Iterable


class Debouncer:
    """Turns per-frame texts into new texts only."""

    def __init__(self, hold_seconds: float) -> None:
        if not hold_seconds >= 0:
            raise ValueError(f"hold_seconds must be >= 0, got {hold_seconds}")
        self.hold_seconds = hold_seconds
        self._last_seen: dict[str, float] = {}

    def feed(self, texts: Iterable[str], at: float) -> list[str]:
        """The texts of one frame captured at `at` that were not seen within the hold."""
        self._forget(at)
        new: list[str] = []
        for text in dict.fromkeys(texts):
            last = self._last_seen.get(text)
            if last is None or not 0 <= at - last <= self.hold_seconds:
                new.append(text)
            self._last_seen[text] = at
        return new

    def _forget(self, at: float) -> None:
        stale = [t for t, last in self._last_seen.items()
                 if not 0 <= at - last <= self.hold_seconds]
        for text in stale:
            del self._last_seen[text]
