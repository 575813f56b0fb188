"""The phone-screen camera profile: on V4L2 (the ioctls recorded by a stand-in), on a Pi
camera module (a picamera2 stand-in), applied at every open, read back and reported;
the ioctl encoding checked against the kernel's header; the config keys checked."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from portique.base.configschema import build
from portique.base.errors import ConfigError
from portique.scanner import profile as p
from portique.scanner.config import CameraConfig, CameraKind, ScannerConfig
from portique.scanner.health import CameraState
from portique.scanner.images import read_image
from portique.scanner.sources import CameraSource
from tests.scanner.conftest import CLIPS
from tests.scanner.standins import ArrayCamera, ArrayDevice, Picamera2StandIn, RecordingControls

GUARD = 60.0
PHONE = {"exposure": "auto", "exposure_max_ms": 10.0, "exposure_value": -1.0,
         "metering": "spot", "anti_flicker": "50", "focus": "macro"}
"""The profile config/gate.toml ships (docs/scanner.md says why each)."""


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.002)


def camera_config(**keys: Any) -> CameraConfig:
    return build(ScannerConfig, {"camera": keys}, "scanner").camera


def uvc_camera() -> RecordingControls:
    """What a common UVC webcam reports: no metering, no focus range, no exposure bias."""
    return RecordingControls({
        p.POWER_LINE_FREQUENCY: p.ControlRange(3, 0, 2, 1, 2),
        p.EXPOSURE_AUTO: p.ControlRange(3, 0, 3, 1, 3),
        p.EXPOSURE_ABSOLUTE: p.ControlRange(1, 3, 2047, 1, 250),
        p.EXPOSURE_AUTO_PRIORITY: p.ControlRange(2, 0, 1, 1, 1),
        p.FOCUS_AUTO: p.ControlRange(2, 0, 1, 1, 1),
        p.FOCUS_ABSOLUTE: p.ControlRange(1, 0, 250, 5, 0),
    })


def test_ioctl_numbers_are_the_kernel_headers() -> None:
    header = Path("/usr/include/linux/videodev2.h")
    if not header.is_file():
        pytest.skip("linux-libc-dev headers not installed")
    # _IOWR('V', nr, size) on every Linux architecture the gate runs on (x86-64, arm64)
    assert p.VIDIOC_G_CTRL == 0xC008561B and p.VIDIOC_S_CTRL == 0xC008561C
    assert p.VIDIOC_QUERYCTRL == 0xC0445624  # struct v4l2_queryctrl: 68 bytes
    text = header.read_text()
    for name, nr in (("VIDIOC_G_CTRL", 27), ("VIDIOC_S_CTRL", 28), ("VIDIOC_QUERYCTRL", 36)):
        assert re.search(rf"#define {name}\s+_IOWR\('V', {nr},", text), name
    controls = Path("/usr/include/linux/v4l2-controls.h").read_text()
    for name, cid, offset in (("POWER_LINE_FREQUENCY", p.POWER_LINE_FREQUENCY, 24),
                              ("EXPOSURE_METERING", p.EXPOSURE_METERING, 25),
                              ("AUTO_FOCUS_RANGE", p.AUTO_FOCUS_RANGE, 31),
                              ("FOCUS_AUTO", p.FOCUS_AUTO, 12)):
        base = "V4L2_CID_BASE" if name == "POWER_LINE_FREQUENCY" else \
            "V4L2_CID_CAMERA_CLASS_BASE"
        assert re.search(rf"#define V4L2_CID_{name}\s+\({base}\+{offset}\)", controls), name
        assert cid & 0xFF == offset


def test_a_real_non_v4l2_node_is_refused_by_the_kernel_not_by_a_crash(tmp_path: Path) -> None:
    node = tmp_path / "not-a-camera"
    node.write_bytes(b"")
    controls = p.IoctlControls(str(node))
    try:
        with pytest.raises(OSError):  # ENOTTY: the real ioctl path, on a real descriptor
            controls.query(p.POWER_LINE_FREQUENCY)
    finally:
        controls.close()


def test_phone_profile_on_a_uvc_camera_sets_the_controls_in_order_and_reads_them_back(
        ) -> None:
    uvc = uvc_camera()
    report = p.apply_v4l2(uvc, camera_config(**PHONE))
    assert uvc.sets() == [(p.POWER_LINE_FREQUENCY, 1), (p.EXPOSURE_AUTO, 3),
                          (p.EXPOSURE_AUTO_PRIORITY, 0), (p.FOCUS_AUTO, 1)]
    # each control is queried before it is set, and read back after all are set
    queried = [cid for op, cid, _ in uvc.calls if op == "query"]
    assert queried == [p.POWER_LINE_FREQUENCY, p.EXPOSURE_AUTO, p.EXPOSURE_AUTO_PRIORITY,
                       p.AUTO_EXPOSURE_BIAS, p.EXPOSURE_METERING, p.FOCUS_AUTO,
                       p.AUTO_FOCUS_RANGE]
    assert [op for op, _, _ in uvc.calls][-4:] == ["get"] * 4
    c = report.controls
    assert c["power_line_frequency"] == {"wanted": 1, "effective": 1}
    assert c["auto_exposure"] == {"wanted": 3, "effective": 3}
    assert c["exposure_dynamic_framerate"] == {"wanted": 0, "effective": 0}
    assert c["focus_automatic_continuous"] == {"wanted": 1, "effective": 1}
    # what this camera lacks is said, not hidden
    assert c["exposure_metering_mode"] == {"wanted": 2, "effective": "unsupported"}
    assert c["auto_focus_range"] == {"wanted": 2, "effective": "unsupported"}
    assert c["auto_exposure_bias"] == {"wanted": -1000, "effective": "unsupported"}
    assert any("frame time" in note for note in report.notes)


def test_fixed_exposure_and_focus_are_clamped_to_the_cameras_range() -> None:
    uvc = uvc_camera()
    report = p.apply_v4l2(uvc, camera_config(exposure="fixed", exposure_ms=400.0,
                                             focus="fixed", v4l2_focus_absolute=300,
                                             anti_flicker="60", metering="device"))
    assert uvc.sets() == [(p.POWER_LINE_FREQUENCY, 2), (p.EXPOSURE_AUTO, 1),
                          (p.EXPOSURE_ABSOLUTE, 2047), (p.FOCUS_AUTO, 0),
                          (p.FOCUS_ABSOLUTE, 250)]
    assert report.controls["exposure_time_absolute"] == {"wanted": 4000, "effective": 2047}
    assert any("4000 is outside 3..2047" in note for note in report.notes)


def test_a_driver_without_aperture_priority_gets_plain_automatic_exposure() -> None:
    uvc = uvc_camera()
    uvc.refuse = frozenset({(p.EXPOSURE_AUTO, 3)})
    report = p.apply_v4l2(uvc, camera_config(exposure="auto"))
    assert (p.EXPOSURE_AUTO, 3) in uvc.sets() and (p.EXPOSURE_AUTO, 0) in uvc.sets()
    assert report.controls["auto_exposure"]["effective"] == 0


def test_a_device_profile_touches_nothing() -> None:
    assert p.v4l2_wanted(CameraConfig()) == []
    assert p.picamera2_controls(CameraConfig()) == ({}, [])


def test_the_profile_is_applied_at_start_and_again_after_every_reconnect() -> None:
    image = read_image(CLIPS / "empty" / "000.jpg")
    other = read_image(CLIPS / "empty" / "001.jpg")
    device = ArrayDevice([image, other])
    opened: list[RecordingControls] = []

    def controls(path: str) -> RecordingControls:
        assert path == "/dev/video7"  # the same node OpenCV streams from
        opened.append(uvc_camera())
        return opened[-1]

    with ArrayCamera(device, profile=camera_config(**PHONE), controls=controls) as cam:
        wait_until(lambda: cam.health.state is CameraState.OK, "camera ok")
        assert len(opened) == 1 and opened[0].closed
        assert cam.profile_report is not None
        assert cam.profile_report.controls["power_line_frequency"]["effective"] == 1
        device.unplugged = True
        wait_until(lambda: cam.health.state is CameraState.LOST, "camera lost")
        device.unplugged = False
        wait_until(lambda: cam.health.state is CameraState.OK and len(opened) == 2,
                   "camera back with its profile")
        assert opened[1].sets() == opened[0].sets() != []


# --- picamera2 --------------------------------------------------------------------------

MODULE_3 = {  # what picamera2 lists for a Camera Module 3 (imx708): it has autofocus
    "AeEnable": (False, True, None), "ExposureValue": (-8.0, 8.0, 0.0),
    "AeMeteringMode": (0, 3, 0), "AeExposureMode": (0, 3, 0),
    "AeFlickerMode": (0, 1, 0), "AeFlickerPeriod": (100, 1000000, None),
    "ExposureTime": (26, 112015443, None), "FrameDurationLimits": (33333, 120000000, None),
    "AfMode": (0, 2, 0), "AfRange": (0, 2, 0), "LensPosition": (0.0, 15.0, 1.0),
}


def test_phone_profile_on_a_camera_module_through_picamera2() -> None:
    shots = [read_image(CLIPS / "empty" / f"00{i}.jpg") for i in range(2)]
    module = Picamera2StandIn(MODULE_3, shots, exposure_us=8000)
    with CameraSource("0", kind=CameraKind.PICAMERA2, profile=camera_config(
            source="picamera2", device="0", **PHONE), picamera2=lambda n: module) as cam:
        wait_until(lambda: cam.health.state is CameraState.OK, "module ok")
        assert cam.health.device == "picamera2 camera 0"
        frame = next(iter(cam))
        assert any((frame.image == shot).all() for shot in shots)  # the module's pixels
    names = [name for name, _ in module.calls]
    assert names[:5] == ["create_video_configuration", "configure", "set_controls", "start",
                         "capture_metadata"]
    assert names[-2:] == ["stop", "close"]
    asked = module.calls[2][1]
    assert asked == {"AeFlickerMode": 1, "AeFlickerPeriod": 10000, "AeEnable": True,
                     "ExposureValue": -1.0, "FrameDurationLimits": (33333, 33333),
                     "AeExposureMode": 1, "AeMeteringMode": 1, "AfMode": 2, "AfRange": 1}
    video = module.calls[0][1]
    assert video["main"] == {"size": (1280, 720), "format": "RGB888"}
    report = cam.profile_report
    assert report is not None and report.backend == "picamera2"
    assert report.controls["ExposureTime"] == {"wanted": None, "effective": 8000}
    assert report.controls["AeMeteringMode"]["effective"] == "set (not in the metadata)"
    assert any("short exposure" in n for n in report.notes)
    assert not any("above" in n for n in report.notes)  # 8 ms: within the 10 ms wanted


def test_fixed_focus_on_a_module_without_autofocus_is_reported_unsupported() -> None:
    # two frames in turn: one image again and again is a frozen camera, which a loaded
    # machine can judge before this test sees the module ok
    images = [read_image(CLIPS / "empty" / f"00{i}.jpg") for i in range(2)]
    no_af = {k: v for k, v in MODULE_3.items() if not k.startswith(("Af", "Lens"))}
    module = Picamera2StandIn(no_af, images, exposure_us=25000)
    with CameraSource("0", kind=CameraKind.PICAMERA2, profile=camera_config(
            source="picamera2", exposure="auto", exposure_max_ms=10.0, focus="fixed",
            focus_distance_cm=20.0), picamera2=lambda n: module) as cam:
        wait_until(lambda: cam.health.state is CameraState.OK, "module ok")
    report = cam.profile_report
    assert report is not None
    assert report.controls["LensPosition"] == {"wanted": 5.0, "effective": "unsupported"}
    assert report.controls["AfMode"]["effective"] == "unsupported"
    assert "AfMode" not in module.calls[2][1]  # never asked of a camera that lacks it
    assert any("25.0 ms is above the 10 ms wanted" in n for n in report.notes)


def test_a_module_that_fails_is_lost_and_reopened_with_its_profile() -> None:
    images = [read_image(CLIPS / "empty" / f"00{i}.jpg") for i in range(3)]
    modules: list[Picamera2StandIn] = []
    plugged = [True]

    def open_module(number: int) -> Picamera2StandIn:
        if not plugged[0]:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        modules.append(Picamera2StandIn(MODULE_3, images))
        return modules[-1]

    with CameraSource("0", kind=CameraKind.PICAMERA2, profile=camera_config(**PHONE),
                      picamera2=open_module, backoff=0.02, backoff_max=0.1) as cam:
        wait_until(lambda: cam.health.state is CameraState.OK, "module ok")
        plugged[0] = False
        modules[0].fail_capture = True  # the ribbon cable pulled out
        wait_until(lambda: cam.health.state is CameraState.LOST, "module lost")
        assert "Camera __init__ sequence did not complete" in cam.health.why
        plugged[0] = True
        wait_until(lambda: cam.health.state is CameraState.OK, "module back")
        assert cam.stats.disconnects >= 1
    assert len(modules) == 2
    assert modules[0].calls[-2:] == [("stop", None), ("close", None)]  # released when lost
    assert modules[0].calls[2] == modules[1].calls[2]  # the same profile again


def test_profile_keys_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"scanner\.camera\.anti_flicker: must be one of"):
        camera_config(anti_flicker="55")
    with pytest.raises(ConfigError,
                       match=r"scanner\.camera\.exposure_value: must be at least"):
        camera_config(exposure_value=-9)
    with pytest.raises(ConfigError, match=r"scanner\.camera\.source: must be one of"):
        camera_config(source="gstreamer")
    assert camera_config(**PHONE).exposure_value == -1.0
