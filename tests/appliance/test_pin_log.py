"""`gate run --pin-log` records the lock pin also when the relay's feedback contact is
configured (the simulated contact makes the lock pin a connected pin)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import PINS, clip, gate_table
from .test_durability import _toml


def test_the_lock_pin_is_recorded_with_relay_feedback(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "gate.toml"
    config.write_text(_toml(gate_table(state, hardware={
        "pins": {**PINS, "relay_feedback": 5}, "relay_feedback_pull_up": True})))
    log = tmp_path / "pins.log"
    done = subprocess.run(
        [sys.executable, "-m", "portique", "run", "--config", str(config), "--replay",
         str(clip("second_scan")), "--fast", "--simulate-passage", "0.2", "--pin-log",
         str(log), "--log-level", "ERROR"], capture_output=True, text=True, timeout=120,
        check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = log.read_text().splitlines()
    unlock = next(i for i, line in enumerate(lines) if line.startswith("# unlock"))
    lock = f"GPIO{PINS['lock']} "
    # fail-safe, active low: locked is the relay energised (0); the admission frees the
    # lock (1), then it locks again (0)
    after = [line.split()[1] for line in lines[unlock:] if line.startswith(lock)]
    assert after[:2] == ["1", "0"], lines
    assert any(line.startswith(f"GPIO{PINS['green']} ") for line in lines)
