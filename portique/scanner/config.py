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
```
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
    debounce_seconds: float = setting(
        3.0, description="A code seen again within this many seconds of its last sighting "
        "is not reported again", minimum=0, maximum=60)
    camera: CameraConfig = setting(default_factory=CameraConfig,
                                   description="The camera facing the queue")
