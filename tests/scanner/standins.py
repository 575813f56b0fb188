"""Stand-ins for camera hardware that cannot run here (documented as such, used only where
no real device can be had): a V4L2 capture that hands out given real image arrays, the
V4L2 control ioctls (recorded), and a picamera2 camera module (recorded).

Everything above these seams is the production code: CameraSource's supervision, the
health judge, the profile's mapping, the read-back and the reports.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from portique.scanner.decoders import Image
from portique.scanner.errors import CameraNotFoundError
from portique.scanner.profile import ControlRange
from portique.scanner.sources import CameraSource


class ArrayDevice:
    """What ``cv2.VideoCapture`` of a V4L2 camera gives: frames, here from real image
    arrays, cycled. ``show(images)`` changes what the camera sees (a frozen buffer, a
    covered lens, the queue again); ``unplugged`` makes reads fail and opens refused."""

    def __init__(self, images: list[Image]) -> None:
        self._lock = threading.Lock()
        self.unplugged = False
        self.empty = False
        """Opens, but every read fails (a camera that enumerates and gives nothing)."""
        self.answering = threading.Event()
        """Cleared: a read hangs inside the driver until it is set again."""
        self.answering.set()
        self.opens = 0
        self.show(images)

    def show(self, images: list[Image]) -> None:
        with self._lock:
            self._cycle: Iterator[Image] = itertools.cycle(images)

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return not self.unplugged

    def read(self) -> tuple[bool, Image | None]:
        self.answering.wait()
        if self.unplugged or self.empty:
            return False, None
        with self._lock:
            return True, np.array(next(self._cycle))  # a fresh buffer, as a driver gives

    def release(self) -> None:
        pass


class ArrayCamera(CameraSource):
    """CameraSource with its device open replaced by an ArrayDevice; the rest is real."""

    def __init__(self, device: ArrayDevice, name: str = "/dev/video7", **kwargs: Any) -> None:
        kwargs.setdefault("backoff", 0.02)
        kwargs.setdefault("backoff_max", 0.2)
        super().__init__(name, **kwargs)
        self.array_device = device

    def _open(self) -> Any:
        if self.array_device.unplugged:
            raise CameraNotFoundError(f"{self.name}: no such device, or it cannot be "
                                      "opened (check the cable and permissions)")
        self.array_device.opens += 1
        self._apply_v4l2_profile()
        return self.array_device


class RecordingControls:
    """The V4L2 control ioctls of a UVC camera, recorded: ``calls`` lists every query,
    get and set in order. ``ranges`` says which controls the camera has (a query of any
    other is EINVAL, as the kernel answers); values are clamped to the range on set as a
    driver does, and ``get`` returns what was set (or the default)."""

    def __init__(self, ranges: dict[int, ControlRange], refuse: frozenset[tuple[int, int]]
                 = frozenset()) -> None:
        self.ranges = ranges
        self.refuse = refuse
        self.values = {cid: r.default for cid, r in ranges.items()}
        self.calls: list[tuple[str, int, int | None]] = []
        self.closed = False

    def query(self, cid: int) -> ControlRange | None:
        self.calls.append(("query", cid, None))
        return self.ranges.get(cid)

    def get(self, cid: int) -> int:
        self.calls.append(("get", cid, None))
        return self.values[cid]

    def set(self, cid: int, value: int) -> None:
        self.calls.append(("set", cid, value))
        if (cid, value) in self.refuse:
            raise OSError(22, "Invalid argument")
        r = self.ranges[cid]
        self.values[cid] = min(max(value, r.minimum), r.maximum)

    def close(self) -> None:
        self.closed = True

    def sets(self) -> list[tuple[int, int | None]]:
        return [(cid, value) for op, cid, value in self.calls if op == "set"]


class Picamera2StandIn:
    """The few Picamera2 methods the gate uses, recorded, with the behaviour documented by
    picamera2: ``camera_controls`` maps each control to (min, max, default);
    ``create_video_configuration`` returns a dict; ``capture_metadata`` reports what the
    camera runs with (exposure, gain, frame duration, lens position: not every control set
    is reported back, as on a real module)."""

    def __init__(self, controls: dict[str, tuple[Any, Any, Any]], images: list[Image],
                 exposure_us: int = 4000) -> None:
        self.camera_controls = controls
        self._images = itertools.cycle(images)
        self.exposure_us = exposure_us
        self.calls: list[tuple[str, Any]] = []
        self.controls: dict[str, Any] = {}
        self.started = False
        self.fail_capture = False

    def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("create_video_configuration", kwargs))
        return {"use_case": "video", **kwargs}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append(("configure", config))

    def set_controls(self, controls: dict[str, Any]) -> None:
        unknown = set(controls) - set(self.camera_controls)
        if unknown:  # what libcamera does with a control the camera lacks
            raise RuntimeError(f"Control {sorted(unknown)[0]} is not advertised by libcamera")
        self.calls.append(("set_controls", dict(controls)))
        self.controls.update(controls)

    def start(self) -> None:
        self.calls.append(("start", None))
        self.started = True

    def capture_metadata(self) -> dict[str, Any]:
        self.calls.append(("capture_metadata", None))
        metadata: dict[str, Any] = {
            "ExposureTime": self.controls.get("ExposureTime", self.exposure_us),
            "AnalogueGain": 2.0, "FrameDuration": 33333}
        if "AfMode" in self.camera_controls:
            metadata["LensPosition"] = self.controls.get("LensPosition", 1.0)
            metadata["AfState"] = 1
        return metadata

    def capture_array(self, name: str = "main") -> Image:
        if self.fail_capture:
            raise RuntimeError("Camera frontend has timed out!")
        return np.array(next(self._images))

    def stop(self) -> None:
        self.calls.append(("stop", None))
        self.started = False

    def close(self) -> None:
        self.calls.append(("close", None))
