"""A venue for mesh tests: a real Mosquitto on loopback and real gates (recorded clips, real
SQLite, real control sockets, gpiozero's mock pins), each with its own signing key."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gpiozero.pins.mock import MockFactory

from portique import keyfiles
from portique.devtools.broker import BrokerError, LoopbackBroker
from portique.devtools.simulation import SimulatedRun
from portique.runtime.config import Config, from_dict
from portique.runtime.mesh.node import MeshNode
from portique.runtime.wiring import GateApp, build
from portique.ticket.trust import KeyRole
from tests.appliance.conftest import clip, gate_table

VENUE = "stade-de-france"
ALICE = "PAR24-000101"  # valid_step_change
HANA = "PAR24-000108"   # second_scan


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll until `condition()` is truthy (bounded); fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {timeout} s: {what}")
        time.sleep(0.02)


def gate_key(gate_id: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"portique-mesh-test/{gate_id}".encode()).digest())


@dataclass
class Gate:
    """One gate of the venue: its folder, its config, and the app while it runs."""

    id: str
    folder: Path
    venue: Venue
    app: GateApp | None = None
    mesh_extra: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Config sections merged over the test gate's (gate, venue...)."""

    @property
    def state(self) -> Path:
        return self.folder / "state"

    @property
    def journal_path(self) -> Path:
        return self.state / "journal.sqlite"

    def config(self) -> Config:
        mesh = {"venue": VENUE, "host": "127.0.0.1", "port": self.venue.broker.port,
                "key_file": str(self.venue.keys / f"{self.id}.key"),
                "gates_dir": str(self.venue.keys), "keepalive_s": 5,
                "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "summary_interval_s": 2.0,
                **self.mesh_extra}
        table = gate_table(self.state, mesh=mesh, **self.sections)
        table["gate"]["id"] = self.id
        table["control"]["socket"] = str(self.folder / "control.sock")
        return from_dict(table)

    def start(self, clip_name: str | Path = "empty", *, stays: frozenset[str] = frozenset(),
              connected: bool = True) -> GateApp:
        """Build the gate on a clip (a name in tests/fixtures/clips, or a folder; it plays
        when `play` is called); wait for the broker."""
        self.state.mkdir(parents=True, exist_ok=True)
        source = clip_name if isinstance(clip_name, Path) else clip(clip_name)
        self.app = build(self.config(), SimulatedRun(replay=source, fast=True,
                                                   simulate_passage_s=0.1, stays=stays),
                         pin_factory=MockFactory())
        if connected:
            wait_for(lambda: self.mesh.connected, f"gate {self.id} connected to the broker")
        return self.app

    def play(self) -> list[tuple[str, str, str | None]]:
        """Run the clip the gate was built on to its end; the decisions it made."""
        assert self.app is not None
        before = len(self.decisions())
        self.app.run()
        return self.decisions()[before:]

    def stop(self) -> None:
        if self.app is not None:
            self.app.close()
            self.app = None

    @property
    def mesh(self) -> MeshNode:
        assert self.app is not None and self.app.mesh is not None
        node: MeshNode = self.app.mesh
        return node

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.journal_path)) as db:
            return db.execute(sql, args).fetchall()

    def decisions(self) -> list[tuple[str, str, str | None]]:
        return [tuple(r) for r in self.rows(  # type: ignore[misc]
            "SELECT verdict, reason, ticket_id FROM decisions ORDER BY at, rowid")]

    def knows(self, ticket_id: str, at_gate: str) -> bool:
        """This gate holds an admission of the ticket made at `at_gate` (not voided)."""
        return bool(self.rows("SELECT 1 FROM peer_admissions WHERE ticket_id = ? AND "
                              "gate = ? AND state = 'admitted'", ticket_id, at_gate))

    def conflicts(self) -> list[tuple[Any, ...]]:
        return self.rows("SELECT ticket_id, first_gate, second_gate FROM mesh_conflicts")

    def heads(self) -> dict[tuple[str, bytes], int]:
        return {(o, bytes(i)): h for o, i, h in self.rows(
            "SELECT origin, incarnation, head FROM mesh_streams")}


@dataclass
class Venue:
    folder: Path
    broker: LoopbackBroker
    keys: Path
    gates: dict[str, Gate] = field(default_factory=dict)

    def gate(self, gate_id: str, **mesh_extra: Any) -> Gate:
        if gate_id not in self.gates:
            self.gates[gate_id] = Gate(gate_id, self.folder / f"gate{gate_id}", self,
                                       mesh_extra=mesh_extra)
        return self.gates[gate_id]

    def converged(self) -> bool:
        """Every running gate holds every record of every other running gate."""
        running = [g for g in self.gates.values() if g.app is not None]
        heads = [g.heads() for g in running]
        return all(h == heads[0] for h in heads)


def make_keys(folder: Path, gate_ids: list[str]) -> None:
    for gate_id in gate_ids:
        keyfiles.new_key_pair(folder, gate_id, role=KeyRole.GATE,
                              private_key=gate_key(gate_id))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LoopbackBroker]:
    try:
        server = LoopbackBroker(tmp_path / "broker")
    except BrokerError as exc:
        pytest.fail(str(exc))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def venue(tmp_path: Path, broker: LoopbackBroker) -> Iterator[Venue]:
    keys = tmp_path / "gate-keys"
    make_keys(keys, ["1", "2", "3"])
    v = Venue(tmp_path, broker, keys)
    try:
        yield v
    finally:
        for g in v.gates.values():
            g.stop()
