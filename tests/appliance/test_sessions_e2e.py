"""A venue's day at one entrance, on recorded clips through the real gate: the morning
session's visitor admitted, an evening ticket at 14:40 refused with its gates' opening
time, the same ticket admitted at 15:00:05 in the same run (no restart, no sync between),
then re-entry and the per-day limit through an exit gate, and the zone counts at every step.

The exit gate writes into the entry gate's journal file: it stands in for the venue mesh
that carries exits between gates (tests/mesh covers that path), so the two gates here
share one record of who is inside, as they would through the mesh.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory

from portique.devtools.simulation import SimulatedRun
from portique.runtime.config import from_dict
from portique.runtime.events import DecisionMade
from portique.runtime.statusview import render_status
from portique.runtime.wiring import GateApp, build

from .conftest import PINS, World, clip, gate_table

AM, PM = "PAR24-DAY-AM", "PAR24-DAY-PM"
JADE, LEA = "PAR24-000201", "PAR24-000301"
SESSIONS = [
    {"event": AM, "opens": "2024-08-05T08:00:00+02:00", "closes": "2024-08-05T13:30:00+02:00",
     "exit_all_at": ["14:30"], "rules": [{"reentry": "yes"}]},
    {"event": PM, "opens": "2024-08-05T15:00:00+02:00", "closes": "2024-08-05T23:30:00+02:00",
     "rules": [{"reentry": "yes", "max_entries_per_day": 2, "min_minutes_between": 45}]},
]


def table(world: World, *, gate_id: str, direction: str) -> dict[str, Any]:
    t = gate_table(world.state)
    t = copy.deepcopy(t)
    del t["gate"]["event"]  # the sessions list replaces the one-event form
    t["gate"].update({"id": gate_id, "direction": direction})
    t["sessions"] = SESSIONS
    t["venue"] = {"zone": "north stand", "gates": [{"id": "1", "zone": "north stand"},
                                                {"id": "x1", "zone": "north stand"}]}
    return t


class Run:
    """One gate's run on one clip: its decisions (sentences included) and its status after
    each decision, taken while the gate runs."""

    def __init__(self, world: World, gate_id: str, direction: str, name: str) -> None:
        config = from_dict(table(world, gate_id=gate_id, direction=direction))
        factory = MockFactory()
        self.decisions: list[dict[str, Any]] = []
        self.zones: list[list[dict[str, Any]]] = []
        options = SimulatedRun(replay=clip(name), fast=True, simulate_passage_s=0.05)
        app = build(config, options, pin_factory=factory)
        try:
            def seen(event: Any) -> None:
                if isinstance(event, DecisionMade):
                    self.decisions.append(event.to_json())

            self._subscribe(app, seen)
            pin = factory.pin(PINS["lock"])
            start = len(pin.states)  # start-up and shutdown move the lock too
            app.run()
            self.lock = [s.state for s in pin.states[start:]]
            self.status = app.status()
        finally:
            app.close()

    @staticmethod
    def _subscribe(app: GateApp, callback: Any) -> None:
        original = app.bus.publish

        def publish(event: Any) -> None:
            original(event)
            callback(event)

        app.bus.publish = publish  # type: ignore[method-assign]

    def verdicts(self) -> list[tuple[str, str, str]]:
        return [(d["verdict"], d["reason"], d["ticket"]["ticket_id"]) for d in self.decisions]


def zone_counts(status: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int, int]]:
    return {(z["zone"], z["session"]): (z["inside"], z["entries"], z["exits"])
            for z in status["zones"]}


def journal_inside(world: World, event: str) -> int:
    return int(world.rows("SELECT COUNT(*) FROM admissions WHERE event = ? AND state IN "
                          "('open', 'passed')", event)[0][0])


def test_a_day_of_two_sessions_at_one_entrance(world: World, tmp_path: Path) -> None:
    # Entry gate, one run: the morning ticket, then the evening one before and after 15:00.
    first = Run(world, "1", "entry", "day_session_change")
    assert first.verdicts() == [("admit", "VALID", JADE),
                                ("refuse", "SESSION_NOT_OPEN", LEA),
                                ("admit", "VALID", LEA)]
    refused = first.decisions[1]
    assert refused["sentence"]["en"] == ("Your session's gates open at 15:00. Please come back "
                                      "then.")
    assert refused["sentence"]["fr"].startswith("Les portes de votre session ouvrent à 15:00.")
    assert refused["at"] == "2024-08-05T12:40:00Z"  # machine output stays UTC
    # both admissions went through the lock, the refusal did not
    assert first.lock.count(True) == 2
    # 15:00: the morning session emptied itself at 14:30; the evening one has its first
    status = first.status
    assert {s["event"]: s["state"] for s in status["sessions"]} == {AM: "closed", PM: "open"}
    assert status["event"] == PM
    assert zone_counts(status) == {("north stand", AM): (0, 1, 1),
                                   ("north stand", PM): (1, 1, 0)}
    assert journal_inside(world, PM) == 1
    text = render_status(status)  # `gate status`: the venue's clock, not UTC
    assert f"session      {PM}: open, gates 2024-08-05 15:00 to 2024-08-05 23:30, " \
        "1 rule set(s)" in text
    assert "venue time   2024-08-05 15:00:" in text
    assert f"zone         north stand, session {PM}: 1 inside (1 entries, 0 exits)" in text

    # Exit gate at 15:20.
    out = Run(world, "x1", "exit", "day_exit_1")
    assert out.verdicts() == [("admit", "EXIT", LEA)]
    assert zone_counts(out.status)[("north stand", PM)] == (0, 1, 1)

    # Back at the entry gate: 15:30 is too soon (45 minutes between entries), 15:50 is not.
    back = Run(world, "1", "entry", "day_return")
    assert back.verdicts() == [("refuse", "TOO_SOON", LEA), ("admit", "REENTRY", LEA)]
    assert back.decisions[0]["sentence"]["en"] == ("This ticket entered a short while ago: it "
                                                "can enter again from 15:45.")
    assert zone_counts(back.status)[("north stand", PM)] == (1, 2, 1)

    out = Run(world, "x1", "exit", "day_exit_2")
    assert out.verdicts() == [("admit", "EXIT", LEA)]

    # A third entry the same day is over the limit of two; the morning ticket is too late.
    third = Run(world, "1", "entry", "day_third")
    assert third.verdicts() == [("refuse", "DAILY_LIMIT_REACHED", LEA),
                                ("refuse", "SESSION_CLOSED", JADE)]
    assert third.decisions[0]["sentence"]["en"] == (
        "This ticket has used its 2 entries for today: it can enter again from "
        "2024-08-06 00:00.")
    assert third.decisions[1]["sentence"]["en"].startswith(
        "Your session's gates closed at 13:30.")
    assert zone_counts(third.status) == {("north stand", AM): (0, 1, 1),
                                         ("north stand", PM): (0, 2, 2)}
    assert journal_inside(world, PM) == 0
