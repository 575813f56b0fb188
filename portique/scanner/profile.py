"""The camera profile (exposure, metering, anti-flicker, focus) applied to the device.

Two backends, one profile (``CameraConfig``'s keys):

* **V4L2** (a USB camera): controls set with the ``VIDIOC_S_CTRL`` ioctl on the device
  node, read back with ``VIDIOC_G_CTRL`` after checking each with ``VIDIOC_QUERYCTRL``.
  OpenCV's ``CAP_PROP_*`` reach only exposure and focus, with values that differ from
  backend to backend, and not the power-line frequency, metering or focus range; the
  ``v4l2-ctl`` tool would add a package and a process per control. The ioctls are a few
  lines, the same on arm64 and x86-64, and can be issued on a second descriptor of the
  device while OpenCV streams from the first (V4L2 allows it).
* **libcamera** (a Pi camera module, through picamera2): the profile is a set of libcamera
  controls (``AeMeteringMode``, ``ExposureValue``, ``AeFlickerMode``/``AeFlickerPeriod``,
  ``AfMode``/``AfRange``/``LensPosition`` ...) given to ``Picamera2.set_controls``; the
  effective values are read back from the frame metadata.

Each backend goes through a small seam (``V4L2Controls``; the picamera2 object) so the
tests can record what is asked of a device that cannot run in CI. Controls the camera does
not have are skipped and reported as ``unsupported``; the profile never stops a camera from
opening.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from portique.scanner.config import AntiFlicker, CameraConfig, Exposure, Focus, Metering

log = logging.getLogger(__name__)

# --- V4L2 ---------------------------------------------------------------------------------

# linux/v4l2-controls.h
_CID_USER = 0x00980900
_CID_CAMERA = 0x009A0900
POWER_LINE_FREQUENCY = _CID_USER + 24      # 0 disabled, 1 50 Hz, 2 60 Hz, 3 auto
EXPOSURE_AUTO = _CID_CAMERA + 1            # 0 auto, 1 manual, 2 shutter prio, 3 aperture prio
EXPOSURE_ABSOLUTE = _CID_CAMERA + 2        # units of 100 microseconds
EXPOSURE_AUTO_PRIORITY = _CID_CAMERA + 3   # 0: keep the frame rate (exposure <= frame time)
FOCUS_ABSOLUTE = _CID_CAMERA + 10          # driver units
FOCUS_AUTO = _CID_CAMERA + 12              # 0 manual, 1 continuous autofocus
AUTO_EXPOSURE_BIAS = _CID_CAMERA + 19      # 0.001 EV units (when an integer control)
EXPOSURE_METERING = _CID_CAMERA + 25       # 0 average, 1 centre, 2 spot, 3 matrix
AUTO_FOCUS_RANGE = _CID_CAMERA + 31        # 0 auto, 1 normal, 2 macro, 3 infinity

CONTROL_NAMES = {
    POWER_LINE_FREQUENCY: "power_line_frequency", EXPOSURE_AUTO: "auto_exposure",
    EXPOSURE_ABSOLUTE: "exposure_time_absolute", EXPOSURE_AUTO_PRIORITY:
    "exposure_dynamic_framerate", FOCUS_ABSOLUTE: "focus_absolute",
    FOCUS_AUTO: "focus_automatic_continuous", AUTO_EXPOSURE_BIAS: "auto_exposure_bias",
    EXPOSURE_METERING: "exposure_metering_mode", AUTO_FOCUS_RANGE: "auto_focus_range",
}
"""The names v4l2-ctl prints for these controls (so a technician can compare)."""

_TYPE_INTEGER, _TYPE_BOOLEAN, _TYPE_MENU = 1, 2, 3
_FLAG_DISABLED = 0x0001


def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("V") << 8) | nr


_CONTROL = struct.Struct("=Ii")                 # struct v4l2_control: id, value
_QUERYCTRL = struct.Struct("=II32siiiiI2I")     # struct v4l2_queryctrl
VIDIOC_G_CTRL = _iowr(27, _CONTROL.size)
VIDIOC_S_CTRL = _iowr(28, _CONTROL.size)
VIDIOC_QUERYCTRL = _iowr(36, _QUERYCTRL.size)


@dataclass(frozen=True, slots=True)
class ControlRange:
    """What VIDIOC_QUERYCTRL says of one control."""

    kind: int
    minimum: int
    maximum: int
    step: int = 1
    default: int = 0


class V4L2Controls(Protocol):
    """The three ioctls the profile needs, on one device node."""

    def query(self, cid: int) -> ControlRange | None:
        """The control's range, or None when the device has no such control."""

    def get(self, cid: int) -> int: ...

    def set(self, cid: int, value: int) -> None: ...

    def close(self) -> None: ...


