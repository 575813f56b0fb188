"""`gate hw test`: the technician's walk, scripted on simulated pins."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockConnectedPin, MockFactory

from portique.commands.main import main
from portique.hardware.selftest import Console, StepResult, run_walk
from tests.hardware.conftest import (
    BUZZER,
    FEEDBACK,
    FIRE,
    GREEN,
    LOCK,
    PASSAGE,
    RED,
    hardware_config,
)

ROOT = Path(__file__).resolve().parents[2]
MOCK_CONFIG = ROOT / "config" / "hardware-mock.toml"
PINS = {"lock": LOCK, "green": GREEN, "red": RED, "buzzer": BUZZER, "passage": PASSAGE,
        "fire_loop": FIRE, "relay_feedback": FEEDBACK}


class Technician(io.StringIO):
    """The walk's screen, read by a technician who works the simulated inputs when told."""

    def __init__(self, factory: MockFactory) -> None:
        super().__init__()
        self._factory = factory

    def write(self, text: str) -> int:
        if text.startswith("Turnstile hardware test"):  # the pins are open: close the loop
            self._factory.pin(FIRE).drive_low()
        if "Walk through the lane" in text:
            self._later(PASSAGE, [False, True])  # active low: in the beam, then out
        if "Open the fire-alarm loop" in text:
            self._later(FIRE, [True, False])  # open, then closed again
        return super().write(text)

    def _later(self, number: int, levels: list[bool]) -> None:
        def work() -> None:
            pin = self._factory.pin(number)
            for high in levels:
                time.sleep(0.05)
                (pin.drive_high if high else pin.drive_low)()

        threading.Thread(target=work, daemon=True).start()


def wired_gate(factory: MockFactory) -> None:
    """The relay's feedback contact follows the relay."""
    factory.pin(LOCK, pin_class=MockConnectedPin, input_pin=factory.pin(FEEDBACK))


def walk(factory: MockFactory, stdin: str, *, assume_yes: bool) -> tuple[list[StepResult], str]:
    config = hardware_config(pins=PINS, relay_feedback_pull_up=False)
    screen = Technician(factory)
    console = Console(stdin=io.StringIO(stdin), stdout=screen, assume_yes=assume_yes)
    results = run_walk(config, factory, console, hold_s=0.1, watch_s=1.0)
    return results, screen.getvalue()


def test_a_scripted_walk_drives_every_output_and_reads_every_input(
        mock_factory: MockFactory) -> None:
    wired_gate(mock_factory)
    results, screen = walk(mock_factory, "", assume_yes=True)
    assert [(r.step, r.ok) for r in results] == [
        ("lock relay", True), ("green light", True), ("red light", True), ("buzzer", True),
        ("passage sensor", True), ("fire-alarm loop", True)]
    assert results[0].detail == "clicked, feedback agreed"
    # fail-secure, active high: the relay was energised (unlocked) once, for the hold time
    lock = mock_factory.pin(LOCK)
    lock.assert_states([False, True, False])
    assert len(lock.states) == 3
    assert lock.states[2].timestamp == pytest.approx(0.1, abs=0.05)
    for number in (GREEN, RED, BUZZER):
        output = mock_factory.pin(number)
        output.assert_states([False, True, False])
        assert len(output.states) == 3
        assert output.states[2].timestamp == pytest.approx(0.1, abs=0.05)
    assert "passage sensor: ACTIVE" in screen
    assert "fire-alarm loop: OPEN" in screen
    assert "fire-alarm loop (GPIO25) reads closed (normal) now." in screen


def test_the_technicians_answers_decide_the_outputs(mock_factory: MockFactory) -> None:
    wired_gate(mock_factory)
    # Enter before each step, then the answer; the red light was not seen
    answers = "\ny\n" "\nyes\n" "\nn\n" "\noui\n" "\n" "\n"
    results, screen = walk(mock_factory, answers, assume_yes=False)
    failed = {r.step: r.detail for r in results if not r.ok}
    assert failed == {"red light": "not seen: check GPIO22, the wiring and "
                                   "signals_active_high"}
    assert "Did the red light come on? [y/n]" in screen
    assert "FAIL red light" in screen


def test_no_answer_counts_as_no(mock_factory: MockFactory) -> None:
    wired_gate(mock_factory)
    results, _screen = walk(mock_factory, "", assume_yes=False)
    assert [r.step for r in results if not r.ok] == ["lock relay", "green light",
                                                     "red light", "buzzer"]


def test_a_relay_whose_feedback_never_moves_fails_its_step(mock_factory: MockFactory) -> None:
    results, _screen = walk(mock_factory, "", assume_yes=True)  # feedback not wired through
    assert not results[0].ok
    assert results[0].detail == ("relay commanded energised but its feedback reports "
                                 "de-energised")


def test_the_documented_mock_self_test_passes_every_step() -> None:
    """README and config/hardware-mock.toml: `gate hw test --config
    config/hardware-mock.toml --yes`, exactly, from the repository's root."""
    gate = Path(sys.executable).with_name("gate")
    command = [str(gate)] if gate.is_file() else [sys.executable, "-m", "portique"]
    done = subprocess.run([*command, "hw", "test", "--config", "config/hardware-mock.toml",
                           "--yes"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.startswith("simulated turnstile (pin_factory = \"mock\")")
    for step, detail in (("lock relay", "clicked, feedback agreed"),
                         ("green light", "seen"), ("red light", "seen"), ("buzzer", "seen"),
                         ("passage sensor", "went active, then clear"),
                         ("fire-alarm loop", "opened, then closed")):
        assert f"ok   {step}: {detail}\n" in out
    # the inputs really moved, and the walk read them: feedback both ways, the sensor, the loop
    assert "relay feedback (GPIO5) reads de-energised\n  relay feedback (GPIO5) reads " \
        "energised" in out
    assert "passage sensor: ACTIVE" in out and "fire-alarm loop: OPEN" in out
    assert out.rstrip().endswith("6 of 6 steps passed")


def test_the_mock_self_test_still_fails_a_relay_whose_feedback_disagrees(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a feedback contact wired to read the opposite level: the simulated wiring cannot
    # follow the relay, and the walk must say so
    config = tmp_path / "gate.toml"
    config.write_text(MOCK_CONFIG.read_text().replace(
        "lock_active_high = false\n", "lock_active_high = false\n"
        "relay_feedback_pull_up = false\n", 1))
    code = main(["hw", "test", "--config", str(config), "--yes", "--hold", "0.2",
                 "--wait", "5"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL lock relay: relay commanded" in out
    assert "ok   passage sensor: went active, then clear" in out
    assert out.rstrip().endswith("5 of 6 steps passed; failed: lock relay")


def test_hw_test_needs_a_hardware_table(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gate.toml"
    config.write_text('[gate]\nid = "1"\nevent = "E"\nentrance = 1\n'
                      '[keys]\ntrust_dir = "keys"\n')
    assert main(["hw", "test", "--config", str(config), "--yes"]) == 2
    assert "no [hardware] table" in capsys.readouterr().err


def test_hw_test_names_a_bad_hardware_key(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(MOCK_CONFIG.read_text().replace("lock = 17", "lock = 99"))
    assert main(["hw", "test", "--config", str(config), "--yes"]) == 2
    assert "hardware.pins.lock: must be at most 27, got 99" in capsys.readouterr().err


def test_hw_test_rejects_a_bad_duration(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["hw", "test", "--config", str(MOCK_CONFIG), "--hold", "-1"])
    assert caught.value.code == 2
    assert "must be between 0 and 600 seconds" in capsys.readouterr().err
