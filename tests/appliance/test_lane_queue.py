"""The loop never stops reading: clips played at their recorded pace while visitors walk
through, every visitor decided when their code is seen and let through one at a time."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

from portique.devtools.simulation import SimulatedRun
from portique.runtime.daemon import ManualRefusedError
from portique.ticket import credential

from .conftest import FIXTURES, PINS, UNLOCKED_LEVEL, World, clip, fixture_key, sidecar
from .crowd import make_crowd_clip
from .lane import Lane
from .test_e2e import T_ALICE


def _play_recorded(world: World, folder: Path, *, walk_s: float) -> None:
    """The clip at the pace it was recorded (newest frame wins, as with a camera)."""
    with world.running(SimulatedRun(replay=folder, fast=False,
                                    simulate_passage_s=walk_s)) as app:
        app.run()


def _cycles(world: World) -> list[dict[str, Any]]:
    """Each admission: decided (journal), released and ended (passage), in release order."""
    rows = world.rows(
        "SELECT a.ticket_id, d.at, a.released_at, a.updated_at, a.state FROM admissions a "
        "JOIN decisions d USING (scan_id) ORDER BY a.released_at, a.rowid")
    return [{"ticket": r[0], "decided": r[1], "released": r[2], "ended": r[3],
             "state": r[4]} for r in rows]


def _one_at_a_time(world: World, cycles: list[dict[str, Any]]) -> None:
    for c in cycles:
        assert c["state"] == "passed", c
        assert c["released"] is not None and c["released"] >= c["decided"], c
    for before, after in itertools.pairwise(cycles):
        assert after["released"] >= before["ended"], (before, after)
    # the lock pin: unlock, lock, unlock, lock... one pulse per visitor, never two open
    levels = world.lock_levels()
    assert levels == [UNLOCKED_LEVEL, not UNLOCKED_LEVEL] * len(cycles), levels


def test_two_phones_at_recorded_pace_both_decided_and_let_through_one_at_a_time(
        world: World) -> None:
    frames = sidecar("two_phones")["frames"]
    shown = [f["captured_at"] for f in frames if f["codes"]]
    _play_recorded(world, clip("two_phones"), walk_s=0.3)
    assert sorted(world.decisions()) == [("admit", "VALID", "PAR24-000104"),
                                         ("admit", "VALID", "PAR24-000105")]
    cycles = _cycles(world)
    assert sorted(c["ticket"] for c in cycles) == ["PAR24-000104", "PAR24-000105"]
    # both were decided while their phones were in view: the second was not left waiting
    # for the first one's passage to be read
    for c in cycles:
        assert shown[0] <= c["decided"] <= shown[-1], c
    _one_at_a_time(world, cycles)


def test_a_queue_at_recorded_pace_every_visitor_decided_on_sight_released_in_turn(
        world: World, tmp_path: Path) -> None:
    """People show their phones faster than the lane cycles (walk 0.6 s, one every 0.4 s):
    each code is decided when it is seen; each person is released when the one before has
    passed; nobody's code is ignored."""
    folder = tmp_path / "queue"
    people = make_crowd_clip(folder, people=6, frames_each=3)
    frames = sidecar_of(folder)["frames"]
    seen = {}
    for f in frames:
        for code in f["codes"]:
            seen.setdefault(code["text"], []).append(f["captured_at"])
    windows = list(seen.values())
    _play_recorded(world, folder, walk_s=0.6)
    assert world.decisions() == [("admit", "VALID", p) for p in people]
    cycles = _cycles(world)
    assert [c["ticket"] for c in cycles] == people  # released in the order decided
    for c, window in zip(cycles, windows, strict=True):
        assert window[0] <= c["decided"] <= window[-1], c  # decided on sight
    # the queue formed: someone was decided while the person before was still passing
    assert any(after["decided"] < before["ended"]
               for before, after in itertools.pairwise(cycles))
    _one_at_a_time(world, cycles)


def sidecar_of(folder: Path) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads((folder / "clip.json").read_text())
    return data


def _code(name: str, at: float) -> str:
    from portique.commands.main import load_ticket

    level1 = load_ticket(FIXTURES / "tickets" / f"{name}.json")
    return credential.dynamic_code(level1, fixture_key(f"dev-{name}"), credential.step_at(at))


DEV, ALICE = "PAR24-000104", "PAR24-000101"


def test_a_code_decided_during_a_passage_checks_the_admissions_in_force(lane: Lane) -> None:
    """Alice is decided while dev, admitted before her, stands in the lane without
    passing; her phone shown again after the hold is refused as already admitted (her
    admission is in force), and she is let through once, when the lane frees."""
    lane.stays = frozenset({DEV})
    lane.sections["hardware"] = {"open_timeout_s": 1.0}
    daemon = lane.start()
    lane.clock.current = T_ALICE
    held = daemon.handle_code(_code("dev", T_ALICE), wait=False)
    assert held["verdict"] == "admit"
    _wait(lambda: daemon.busy_until != 0.0)  # dev's cycle is open
    first = daemon.handle_code(_code("alice", T_ALICE), wait=False)
    assert (first["verdict"], first.get("outcome")) == ("admit", None)  # decided at once
    lane.clock.current = T_ALICE + lane.config().lane.same_ticket_hold_s + 1
    again = daemon.handle_code(_code("alice", lane.clock.current), wait=False)
    assert (again["verdict"], again["reason"]) == ("refuse", "ALREADY_ADMITTED")
    daemon._wait_idle(threading.Event())
    rows = World(lane.state).rows("SELECT ticket_id, state, released_at FROM admissions "
                                  "ORDER BY rowid")
    assert [(t, s) for t, s, _ in rows] == [(DEV, "voided"), (ALICE, "passed")]
    assert all(r is not None for _, _, r in rows)
    assert lane.factory.pin(PINS["lock"]).state is not UNLOCKED_LEVEL  # locked again


def test_visitors_decided_but_not_released_are_voided_when_the_gate_stops(lane: Lane) -> None:
    lane.stays = frozenset({DEV})
    lane.sections["hardware"] = {"open_timeout_s": 30.0}
    daemon = lane.start()
    lane.clock.current = T_ALICE
    assert daemon.handle_code(_code("dev", T_ALICE), wait=False)["verdict"] == "admit"
    _wait(lambda: daemon.busy_until != 0.0)  # dev's cycle is open (for 30 s)
    assert daemon.handle_code(_code("alice", T_ALICE), wait=False)["verdict"] == "admit"
    daemon.close()
    try:
        daemon.handle_code(_code("emma", T_ALICE), wait=False)
    except ManualRefusedError as exc:
        assert exc.code == "busy"
    else:
        raise AssertionError("a stopping gate took a new visitor")
    rows = World(lane.state).rows("SELECT ticket_id, state, released_at FROM admissions "
                                  "ORDER BY rowid")
    # dev is inside the open cycle (left open, as a crash would); nobody was let in for alice
    assert rows == [(DEV, "open", None), (ALICE, "voided", None)]


def _wait(condition: Any, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.01)
