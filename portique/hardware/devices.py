"""The turnstile's gpiozero devices, opened from the config on one pin factory.

Inputs are opened before outputs, so the fire-alarm loop is read before the lock is first
driven, and the lock relay starts in the state the caller asks for (no click at start).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpiozero import LED, Buzzer, DigitalInputDevice, DigitalOutputDevice

from portique.hardware.config import HardwareConfig
from portique.hardware.errors import PinOpenError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnstileDevices:
    """One handle per wired device. ``lock.value`` is True while the relay is energised;
    ``fire_loop.is_active`` is True while the loop is closed (no alarm)."""

    lock: Any
    green: Any
    red: Any
    buzzer: Any
    passage: Any
    fire_loop: Any
    relay_feedback: Any | None

    def all(self) -> list[Any]:
        """Every opened device, inputs first."""
        devices = [self.passage, self.fire_loop, self.relay_feedback, self.lock, self.green,
                   self.red, self.buzzer]
        return [d for d in devices if d is not None]

    def close(self) -> None:
        """Close every device, outputs first; never raises."""
        for device in reversed(self.all()):
            with contextlib.suppress(Exception):
                device.close()


def open_devices(config: HardwareConfig, pin_factory: Any, *,
                 lock_energised: Callable[[bool], bool]) -> TurnstileDevices:
    """Open every device of `config`; PinOpenError names the key and GPIO that failed.

    `lock_energised` is given whether the fire loop reads closed and says how to start the
    lock relay, so that the relay's first state already answers the loop.
    """
    pins = config.pins
    opened: list[Any] = []

    def open_one(key: str, number: int, make: Callable[[], Any]) -> Any:
        try:
            device = make()
        except Exception as exc:  # gpiozero raises many classes; all mean "not this pin"
            for done in reversed(opened):
                with contextlib.suppress(Exception):
                    done.close()
            raise PinOpenError(f"hardware.pins.{key} (GPIO{number}): cannot open: "
                               f"{type(exc).__name__}: {exc}") from exc
        opened.append(device)
        return device

    # The pin library filters bounce too where it can (lgpio does); Turnstile counts a person
    # only once the level has held for the same time, whatever the library did.
    bounce = config.passage_bounce_ms / 1000 or None
    passage = open_one("passage", pins.passage, lambda: DigitalInputDevice(
        pins.passage, pull_up=config.passage_pull_up, bounce_time=bounce,
        pin_factory=pin_factory))
    # The loop closes to ground: with the pull-up, "active" (low) means closed, no alarm,
    # and a cut wire reads as an open loop.
    fire_loop = open_one("fire_loop", pins.fire_loop, lambda: DigitalInputDevice(
        pins.fire_loop, pull_up=True, pin_factory=pin_factory))
    feedback = None
    if pins.relay_feedback is not None:
        number = pins.relay_feedback
        feedback = open_one("relay_feedback", number, lambda: DigitalInputDevice(
            number, pull_up=config.relay_feedback_pull_up, pin_factory=pin_factory))
    start_energised = lock_energised(bool(fire_loop.is_active))
    lock = open_one("lock", pins.lock, lambda: DigitalOutputDevice(
        pins.lock, active_high=config.lock_active_high, initial_value=start_energised,
        pin_factory=pin_factory))
    signals = config.signals_active_high
    green = open_one("green", pins.green, lambda: LED(
        pins.green, active_high=signals, initial_value=False, pin_factory=pin_factory))
    red = open_one("red", pins.red, lambda: LED(
        pins.red, active_high=signals, initial_value=False, pin_factory=pin_factory))
    buzzer = open_one("buzzer", pins.buzzer, lambda: Buzzer(
        pins.buzzer, active_high=signals, initial_value=False, pin_factory=pin_factory))
    log.info("devices opened %s", " ".join(f"{k}=GPIO{v}" for k, v in pins.named().items()))
    return TurnstileDevices(lock=lock, green=green, red=red, buzzer=buzzer, passage=passage,
                            fire_loop=fire_loop, relay_feedback=feedback)
