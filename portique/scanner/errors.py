"""The scanner package's exceptions: a root under GateError, each leaf also a builtin."""

from __future__ import annotations

from portique.base.errors import GateError


class ScannerError(GateError):
    """Root of every error the scanner package raises on purpose."""


class CameraNotFoundError(ScannerError, FileNotFoundError):
    """The configured camera device does not exist or cannot be opened."""


class CameraLostError(ScannerError, ConnectionError):
    """An open camera stopped delivering frames (unplugged, driver reset)."""


class ClipError(ScannerError, ValueError):
    """A recorded clip or its sidecar is missing, unreadable or inconsistent."""


class ImageError(ScannerError, ValueError):
    """A file is not a readable image (empty, corrupt, not an image at all)."""


class ImageTooLargeError(ImageError):
    """An image's declared size is above the pixel cap; its pixels were not decoded."""


class UnknownDecoderError(ScannerError, KeyError):
    """A decoder name that is not one of the known backends."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown decoder"
