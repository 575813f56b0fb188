"""Is the camera delivering pictures? Black and frozen frames told apart cheaply.

A camera can be open and delivering frames that are worthless: all black (lens covered,
a sensor that lost its clock, an MJPEG stream of empty buffers) or frozen (a driver that
keeps handing out the same buffer). Each frame is subsampled (every 8th pixel in each
direction, green channel: 160x90 values of a 720p frame; about 1% of one zxing-cpp pass,
docs/PERFORMANCE.md) and judged:

* **black**: mean below ``black_mean_max`` and standard deviation below ``black_std_max``
  (out of 255): nothing but a dark, flat picture;
* **frozen**: the subsampled pixels are bit-identical to the previous frame's (compared by
  a 64-bit BLAKE2b digest). A live sensor never gives two identical frames, its noise
  alone sees to that; a still scene does not freeze a camera.

A verdict needs ``window`` frames in a row of the same kind; one good frame ends it.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

import numpy as np

from portique.scanner.decoders import Image

STRIDE = 8
"""Every STRIDE-th pixel in each direction is looked at."""


class CameraState(enum.StrEnum):
    """What the gate says about its camera (`gate status`, metrics, the steward's banner)."""

    STARTING = "starting"
    """Not opened yet, or opened and no frame read yet."""
    OK = "ok"
    LOST = "lost"
    """Missing at start, or stopped delivering frames: being reopened with backoff."""
    BLACK = "black"
    FROZEN = "frozen"
    ENDED = "ended"
    """A recorded clip ran out (replay only)."""
    CLOSED = "closed"


TROUBLE = frozenset({CameraState.LOST, CameraState.BLACK, CameraState.FROZEN})
"""States in which the gate reads no ticket: steward-only mode."""


@dataclass(frozen=True, slots=True)
class CameraHealth:
    """The camera's state, its device, why (a sentence) and since when (Unix seconds)."""

    state: CameraState
    device: str
    why: str = ""
    since: float = 0.0

    @property
    def ok(self) -> bool:
        return self.state is CameraState.OK

    def headline(self) -> str:
        """One line: ``CAMERA LOST /dev/video0: no such device`` or ``camera ok /dev/video0``."""
        if self.state in TROUBLE:
            text = f"CAMERA {self.state.value.upper()} {self.device}"
            return f"{text}: {self.why}" if self.why else text
        return f"camera {self.state.value} {self.device}"


class FrameVerdict(enum.StrEnum):
    GOOD = "good"
    BLACK = "black"
    FROZEN = "frozen"


class FrameHealth:
    """Judges frames one by one; ``verdict`` is the run of the last ``window`` frames."""

    def __init__(self, *, window: int = 30, black_mean_max: float = 12.0,
                 black_std_max: float = 4.0) -> None:
        if window < 2:
            raise ValueError(f"window must be at least 2 frames, got {window}")
        self.window = window
        self.black_mean_max, self.black_std_max = black_mean_max, black_std_max
        self._last: bytes | None = None
        self._kind = FrameVerdict.GOOD
        self._run = 0

    def reset(self) -> None:
        """Forget the frames seen (the device was reopened)."""
        self._last, self._kind, self._run = None, FrameVerdict.GOOD, 0

    def feed(self, image: Image) -> FrameVerdict:
        """Judge one frame; returns the verdict in force after it."""
        # the green channel of a colour frame: most of the luminance, a third of the work
        small = np.ascontiguousarray(image[::STRIDE, ::STRIDE, 1] if image.ndim == 3
                                     else image[::STRIDE, ::STRIDE])
        digest = hashlib.blake2b(small.tobytes(), digest_size=8).digest()
        if float(small.mean()) <= self.black_mean_max and \
                float(small.std()) <= self.black_std_max:
            kind = FrameVerdict.BLACK
        elif digest == self._last:
            kind = FrameVerdict.FROZEN
        else:
            kind = FrameVerdict.GOOD
        self._last = digest
        if kind is self._kind:
            self._run += 1
        else:
            # a frozen run starts with the first of the identical frames
            self._kind, self._run = kind, 2 if kind is FrameVerdict.FROZEN else 1
        return self.verdict

    @property
    def last(self) -> FrameVerdict:
        """What the last frame looked like on its own (before any window)."""
        return self._kind

    @property
    def verdict(self) -> FrameVerdict:
        if self._kind is FrameVerdict.GOOD or self._run < self.window:
            return FrameVerdict.GOOD
        return self._kind
