"""Frame sources on committed clips, a video file written here, and a camera whose device
hangs (a missing, lost, black or frozen camera: test_camera_health.py)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import pytest

from portique.scanner.decoders import Image
from portique.scanner.errors import ClipError
from portique.scanner.images import read_image
from portique.scanner.sources import CameraSource, ClipSource, Frame, SourceState
from tests.scanner.conftest import CLIPS, sidecar

GUARD = 30.0
"""Seconds after which a test waiting on a thread gives up (a hang guard, never a measure)."""


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < deadline, "the grabber thread stalled"
        time.sleep(0.001)


def test_lossless_fast_clip_gives_every_frame_with_its_recorded_time() -> None:
    doc = sidecar("second_scan")
    with ClipSource.open(CLIPS / "second_scan", pace="fast", lossless=True) as clip:
        frames = list(clip)
        assert clip.state is SourceState.ENDED
    assert [f.index for f in frames] == list(range(len(doc["frames"])))
    assert [f.captured_at for f in frames] == [f["captured_at"] for f in doc["frames"]]
    assert clip.stats.read == len(frames) and clip.stats.dropped == 0
    assert (frames[3].image == read_image(CLIPS / "second_scan" / "003.jpg")).all()


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted() -> None:
    total = len(sidecar("valid_step_change")["frames"])
    with ClipSource.open(CLIPS / "valid_step_change", pace="fast") as clip:
        taken = []
        for frame in clip:
            taken.append(frame.index)
            # A consumer slower than the reader, whatever the machine: it comes back only
            # once the grabber has read three more frames (or the clip is over).
            wanted = min(frame.index + 4, total)
            wait_until(lambda: clip.stats.read >= wanted)  # noqa: B023 (called right here)
    stats = clip.stats
    assert taken[-1] == total - 1  # the last frame is never lost: it is the newest
    assert stats.read == total and stats.delivered == len(taken)
    assert stats.dropped == total - len(taken) >= 2 * (len(taken) - 1)
    assert taken == sorted(taken) and len(set(taken)) == len(taken)


class VirtualTime:
    """A clock that moves only when asked to sleep (plus `lag` at each reading)."""

    def __init__(self, lag: float = 0.0) -> None:
        self.now = 1000.0
        self.lag = lag
        self.sleeps: list[float] = []

    def clock(self) -> float:
        self.now += self.lag
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        self.now += seconds
        return False


def test_recorded_pace_waits_for_each_capture_time() -> None:
    times = [f["captured_at"] for f in sidecar("empty")["frames"]]
    virtual = VirtualTime()
    with ClipSource.open(CLIPS / "empty", pace="recorded", lossless=True,
                         clock=virtual.clock, sleep=virtual.sleep) as clip:
        frames = list(clip)
    assert [f.captured_at for f in frames] == times
    gaps = [later - earlier for earlier, later in pairwise(times)]
    assert virtual.sleeps == pytest.approx(gaps)


def test_recorded_pace_does_not_wait_when_reading_is_behind() -> None:
    times = [f["captured_at"] for f in sidecar("empty")["frames"]]
    gap = min(later - earlier for earlier, later in pairwise(times))
    virtual = VirtualTime(lag=2 * gap)  # each frame takes longer than the recorded gap
    with ClipSource.open(CLIPS / "empty", pace="recorded", lossless=True,
                         clock=virtual.clock, sleep=virtual.sleep) as clip:
        frames = list(clip)
    assert len(frames) == len(times) and virtual.sleeps == []


def test_recorded_pace_wait_is_cut_short_by_close() -> None:
    asked = threading.Event()
    times = [f["captured_at"] for f in sidecar("empty")["frames"]]

    def stopped_sleep(seconds: float) -> bool:
        asked.set()
        return True  # what the default wait returns when the source is closed meanwhile

    with ClipSource.open(CLIPS / "empty", pace="recorded", lossless=True,
                         sleep=stopped_sleep) as clip:
        frames = list(clip)
    assert asked.is_set() and len(frames) == 1 < len(times)


def test_video_file_with_sidecar(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (640, 480))
    for i in range(5):
        writer.write(read_image(CLIPS / "valid_step_change" / f"{i + 4:03d}.jpg"))
    writer.release()
    frames = [{"captured_at": 1722877200 + i / 10} for i in range(5)]
    video.with_suffix(".json").write_text(json.dumps({"format": "portique-clip/1",
                                                      "frames": frames}))
    with ClipSource.open(video, pace="fast", lossless=True) as clip:
        got = list(clip)
    assert [f.captured_at for f in got] == [f["captured_at"] for f in frames]
    assert got[0].image.shape == (480, 640, 3)


@pytest.mark.parametrize(("sidecar_text", "message"), [
    (None, "no sidecar"),
    ("{", "unreadable sidecar"),
    ('{"format": "other"}', "not a clip sidecar"),
    ('{"format": "portique-clip/1", "frames": []}', "non-empty"),
    ('{"format": "portique-clip/1", "frames": [{"file": "a.jpg"}]}', "captured_at"),
    ('{"format": "portique-clip/1", "frames": [{"file": "a.jpg", "captured_at": 1}]}',
     "a.jpg is missing"),
])
def test_bad_clips_are_refused_with_the_reason(tmp_path: Path, sidecar_text: str | None,
                                               message: str) -> None:
    if sidecar_text is not None:
        (tmp_path / "clip.json").write_text(sidecar_text)
    with pytest.raises(ClipError, match=message):
        ClipSource.open(tmp_path, pace="fast")


def test_camera_that_stops_is_reopened(tmp_path: Path) -> None:
    # A video file through OpenCV stands in for the device: when it runs out, the
    # camera source sees a lost camera and reopens it, as after an unplug.
    video = tmp_path / "cam.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (640, 480))
    for i in range(3):
        writer.write(read_image(CLIPS / "empty" / f"{i:03d}.jpg"))
    writer.release()
    with CameraSource(str(video), api=cv2.CAP_ANY, backoff=0.05, backoff_max=0.1) as cam:
        frames = []
        for frame in cam:
            frames.append(frame)
            if len(frames) == 7:
                break
        stats = cam.stats
    assert stats.disconnects >= 2 and stats.reopen_attempts >= 2
    assert [f.index for f in frames] == sorted(f.index for f in frames)
    assert cam.state is SourceState.CLOSED


class FakeDevice:
    """A camera device: each read gives a real frame, except the reads numbered in
    `hang_on`, which hang inside the device until `unblock` is set (a hung V4L2 driver).
    Records whether it was released while a read was in progress."""

    def __init__(self, image: Image, hang_on: set[int]) -> None:
        self.image = image
        self.hang_on = hang_on
        self.reads = 0
        self.in_read = False
        self.hung = threading.Event()
        self.unblock = threading.Event()
        self.released = threading.Event()
        self.released_during_read: bool | None = None

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return True

    def read(self) -> tuple[bool, Image]:
        self.reads += 1
        self.in_read = True
        if self.reads in self.hang_on:
            self.hung.set()
            self.unblock.wait(GUARD)
        self.in_read = False
        return True, self.image

    def release(self) -> None:
        if not self.released.is_set():
            self.released_during_read = self.in_read
        self.released.set()


class FakeCamera(CameraSource):
    def __init__(self, device: FakeDevice) -> None:
        super().__init__("/dev/video-fake")
        self.device_under_test = device
        self.close_timeout = 0.05  # the hung read never returns by itself: always exceeded

    def _open(self) -> Any:
        return self.device_under_test


@pytest.fixture
def frame_image() -> Image:
    return read_image(CLIPS / "empty" / "000.jpg")


def test_close_releases_the_camera(frame_image: Image) -> None:
    device = FakeDevice(frame_image, hang_on=set())
    with FakeCamera(device) as cam:
        assert next(iter(cam)).index >= 0  # the newest of the frames read so far
    assert device.released.is_set() and device.released_during_read is False
    assert cam.state is SourceState.CLOSED


def test_hung_camera_is_not_released_under_its_read(frame_image: Image,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    device = FakeDevice(frame_image, hang_on={2})
    with caplog.at_level(logging.INFO, logger="portique.scanner.sources"), \
            FakeCamera(device) as cam:
        assert next(iter(cam)).index == 0
        assert device.hung.wait(GUARD)
        cam.close()
        assert cam.state is SourceState.CLOSED
        assert not device.released.is_set()  # the read is still in progress
        assert "frame source hung" in caplog.text
        device.unblock.set()  # the driver comes back: the grabber releases on its way out
        assert device.released.wait(GUARD)
        assert device.released_during_read is False
        wait_until(lambda: "released after its hung read returned" in caplog.text)


def test_frames_with_idle_yields_none_while_the_camera_is_silent(frame_image: Image) -> None:
    device = FakeDevice(frame_image, hang_on={1})
    with FakeCamera(device) as cam:
        items = cam.frames_with_idle(idle_s=0.01)
        assert next(items) is None  # no frame can come: the first read hangs
        assert next(items) is None  # and again after each idle period
        device.unblock.set()
        got = next(item for item in items if item is not None)
        assert isinstance(got, Frame) and (got.image == frame_image).all()
        cam.close()
        assert all(item is not None for item in items)  # ends on close (at most the
        # frame already waiting), with no more idle Nones


def test_frames_with_idle_ends_on_close_while_idle(frame_image: Image) -> None:
    device = FakeDevice(frame_image, hang_on={1})
    with FakeCamera(device) as cam:
        items = cam.frames_with_idle(idle_s=0.01)
        assert next(items) is None
        cam.close()
        assert list(items) == []
        device.unblock.set()
        assert device.released.wait(GUARD) and device.released_during_read is False


def test_frames_with_idle_ends_with_the_clip() -> None:
    count = len(sidecar("empty")["frames"])
    with ClipSource.open(CLIPS / "empty", pace="fast", lossless=True) as clip:
        items = list(clip.frames_with_idle(idle_s=0.01))
    frames = [item for item in items if item is not None]
    assert [f.index for f in frames] == list(range(count))
