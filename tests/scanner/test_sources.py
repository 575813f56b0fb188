"""Frame sources on committed clips, a video file written here, and a missing camera."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import pytest

from scanner.errors import CameraNotFoundError, ClipError
from scanner.images import read_image
from scanner.sources import CameraSource, ClipSource, SourceState
from tests.scanner.conftest import CLIPS, sidecar


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
    with ClipSource.open(CLIPS / "valid_step_change", pace="fast") as clip:
        taken = []
        for frame in clip:
            taken.append(frame.index)
            time.sleep(0.05)  # a consumer slower than the reader
    stats = clip.stats
    assert taken[-1] == 15  # the last frame is never lost: it is the newest
    assert stats.read == 16 and stats.dropped == 16 - len(taken) > 0
    assert taken == sorted(taken)


def test_recorded_pace_follows_capture_times() -> None:
    doc = sidecar("empty")
    span = doc["frames"][-1]["captured_at"] - doc["frames"][0]["captured_at"]
    start = time.monotonic()
    with ClipSource.open(CLIPS / "empty", pace="recorded", lossless=True) as clip:
        count = sum(1 for _ in clip)
    assert count == len(doc["frames"])
    assert time.monotonic() - start >= span * 0.9  # not played faster than recorded


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


def test_missing_camera_is_an_error_naming_the_device() -> None:
    with pytest.raises(CameraNotFoundError, match="/dev/video-none"), \
            CameraSource("/dev/video-none"):
        pass


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
