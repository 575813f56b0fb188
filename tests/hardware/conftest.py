"""Simulated turnstiles on gpiozero's MockFactory, built from real config tables."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from portique.base.configschema import build
from portique.hardware.config import HardwareConfig
from portique.hardware.turnstile import Turnstile, TurnstileEvent

LOCK, GREEN, RED, BUZZER, PASSAGE, FIRE, FEEDBACK = 17, 27, 22, 23, 24, 25, 5


def hardware_table(**overrides: Any) -> dict[str, Any]:
    """A [hardware] table as TOML would give it: fail-secure, every output active high."""
    table: dict[str, Any] = {
        "pin_factory": "mock",
        "on_stop": "fail_secure",
        "lock_active_high": True,
        "passage_bounce_ms": 20,
        "relay_settle_ms": 50,
        "pins": {"lock": LOCK, "green": GREEN, "red": RED, "buzzer": BUZZER,
                 "passage": PASSAGE, "fire_loop": FIRE},
        "refuse": {"beeps": 2, "on_ms": 100, "off_ms": 100, "red": "steady"},
        "steward": {"beeps": 3, "on_ms": 60, "off_ms": 60, "red": "blink"},
    }
    table.update(overrides)
    return table


def hardware_config(**overrides: Any) -> HardwareConfig:
    return build(HardwareConfig, hardware_table(**overrides), "hardware")


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    """A fresh MockFactory, passed explicitly. gpiozero's process-wide default is set to
    None meanwhile, so code that reached for it instead would fail here (no real GPIO)."""
    saved = Device.pin_factory
    Device.pin_factory = None
    factory = MockFactory()
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = saved


def assert_history(pin: Any, expected: list[tuple[float, bool]]) -> None:
    """Exactly these states at these times (gpiozero's tolerances: 50 ms, 5%)."""
    actual = [(round(s.timestamp, 3), s.state) for s in pin.states]
    assert len(pin.states) == len(expected), f"pin {pin.info.name}: {actual}"
    pin.assert_states_and_times(expected)


class Recorder:
    """Collects the turnstile's events, as a subscriber would."""

    def __init__(self) -> None:
        self.events: list[TurnstileEvent] = []

    def __call__(self, event: TurnstileEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind.value for e in self.events]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def open_turnstile(factory: MockFactory, recorder: Recorder | None = None,
                   **overrides: Any) -> Turnstile:
    """A turnstile in service: its fire loop closed and the start-up latch acknowledged.

    A simulated input rests at its pull, so the loop (pulled up) reads open when the
    turnstile starts and latches free egress, exactly as a missing loop would.
    """
    turnstile = Turnstile(hardware_config(**overrides), pin_factory=factory)
    factory.pin(FIRE).drive_low()
    assert turnstile.acknowledge_fire_alarm("installer")
    if recorder is not None:
        turnstile.subscribe(recorder)
    return turnstile


def clear_all(factory: MockFactory) -> None:
    """Start every pin's history now."""
    for number in (LOCK, GREEN, RED, BUZZER, PASSAGE, FIRE, FEEDBACK):
        factory.pin(number).clear_states()
