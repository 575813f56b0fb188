"""Brokers that fail over and brokers bridged to a venue core, on real Mosquitto processes:
gates with a list of brokers move to the next when one dies mid-crowd, and a bridge cut
and restored is closed by the gates' anti-entropy (docs/mesh.md, "Several brokers")."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from portique.devtools.broker import Bridge, LoopbackBroker
from portique.runtime.config import from_dict
from portique.runtime.journal import Journal
from portique.runtime.mesh.node import MeshNode, load_peer_keys
from portique.ticket.decision import Decision
from portique.ticket.reasons import Reason, Verdict
from portique.ticket.views import TicketKey
from tests.mesh.conftest import VENUE, gate_key, make_keys, wait_for

EVENT = "PAR24-ATH05"


@dataclass
class Node:
    """One gate's journal and mesh node, without camera or turnstile: what the mesh sees."""

    id: str
    journal: Journal
    node: MeshNode
    path: Path
    admitted: int = 0

    def admit(self) -> str:
        self.admitted += 1
        ticket = f"T{self.id}-{self.admitted}"
        self.journal.admit(Decision(Verdict.ADMIT, Reason.VALID, time.time(),
                                    TicketKey(EVENT, ticket, 0)))
        self.node.wake()
        return ticket

    def holds(self) -> dict[str, int]:
        """Per gate: admissions of it this gate knows (its own included)."""
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            rows = db.execute("SELECT gate, COUNT(*) FROM peer_admissions GROUP BY gate"
                              ).fetchall()
        return {str(g): int(n) for g, n in rows} | {self.id: self.admitted}


def brokers_of(*brokers: LoopbackBroker) -> list[str]:
    return [f"127.0.0.1:{b.port}" for b in brokers]


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Node]]:
    made: list[Node] = []
    yield made
    for n in made:
        n.node.close()
        n.journal.close()


def start_node(tmp_path: Path, made: list[Node], gate_id: str, brokers: list[str]) -> Node:
    keys = tmp_path / "gate-keys"
    if not keys.exists():
        make_keys(keys, [str(i) for i in range(1, 7)])
    folder = tmp_path / f"gate{gate_id}"
    folder.mkdir()
    mesh = from_dict({
        "gate": {"id": gate_id, "event": EVENT, "entrance": 1},
        "keys": {"trust_dir": str(keys)},
        "mesh": {"venue": VENUE, "brokers": brokers, "key_file": str(keys / f"{gate_id}.key"),
                 "gates_dir": str(keys), "keepalive_s": 5, "summary_interval_s": 1.0,
                 "resend_min_interval_s": 0.5, "reconnect_min_s": 0.1,
                 "reconnect_max_s": 0.5}}).mesh
    assert mesh is not None
    path = folder / "journal.sqlite"
    journal = Journal(path, gate_id=gate_id)
    node = MeshNode(mesh, gate_id=gate_id, journal=journal, key=gate_key(gate_id),
                    peers=load_peer_keys(mesh))
    node.start()
    made.append(Node(gate_id, journal, node, path))
    return made[-1]


def everyone_holds_everything(nodes: list[Node]) -> bool:
    want = {n.id: n.admitted for n in nodes}
    return all(n.holds() == want for n in nodes)


def test_primary_broker_killed_mid_crowd_admissions_still_reach_every_gate(
        tmp_path: Path, nodes: list[Node]) -> None:
    primary = LoopbackBroker(tmp_path / "primary", name="primary")
    standby = LoopbackBroker(tmp_path / "standby", name="standby")
    with primary, standby:
        for gate_id in "1234":
            start_node(tmp_path, nodes, gate_id, brokers_of(primary, standby))
        wait_for(lambda: all(n.node.connected for n in nodes), "every gate connected")
        assert {n.node.broker for n in nodes} == {f"127.0.0.1:{primary.port}"}

        stop = threading.Event()
        killed = threading.Event()

        def crowd() -> None:  # each gate admits in turn, on and on, while the broker dies
            while not stop.is_set():
                for n in nodes:
                    n.admit()
                if sum(n.admitted for n in nodes) >= 80 and not killed.is_set():
                    primary.kill()
                    killed.set()
                if killed.is_set() and all(n.node.connected for n in nodes) \
                        and sum(n.admitted for n in nodes) >= 160:
                    stop.set()

        thread = threading.Thread(target=crowd)
        thread.start()
        try:
            wait_for(stop.is_set, "the crowd went on through the failover", timeout=60)
        finally:
            stop.set()
            thread.join()
        assert not primary.running
        wait_for(lambda: everyone_holds_everything(nodes),
                 "every admission of every gate reached every other gate", timeout=60)
        for n in nodes:
            assert n.node.broker == f"127.0.0.1:{standby.port}"
            status = n.node.status()
            assert status["failovers"] >= 1
            assert status["brokers"] == brokers_of(primary, standby)
            assert n.node.metrics.failovers._value.get() >= 1  # type: ignore[attr-defined]
        # an admission made before the kill is known at every other gate, by ticket
        with contextlib.closing(sqlite3.connect(nodes[3].path)) as db:
            assert db.execute("SELECT gate, state FROM peer_admissions WHERE ticket_id = "
                              "'T1-1'").fetchall() == [("1", "admitted")]


def test_bridge_cut_and_restored_anti_entropy_closes_the_gap(
        tmp_path: Path, nodes: list[Node]) -> None:
    core = LoopbackBroker(tmp_path / "core", name="core")
    core.start()
    north = LoopbackBroker(tmp_path / "north", name="north",
                           bridges=[Bridge("core", core.port)])
    south = LoopbackBroker(tmp_path / "south", name="south",
                           bridges=[Bridge("core", core.port)])
    try:
        with north, south:
            # stand north's gates, stand south's gates, each with the core behind its stand
            for gate_id in "12":
                start_node(tmp_path, nodes, gate_id, brokers_of(north, core))
            for gate_id in "34":
                start_node(tmp_path, nodes, gate_id, brokers_of(south, core))
            wait_for(lambda: all(n.node.connected for n in nodes), "every gate connected")
            wait_for(lambda: _bridged(core), "both bridges up at the core")
            for n in nodes:
                n.admit()
            wait_for(lambda: everyone_holds_everything(nodes),
                     "admissions cross the bridges")

            core.kill()  # the bridges are cut; each stand goes on on its own broker
            for n in nodes:
                for _ in range(3):
                    n.admit()
            wait_for(lambda: nodes[1].holds().get("1") == 4 and nodes[3].holds().get("3")
                     == 4, "each stand still shares its own admissions")
            assert nodes[2].holds().get("1") == 1  # south does not know north's new ones
            resent_before = sum(n.node.metrics.resent._value.get()  # type: ignore[attr-defined]
                                for n in nodes)

            core.start()  # the bridges come back: nothing queued them, the summaries tell
            wait_for(lambda: everyone_holds_everything(nodes),
                     "anti-entropy closes the gap between the stands", timeout=60)
            resent = sum(n.node.metrics.resent._value.get()  # type: ignore[attr-defined]
                         for n in nodes)
            assert resent > resent_before
            assert all(n.node.connected and n.node.status()["failovers"] == 0 for n in nodes)
    finally:
        core.stop()


def _bridged(core: LoopbackBroker) -> bool:
    text = core.log.read_text(errors="replace")
    return "portique-bridge-north-core" in text and "portique-bridge-south-core" in text
