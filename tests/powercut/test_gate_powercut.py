"""Power cuts at random instants under a working gate: nothing acknowledged is lost.

The gate's state folder (journal with the mesh outbox, feed store, fire latch) is on the
power-cut file system (tests/powercut/fs.py). Each round mounts it (the boot), starts the
gate on a crowd clip with the mesh on a real Mosquitto and `gate sync --watch` applying a
feed published meanwhile, and cuts the power at a random instant: both processes are
frozen (SIGSTOP, as a CPU losing power), the file system drops all that was not synced
(tearing the last write in half of the cuts), then the processes are killed. After each
cut the state folder is mounted again and checked: SQLite's integrity check passes on the
journal and the feed store, every relay pulse so far has its committed admission, nobody
is admitted twice, every admission the peer gate learnt over the mesh is still in the
journal, the feed store is at a sequence that was published and not older than one the
sync reported applied, and the fire latch is as it was (never raised here: absent; the
latch's own cut test is test_fire_latch_survives_a_cut).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gpiozero.pins.mock import MockFactory

from portique import keyfiles
from portique.devtools.broker import LoopbackBroker
from portique.devtools.simulation import SimulatedRun
from portique.revocation.publish import FeedState, publish
from portique.revocation.serve import make_server
from portique.runtime.config import from_dict
from portique.runtime.wiring import LATCH_FILE, build
from portique.ticket.trust import KeyRole
from tests.appliance.conftest import EVENT, clip, gate_table
from tests.appliance.crowd import make_crowd_clip
from tests.appliance.test_durability import _pulses, _segments, _toml
from tests.mesh.conftest import VENUE, make_keys, wait_for

from .harness import PowerCutMount

CUTS_SHORT, CUTS_LONG = 4, 50
PEOPLE = 30
"""The crowd; every third person never walks through, so their admissions are voided at
the timeout and they are admitted again at the next round: every round admits."""
FEED_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"powercut-feed").digest())


class Feed:
    """A feed folder served on loopback; `bump()` publishes the next sequence."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.keys = folder / "out", folder / "keys"
        keyfiles.new_key_pair(self.keys, "feed-1", role=KeyRole.FEED, private_key=FEED_KEY)
        self.revoked: dict[str, int] = {}
        self.sequences: list[int] = []
        self.bump()
        self.server = make_server(self.folder)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def bump(self) -> None:
        # revoke tickets nobody shows, so the gate's decisions stay those of the crowd
        self.revoked[f"GONE-{len(self.revoked):05d}"] = 1
        result = publish(out_dir=self.folder, event=EVENT,
                         state=FeedState(revocations=dict(self.revoked), manifest={}),
                         key=FEED_KEY, kid="feed-1", now=1722877000 + len(self.revoked))
        self.sequences.append(result.sequence)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[tuple[LoopbackBroker, Path]]:
    broker = LoopbackBroker(tmp_path / "broker")
    broker.start()
    keys = tmp_path / "gate-keys"
    make_keys(keys, ["1", "2"])
    try:
        yield broker, keys
    finally:
        broker.stop()


def _mesh(broker: LoopbackBroker, keys: Path, gate_id: str) -> dict[str, Any]:
    return {"venue": VENUE, "host": "127.0.0.1", "port": broker.port,
            "key_file": str(keys / f"{gate_id}.key"), "gates_dir": str(keys),
            "keepalive_s": 5, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5,
            "summary_interval_s": 0.5}


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


def _integrity(path: Path) -> str:
    if not path.exists():
        return "missing"
    return str(_rows(path, "PRAGMA integrity_check")[0][0])


def _applied(sync_log: Path) -> int:
    """The highest sequence `gate sync --watch` reported applied (0: none)."""
    best = 0
    if sync_log.exists():
        for line in sync_log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                report = json.loads(line)
                if isinstance(report, dict) and isinstance(report.get("sequence"), int):
                    best = max(best, report["sequence"])
    return best


