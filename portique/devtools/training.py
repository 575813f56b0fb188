"""Steward training: a gate on simulated pins that runs until stopped, and commands that
simulate what stewards must rehearse (docs/steward.md, "Training").

The run plays a recorded clip in a loop, or shows nothing at all (an idle camera: manual
admissions, lookups and the simulations only). Through the control socket's ``train`` op
(`gate train simulate ACTION`) it opens and closes the simulated fire-alarm loop, walks a
simulated person through the passage sensor, loses and restores the simulated camera, and
makes the revocation feed look stale, so that every banner the steward UI can show is
seen once before a real day. It refuses to run on anything but gpiozero's mock pins:
a training gate never drives a real lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portique.base.errors import ConfigError, GateError
from portique.base.timeparse import format_time
from portique.hardware.config import PinFactoryName
from portique.revocation.store import StoreStatus
from portique.runtime.clock import FrameClock, GateClock
from portique.runtime.config import Config
from portique.runtime.daemon import ManualRefusedError
from portique.runtime.wiring import GateApp
from portique.scanner.health import CameraHealth
from portique.scanner.sources import ClipSource, Frame, FrameSource, SourceState, _Grabbed

from .simulation import SimulatedRun

log = logging.getLogger(__name__)

ACTIONS = ("fire_alarm", "fire_restored", "passage", "camera_lost", "camera_back",
           "feed_stale", "feed_fresh", "status")
STALE_FEED_S = 6 * 3600.0
"""How old the feed says it is while `feed_stale` is simulated."""


class TrainingSource(_Grabbed):
    """A clip played again and again at its recorded pace, each round `round_s` later on
    the clip's clock than the one before (the next visitors: a ticket admitted in the first
    round is already admitted in the second, its code stale in a later one), or no frames
    at all; `lose()` and `restore()` simulate a camera that stops delivering."""

    def __init__(self, clip: Path | None, *, gap_s: float = 3.0, round_s: float = 10.0
                 ) -> None:
        super().__init__(lossless=False)
        self.clip = None if clip is None else ClipSource.open(clip)
        self.gap_s, self.round_s = gap_s, round_s
        self.rounds = 0
        self._lost = threading.Event()
        self.name = "training (idle camera)" if self.clip is None else \
            f"training clip {self.clip.path}"
        self._since = time.time()
        """When the simulated camera was last lost or restored (or the source made)."""

    def lose(self) -> None:
        self._since = time.time()
        self._lost.set()
        self._set_state(SourceState.RECONNECTING)
        self._count(disconnects=1)

    def restore(self) -> None:
        self._since = time.time()
        self._lost.clear()
        self._set_state(SourceState.RUNNING)

    @property
    def health(self) -> CameraHealth:
        """As a camera reports it, with a name, a why and a since a steward can read."""
        health = super().health
        return CameraHealth(health.state, self.name,
                            "simulated camera loss (training)" if self.lost else "",
                            self._since)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def _grab(self) -> None:
        self._set_state(SourceState.RUNNING)
        while not self._stop.is_set():
            if self.clip is None or self._lost.is_set():
                self._stop.wait(0.1)
                continue
            self._play_once(self.clip, self.rounds * self.round_s)
            self.rounds += 1
            self._stop.wait(self.gap_s)

    def _play_once(self, clip: ClipSource, shift: float) -> None:
        frames = clip.frames
        start, first = time.monotonic(), frames[0].captured_at
        for index, (meta, image) in enumerate(zip(frames, clip._images(), strict=False)):
            delay = (meta.captured_at - first) - (time.monotonic() - start)
            if delay > 0 and self._stop.wait(delay):
                return
            if self._stop.is_set():
                return
            if self._lost.is_set():
                continue  # a lost camera delivers nothing
            self._put(Frame(image, meta.captured_at + shift, index))


@dataclass(frozen=True)
class TrainingRun(SimulatedRun):
    """`gate train run`: a gate that does not end, on mock pins only."""

    clip: Path | None = None
    """Play this clip in a loop; None: an idle camera (no frames)."""
    gap_s: float = 3.0
    """Seconds of pause between two rounds of the clip."""
    round_s: float = 10.0
    """How much later on the clip's clock each round plays."""

    def prepare_pins(self, config: Config, pin_factory: Any) -> None:
        hw = config.hardware
        if hw is None or hw.pin_factory is not PinFactoryName.MOCK \
                or type(pin_factory).__name__ != "MockFactory":
            raise ConfigError("training runs only on simulated pins: set hardware.pin_factory "
                              "= \"mock\" (a training gate never drives a real lock)")
        super().prepare_pins(config, pin_factory)

    def make_source(self, config: Config) -> tuple[FrameSource, GateClock | FrameClock]:
        source = TrainingSource(self.clip, gap_s=self.gap_s, round_s=self.round_s)
        if self.clip is not None:
            return source, _LoopClock(source)
        return source, GateClock(config.clock, on_event=None)

    def built(self, app: GateApp, pin_factory: Any) -> list[Callable[[], None]]:
        closers = super().built(app, pin_factory)
        trainer = Trainer(app, pin_factory)
        app.extra_ops["train"] = trainer.handle
        app.status_overlays.append(trainer.overlay)
        app.feed_overlays.append(trainer.feed_overlay)
        log.warning("TRAINING run gate=%s: simulated pins, %s; simulations through `gate "
                    "train simulate`", app.config.gate.id,
                    f"clip {self.clip} in a loop" if self.clip else "an idle camera")
        return closers


