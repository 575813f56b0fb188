"""Frame sources behind one interface: a V4L2 camera, or a recorded clip with its sidecar.

A source is a context manager and an iterator of ``Frame`` (pixels, capture time, index).
A grabber thread reads frames into a one-slot buffer: the newest frame wins, so a slow
consumer always gets the latest frame and never a stale one, and every frame replaced
before it was taken is counted in ``stats.dropped`` (a dropped frame is better than a
stale one at a gate). A recorded clip can also be played ``lossless``: the grabber then
waits for the consumer, so tests see every frame, deterministically.

A camera missing when the source opens, or one that disappears later (unplugged, driver
reset), is reopened with exponential backoff, never an error: ``health`` says LOST with
the device and why (the gate reports it and goes on in steward-only mode), ``state`` says
what the source is doing and ``stats`` counts the disconnects and reopen attempts. Black
and frozen frames are detected (``portique.scanner.health``) and not delivered. A device
that hangs inside a read is never released under the grabber: ``close`` gives up waiting
after ``close_timeout`` seconds, logs it, and the grabber releases the device if the read
ever returns.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import cv2
import numpy as np

from portique.scanner.config import CameraConfig, CameraKind
from portique.scanner.decoders import Image
from portique.scanner.errors import CameraNotFoundError, ClipError, ImageError
from portique.scanner.health import TROUBLE, CameraHealth, CameraState, FrameHealth, FrameVerdict
from portique.scanner.images import IMAGE_SUFFIXES, MAX_PIXELS, read_image
from portique.scanner.profile import (
    Picamera2Capture,
    ProfileReport,
    V4L2Controls,
    apply_v4l2,
    device_path,
    open_picamera2,
    open_v4l2_controls,
    v4l2_wanted,
)

log = logging.getLogger(__name__)

CLIP_FORMAT = "portique-clip/1"
SIDECAR = "clip.json"
Pace = Literal["recorded", "fast"]
_POLL = 0.1  # seconds between checks for shutdown while waiting


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: its pixels, when it was captured (Unix seconds) and its number."""

    image: Image
    captured_at: float
    index: int


class SourceState(enum.StrEnum):
    OPENING = "opening"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    """The camera stopped delivering frames; it is being reopened with backoff."""
    ENDED = "ended"
    """A recorded clip ran out."""
    CLOSED = "closed"

    @property
    def seen_as(self) -> CameraState:
        """The camera state people see for this source state (`gate status`, the logs)."""
        return _SEEN_AS[self]


_SEEN_AS = {SourceState.OPENING: CameraState.STARTING, SourceState.RUNNING: CameraState.OK,
            SourceState.RECONNECTING: CameraState.LOST, SourceState.ENDED: CameraState.ENDED,
            SourceState.CLOSED: CameraState.CLOSED}


@dataclass(frozen=True, slots=True)
class SourceStats:
    """Counters since the source opened."""

    read: int = 0
    """Frames read from the device or clip."""
    dropped: int = 0
    """Frames replaced by a newer one before the consumer took them."""
    delivered: int = 0
    disconnects: int = 0
    reopen_attempts: int = 0
    withheld: int = 0
    """Frames read but not delivered: black or frozen (a camera reported BLACK/FROZEN)."""


class FrameSource(Protocol):
    """Frames with their capture time; the newest frame wins."""

    @property
    def state(self) -> SourceState: ...

    @property
    def stats(self) -> SourceStats: ...

    @property
    def health(self) -> CameraHealth: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None: ...

    def __iter__(self) -> Iterator[Frame]: ...

    def frames_with_idle(self, idle_s: float | None = None) -> Iterator[Frame | None]: ...

    def close(self) -> None: ...


