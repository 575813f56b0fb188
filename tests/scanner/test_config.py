from __future__ import annotations

from pathlib import Path

import pytest

from portique.base.errors import ConfigError
from portique.runtime.config import from_dict, load
from portique.scanner.config import DecoderName
from tests.scanner.conftest import FIXTURES

BASE = {"gate": {"id": "1", "event": "E", "entrance": 2}, "keys": {"trust_dir": "k"}}


def test_scanner_section_is_optional_and_typed() -> None:
    assert from_dict(BASE).scanner is None
    config = from_dict({**BASE, "scanner": {"decoder": "zbar", "camera": {
        "device": "/dev/video2", "fourcc": "YUYV", "width": 640, "height": 480}}})
    assert config.scanner is not None
    assert config.scanner.decoder is DecoderName.ZBAR
    assert config.scanner.camera.device_spec == "/dev/video2"
    assert config.scanner.camera.fourcc == "YUYV"
    assert from_dict({**BASE, "scanner": {}}).scanner.camera.device_spec == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(("table", "message"), [
    ({"decoder": "opencv"}, "scanner.decoder: must be one of pipeline, zxing, zbar"),
    ({"debounce_seconds": -1}, "scanner.debounce_seconds: must be at least 0"),
    ({"camera": {"fps": 500}}, "scanner.camera.fps: must be at most 120"),
    ({"camera": {"fourcc": "MJPEG"}}, "fourcc: must be 4 letters or digits"),
    ({"camera": {"lens": 4}}, "scanner.camera.lens: unknown key"),
])
def test_bad_scanner_settings_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict({**BASE, "scanner": table})


def test_fixture_gate_config_loads() -> None:
    config = load(FIXTURES / "gate.toml")
    assert (config.gate.event, config.gate.entrance) == ("PAR24-ATH05", 2)
    assert config.keys.trust_dir == (FIXTURES / "keys").resolve() or \
        Path(config.keys.trust_dir).name == "keys"