class _LoopClock(FrameClock):
    """The clip's recorded clock, set from each frame (as a replay's)."""

    def __init__(self, source: TrainingSource) -> None:
        super().__init__()
        assert source.clip is not None
        self.current = source.clip.frames[0].captured_at


class Trainer:
    """The ``train`` control op: one simulated event per request."""

    def __init__(self, app: GateApp, pin_factory: Any) -> None:
        hw = app.config.hardware
        assert hw is not None
        self.app = app
        self.fire_pin = pin_factory.pin(hw.pins.fire_loop)
        self.passage_pin = pin_factory.pin(hw.pins.passage)
        self.passage_active_low = hw.passage_pull_up
        self.feed_stale = False
        self.done: list[dict[str, str]] = []
        self._lock = threading.Lock()

    @property
    def source(self) -> TrainingSource:
        source = self.app.source
        assert isinstance(source, TrainingSource)
        return source

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        action = str(request.get("action", "")).replace("-", "_")
        if action not in ACTIONS:
            raise ManualRefusedError(f"train: unknown action {action!r}; one of "
                                     f"{', '.join(a.replace('_', '-') for a in ACTIONS)}",
                                     "invalid")
        with self._lock:
            if action != "status":
                getattr(self, f"_{action}")()
                self.done.append({"action": action, "at": format_time(time.time())})
                log.warning("TRAINING simulated %s gate=%s", action, self.app.config.gate.id)
            return {"ok": True, "action": action, "training": self.state()}

    def state(self) -> dict[str, Any]:
        return {"active": True, "camera_lost": self.source.lost,
                "fire_loop_open": bool(self.fire_pin.state),
                "feed_stale": self.feed_stale,
                "clip": None if self.source.clip is None else str(self.source.clip.path),
                "rounds": self.source.rounds, "simulated": list(self.done[-20:])}

    def overlay(self, status: dict[str, Any]) -> dict[str, Any]:
        return {**status, "training": self.state()}

    def feed_overlay(self, feed: StoreStatus) -> StoreStatus:
        """While `feed_stale` is simulated: the feed signed, and last heard from its
        server, STALE_FEED_S earlier than it was, wherever the gate reports it (the
        steward's status line, `gate ready`, the heartbeat, the metrics); the decisions
        still use the store as it is."""
        if not self.feed_stale:
            return feed
        return dataclasses.replace(feed, published_at=int(feed.published_at - STALE_FEED_S),
                                   fetched_at=feed.fetched_at - STALE_FEED_S)

    # the simulations: the same pins and states the real events move

    def _fire_alarm(self) -> None:
        self.fire_pin.drive_high()  # the normally-closed loop opens

    def _fire_restored(self) -> None:
        self.fire_pin.drive_low()  # closed again: a steward must still acknowledge

    def _passage(self) -> None:
        present, clear = (self.passage_pin.drive_low, self.passage_pin.drive_high) \
            if self.passage_active_low else \
            (self.passage_pin.drive_high, self.passage_pin.drive_low)
        with contextlib.suppress(GateError):
            present()
            time.sleep(0.15)  # a person's body in the beam
            clear()

    def _camera_lost(self) -> None:
        self.source.lose()

    def _camera_back(self) -> None:
        self.source.restore()

    def _feed_stale(self) -> None:
        self.feed_stale = True

    def _feed_fresh(self) -> None:
        self.feed_stale = False


__all__ = ["ACTIONS", "Trainer", "TrainingRun", "TrainingSource"]