class _Grabbed:
    """The grabber thread, the one-slot buffer and the counters shared by every source."""

    close_timeout = 5.0
    """Seconds ``close`` waits for the grabber thread before leaving it the release."""

    def __init__(self, *, lossless: bool) -> None:
        self._lossless = lossless
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._done = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._state = SourceState.OPENING
        self._stats = SourceStats()
        self._thread: threading.Thread | None = None
        self._release_on_exit = False
        """Set by a close that gave up waiting: the grabber releases on its way out."""

    # -- the consumer side --

    @property
    def state(self) -> SourceState:
        return self._state

    @property
    def stats(self) -> SourceStats:
        with self._cond:
            return self._stats

    @property
    def health(self) -> CameraHealth:
        """The state as the gate reports it (a camera supervises more: CameraSource)."""
        return CameraHealth(self._state.seen_as, self.name)

    name = "source"
    """What the source reads (a device, a clip's path), as the gate reports it."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=type(self).__name__,
                                            daemon=True)
            self._thread.start()

    def __iter__(self) -> Iterator[Frame]:
        for frame in self.frames_with_idle():
            if frame is not None:
                yield frame

    def frames_with_idle(self, idle_s: float | None = None) -> Iterator[Frame | None]:
        """Frames as they come; with `idle_s`, also None after each idle_s without one.

        A camera that is being reopened delivers nothing for a while: the None lets the
        consumer's loop go on (watchdog, stop requests) instead of waiting inside.
        """
        self.start()
        while True:
            with self._cond:
                deadline = None if idle_s is None else time.monotonic() + idle_s
                while self._slot is None and not self._done and not self._stop.is_set():
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    self._cond.wait(_POLL)
                item: Frame | None = None
                if self._slot is not None:
                    item, self._slot = self._slot, None
                    self._count(delivered=1)
                    self._cond.notify_all()
                elif self._error is not None:
                    raise self._error
                elif self._done or self._stop.is_set():
                    return
            yield item

    def close(self) -> None:
        """Stop the grabber and release the device once the grabber is out of it.

        A grabber stuck in the device (a hung driver) is not waited for longer than
        ``close_timeout``: the device is then left to the grabber, which releases it if
        its read ever returns, since releasing it under a read in progress is undefined.
        """
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.close_timeout)
        self._set_state(SourceState.CLOSED)
        with self._cond:
            hung = thread is not None and thread.is_alive() and not self._done
            self._release_on_exit = hung and thread is not threading.current_thread()
        if self._release_on_exit:
            log.error("frame source hung: its thread is still inside the device after "
                      "%.1f s; the device is released when that read returns",
                      self.close_timeout, extra={"source": type(self).__name__})
            return
        self._release()

    # -- the grabber side --

    def _run(self) -> None:
        try:
            self._grab()
        except BaseException as exc:  # handed to the consumer, raised from __iter__
            log.exception("frame source failed", extra={"source": type(self).__name__})
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                release = self._release_on_exit
                self._cond.notify_all()
            if release:
                log.info("frame source released after its hung read returned",
                         extra={"source": type(self).__name__})
                self._release()

    def _put(self, frame: Frame) -> None:
        with self._cond:
            if self._lossless:
                while self._slot is not None and not self._stop.is_set():
                    self._cond.wait(_POLL)
            if self._slot is not None:
                self._count(dropped=1)
            self._slot = frame
            self._count(read=1)
            self._cond.notify_all()

    def _count(self, **more: int) -> None:
        s = self._stats
        self._stats = SourceStats(
            read=s.read + more.get("read", 0), dropped=s.dropped + more.get("dropped", 0),
            delivered=s.delivered + more.get("delivered", 0),
            disconnects=s.disconnects + more.get("disconnects", 0),
            reopen_attempts=s.reopen_attempts + more.get("reopen_attempts", 0),
            withheld=s.withheld + more.get("withheld", 0))

    def _set_state(self, state: SourceState) -> None:
        if state is not self._state:
            log.info("frame source state", extra={"source": type(self).__name__,
                                                  "from": self._state.seen_as.value,
                                                  "to": state.seen_as.value})
            self._state = state

    def _grab(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        pass


# --- camera -------------------------------------------------------------------------------

def quiet_opencv() -> None:
    """Keep OpenCV's own log to errors: its unstructured warnings (``[ WARN:0@0.3] global
    cap.cpp:212 ...``) would repeat at every reopen of a missing camera."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class CameraSource(_Grabbed):
    """A camera: a V4L2 device by index (0) or path (/dev/video0) through OpenCV, or a Pi
    camera module through picamera2 (``kind``), supervised.

    The source never fails for want of a camera: a camera missing when the source opens,
    or one that stops delivering frames later, is LOST (``health`` names the device and
    says why) and is reopened after ``backoff`` seconds, doubling up to ``backoff_max``,
    until it comes back or the source is closed. Frames that are all black or frozen
    (``FrameHealth``) make it BLACK or FROZEN and are not delivered; the first good frame
    makes it OK again. The profile (exposure, metering, anti-flicker, focus) is applied
    at every open, so a camera that was unplugged comes back with it; its effective values
    are in ``profile_report``.
    """

    def __init__(self, device: int | str, *, width: int = 1280, height: int = 720,
                 fps: float = 30.0, fourcc: str = "MJPG", backoff: float = 0.5,
                 backoff_max: float = 10.0, api: int = cv2.CAP_V4L2,
                 clock: Callable[[], float] = time.time,
                 profile: CameraConfig | None = None, kind: CameraKind = CameraKind.V4L2,
                 controls: Callable[[str], V4L2Controls] = open_v4l2_controls,
                 picamera2: Callable[[int], Any] = open_picamera2,
                 health_window: int = 30) -> None:
        super().__init__(lossless=False)
        if len(fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters, got {fourcc!r}")
        self.device = device
        self._settings = (width, height, fps, fourcc)
        self._backoff = (backoff, backoff_max)
        self._api = api
        self._clock = clock
        self._capture: Any = None
        self._index = 0
        self.kind = kind
        self.profile = profile or CameraConfig(width=width, height=height, fps=fps,
                                               fourcc=fourcc)
        self._controls = controls
        self._picamera2 = picamera2
        self._judge = FrameHealth(window=health_window)
        self.name = (f"picamera2 camera {device}" if kind is CameraKind.PICAMERA2
                     else device_path(device))
        self._health = CameraHealth(CameraState.STARTING, self.name, "opening",
                                    time.time())
        self.profile_report: ProfileReport | None = None
        self.retry_at: float | None = None
        """While LOST: when the next attempt to reopen is due (Unix seconds)."""
        self.stall_s = max(3.0, 10.0 / fps)
        """An open camera without a single frame for this long is LOST (a hung driver)."""
        self._last_read = time.monotonic()
        self._read_since_open = 0
        self._delay = backoff
        """The next wait before reopening: doubled at each failure, reset by a frame."""
        self._unfreeze_at = 0.0
        """While FROZEN: when the device is reopened (every backoff_max seconds)."""

    @classmethod
    def from_config(cls, cam: CameraConfig, **seams: Any) -> CameraSource:
        """The camera of a ``[scanner.camera]`` table (seams: controls=, picamera2=)."""
        return cls(cam.device_spec, width=cam.width, height=cam.height, fps=cam.fps,
                   fourcc=cam.fourcc, backoff=cam.reopen_backoff_seconds,
                   backoff_max=cam.reopen_backoff_max_seconds, profile=cam, kind=cam.source,
                   health_window=cam.health_window_frames, **seams)

    @property
    def health(self) -> CameraHealth:
        if self._state is SourceState.CLOSED:
            return CameraHealth(CameraState.CLOSED, self.name, "", self._health.since)
        health = self._health
        silent = time.monotonic() - self._last_read
        if health.state is not CameraState.LOST and self._state is SourceState.RUNNING \
                and silent > self.stall_s:  # the grabber is stuck inside a read
            return CameraHealth(CameraState.LOST, self.name, f"no frame for {silent:.0f} s "
                                "(the device does not answer)", time.time() - silent)
        return health

    def __enter__(self) -> Self:
        self._try_open()  # at once, so a camera that is there is OK before the gate is ready
        return super().__enter__()

    def _open(self) -> Any:
        """Open the device and apply the profile; CameraNotFoundError when it is not there."""
        if self.kind is CameraKind.PICAMERA2:
            try:
                camera = self._picamera2(int(self.device))
            except Exception as exc:  # no module, no camera, camera busy: all "not there"
                raise CameraNotFoundError(f"{self.name}: cannot be opened "
                                          f"({type(exc).__name__}: {exc})") from None
            try:
                module = Picamera2Capture(camera, self.profile)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    camera.close()
                raise CameraNotFoundError(f"{self.name}: cannot be started ({exc})") from None
            self._profile_applied(module.report)
            return module
        quiet_opencv()  # our "camera lost" line says it, not OpenCV's own warnings
        capture = cv2.VideoCapture(self.device, self._api)
        if not capture.isOpened():
            capture.release()
            raise CameraNotFoundError(f"{self.name}: no such device, or it cannot be "
                                      "opened (check the cable and permissions)")
        width, height, fps, fourcc = self._settings
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*fourcc))
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_FPS, fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue: keep it short too
        self._apply_v4l2_profile()
        return capture

    def _apply_v4l2_profile(self) -> None:
        if not v4l2_wanted(self.profile):
            return
        try:
            controls = self._controls(self.name)
        except OSError as exc:
            self._profile_applied(ProfileReport("v4l2", notes=[
                f"controls of {self.name} unavailable: {exc.strerror or exc}"]))
            return
        try:
            self._profile_applied(apply_v4l2(controls, self.profile))
        finally:
            controls.close()

    def _profile_applied(self, report: ProfileReport) -> None:
        self.profile_report = report
        log.info("camera profile applied device=%s backend=%s effective: %s", self.name,
                 report.backend, report.summary(), extra={"device": self.name,
                                                          "profile": report.to_json()})

    def _try_open(self) -> bool:
        try:
            capture = self._open()
        except Exception as exc:  # a missing device, or a library failing to open it
            why = str(exc).removeprefix(f"{self.name}: ") \
                if isinstance(exc, CameraNotFoundError) \
                else f"cannot be opened ({type(exc).__name__}: {exc})"
            self._set_health(CameraState.LOST, why)
            return False
        self._capture = capture
        self._last_read, self._read_since_open = time.monotonic(), 0
        self._set_state(SourceState.RUNNING)
        if self._health.state in (CameraState.LOST, CameraState.STARTING):
            self._set_health(CameraState.STARTING, "opened, waiting for a frame")
        return True

    def _grab(self) -> None:
        while not self._stop.is_set():
            if self._capture is None and not self._reopen():
                return
            try:
                ok, image = self._capture.read()
            except Exception as exc:  # a driver error is a lost camera, not a dead gate
                log.warning("camera read failed device=%s cause=%s", self.name, exc)
                ok, image = False, None
            at = self._clock()
            if ok and image is not None:
                self._last_read = time.monotonic()
                self._read_since_open += 1
                self._delay = self._backoff[0]
                self._frame(np.asarray(image, np.uint8), at)
                continue
            self._lost()

    def _frame(self, image: Image, at: float) -> None:
        verdict = self._judge.feed(image)
        if verdict is FrameVerdict.GOOD:
            # OK on a good frame only: a camera that starts black stays "starting" until
            # its window says black, rather than showing "ok" for a moment
            if self._health.state is not CameraState.OK and \
                    self._judge.last is FrameVerdict.GOOD:
                self._set_health(CameraState.OK, "")
            self._put(Frame(image, at, self._index))
        else:
            state = CameraState.BLACK if verdict is FrameVerdict.BLACK else CameraState.FROZEN
            if self._health.state is not state:
                self._set_health(state, f"{self._judge.window} frames in a row "
                                 + ("black" if state is CameraState.BLACK else "identical"))
                self._unfreeze_at = time.monotonic() + self._backoff[1]
            with self._cond:
                self._count(read=1, withheld=1)
            if state is CameraState.FROZEN and time.monotonic() >= self._unfreeze_at:
                # a driver stuck on one buffer is usually cured by reopening the device
                log.warning("camera frozen: reopening device=%s", self.name)
                self._unfreeze_at = time.monotonic() + self._backoff[1]
                self._release()
                self._capture = None
        self._index += 1

    def _lost(self) -> None:
        with self._cond:
            self._count(disconnects=1)
        log.warning("camera stopped delivering frames", extra={"device": self.name})
        self._release()
        self._capture = None
        if self._read_since_open == 0:  # it opens but gives nothing: wait, do not spin
            self._set_health(CameraState.LOST, "opens but delivers no frame")
            self._set_state(SourceState.RECONNECTING)
            return
        with self._cond:
            self._count(reopen_attempts=1)
        if not self._try_open():  # a stream that merely ended reopens at once
            self._set_state(SourceState.RECONNECTING)

    def _reopen(self) -> bool:
        """Reopen with backoff until the camera is back (True) or the source closes."""
        self._set_state(SourceState.RECONNECTING)
        ceiling = self._backoff[1]
        while True:
            delay = self._delay
            self._delay = min(delay * 2, ceiling)
            self.retry_at = time.time() + delay
            if self._stop.wait(delay):
                return False
            with self._cond:
                self._count(reopen_attempts=1)
            if self._try_open():
                self.retry_at = None
                log.info("camera back", extra={"device": self.name})
                return True

    def _set_health(self, state: CameraState, why: str) -> None:
        if state is self._health.state and why == self._health.why:
            return
        level = logging.WARNING if state in TROUBLE else logging.INFO
        log.log(level, "camera %s", state.value,
                extra={"device": self.name, "why": why or "-", "camera_state": state.value})
        self._health = CameraHealth(state, self.name, why, time.time())

    def _release(self) -> None:
        if self._capture is not None:
            with contextlib.suppress(Exception):
                self._capture.release()


