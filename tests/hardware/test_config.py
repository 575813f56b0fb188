"""The [hardware] table: every key checked, every error naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from portique.base.configschema import describe
from portique.base.errors import ConfigError
from portique.hardware.config import HardwareConfig, PinFactoryName, RedLight, StopState
from portique.runtime.config import Config, from_dict, load
from tests.hardware.conftest import hardware_config, hardware_table

ROOT = Path(__file__).resolve().parents[2]
GATE = {"gate": {"id": "1", "event": "PAR24-ATH05", "entrance": 2},
        "keys": {"trust_dir": "keys"}}


def gate_config(hardware: dict[str, Any]) -> Config:
    return from_dict({**GATE, "hardware": hardware})


def test_a_full_table_becomes_a_typed_record() -> None:
    config = gate_config(hardware_table())
    hw = config.hardware
    assert isinstance(hw, HardwareConfig)
    assert hw.pin_factory is PinFactoryName.MOCK
    assert hw.on_stop is StopState.FAIL_SECURE
    assert hw.pins.lock == 17
    assert hw.pins.relay_feedback is None
    assert hw.steward.red is RedLight.BLINK
    assert hw.refuse.duration_s == pytest.approx(0.4)
    assert not hw.relay_energised_when_locked  # fail-secure: energise to unlock


def test_a_gate_without_hardware_has_none() -> None:
    assert from_dict(GATE).hardware is None


@pytest.mark.parametrize("key", ["pin_factory", "on_stop", "lock_active_high", "pins"])
def test_keys_without_a_safe_default_are_required(key: str) -> None:
    table = hardware_table()
    del table[key]
    with pytest.raises(ConfigError, match=rf"^hardware\.{key}: required key is missing"):
        gate_config(table)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"pin_factory": "gpio"}, r"hardware\.pin_factory: must be one of lgpio, mock, got 'gpio'"),
    ({"on_stop": "open"}, r"hardware\.on_stop: must be one of fail_safe, fail_secure"),
    ({"lock_active_high": 1}, r"hardware\.lock_active_high: must be true or false"),
    ({"passage_bounce_ms": 900}, r"hardware\.passage_bounce_ms: must be at most 500"),
    ({"open_timeout_s": 0.5}, r"hardware\.open_timeout_s: must be at least 1\.0"),
    ({"relay_settle_ms": 5}, r"hardware\.relay_settle_ms: must be at least 10"),
    ({"colour": "green"}, r"hardware\.colour: unknown key"),
    ({"refuse": {"beeps": 0, "on_ms": 100, "off_ms": 100}},
     r"hardware\.refuse\.beeps: must be at least 1"),
    ({"steward": {"beeps": 2, "on_ms": 100, "off_ms": 100, "red": "steady"}},
     r"hardware\.steward: must differ from hardware\.refuse"),
])
def test_bad_values_name_their_key(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        gate_config(hardware_table(**overrides))


def test_pins_are_bounded_and_distinct() -> None:
    pins = {"lock": 17, "green": 27, "red": 22, "buzzer": 23, "passage": 24, "fire_loop": 25}
    with pytest.raises(ConfigError, match=r"hardware\.pins\.lock: must be at most 27, got 40"):
        hardware_config(pins={**pins, "lock": 40})
    with pytest.raises(ConfigError, match=r"hardware\.pins\.buzzer: GPIO22 is already used "
                       r"by hardware\.pins\.red"):
        hardware_config(pins={**pins, "buzzer": 22})
    with pytest.raises(ConfigError, match=r"hardware\.pins\.relay_feedback: GPIO17 is already"):
        hardware_config(pins={**pins, "relay_feedback": 17})
    with pytest.raises(ConfigError, match=r"hardware\.pins\.fire_loop: required key"):
        hardware_config(pins={k: v for k, v in pins.items() if k != "fire_loop"})


def test_the_example_config_loads_with_its_hardware() -> None:
    path = ROOT / "config" / "hardware-mock.toml"
    config = load(path)
    assert config.source == path
    assert config.hardware is not None
    assert config.hardware.pin_factory is PinFactoryName.MOCK
    assert config.hardware.pins.relay_feedback == 5


def test_config_keys_lists_every_hardware_key_with_its_description() -> None:
    rows = {key: text for key, _kind, text in describe(Config)}
    assert "hardware.pins.lock" in rows
    assert "hardware.refuse.beeps" in rows
    hardware_rows = [key for key in rows if key.startswith("hardware.")]
    assert all(rows[key] for key in hardware_rows)
