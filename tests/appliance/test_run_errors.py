"""`gate run` on a broken set-up: one `gate: error:` line naming the cause and exit 2, or,
where the gate is meant to go on, a running gate that reports the fault; never a traceback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import clip, gate_table
from .test_durability import _toml

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def port_in_use() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def gate_run(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portique", "run", "--config", str(config),
                           *extra], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})


def broken_clip(tmp: Path) -> Path:
    folder = tmp / "clip"
    folder.mkdir()
    (folder / "clip.json").write_text("{ not json")
    return folder


Change = Callable[[Path, dict[str, Any]], list[str]]


def lgpio_absent(tmp: Path, table: dict[str, Any]) -> list[str]:
    table["hardware"]["pin_factory"] = "lgpio"
    return ["--replay", str(clip("empty"))]


def key_folder_missing(tmp: Path, table: dict[str, Any]) -> list[str]:
    table["keys"]["trust_dir"] = str(tmp / "no-keys")
    return ["--replay", str(clip("empty"))]


def key_folder_is_a_file(tmp: Path, table: dict[str, Any]) -> list[str]:
    (tmp / "keys-file").write_text("not a folder")
    table["keys"]["trust_dir"] = str(tmp / "keys-file")
    return ["--replay", str(clip("empty"))]


def state_folder_cannot_be_made(tmp: Path, table: dict[str, Any]) -> list[str]:
    (tmp / "plain-file").write_text("")
    table["journal"]["path"] = str(tmp / "plain-file" / "state" / "journal.sqlite")
    return ["--replay", str(clip("empty"))]


def control_folder_cannot_be_made(tmp: Path, table: dict[str, Any]) -> list[str]:
    table["control"]["socket"] = "/proc/no-such-folder/control.sock"
    return ["--replay", str(clip("empty"))]


def malformed_clip(tmp: Path, table: dict[str, Any]) -> list[str]:
    return ["--replay", str(broken_clip(tmp))]


def missing_clip(tmp: Path, table: dict[str, Any]) -> list[str]:
    return ["--replay", str(tmp / "no-such-clip")]


CASES: list[tuple[str, Change, str]] = [
    ("lgpio absent", lgpio_absent, "lgpio"),
    ("key folder missing", key_folder_missing, "no-keys"),
    ("key folder is a file", key_folder_is_a_file, "keys-file"),
    ("state folder cannot be made", state_folder_cannot_be_made, "plain-file"),
    ("control socket folder cannot be made", control_folder_cannot_be_made,
     "no-such-folder"),
    ("malformed clip", malformed_clip, "clip"),
    ("missing clip", missing_clip, "no-such-clip"),
]


@pytest.mark.parametrize(("change", "named"), [(c, n) for _, c, n in CASES],
                         ids=[name for name, _, _ in CASES])
def test_a_broken_set_up_is_one_error_line_and_exit_2(tmp_path: Path, change: Change,
                                                       named: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    table = gate_table(state)
    extra = change(tmp_path, table)
    config = tmp_path / "gate.toml"
    config.write_text(_toml(table))
    result = gate_run(config, *extra)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("gate: error:")]
    assert len(errors) == 1, result.stderr
    assert named in errors[0]


def test_a_metrics_port_in_use_is_one_error_line_naming_the_port(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with port_in_use() as port:
        table = gate_table(state, metrics={"port": port})
        config = tmp_path / "gate.toml"
        config.write_text(_toml(table))
        result = gate_run(config, "--replay", str(clip("empty")))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("gate: error:")]
    assert len(errors) == 1 and str(port) in errors[0], result.stderr


def test_a_broken_feed_store_is_one_error_line_naming_the_store(tmp_path: Path) -> None:
    """A gate that cannot read its revocation list does not start on no list at all."""
    state = tmp_path / "state"
    state.mkdir()
    store = state / "feeds.sqlite"
    store.write_bytes(b"this is not a database" * 100)
    table = gate_table(state, feeds={"store": str(store),
                                     "base_url": "http://127.0.0.1:9/portique"})
    config = tmp_path / "gate.toml"
    config.write_text(_toml(table))
    result = gate_run(config, "--replay", str(clip("empty")))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("gate: error:")]
    assert len(errors) == 1 and "feeds.sqlite" in errors[0] and "not a feed store" in errors[0]


def test_a_gate_that_boots_without_its_camera_runs_steward_only(tmp_path: Path) -> None:
    """The crash loop of old (CameraNotFoundError out of the build, exit 2, restarted by
    systemd every second): `gate run` now stays up, says CAMERA LOST with the device, and
    stops cleanly on SIGTERM."""
    import json
    import signal
    import time

    state = tmp_path / "state"
    state.mkdir()
    table = gate_table(state)
    table["scanner"] = {"camera": {"device": "/dev/video-absent-9",
                                   "reopen_backoff_seconds": 0.05}}
    config = tmp_path / "gate.toml"
    config.write_text(_toml(table))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    gate = subprocess.Popen([sys.executable, "-m", "portique", "run", "--config",
                             str(config)], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        deadline = time.monotonic() + 60
        camera: dict[str, Any] = {}
        while camera.get("state") != "lost":
            assert gate.poll() is None, gate.communicate()[1]
            assert time.monotonic() < deadline, "the gate never answered with its camera lost"
            asked = subprocess.run([sys.executable, "-m", "portique", "status", "--config",
                                    str(config), "--json"], cwd=ROOT, capture_output=True,
                                   text=True, timeout=60, check=False, env=env)
            if asked.returncode == 0:
                camera = json.loads(asked.stdout)["camera"]
            else:
                time.sleep(0.05)  # not listening yet: ask again (the loop has a deadline)
        assert camera["device"] == "/dev/video-absent-9"
        assert "no such device" in camera["why"]
        gate.send_signal(signal.SIGTERM)
        _, err = gate.communicate(timeout=60)
    finally:
        if gate.poll() is None:
            gate.kill()
            gate.communicate()
    assert gate.returncode == 0, err
    assert "Traceback" not in err
    assert "camera lost device=/dev/video-absent-9" in err