# --- recorded clips -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ClipFrame:
    """One frame of a clip's sidecar: its file (folder clips) and its capture time."""

    captured_at: float
    file: str | None = None


def read_sidecar(path: Path) -> tuple[dict[str, Any], list[ClipFrame]]:
    """A clip's sidecar (clip.json): the document and its frames, checked."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClipError(f"{path}: no sidecar (each clip needs one with capture times)") \
            from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClipError(f"{path}: unreadable sidecar ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != CLIP_FORMAT:
        raise ClipError(f"{path}: not a clip sidecar (format {CLIP_FORMAT} expected)")
    raw = doc.get("frames")
    if not isinstance(raw, list) or not raw:
        raise ClipError(f"{path}: frames must be a non-empty list")
    frames: list[ClipFrame] = []
    for i, item in enumerate(raw):
        at = item.get("captured_at") if isinstance(item, dict) else None
        if not isinstance(at, int | float) or isinstance(at, bool):
            raise ClipError(f"{path}: frames[{i}].captured_at must be Unix seconds")
        if frames and at < frames[-1].captured_at:
            raise ClipError(f"{path}: frames[{i}].captured_at goes back in time")
        file = item.get("file")
        if file is not None and (not isinstance(file, str) or "/" in file or "\\" in file):
            raise ClipError(f"{path}: frames[{i}].file must be a file name in the clip folder")
        frames.append(ClipFrame(float(at), file))
    return doc, frames


class ClipSource(_Grabbed):
    """A recorded clip: a folder of images with clip.json, or a video file with X.json.

    ``pace="recorded"`` plays frames at the pace of their capture times (a replay of the
    camera); ``"fast"`` as fast as they can be read. Frames carry their recorded capture
    time. With ``lossless`` the consumer gets every frame (tests); otherwise the newest
    frame wins, as with a camera.

    The recorded pace reads ``clock`` (monotonic seconds) and waits with ``sleep``, which
    gets the seconds to wait and returns True when the wait was cut short by ``close``
    (by default, a wait on the source's stop event).
    """

    def __init__(self, path: Path, frames: list[ClipFrame], *, pace: Pace, lossless: bool,
                 max_pixels: int = MAX_PIXELS,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], bool] | None = None) -> None:
        super().__init__(lossless=lossless)
        self.path = path
        self.name = str(path)
        self.frames = frames
        self._pace = pace
        self._max_pixels = max_pixels
        self._clock = clock
        self._sleep = self._stop.wait if sleep is None else sleep

    @classmethod
    def open(cls, path: Path, pace: Pace = "recorded", lossless: bool = False,
             *, max_pixels: int = MAX_PIXELS, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], bool] | None = None) -> ClipSource:
        """Check the clip and its sidecar; frames are read when iterated."""
        if pace not in ("recorded", "fast"):
            raise ClipError(f"pace must be 'recorded' or 'fast', got {pace!r}")
        if path.is_dir():
            _, frames = read_sidecar(path / SIDECAR)
            for i, frame in enumerate(frames):
                if frame.file is None:
                    raise ClipError(f"{path / SIDECAR}: frames[{i}].file is missing")
                if not (path / frame.file).is_file():
                    raise ClipError(f"{path}: frame file {frame.file} is missing")
        elif path.is_file():
            _, frames = read_sidecar(path.with_suffix(".json"))
        else:
            raise ClipError(f"{path}: no such clip (a folder with {SIDECAR} or a video file)")
        return cls(path, frames, pace=pace, lossless=lossless, max_pixels=max_pixels,
                   clock=clock, sleep=sleep)

    def _grab(self) -> None:
        self._set_state(SourceState.RUNNING)
        start_wall = self._clock()
        first = self.frames[0].captured_at
        images = self._images()
        for index, (meta, image) in enumerate(zip(self.frames, images, strict=False)):
            if self._stop.is_set():
                return
            if self._pace == "recorded":
                delay = (meta.captured_at - first) - (self._clock() - start_wall)
                if delay > 0 and (self._sleep(delay) or self._stop.is_set()):
                    return
            self._put(Frame(image, meta.captured_at, index))
        self._set_state(SourceState.ENDED)

    def _images(self) -> Iterator[Image]:
        if self.path.is_dir():
            for meta in self.frames:
                assert meta.file is not None
                yield read_image(self.path / meta.file, max_pixels=self._max_pixels)
            return
        capture = cv2.VideoCapture(str(self.path))
        try:
            if not capture.isOpened():
                raise ClipError(f"{self.path}: not a readable video file")
            for index in range(len(self.frames)):
                ok, image = capture.read()
                if not ok:
                    raise ClipError(f"{self.path}: video has {index} frames, its sidecar "
                                    f"lists {len(self.frames)}")
                yield np.asarray(image, np.uint8)
        finally:
            capture.release()


def image_files(folder: Path) -> list[Path]:
    """The images of a folder, by name (what `gate decode` reads from a folder)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


__all__ = ["CameraHealth", "CameraSource", "CameraState", "ClipSource", "Frame",
           "FrameSource", "ImageError",
           "SourceState", "SourceStats", "image_files"]
