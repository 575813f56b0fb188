"""The hardware package's exceptions: a root under GateError, each leaf also a builtin."""

from __future__ import annotations

from portique.base.errors import GateError


class HardwareError(GateError):
    """Root of every error the hardware package raises on purpose."""


class PinFactoryError(HardwareError, RuntimeError):
    """The configured pin factory cannot be opened on this machine (never replaced by another)."""


class PinOpenError(HardwareError, RuntimeError):
    """A device's pin could not be opened: invalid, already in use or not permitted."""


class TurnstileBusyError(HardwareError, RuntimeError):
    """The turnstile is already in an admission cycle and cannot start another action."""


class TurnstileClosedError(HardwareError, RuntimeError):
    """The turnstile was used after close(), or closed while a caller was waiting on it."""
