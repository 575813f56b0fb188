"""The pin factory comes from the config, and a real one that cannot open never becomes mock."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from portique.commands.main import main
from portique.hardware.config import PinFactoryName
from portique.hardware.errors import HardwareError, PinFactoryError
from portique.hardware.pins import open_pin_factory
from portique.hardware.turnstile import Turnstile
from tests.hardware.conftest import hardware_config

no_gpio = pytest.mark.skipif(bool(glob.glob("/dev/gpiochip*")),
                             reason="this machine has GPIO chips")


def test_mock_is_opened_only_when_named() -> None:
    factory = open_pin_factory(PinFactoryName.MOCK)
    try:
        assert isinstance(factory, MockFactory)
    finally:
        factory.close()


@no_gpio
def test_lgpio_without_gpio_fails_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # even when gpiozero is told to use mock pins by default, the config wins
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    with pytest.raises(PinFactoryError) as caught:
        open_pin_factory(PinFactoryName.LGPIO)
    message = str(caught.value)
    assert message.startswith("pin factory lgpio: ")
    assert ("cannot be imported" in message) or ("/dev/gpiochip" in message)
    assert isinstance(caught.value, HardwareError)
    assert isinstance(caught.value, RuntimeError)
    assert caught.value.__cause__ is not None


@no_gpio
def test_a_turnstile_configured_for_lgpio_stops_instead_of_simulating(
        monkeypatch: pytest.MonkeyPatch, mock_factory: MockFactory) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    with pytest.raises(PinFactoryError, match="pin factory lgpio"):
        Turnstile(hardware_config(pin_factory="lgpio"))
    assert Device.pin_factory is None  # gpiozero's default was not touched, mock or other
    assert mock_factory.pins == {}  # and no pin of any mock factory was opened


@no_gpio
def test_hw_test_on_a_gate_without_gpio_exits_1_with_the_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = (Path(__file__).resolve().parents[2] / "config" / "hardware-mock.toml").read_text()
    config = tmp_path / "gate.toml"
    config.write_text(source.replace('pin_factory = "mock"', 'pin_factory = "lgpio"', 1)
                      .replace("../tests/fixtures/keys", "keys"))
    assert main(["hw", "test", "--config", str(config), "--yes"]) == 1
    captured = capsys.readouterr()
    assert "gate: hw test: pin factory lgpio: " in captured.err
    assert "lock relay" not in captured.out  # not a single step ran on simulated pins