def _wait_ready(log: Path, starts: int, process: subprocess.Popen[bytes]) -> None:
    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"gate exited early: {process.returncode}: "
                                 + (log.parent / "gate.log").read_text()[-2000:])
        return log.exists() and sum(1 for s in _segments(log)
                                    if any(x.startswith("# ready") for x in s)) >= starts
    wait_for(ready, "the gate ready on the power-cut file system", timeout=120)


@pytest.mark.parametrize("cuts", [
    CUTS_SHORT,
    pytest.param(CUTS_LONG, marks=[pytest.mark.slow, pytest.mark.timeout(3600)]),
])
def test_power_cuts_lose_nothing_acknowledged(tmp_path: Path, cuts: int,
                                               venue: tuple[LoopbackBroker, Path]) -> None:
    broker, keys = venue
    people = make_crowd_clip(tmp_path / "crowd", people=PEOPLE)
    staying = people[2::3]
    feed = Feed(tmp_path / "feed")
    disk = PowerCutMount(tmp_path / "disk")
    state = disk.mountpoint
    table = gate_table(state, mesh=_mesh(broker, keys, "1"),
                       feeds={"store": str(state / "feeds.sqlite"), "base_url": feed.url,
                              "trust_dir": str(feed.keys), "retries": 0,
                              "timeout_seconds": 5})
    table["control"]["socket"] = str(tmp_path / "control.sock")
    config = tmp_path / "gate.toml"
    config.write_text(_toml(table))
    pin_log, sync_log = tmp_path / "pins.log", tmp_path / "sync.log"
    gate_log = tmp_path / "gate.log"
    gate_cmd = [sys.executable, "-m", "portique", "run", "--config", str(config),
                "--replay", str(tmp_path / "crowd"), "--fast", "--simulate-passage", "0.05",
                "--pin-log", str(pin_log), "--log-level", "ERROR",
                *(a for t in staying for a in ("--stay", t))]
    sync_cmd = [sys.executable, "-m", "portique", "sync", "--config", str(config), "--watch",
                "--interval", "0.2", "--json"]

    # the peer gate, on an ordinary disk: it learns gate 1's admissions over the mesh
    peer_state = tmp_path / "peer" / "state"
    peer_state.mkdir(parents=True)
    peer_table = gate_table(peer_state, mesh=_mesh(broker, keys, "2"))
    peer_table["gate"]["id"] = "2"
    peer_table["control"]["socket"] = str(tmp_path / "peer" / "control.sock")
    peer = build(from_dict(peer_table), SimulatedRun(replay=clip("empty"), fast=True),
                 pin_factory=MockFactory())
    rng = random.Random(16)
    admitted_total, torn = 0, 0
    try:
        disk.mount()  # the gate's installation: a first feed, synced before it ever runs
        subprocess.run(sync_cmd[:-4], check=True, capture_output=True, timeout=120)
        disk.unmount()
        for attempt in range(1, cuts + 1):
            disk.mount()
            with sync_log.open("ab") as out, gate_log.open("ab") as err:
                syncer = subprocess.Popen(sync_cmd, stdout=out, stderr=err)
                gate = subprocess.Popen(gate_cmd, stdout=subprocess.DEVNULL, stderr=err)
            try:
                _wait_ready(pin_log, attempt, gate)
                if rng.random() < 0.5:
                    feed.bump()  # a new sequence, applied (or not) before the cut
                time.sleep(rng.uniform(0.0, 6.0))
            finally:
                for process in (gate, syncer):  # the power goes: everything stops at once
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGSTOP)
                dropped = disk.cut(tear_seed=attempt if attempt % 2 else None)
                for process in (gate, syncer):
                    process.kill()
                    process.wait()
            torn += bool(dropped.get("torn"))
            reported = {scan for (scan,) in _rows(
                peer_state / "journal.sqlite",
                "SELECT scan_id FROM peer_admissions WHERE gate = '1'")}
            applied = _applied(sync_log)

            disk.mount()  # the reboot
            try:
                journal, store = state / "journal.sqlite", state / "feeds.sqlite"
                assert _integrity(journal) == "ok", f"cut {attempt}: journal {_integrity(journal)}"
                admissions = _rows(journal, "SELECT scan_id, ticket_id, state FROM admissions")
                committed = {scan for scan, _, _ in admissions}
                pulses = [scan for s in _segments(pin_log) for scan in _pulses(s)]
                assert None not in pulses, f"cut {attempt}: a pulse with no admission"
                lost = [scan for scan in pulses if scan not in committed]
                assert not lost, f"cut {attempt}: pulses whose admission is gone: {lost}"
                in_force = Counter(t for _, t, s in admissions if s in ("open", "passed"))
                assert max(in_force.values(), default=0) <= 1, f"cut {attempt}: twice in"
                forgotten = reported - committed
                assert not forgotten, (f"cut {attempt}: admissions the peer learnt are gone "
                                       f"from the journal: {sorted(forgotten)}")
                if store.exists():
                    assert _integrity(store) == "ok", f"cut {attempt}: feed store broken"
                    rows = _rows(store, "SELECT sequence FROM feed_state")
                    sequence = rows[0][0] if rows else 0
                else:
                    sequence = 0
                assert sequence in (0, *feed.sequences), f"cut {attempt}: {sequence}"
                assert sequence >= applied, (f"cut {attempt}: feed store at {sequence}, "
                                             f"the sync had reported {applied} applied")
                assert not (state / LATCH_FILE).exists(), f"cut {attempt}: a latch appeared"
                admitted_total = len(admissions)
            finally:
                disk.unmount()
        # after the last reboot the crowd still gets in, each person once
        disk.mount()
        final = subprocess.run(gate_cmd, capture_output=True, timeout=300, check=False)
        assert final.returncode == 0, final.stderr.decode()[-2000:]
        admissions = _rows(state / "journal.sqlite",
                           "SELECT scan_id, ticket_id, state FROM admissions")
        in_force = Counter(t for _, t, s in admissions if s in ("open", "passed"))
        assert {t for _, t, _ in admissions} == set(people)
        assert max(in_force.values()) == 1
        decided = _rows(state / "journal.sqlite", "SELECT COUNT(*) FROM decisions")[0][0]
        wait_for(lambda: {s for (s,) in _rows(
            peer_state / "journal.sqlite",
            "SELECT scan_id FROM peer_admissions WHERE gate = '1'")} >= {
                s for s, _, st in admissions if st != "voided"}, "the peer learnt them all",
                 timeout=60)
        learnt = len(_rows(peer_state / "journal.sqlite",
                           "SELECT scan_id FROM peer_admissions WHERE gate = '1'"))
    finally:
        peer.close()
        disk.unmount()
        feed.close()
    pulses = [scan for s in _segments(pin_log) for scan in _pulses(s)]
    dropped_bytes = sum(c.get("unsynced_bytes", 0) for c in disk.cuts)
    summary = (f"power cuts: {cuts}, torn writes: {torn}, admissions committed before the "
               f"last cut: {admitted_total}, decisions: {decided}, relay pulses: "
               f"{len(pulses)}, cuts with an unsynced name: "
               f"{sum(1 for c in disk.cuts if c.get('unsynced_names'))}, unsynced bytes "
               f"dropped: {dropped_bytes}, feed sequences published: {len(feed.sequences)}, "
               f"records the peer learnt: {learnt}")
    print(summary)
    (tmp_path / "summary.txt").write_text(summary + "\n")
    if os.environ.get("POWERCUT_SUMMARY"):
        Path(os.environ["POWERCUT_SUMMARY"]).write_text(summary + "\n")
    assert len(pulses) > cuts // 2  # the cuts fell while people were being admitted
    assert dropped_bytes > 0  # and while something was still unsynced