class IoctlControls:
    """V4L2Controls on a real device node, by ioctl (what a gate uses)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    def query(self, cid: int) -> ControlRange | None:
        buf = bytearray(_QUERYCTRL.pack(cid, 0, b"", 0, 0, 0, 0, 0, 0, 0))
        try:
            fcntl.ioctl(self._fd, VIDIOC_QUERYCTRL, buf, True)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return None
            raise
        _, kind, _, low, high, step, default, flags, _, _ = _QUERYCTRL.unpack(buf)
        if flags & _FLAG_DISABLED:
            return None
        return ControlRange(kind, low, high, step, default)

    def get(self, cid: int) -> int:
        buf = bytearray(_CONTROL.pack(cid, 0))
        fcntl.ioctl(self._fd, VIDIOC_G_CTRL, buf, True)
        return int(_CONTROL.unpack(buf)[1])

    def set(self, cid: int, value: int) -> None:
        fcntl.ioctl(self._fd, VIDIOC_S_CTRL, bytearray(_CONTROL.pack(cid, value)), True)

    def close(self) -> None:
        os.close(self._fd)


def device_path(device: int | str) -> str:
    """The device node of a V4L2 device given as an index or a path."""
    return f"/dev/video{device}" if isinstance(device, int) else device


@dataclass
class ProfileReport:
    """What was asked of the camera and what it took: logged, and shown by `gate status`."""

    backend: str
    controls: dict[str, dict[str, Any]] = field(default_factory=dict)
    """name -> {"wanted": ..., "effective": ...}; effective is "unsupported" when absent."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "controls": self.controls, "notes": list(self.notes)}

    def summary(self) -> str:
        parts = [f"{name}={c['effective']}" for name, c in self.controls.items()]
        return ", ".join(parts + self.notes) or "nothing asked"


def v4l2_wanted(profile: CameraConfig) -> list[tuple[int, int, bool]]:
    """(control, value, required) in the order they must be set; optional ones that the
    camera lacks are not worth a note (the focus range of plain autofocus)."""
    wanted: list[tuple[int, int, bool]] = []
    if profile.anti_flicker is not AntiFlicker.DEVICE:
        wanted.append((POWER_LINE_FREQUENCY, {AntiFlicker.OFF: 0, AntiFlicker.HZ50: 1,
                                              AntiFlicker.HZ60: 2}[profile.anti_flicker],
                       True))
    if profile.exposure is Exposure.AUTO:
        wanted.append((EXPOSURE_AUTO, 3, True))  # aperture priority: UVC's automatic mode
        wanted.append((EXPOSURE_AUTO_PRIORITY, 0, True))
        if profile.exposure_value:
            wanted.append((AUTO_EXPOSURE_BIAS, round(profile.exposure_value * 1000), True))
    elif profile.exposure is Exposure.FIXED:
        wanted.append((EXPOSURE_AUTO, 1, True))
        wanted.append((EXPOSURE_ABSOLUTE, max(1, round(profile.exposure_ms * 10)), True))
    if profile.metering is not Metering.DEVICE:
        wanted.append((EXPOSURE_METERING, {Metering.AVERAGE: 0, Metering.CENTRE: 1,
                                           Metering.SPOT: 2, Metering.MATRIX: 3}
                       [profile.metering], True))
    if profile.focus in (Focus.AUTO, Focus.MACRO):
        wanted.append((FOCUS_AUTO, 1, True))
        wanted.append((AUTO_FOCUS_RANGE, 2 if profile.focus is Focus.MACRO else 0,
                       profile.focus is Focus.MACRO))
    elif profile.focus is Focus.FIXED:
        wanted.append((FOCUS_AUTO, 0, True))
        if profile.v4l2_focus_absolute >= 0:
            wanted.append((FOCUS_ABSOLUTE, profile.v4l2_focus_absolute, True))
    return wanted


