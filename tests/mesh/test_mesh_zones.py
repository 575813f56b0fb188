"""Zone occupancy across the venue mesh reconciles with the journals: after crowds at two
entry gates of two zones (one admission voided: its holder never walked through), a
partition during which one entry gate and the exit gate go on alone, and exits at the
exit gate, every gate shows the same counts per zone and per session, in its status, its
`gate status` text and its Prometheus gauges, and they equal what the three journals
recorded (admissions not voided, exit decisions)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from portique.runtime.control import ControlClient
from portique.runtime.statusview import render_status
from tests.appliance.crowd import START, make_crowd_clip

from .conftest import Gate, Venue, wait_for

EVENT = "PAR24-ATH05"
ZONES = {"1": "north stand", "2": "south stand", "3": "north stand"}
VENUE_SECTION = {"gates": [{"id": g, "zone": z} for g, z in ZONES.items()]}


def setup(venue: Venue, gate_id: str, direction: str = "entry") -> Gate:
    gate = venue.gate(gate_id)
    gate.sections = {"gate": {"direction": direction},
                     "venue": {**VENUE_SECTION, "zone": ZONES[gate_id]}}
    return gate


def journal_truth(gates: list[Gate]) -> dict[str, tuple[int, int, int]]:
    """Per zone (inside, entries, exits), counted straight from each gate's own records."""
    entries = {z: 0 for z in set(ZONES.values())}
    exits = dict(entries)
    for gate in gates:
        with contextlib.closing(sqlite3.connect(gate.journal_path)) as db:
            (admitted,) = db.execute(
                "SELECT COUNT(*) FROM admissions WHERE gate = ? AND state != 'voided'",
                (gate.id,)).fetchone()
            (went_out,) = db.execute(
                "SELECT COUNT(*) FROM decisions WHERE gate = ? AND reason = 'EXIT' AND "
                "verdict = 'admit'", (gate.id,)).fetchone()
        entries[ZONES[gate.id]] += admitted
        # every exit here was of a ticket admitted at gate 1 (north stand)
        exits["north stand"] += went_out
    return {z: (entries[z] - exits[z], entries[z], exits[z]) for z in entries}


def zones_of(status: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {z["zone"]: (z["inside"], z["entries"], z["exits"]) for z in status["zones"]
            if z["session"] == EVENT and z["zone"] != "unknown"}


def test_zone_counts_reconcile_with_the_journals_after_a_partition(venue: Venue,
                                                                   tmp_path: Path) -> None:
    north = make_crowd_clip(tmp_path / "north", people=6)
    make_crowd_clip(tmp_path / "south", people=4, first=100, start=START + 60)
    # two of the north stand's visitors go out later through the exit gate
    out = make_crowd_clip(tmp_path / "out", people=1, first=0, start=START + 600)
    out += make_crowd_clip(tmp_path / "out2", people=1, first=2, start=START + 620)
    one, two, three = setup(venue, "1"), setup(venue, "2"), setup(venue, "3", "exit")
    one.start(tmp_path / "north", stays=frozenset({north[1]}))  # this one never walks in
    two.start(tmp_path / "south")
    three.start(tmp_path / "out")
    decided = one.play()
    assert [r for v, r, _ in decided] == ["VALID"] * 6
    wait_for(lambda: all(three.knows(t, "1") for t in (north[0], north[2])),
             "the exit gate knows the north stand's admissions")

    venue.broker.stop()  # a partition: gates 2 and 3 go on alone
    wait_for(lambda: not two.mesh.connected and not three.mesh.connected, "partitioned")
    assert [r for _, r, _ in two.play()] == ["VALID"] * 4
    assert three.play() == [("admit", "EXIT", north[0])]
    three.stop()
    three.start(tmp_path / "out2", connected=False)
    assert three.play() == [("admit", "EXIT", north[2])]

    venue.broker.start()
    wait_for(lambda: all(g.mesh.connected for g in (one, two, three)), "all reconnected")
    wait_for(venue.converged, "every gate holds every record")

    truth = journal_truth([one, two, three])
    assert truth == {"north stand": (3, 5, 2), "south stand": (4, 4, 0)}
    for gate in (one, two, three):
        status = ControlClient(gate.folder / "control.sock").request("status")["status"]
        assert zones_of(status) == truth, f"gate {gate.id}"
        text = render_status(status)
        assert f"zone         north stand, session {EVENT}: 3 inside (5 entries, 2 exits)" \
            in text
        assert gate.app is not None
        registry = gate.app.metrics.registry
        wait_for(lambda r=registry: r.get_sample_value(  # type: ignore[misc]
            "portique_zone_inside", {"zone": "south stand", "session": EVENT}) == 4.0,
            f"gate {gate.id}'s gauge")
