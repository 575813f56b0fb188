"""No admission without a durable record: SIGKILL at random instants, a full disk, a
read-only state directory."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from portique.devtools.simulation import SimulatedRun
from portique.ticket import credential
from tests.smalldisk import fill, small_tmpfs

from .conftest import FIXTURES, PINS, World, clip, fixture_key, gate_table
from .crowd import make_crowd_clip

LOCK = f"GPIO{PINS['lock']}"
KILLS_SHORT, KILLS_LONG = 3, 20


def _toml(table: dict[str, object], prefix: str = "") -> str:
    lines, subtables = [], []
    for key, value in table.items():
        if isinstance(value, dict):
            subtables.append((key, value))
        elif isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        elif isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        else:
            lines.append(f"{key} = {value}")
    out = "\n".join(lines) + "\n"
    for key, value in subtables:
        name = f"{prefix}{key}"
        out += f"\n[{name}]\n" + _toml(value, f"{name}.")
    return out


def _segments(log: Path) -> list[list[str]]:
    """The pin log cut at each process start."""
    segments: list[list[str]] = []
    for line in log.read_text().splitlines():
        if line.startswith("# start"):
            segments.append([])
        elif segments:
            segments[-1].append(line)
    return segments


def _pulses(segment: list[str]) -> list[str | None]:
    """For each lock release while the gate was serving, the scan id the gate announced
    just before it (None: a release with no admission announced)."""
    serving, announced, pulses = False, None, []
    for line in segment:
        if line.startswith("# ready"):
            serving = True
        elif line.startswith("# stop"):
            serving = False
        elif line.startswith("# unlock "):
            announced = line.split()[2]
        elif serving and line.startswith(f"{LOCK} 1 "):
            pulses.append(announced)
            announced = None
    return pulses


def _wait_ready(log: Path, starts: int, process: subprocess.Popen[bytes],
                timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and sum(1 for s in _segments(log)
                                if any(x.startswith("# ready") for x in s)) >= starts:
            return
        if process.poll() is not None:
            raise AssertionError(f"gate exited early: {process.returncode}")
        time.sleep(0.02)
    raise AssertionError("gate did not become ready")


@pytest.mark.parametrize("kills", [
    KILLS_SHORT,
    pytest.param(KILLS_LONG, marks=pytest.mark.slow),
])
def test_sigkill_at_random_instants_loses_no_admission_and_admits_nobody_twice(
        tmp_path: Path, kills: int) -> None:
    people = make_crowd_clip(tmp_path / "crowd", people=40)
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "gate.toml"
    config.write_text(_toml(gate_table(state)))
    log = tmp_path / "pins.log"
    command = [sys.executable, "-m", "portique", "run", "--config", str(config), "--replay",
               str(tmp_path / "crowd"), "--fast", "--simulate-passage", "0.05",
               "--pin-log", str(log), "--log-level", "ERROR"]
    rng = random.Random(2024)
    for attempt in range(1, kills + 1):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            _wait_ready(log, attempt, process)
            time.sleep(rng.uniform(0.0, 1.2))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    final = subprocess.run(command, capture_output=True, timeout=300, check=False)
    assert final.returncode == 0, final.stderr.decode()[-2000:]

    segments = _segments(log)
    assert len(segments) == kills + 1
    pulses = [scan for s in segments for scan in _pulses(s)]
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(state / "journal.sqlite")) as db:
        admissions = db.execute("SELECT scan_id, ticket_id, state FROM admissions").fetchall()
        decided = db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    committed = {scan: state for scan, _, state in admissions}
    in_force = Counter(t for _, t, s in admissions if s in ("open", "passed"))
    # every person of the clip is in, exactly once
    assert set(in_force) == set(people)
    assert max(in_force.values()) == 1
    # every relay pulse belongs to an admission committed in the journal, one pulse each
    assert None not in pulses
    assert all(scan in committed for scan in pulses)
    assert len(set(pulses)) == len(pulses)
    # an admission without its pulse can only be one a kill cut short
    assert len(committed) - len(pulses) <= kills
    assert all(committed[scan] in ("open", "passed", "voided") for scan in pulses)
    assert decided > len(people)  # the replays after each restart were refused as admitted


needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="mounting a small or read-only file system needs root")


@pytest.fixture
def small_state(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs as the gate's state directory."""
    with small_tmpfs(tmp_path / "state", "2m") as state:
        yield state


def _valid_code(at: float) -> str:
    from portique.commands.main import load_ticket

    level1 = load_ticket(FIXTURES / "tickets" / "alice.json")
    device = fixture_key("dev-alice")
    return credential.dynamic_code(level1, device, credential.step_at(at))




@needs_root
def test_full_state_directory_refuses_to_admit_and_says_why(small_state: Path) -> None:
    world = World(small_state)
    at = 1722877205.0
    with world.running(SimulatedRun(replay=clip("empty"), fast=True,
                                  simulate_passage_s=0.05)) as app:
        app.clock.current = at  # type: ignore[union-attr]
        filler = fill(small_state)
        event = app.daemon.handle_code(_valid_code(at))
        assert (event["verdict"], event["reason"]) == ("steward", "JOURNAL_UNAVAILABLE")
        status = app.status()
        assert "full" in status["journal"]["last_error"]
        from portique.runtime.statusview import render_status

        assert "NOT WRITABLE, nobody is admitted" in render_status(status)
        filler.unlink()
        app.clock.current = at + 20  # type: ignore[union-attr]
        again = app.daemon.handle_code(_valid_code(at + 20))
        assert (again["verdict"], again["reason"]) == ("admit", "VALID")
    assert world.unlocks() == 1
    assert world.admissions() == [("PAR24-000101", "passed")]


@needs_root
def test_read_only_state_directory_refuses_to_admit(small_state: Path) -> None:
    world = World(small_state)
    at = 1722877205.0
    with world.running(SimulatedRun(replay=clip("second_scan"), fast=True,
                                  simulate_passage_s=0.05)) as app:
        app.run()  # hana is admitted and recorded
    assert world.admissions() == [("PAR24-000108", "passed")]
    subprocess.run(["mount", "-o", "remount,ro", str(small_state)], check=True)
    try:
        with world.running(SimulatedRun(replay=clip("empty"), fast=True,
                                      simulate_passage_s=0.05)) as app:
            app.clock.current = at  # type: ignore[union-attr]
            event = app.daemon.handle_code(_valid_code(at))
            assert (event["verdict"], event["reason"]) == ("steward", "JOURNAL_UNAVAILABLE")
            status = app.status()
            assert "read-only" in status["journal"]["last_error"]
            assert status["journal"]["failures"] >= 1
            # what was recorded still counts: hana is inside
            assert app.journal.last_admission("PAR24-ATH05", "PAR24-000108") is not None
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_state)], check=True)
    assert world.unlocks() == 0
    assert world.admissions() == [("PAR24-000108", "passed")]
