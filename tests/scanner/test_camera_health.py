"""A camera missing at start, lost and back, delivering black or frozen frames.

The device is a real video file read by OpenCV (CAP_ANY): when the file is not there the
camera cannot be opened (missing, unplugged), when it is moved back it opens again, and
when its content is replaced the camera delivers other pixels. Black frames are real
photos darkened (a covered lens), frozen frames one real photo repeated (a stuck driver
buffer) handed out by a stand-in device, since a video file cannot give bit-identical
frames. Waits are on conditions with a hang guard, never on time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from portique.scanner.decoders import Image
from portique.scanner.health import CameraState, FrameHealth, FrameVerdict
from portique.scanner.images import read_image
from portique.scanner.sources import CameraSource, Frame, SourceState
from tests.scanner.conftest import CLIPS, clip_names, sidecar
from tests.scanner.standins import ArrayCamera, ArrayDevice

GUARD = 60.0
"""Seconds after which a wait gives up (a hang guard, never a measure)."""
WINDOW = 5


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.002)


def clip_images(name: str, count: int | None = None) -> list[Image]:
    frames = sidecar(name)["frames"][:count]
    return [read_image(CLIPS / name / f["file"]) for f in frames]


def write_video(path: Path, images: list[Image]) -> None:
    """A video file, written aside and moved in place: the device appears whole."""
    aside = path.with_name(path.stem + ".part.avi")
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(aside), cv2.VideoWriter.fourcc(*"MJPG"), 10, (width, height))
    for image in images:
        writer.write(image)
    writer.release()
    os.replace(aside, path)


def camera(path: Path) -> CameraSource:
    return CameraSource(str(path), api=cv2.CAP_ANY, backoff=0.02, backoff_max=0.2,
                        health_window=WINDOW)


def next_frame(frames: Iterator[Frame | None]) -> Frame:
    deadline = time.monotonic() + GUARD
    for item in frames:
        if item is not None:
            return item
        assert time.monotonic() < deadline, "no frame came"
    raise AssertionError("the source ended")


# --- the judge on its own ----------------------------------------------------------------

@pytest.mark.parametrize("name", clip_names())
def test_no_committed_clip_frame_is_judged_black_or_frozen(name: str) -> None:
    judge = FrameHealth(window=2)  # the strictest window: two frames in a row suffice
    assert {judge.feed(image) for image in clip_images(name)} == {FrameVerdict.GOOD}


def test_no_real_photo_is_judged_black(qr_real: Path) -> None:
    rows = (qr_real / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]
    photos = [qr_real / row.split("\t")[0] for row in rows]
    assert len(photos) > 100
    for photo in photos:
        judge = FrameHealth(window=2)
        image = read_image(photo)
        judge.feed(image)
        assert judge.feed(image[1:, 1:]) is not FrameVerdict.BLACK, photo  # shifted: new


def test_black_and_frozen_need_a_whole_window_and_one_good_frame_ends_them() -> None:
    photo, other = clip_images("second_scan", 2)
    dark = (photo * 0.03).astype(np.uint8)  # the photo with the lens covered
    judge = FrameHealth(window=3)
    assert [judge.feed(dark) for _ in range(3)] == [FrameVerdict.GOOD, FrameVerdict.GOOD,
                                                    FrameVerdict.BLACK]
    assert judge.feed(photo) is FrameVerdict.GOOD
    assert [judge.feed(photo) for _ in range(2)] == [FrameVerdict.GOOD, FrameVerdict.FROZEN]
    assert judge.feed(other) is FrameVerdict.GOOD
    with pytest.raises(ValueError, match="window"):
        FrameHealth(window=1)


# --- the camera source --------------------------------------------------------------------

def test_camera_missing_at_start_is_lost_naming_the_device_and_comes_by_itself(
        tmp_path: Path) -> None:
    device = tmp_path / "video0.avi"
    with camera(device) as cam:  # no exception: a gate without its camera still runs
        health = cam.health
        assert health.state is CameraState.LOST and health.device == str(device)
        assert "no such device" in health.why
        assert health.headline().startswith(f"CAMERA LOST {device}: no such device")
        frames = cam.frames_with_idle(idle_s=0.01)
        assert next(frames) is None  # the consumer's loop goes on meanwhile
        wait_until(lambda: cam.stats.reopen_attempts >= 2, "retried with backoff")
        assert cam.retry_at is not None
        write_video(device, clip_images("empty", 4))  # plugged in
        frame = next_frame(frames)
        assert (frame.image.shape == (480, 640, 3)) and cam.health.state is CameraState.OK
    assert cam.health.state is CameraState.CLOSED


def test_camera_lost_and_back(tmp_path: Path) -> None:
    device = tmp_path / "video0.avi"
    write_video(device, clip_images("empty", 4))
    away = tmp_path / "unplugged.avi"
    with camera(device) as cam:
        frames = cam.frames_with_idle(idle_s=0.01)
        first = next_frame(frames)
        assert cam.health.state is CameraState.OK and cam.state is SourceState.RUNNING
        os.rename(device, away)  # unplugged: the stream ends and the device is gone
        wait_until(lambda: cam.health.state is CameraState.LOST, "the camera reported lost")
        assert cam.health.device == str(device) and cam.state is SourceState.RECONNECTING
        lost_stats = cam.stats
        assert lost_stats.disconnects >= 1
        os.rename(away, device)  # plugged back in
        wait_until(lambda: cam.health.state is CameraState.OK, "the camera back")
        later = next_frame(frames)
        assert later.index > first.index
        assert cam.stats.reopen_attempts > lost_stats.reopen_attempts


def test_black_frames_are_reported_withheld_and_recovered(tmp_path: Path) -> None:
    device = tmp_path / "video0.avi"
    dark = [(image * 0.03).astype(np.uint8) for image in clip_images("second_scan", 3)]
    write_video(device, dark)
    with camera(device) as cam:
        wait_until(lambda: cam.health.state is CameraState.BLACK, "the camera reported black")
        assert f"{WINDOW} frames in a row black" in cam.health.why
        assert cam.health.headline().startswith(f"CAMERA BLACK {device}")
        wait_until(lambda: cam.stats.withheld > 0, "black frames withheld")
        write_video(device, clip_images("second_scan", 3))  # the lens uncovered
        wait_until(lambda: cam.health.state is CameraState.OK, "the camera ok again")
        frames = cam.frames_with_idle(idle_s=0.01)
        frame = next_frame(frames)
        while frame.image.mean() < 50:  # the slot may still hold a frame from before
            frame = next_frame(frames)
        assert cam.health.state is CameraState.OK


def test_frozen_frames_are_reported_withheld_and_recovered() -> None:
    # A frozen driver buffer cannot be made with a video file (its codec's first frame
    # differs from the next ones): the device is the stand-in handing out real arrays.
    photo = clip_images("valid_step_change", 1)[0]
    device = ArrayDevice([photo])  # the driver hands out the same buffer again and again
    with ArrayCamera(device, health_window=WINDOW) as cam:
        wait_until(lambda: cam.health.state is CameraState.FROZEN,
                   "the camera reported frozen")
        assert f"{WINDOW} frames in a row identical" in cam.health.why
        assert cam.health.headline().startswith("CAMERA FROZEN /dev/video7")
        frames = cam.frames_with_idle(idle_s=0.01)
        next(frames)  # at most one frame left from before the verdict
        withheld = cam.stats.withheld
        after = []
        while cam.stats.withheld < withheld + WINDOW:
            after.append(next(frames))
        assert after and all(item is None for item in after)  # none reaches the decoder
        device.show(clip_images("valid_step_change", 3))  # the driver delivers again
        wait_until(lambda: cam.health.state is CameraState.OK, "the camera ok again")
        assert next_frame(frames).image.shape == photo.shape


def test_a_camera_that_opens_but_gives_nothing_is_lost_and_retried_with_growing_waits(
        ) -> None:
    device = ArrayDevice(clip_images("empty", 2))
    device.empty = True
    with ArrayCamera(device, backoff=0.01, backoff_max=0.08) as cam:
        wait_until(lambda: device.opens >= 5, "reopened again and again")
        assert cam.health.state is CameraState.LOST
        assert cam.health.why == "opens but delivers no frame"
        assert cam._delay == 0.08  # the waits grew to their ceiling instead of spinning
        device.empty = False
        wait_until(lambda: cam.health.state is CameraState.OK, "frames at last")
        assert cam._delay == 0.01  # a frame resets the backoff


def test_a_camera_hung_inside_a_read_is_reported_lost() -> None:
    device = ArrayDevice(clip_images("empty", 2))
    with ArrayCamera(device) as cam:
        wait_until(lambda: cam.health.state is CameraState.OK, "camera ok")
        cam.stall_s = 0.05
        device.answering.clear()  # the driver stops answering, the grabber is stuck
        wait_until(lambda: cam.health.state is CameraState.LOST, "reported lost")
        assert cam.health.why.startswith("no frame for ")
        device.answering.set()
        wait_until(lambda: cam.health.state is CameraState.OK, "answering again")


def test_a_camera_that_starts_black_is_never_reported_ok_on_the_way(
        caplog: pytest.LogCaptureFixture) -> None:
    dark = [(image * 0.03).astype(np.uint8) for image in clip_images("second_scan", 3)]
    device = ArrayDevice(dark)
    with caplog.at_level(logging.INFO, logger="portique.scanner.sources"), \
            ArrayCamera(device, health_window=WINDOW) as cam:
        wait_until(lambda: cam.health.state is CameraState.BLACK, "reported black")
    states = [r.camera_state for r in caplog.records if hasattr(r, "camera_state")]
    assert states[:2] == ["starting", "black"]


def test_a_frozen_camera_is_reopened_now_and_then_and_stays_frozen_meanwhile() -> None:
    photo = clip_images("valid_step_change", 1)[0]
    device = ArrayDevice([photo])
    with ArrayCamera(device, health_window=WINDOW, backoff=0.01, backoff_max=0.05) as cam:
        wait_until(lambda: cam.health.state is CameraState.FROZEN, "reported frozen")
        opens = device.opens
        wait_until(lambda: device.opens >= opens + 2, "the stuck device reopened")
        assert cam.health.state is CameraState.FROZEN  # reopening does not hide it
        device.show(clip_images("valid_step_change", 3))
        wait_until(lambda: cam.health.state is CameraState.OK, "ok again")


def test_a_missing_camera_is_logged_once_in_the_states_people_see(
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    from portique.base.logformat import FieldsFormatter

    missing = "/dev/video-not-here"
    with caplog.at_level(logging.INFO, logger="portique.scanner.sources"), \
            CameraSource(missing, backoff=0.01, backoff_max=0.02) as cam:
        attempts = cam.stats.reopen_attempts
        wait_until(lambda: cam.stats.reopen_attempts >= attempts + 2, "reopened twice")
    moves = [(r.__dict__["from"], r.__dict__["to"]) for r in caplog.records
             if r.getMessage() == "frame source state"]
    seen = {"starting", "ok", "lost", "black", "frozen", "ended", "closed"}
    assert moves and all({a, b} <= seen for a, b in moves), moves
    assert ("starting", "lost") in moves
    lost = next(r for r in caplog.records if r.getMessage() == "camera lost")
    line = FieldsFormatter().format(lost)
    assert line.count(missing) == 1 and "camera lost device=" in line
    assert "[ WARN" not in capfd.readouterr().err  # OpenCV's own lines are kept quiet