def apply_v4l2(controls: V4L2Controls, profile: CameraConfig) -> ProfileReport:
    """Set the profile's controls, then read every one back."""
    report = ProfileReport("v4l2")
    applied: list[tuple[str, int]] = []
    for cid, value, required in v4l2_wanted(profile):
        name = CONTROL_NAMES[cid]
        try:
            info = controls.query(cid)
        except OSError as exc:
            report.controls[name] = {"wanted": value, "effective": f"error: {exc}"}
            continue
        if info is None or (cid == AUTO_EXPOSURE_BIAS and info.kind != _TYPE_INTEGER):
            if required:
                report.controls[name] = {"wanted": value, "effective": "unsupported"}
            continue
        sent = min(max(value, info.minimum), info.maximum)
        if sent != value:
            report.notes.append(f"{name}: {value} is outside {info.minimum}..{info.maximum}, "
                                f"{sent} asked")
        try:
            _set(controls, cid, sent)
        except OSError as exc:
            report.controls[name] = {"wanted": value, "effective": f"error: {exc}"}
            continue
        report.controls[name] = {"wanted": value, "effective": None}
        applied.append((name, cid))
    for name, cid in applied:
        try:
            report.controls[name]["effective"] = controls.get(cid)
        except OSError as exc:
            report.controls[name]["effective"] = f"error: {exc}"
    if profile.exposure is Exposure.AUTO:
        report.notes.append("auto exposure is bounded by the frame time (V4L2 has no "
                            "exposure ceiling control)")
    return report


def _set(controls: V4L2Controls, cid: int, value: int) -> None:
    try:
        controls.set(cid, value)
    except OSError:
        if cid != EXPOSURE_AUTO or value != 3:
            raise
        controls.set(cid, 0)  # a driver without aperture priority: its plain automatic


def open_v4l2_controls(path: str) -> V4L2Controls:
    return IoctlControls(path)


# --- libcamera through picamera2 ----------------------------------------------------------

AE_METERING = {Metering.CENTRE: 0, Metering.SPOT: 1, Metering.MATRIX: 2,
               Metering.AVERAGE: 2}
"""libcamera's AeMeteringModeEnum: CentreWeighted 0, Spot 1, Matrix 2 (no plain average:
matrix is the closest)."""
AF_MANUAL, AF_CONTINUOUS = 0, 2  # AfModeEnum
AF_RANGE_NORMAL, AF_RANGE_MACRO, AF_RANGE_FULL = 0, 1, 2  # AfRangeEnum
AE_FLICKER_OFF, AE_FLICKER_MANUAL = 0, 1  # AeFlickerModeEnum
AE_EXPOSURE_SHORT = 1  # AeExposureModeEnum: Normal 0, Short 1, Long 2, Custom 3
FLICKER_PERIOD_US = {AntiFlicker.HZ50: 10000, AntiFlicker.HZ60: 8333}
"""Lights on 50 Hz mains flicker at 100 Hz: a 10 ms period (8.33 ms at 60 Hz)."""
READ_BACK = ("ExposureTime", "AnalogueGain", "FrameDuration", "LensPosition", "AfState",
             "Lux")


