"""Journal checkpoints over the mesh: peers cosign what they saw, and refuse a history cut
back (real Mosquitto on loopback, real gates)."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

from portique.runtime import ledger, tlog

from .conftest import Venue, gate_key, wait_for


def _copy(journal: Path, to: Path) -> None:
    """A consistent copy of a journal in use (its WAL included)."""
    with contextlib.closing(sqlite3.connect(journal)) as src, \
            contextlib.closing(sqlite3.connect(to)) as dst:
        src.backup(dst)


def _cosigned_by(venue: Venue, origin: str, witness: str) -> tlog.SignedCheckpoint | None:
    gate = venue.gates[origin]
    assert gate.app is not None
    head = gate.app.journal.tree_head()
    for signed in gate.app.journal.checkpoints(since_size=head.size):
        if signed.checkpoint.size == head.size and any(
                s.name == witness and s.timestamp is not None for s in signed.signatures):
            return signed
    return None


def test_peers_cosign_checkpoints_and_refuse_a_journal_cut_back(venue: Venue) -> None:
    one = venue.gate("1")
    two = venue.gate("2")
    for g in (one, two):
        g.mesh_extra = {"summary_interval_s": 1.0}
    one.start("valid_step_change")
    two.start()
    assert one.app is not None and two.app is not None
    older = one.folder / "older.sqlite"
    one.app.journal.checkpoint(at=1.0)
    wait_for(lambda: _cosigned_by(venue, "1", "2"), "gate 2 cosigned gate 1's first checkpoint")
    _copy(one.journal_path, older)  # what a root on gate 1 keeps aside
    one.play()
    signed = one.app.journal.checkpoint(at=2.0)
    assert signed is not None and signed.checkpoint.size > 0
    cosigned = wait_for(lambda: _cosigned_by(venue, "1", "2"),
                        "gate 2 cosigned gate 1's checkpoint after the clip")
    tlog.check_cosignature(cosigned, "2", gate_key("2").public_key())
    # the witness keeps it: the checkpoint gate 1 cannot later deny
    witnessed = two.rows("SELECT size, note FROM mesh_witnessed WHERE gate = '1'")
    assert witnessed[0][0] == cosigned.checkpoint.size
    kept = tlog.parse_checkpoint(bytes(witnessed[0][1]))
    one.stop()
    report = ledger.verify_journal(one.journal_path, gate_keys={
        g: gate_key(g).public_key() for g in ("1", "2")}, external=[kept],
        witnesses={"2": gate_key("2").public_key()})
    assert report.ok and report.cosignatures >= 1, report.findings

    shutil.copy(older, one.journal_path)  # the older copy put back: history cut back
    for suffix in ("-wal", "-shm"):
        one.journal_path.with_name(one.journal_path.name + suffix).unlink(missing_ok=True)
    one.start()
    assert one.app is not None
    one.app.journal.checkpoint(at=3.0, force=True)
    wait_for(lambda: "cut back" in two.mesh.witness.refused.get("1", ""),
             "gate 2 refused to cosign the smaller tree")
    assert two.rows("SELECT size FROM mesh_witnessed WHERE gate = '1'")[0][0] == \
        kept.checkpoint.size
    report = ledger.verify_journal(older, gate_keys={"1": gate_key("1").public_key()},
                                   external=[kept])
    first = report.first()
    assert first is not None and first.what == "truncated"
