"""Small helpers shared by the benchmark scripts: interleaved timing, medians, output."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import NoReturn

SKIPPED = 3
"""The exit status of a benchmark that cannot run here (its data is missing): `make bench`
says so and runs the others."""


def skip(reason: str) -> NoReturn:
    """Stop a benchmark that cannot run here, saying why."""
    print(f"skipped: {reason}")
    sys.exit(SKIPPED)


def per_call(fn: Callable[[], object], number: int) -> float:
    """Seconds per call of fn over `number` calls."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def interleaved(subjects: dict[str, Callable[[], object]], *, number: int, rounds: int
                ) -> dict[str, list[float]]:
    """Time each subject `rounds` times, alternating, so machine noise hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for fn in subjects.values():  # warm-up
        per_call(fn, max(1, number // 10))
    for _ in range(rounds):
        for name, fn in subjects.items():
            samples[name].append(per_call(fn, number))
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f} us"
