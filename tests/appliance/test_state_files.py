"""The files a running gate trusts and keeps: refused when others could change them, the
journal and the feed store created 0640 and never through a symbolic link, a journal
moved away under a running gate noticed before the next admission."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gate.keyfiles import UnsafeFileError
from gate.wiring import RunOptions

from .conftest import EVENT, FIXTURES, World, clip


def test_gate_run_refuses_a_key_folder_others_can_change(world: World, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    shutil.copytree(FIXTURES / "keys", keys, ignore=shutil.ignore_patterns("*.key"))
    keys.chmod(0o777)
    world.sections["keys"] = {"trust_dir": str(keys)}
    with pytest.raises(UnsafeFileError, match=f"key folder {keys}: writable by group or "
                       rf"others \(mode 0777\): run `chmod go-w {keys}`"):
        world.build(RunOptions(replay=clip("empty"), fast=True))
    assert not (world.state / "journal.sqlite").exists()  # refused before anything began


def test_gate_run_refuses_a_config_others_can_change(world: World, tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "1"\nevent = "{EVENT}"\nentrance = 2\n'
                      f'[keys]\ntrust_dir = "{FIXTURES / "keys"}"\n'
                      f'[journal]\npath = "{world.state / "journal.sqlite"}"\n', encoding="utf-8")
    config.chmod(0o666)
    done = subprocess.run([sys.executable, "-m", "gate", "run", "--config", str(config)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert f"config {config}: writable by group or others (mode 0666)" in done.stderr
    assert not (world.state / "journal.sqlite").exists()
