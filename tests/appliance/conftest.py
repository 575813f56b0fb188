"""A whole real gate for end-to-end tests: recorded clips, real decoder, real SQLite,
real control socket, real feed store synced over loopback HTTP, gpiozero's mock pins."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gpiozero.pins.mock import MockFactory

from portique import keyfiles
from portique.devtools.simulation import SimulatedRun
from portique.runtime.config import Config, from_dict
from portique.runtime.wiring import GateApp, RunOptions, build
from portique.ticket.trust import KeyRole

if TYPE_CHECKING:
    from .lane import Lane

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
CLIPS = FIXTURES / "clips"
EVENT = "PAR24-ATH05"
PINS = {"lock": 17, "green": 27, "red": 22, "buzzer": 23, "passage": 24, "fire_loop": 25}
# fail_safe, active-low relay board: the lock relay is energised (pin low) while locked,
# so an unlock is the lock pin going high.
UNLOCKED_LEVEL = True


def fixture_key(name: str) -> Ed25519PrivateKey:
    """A committed fixture private key (tests/fixtures/keys/NAME.key), for a test that plays
    the issuer or the holder's phone. Git keeps no file modes, so these are 0644 in a
    checkout: the gate's own loading (keyfiles.load_private_key) would rightly refuse them."""
    key = serialization.load_pem_private_key((FIXTURES / "keys" / f"{name}.key").read_bytes(),
                                             password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def clip(name: str) -> Path:
    return CLIPS / name


def sidecar(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((clip(name) / "clip.json").read_text())
    return data


def gate_table(state: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    table: dict[str, Any] = {
        "gate": {"id": "1", "event": EVENT, "entrance": 2, "timezone": "Europe/Paris"},
        "keys": {"trust_dir": str(FIXTURES / "keys")},
        "journal": {"path": str(state / "journal.sqlite")},
        "control": {"socket": str(state.parent / "control.sock")},  # a runtime dir
        "clock": {"source": "always"},
        "lane": {"same_ticket_hold_s": 8.0},
        "hardware": {"pin_factory": "mock", "on_stop": "fail_safe",
                     "lock_active_high": False, "open_timeout_s": 1.0, "pins": PINS},
    }
    if "feeds" not in sections:  # a gate without a feed must say so (feeds.required)
        table["feeds"] = {"required": False}
    for name, values in sections.items():
        # a table is merged over the default one; an array of tables ([[sessions]]) is set
        table[name] = values if isinstance(values, list) else {**table.get(name, {}),
                                                                **values}
    return table


def feed_store(state: Path, revocations: dict[str, int],
               manifest_rows: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """Publish a signed feed, serve it on loopback and sync it into a store, as a gate does."""
    from portique.revocation.publish import FeedState, publish, read_manifest_csv
    from portique.revocation.serve import make_server
    from portique.revocation.store import FeedStore
    from portique.revocation.sync import FeedClient, SyncSettings

    keys = state / "feed-keys"
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"appliance-feed").digest())
    if not keys.exists():
        keyfiles.new_key_pair(keys, "feed-1", role=KeyRole.FEED, private_key=key)
    manifest = {}
    if manifest_rows:
        csv = state / "manifest.csv"
        header = list(manifest_rows[0])
        csv.write_text(",".join(header) + "\n" + "".join(
            ",".join(row[h] for h in header) + "\n" for row in manifest_rows), encoding="utf-8")
        manifest = read_manifest_csv(csv)
    out = state / "feed"
    publish(out_dir=out, event=EVENT, state=FeedState(revocations=revocations,
                                                      manifest=manifest),
            key=key, kid="feed-1", now=1722877000)
    server = make_server(out)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with FeedStore.open(state / "feeds.sqlite") as store:
            FeedClient(store, event=EVENT, trust=keyfiles.load_trust_dir(keys, role=None),
                       settings=SyncSettings(base_url=url)).sync()
    finally:
        server.shutdown()
        server.server_close()
    return {"store": str(state / "feeds.sqlite"), "base_url": "http://127.0.0.1:9",
            "trust_dir": str(keys)}


@dataclass
class World:
    """One gate's state folder and how to run the gate on it."""

    state: Path
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    factory: MockFactory | None = None
    window: tuple[int, int] = (0, 0)
    """The lock pin's history between start-up and shutdown (both move the lock)."""

    def config(self) -> Config:
        return from_dict(gate_table(self.state, **self.sections))

    def build(self, options: RunOptions) -> GateApp:
        self.factory = MockFactory()
        return build(self.config(), options, pin_factory=self.factory)

    @contextlib.contextmanager
    def running(self, options: RunOptions) -> Iterator[GateApp]:
        """A started gate; closed on exit, its lock history window remembered."""
        app = self.build(options)
        start = len(self.lock_states())
        try:
            yield app
        finally:
            self.window = (start, len(self.lock_states()))
            app.close()

    def play(self, name: str, *, stays: frozenset[str] = frozenset(),
             walk_s: float = 0.1) -> GateApp:
        """Run the gate on a clip (every frame, at the clip's clock) and return it, closed."""
        with self.running(SimulatedRun(replay=clip(name), fast=True, simulate_passage_s=walk_s,
                                     stays=stays)) as app:
            app.run()
        return app

    def lock_states(self) -> list[Any]:
        assert self.factory is not None
        return list(self.factory.pin(PINS["lock"]).states)

    def lock_levels(self) -> list[bool]:
        """Lock pin levels set while the gate ran (start-up and shutdown left out)."""
        start, end = self.window
        return [s.state for s in self.lock_states()[start:end]]

    def unlocks(self) -> int:
        return sum(1 for level in self.lock_levels() if level == UNLOCKED_LEVEL)

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.state / "journal.sqlite")) as db:
            return db.execute(sql, args).fetchall()

    def decisions(self) -> list[tuple[str, str, str | None]]:
        return [tuple(r) for r in self.rows(  # type: ignore[misc]
            "SELECT verdict, reason, ticket_id FROM decisions ORDER BY at, rowid")]

    def admissions(self) -> list[tuple[str, str]]:
        return [tuple(r) for r in self.rows(  # type: ignore[misc]
            "SELECT ticket_id, state FROM admissions ORDER BY at, rowid")]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    state = tmp_path / "state"
    state.mkdir()
    yield World(state)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def lane(tmp_path: Path) -> Iterator[Lane]:
    """One lane without the rest of the gate (tests/appliance/lane.py)."""
    from .lane import Lane

    state = tmp_path / "state"
    state.mkdir()
    one = Lane(state)
    try:
        yield one
    finally:
        one.close()
