"""The scanner's configuration: the ``[scanner]`` table of the gate config and its camera.

```toml
[scanner]
decoder = "pipeline"
debounce_seconds = 3.0

[scanner.camera]
device = "/dev/video0"
width = 1280
height = 720
fps = 30
fourcc = "MJPG"
source = "v4l2"          # or "picamera2" (a Pi camera module through libcamera)
exposure = "auto"        # "device" (untouched), "auto" (capped) or "fixed"
exposure_max_ms = 10.0
metering = "spot"
exposure_value = -1.0
anti_flicker = "50"
focus = "macro"
```

The profile keys (exposure ... focus_distance_cm) are applied when the camera opens and
after every reconnect; see docs/scanner.md for what each does on V4L2 and on libcamera.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from portique.base.configschema import setting
from portique.base.errors import ConfigError

_FOURCC_RE = re.compile(r"[A-Za-z0-9 ]{4}")


class DecoderName(enum.StrEnum):
    PIPELINE = "pipeline"
    """zxing-cpp, then retries on regions it located but could not read (the default)."""
    ZXING = "zxing"
    ZBAR = "zbar"


class CameraKind(enum.StrEnum):
    V4L2 = "v4l2"
    """A USB (UVC) camera, or any V4L2 device, through OpenCV; controls by ioctl."""
    PICAMERA2 = "picamera2"
    """A Raspberry Pi camera module through picamera2 and libcamera."""


class Exposure(enum.StrEnum):
    DEVICE = "device"
    """Leave the camera's exposure as it is."""
    AUTO = "auto"
    """Automatic exposure, kept short (exposure_max_ms)."""
    FIXED = "fixed"
    """Manual exposure of exposure_ms."""


class Metering(enum.StrEnum):
    DEVICE = "device"
    AVERAGE = "average"
    CENTRE = "centre"
    SPOT = "spot"
    MATRIX = "matrix"


class AntiFlicker(enum.StrEnum):
    DEVICE = "device"
    OFF = "off"
    HZ50 = "50"
    HZ60 = "60"


class Focus(enum.StrEnum):
    DEVICE = "device"
    AUTO = "auto"
    """Continuous autofocus over the whole range."""
    MACRO = "macro"
    """Autofocus restricted to close distances (a phone held up to the gate)."""
    FIXED = "fixed"
    """Manual focus at focus_distance_cm (picamera2) or v4l2_focus_absolute (V4L2)."""


@dataclass(frozen=True)
class CameraConfig:
    device: str = setting("0", description="The camera: a V4L2 device index (\"0\") or path "
                          "(\"/dev/video0\", or a stable /dev/v4l/by-id/... link)")
    width: int = setting(1280, description="Frame width asked of the camera, pixels",
                         minimum=160, maximum=4096)
    height: int = setting(720, description="Frame height asked of the camera, pixels",
                          minimum=120, maximum=3072)
    fps: float = setting(30.0, description="Frames per second asked of the camera",
                         minimum=1, maximum=120)
    fourcc: str = setting("MJPG", description="Pixel format asked of the camera (FOURCC): "
                          "MJPG for USB cameras at 720p and above, YUYV for raw frames")
    reopen_backoff_seconds: float = setting(
        0.5, description="First wait before reopening a camera that stopped delivering "
        "frames; doubled at each failed attempt", minimum=0.05, maximum=60)
    reopen_backoff_max_seconds: float = setting(
        10.0, description="Longest wait between two attempts to reopen the camera",
        minimum=0.05, maximum=600)
    source: CameraKind = setting(CameraKind.V4L2, description="How the camera is reached: "
                                 "v4l2 (USB camera, OpenCV) or picamera2 (Pi camera module, "
                                 "libcamera; device is then the camera number, \"0\")")
    exposure: Exposure = setting(Exposure.DEVICE, description="Exposure: device (untouched), "
                                 "auto (automatic, kept short) or fixed (exposure_ms)")
    exposure_max_ms: float = setting(
        10.0, description="With exposure = auto: the longest exposure wanted, ms (a phone "
        "screen is bright; short exposures do not blur a moving hand)", minimum=0.1,
        maximum=1000)
    exposure_ms: float = setting(4.0, description="With exposure = fixed: the exposure, ms",
                                 minimum=0.01, maximum=1000)
    exposure_value: float = setting(
        0.0, description="Exposure compensation in EV with automatic exposure (negative: "
        "darker, so an emissive screen is not burnt out)", minimum=-8, maximum=8)
    metering: Metering = setting(Metering.DEVICE, description="Exposure metering: device, "
                                 "average, centre, spot or matrix (spot: the screen in the "
                                 "middle of the picture sets the exposure)")
    anti_flicker: AntiFlicker = setting(
        AntiFlicker.DEVICE, description="Mains flicker to avoid: device, off, 50 or 60 (Hz "
        "of the venue's mains lighting)")
    focus: Focus = setting(Focus.DEVICE, description="Focus: device, auto, macro (close "
                           "range autofocus) or fixed")
    focus_distance_cm: float = setting(
        25.0, description="With focus = fixed, picamera2: focus distance, cm", minimum=1,
        maximum=10000)
    v4l2_focus_absolute: int = setting(
        -1, description="With focus = fixed, v4l2: the driver's focus_absolute value (its "
        "units are the driver's; -1: keep the current position)", minimum=-1,
        maximum=100000)
    health_window_frames: int = setting(
        30, description="Frames in a row that must be black, or identical, before the "
        "camera is reported CAMERA BLACK or CAMERA FROZEN", minimum=2, maximum=10000)

    def __post_init__(self) -> None:
        if not _FOURCC_RE.fullmatch(self.fourcc):
            raise ConfigError(f"scanner.camera.fourcc: must be 4 letters or digits, "
                              f"got {self.fourcc!r}")
        if self.reopen_backoff_max_seconds < self.reopen_backoff_seconds:
            raise ConfigError("scanner.camera.reopen_backoff_max_seconds: must be at least "
                              "reopen_backoff_seconds")

    @property
    def device_spec(self) -> int | str:
        """The device as OpenCV takes it: an index, or a path."""
        return int(self.device) if self.device.isdigit() else self.device


@dataclass(frozen=True)
class ScannerConfig:
    decoder: DecoderName = setting(DecoderName.PIPELINE, description="QR decoder: pipeline "
                                   "(zxing-cpp with retries, the default), zxing or zbar")
    sampler: bool = setting(True, description="With the pipeline decoder: our own module "
                            "sampler as the last step on a code-like patch nothing else read "
                            "(reads the hardest phone screens; about 9 ms a call on the "
                            "development machine, several times that on a Pi)")
    debounce_seconds: float = setting(
        3.0, description="A code seen again within this many seconds of its last sighting "
        "is not reported again", minimum=0, maximum=60)
    camera: CameraConfig = setting(default_factory=CameraConfig,
                                   description="The camera facing the queue")