def picamera2_controls(profile: CameraConfig) -> tuple[dict[str, Any], list[str]]:
    """The libcamera controls for the profile, and notes on what is approximated."""
    c: dict[str, Any] = {}
    notes: list[str] = []
    frame_us = round(1_000_000 / profile.fps)
    if profile.anti_flicker is AntiFlicker.OFF:
        c["AeFlickerMode"] = AE_FLICKER_OFF
    elif profile.anti_flicker is not AntiFlicker.DEVICE:
        c["AeFlickerMode"] = AE_FLICKER_MANUAL
        c["AeFlickerPeriod"] = FLICKER_PERIOD_US[profile.anti_flicker]
    if profile.exposure is Exposure.AUTO:
        c["AeEnable"] = True
        c["ExposureValue"] = profile.exposure_value
        c["FrameDurationLimits"] = (frame_us, frame_us)  # exposure never exceeds a frame
        if profile.exposure_max_ms * 1000 < frame_us:
            c["AeExposureMode"] = AE_EXPOSURE_SHORT
            notes.append(f"exposure ceiling {profile.exposure_max_ms:g} ms: libcamera's "
                         "short exposure mode (the tuning file's short exposure table)")
    elif profile.exposure is Exposure.FIXED:
        c["AeEnable"] = False
        c["ExposureTime"] = round(profile.exposure_ms * 1000)
        c["FrameDurationLimits"] = (frame_us, frame_us)
    if profile.metering is not Metering.DEVICE:
        c["AeMeteringMode"] = AE_METERING[profile.metering]
        if profile.metering is Metering.AVERAGE:
            notes.append("metering average: libcamera has none, matrix used")
    if profile.focus in (Focus.AUTO, Focus.MACRO):
        c["AfMode"] = AF_CONTINUOUS
        c["AfRange"] = AF_RANGE_MACRO if profile.focus is Focus.MACRO else AF_RANGE_FULL
    elif profile.focus is Focus.FIXED:
        c["AfMode"] = AF_MANUAL
        c["LensPosition"] = 100.0 / profile.focus_distance_cm  # dioptres: 1 / metres
    return c, notes


class Picamera2Capture:
    """A picamera2 camera behind the read/release interface of ``cv2.VideoCapture``.

    Only these picamera2 methods are used: ``camera_controls``,
    ``create_video_configuration``, ``configure``, ``set_controls``, ``start``,
    ``capture_array``, ``capture_metadata``, ``stop`` and ``close``. "RGB888" is
    libcamera's name for pixels stored B, G, R: the order OpenCV works in.
    """

    def __init__(self, camera: Any, profile: CameraConfig) -> None:
        self.camera = camera
        self.report = ProfileReport("picamera2")
        supported: Mapping[str, Any] = camera.camera_controls
        wanted, notes = picamera2_controls(profile)
        usable = {k: v for k, v in wanted.items() if k in supported}
        config = camera.create_video_configuration(
            main={"size": (profile.width, profile.height), "format": "RGB888"},
            buffer_count=4, controls=usable)
        camera.configure(config)
        camera.set_controls(usable)
        camera.start()
        metadata: Mapping[str, Any] = camera.capture_metadata()
        for name, value in wanted.items():
            effective: Any = "unsupported" if name not in supported else \
                metadata.get(name, "set (not in the metadata)")
            self.report.controls[name] = {"wanted": _plain(value), "effective":
                                          _plain(effective)}
        for name in READ_BACK:
            if name in metadata and name not in self.report.controls:
                self.report.controls[name] = {"wanted": None,
                                              "effective": _plain(metadata[name])}
        self.report.notes.extend(notes)
        exposure = metadata.get("ExposureTime")
        if profile.exposure is Exposure.AUTO and isinstance(exposure, int | float) and \
                exposure > profile.exposure_max_ms * 1000:
            self.report.notes.append(f"exposure {exposure / 1000:.1f} ms is above the "
                                     f"{profile.exposure_max_ms:g} ms wanted")

    def isOpened(self) -> bool:  # noqa: N802 (the name cv2.VideoCapture uses)
        return True

    def read(self) -> tuple[bool, Any]:
        try:
            return True, self.camera.capture_array("main")
        except Exception as exc:  # the camera went away: reported as a lost camera
            log.warning("picamera2 capture failed: %s", exc)
            return False, None

    def release(self) -> None:
        with _quiet():
            self.camera.stop()
        with _quiet():
            self.camera.close()


def open_picamera2(number: int) -> Any:
    """The real camera module (picamera2 is installed from Raspberry Pi OS's apt)."""
    from picamera2 import Picamera2  # type: ignore[import-not-found]  # only on a Pi

    return Picamera2(number)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        log.warning("picamera2 release: %s", exc)


def _plain(value: Any) -> Any:
    """A value JSON can carry (libcamera gives tuples and enum members)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)
