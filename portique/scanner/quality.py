"""How usable a camera frame looks: its exposure and its sharpness, measured cheaply.

One measure takes a frame down to a 320-pixel-wide grey image and reports its mean
brightness (0-255) and the variance of its Laplacian, the usual focus measure: a sharp,
textured scene gives hundreds to thousands, a defocused or blank one a few units. The
gate samples about one frame a second (`QualityMeter`), a small fraction of the frames it
decodes, and `gate ready` judges the median of the recent samples
(portique/runtime/readiness.py holds the limits).
"""

from __future__ import annotations

import collections
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from portique.scanner.decoders import Image

_WIDTH = 320


@dataclass(frozen=True, slots=True)
class FrameQuality:
    brightness: float
    """Mean grey level, 0 (black) to 255 (white)."""
    sharpness: float
    """Variance of the Laplacian of the reduced grey image: low means blurred or blank."""


def measure(image: Image) -> FrameQuality:
    """Brightness and sharpness of one frame (grey or BGR pixels)."""
    array = np.asarray(image)
    grey = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_BGR2GRAY)
    height, width = grey.shape[:2]
    if width > _WIDTH:
        grey = cv2.resize(grey, (_WIDTH, max(1, round(height * _WIDTH / width))),
                          interpolation=cv2.INTER_AREA)
    return FrameQuality(brightness=round(float(grey.mean()), 1),
                        sharpness=round(float(cv2.Laplacian(grey, cv2.CV_64F).var()), 1))


class QualityMeter:
    """Samples at most one frame per `period_s` (monotonic) and keeps the last `keep`."""

    def __init__(self, *, period_s: float = 1.0, keep: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._period, self._clock = period_s, clock
        self._samples: collections.deque[FrameQuality] = collections.deque(maxlen=keep)
        self._next = 0.0
        self._lock = threading.Lock()

    def offer(self, image: Image) -> None:
        """Measure `image` if a sample is due; cheap to call on every frame."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._period
        sample = measure(image)
        with self._lock:
            self._samples.append(sample)

    def recent(self) -> FrameQuality | None:
        """The median brightness and sharpness of the recent samples, or None yet."""
        with self._lock:
            samples = list(self._samples)
        if not samples:
            return None
        return FrameQuality(
            brightness=round(statistics.median(s.brightness for s in samples), 1),
            sharpness=round(statistics.median(s.sharpness for s in samples), 1))
