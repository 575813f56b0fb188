"""config/gate.toml marks its required keys and opens nothing to the network unless a
section is uncommented; `gate config keys` shows each key's readable type, its default
(or that it is required) and its bounds; `gate config check --json` answers in JSON
when the file is refused too."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from portique.base.configschema import keys
from portique.commands.main import EXIT_USAGE, main
from portique.runtime.config import Config, load

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "config" / "gate.toml"


def installed(tmp_path: Path) -> Path:
    """The example as on a gate that has synced its feed once (`gate sync`)."""
    copy = tmp_path / "gate.toml"
    copy.write_text(EXAMPLE.read_text().replace("/etc/portique/keys",
                                                str(ROOT / "tests/fixtures/keys"))
                    .replace("/var/lib/portique/feeds.sqlite", str(synced_store(tmp_path))))
    return copy


def synced_store(tmp_path: Path) -> Path:
    """A real feed store holding a feed of the example's event."""
    from tests.revocation.test_feed_bounds import applied

    store = tmp_path / "feeds.db"
    if not store.exists():
        applied(tmp_path).close()
    return store


def test_every_required_key_is_marked_and_nothing_network_is_on(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    lines = text.splitlines()
    for info in keys(Config):
        if not info.required:
            continue
        name = info.key.rsplit(".", 1)[-1]
        section = info.key.rsplit(".", 1)[0] if "." in info.key else ""
        marked = [line for line in lines if re.match(rf"#?\s*{re.escape(name)}\s*=", line)
                  and "REQUIRED" in line]
        header = [line for line in lines if re.match(rf"#?\s*\[{re.escape(section)}\]", line)
                  and "REQUIRED" in line]
        assert marked or header, f"{info.key} is required: its line should say REQUIRED"
    config = load(installed(tmp_path))
    assert config.metrics.port == 0  # no Prometheus port unless uncommented
    assert config.upload is None  # no upload unless uncommented
    assert config.mesh is None
    assert not re.search(r"^\[(metrics|upload|mesh)\]", text, re.MULTILINE)


def test_config_keys_shows_defaults_bounds_and_readable_types(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "keys"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()  # one column for the types, past the longest key
    longest = max((line.split(" ", 1)[0] for line in lines[0::3]), key=len)
    assert len(longest) > 32  # e.g. scanner.camera.health_window_frames
    column = {len(line) - len(line.split(" ", 1)[1].lstrip()) for line in lines[0::3]}
    assert len(column) == 1, column
    assert {len(line) - len(line.lstrip()) for line in lines if line.startswith(" ")} \
        == column
    assert re.search(r"^gate\.entrance\s+integer\n\s+default: required; bounds: 1 to 32$",
                     out, re.MULTILINE)
    assert re.search(r"^policy\.grace_seconds\s+integer\n\s+default: 15; bounds: 0 to 120$",
                     out, re.MULTILINE)
    assert re.search(r"^gate\.direction\s+one of entry \| exit\n\s+default: \"entry\"$",
                     out, re.MULTILINE)
    assert re.search(r"^metrics\.port\s+integer\n\s+default: 0; bounds: 0 to 65535$", out,
                     re.MULTILINE)
    assert "PinFactoryName" not in out and "<class" not in out and " str " not in out
    assert main(["config", "keys", "--json"]) == 0
    rows = {k["key"]: k for k in json.loads(capsys.readouterr().out)["keys"]}
    assert rows["gate.entrance"]["required"] is True
    assert (rows["gate.entrance"]["minimum"], rows["gate.entrance"]["maximum"]) == (1, 32)
    assert rows["gate.timezone"]["default"] == "Europe/Paris"


def test_config_check_json_answers_in_json_on_failure(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(installed(tmp_path).read_text().replace("entrance = 2", "entrance = 40"))
    assert main(["config", "check", str(bad), "--json"]) == EXIT_USAGE
    captured = capsys.readouterr()
    answer = json.loads(captured.out)
    assert answer == {"ok": False, "valid": False, "file": str(bad),
                      "error": f"{bad}: gate.entrance: must be at most 32, got 40",
                      "error_type": "ConfigError",
                      "errors": [f"{bad}: gate.entrance: must be at most 32, got 40"]}
    assert "gate.entrance: must be at most 32" in captured.err
    assert main(["config", "check", str(tmp_path / "absent.toml"), "--json"]) == EXIT_USAGE
    assert json.loads(capsys.readouterr().out)["valid"] is False
    assert main(["config", "check", str(installed(tmp_path)), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
