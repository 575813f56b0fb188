"""The journal's Merkle tree: an honest journal verifies; every kind of edit is named.

A real gate plays a crowd clip (admissions, voids, refusals of the second showing), records
a gate event, signs checkpoints; then a copy of its journal is edited the way a root on the
gate could, and `gate journal verify` must name what was done.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique import keyfiles
from portique.commands.main import main
from portique.devtools.simulation import SimulatedRun
from portique.runtime import ledger, tlog
from portique.runtime.journal import Journal
from portique.ticket.trust import KeyRole

from .conftest import World
from .crowd import make_crowd_clip

GATE_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"tree-gate-1").digest())
PEER_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"tree-gate-2").digest())


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A journal made by a real gate, its key folder, an older copy and a checkpoint
    cosigned by a peer (as the mesh brings back), all kept for the tests to copy."""
    root = tmp_path_factory.mktemp("tree")
    keys = root / "keys"
    keyfiles.new_key_pair(keys, "1", role=KeyRole.GATE, private_key=GATE_KEY)
    keyfiles.new_key_pair(keys, "2", role=KeyRole.GATE, private_key=PEER_KEY)
    crowd = root / "crowd"
    people = make_crowd_clip(crowd, people=10)
    state = root / "state"
    state.mkdir()
    world = World(state, sections={"journal": {"key_file": str(keys / "1.key")}})
    with world.running(SimulatedRun(replay=crowd, fast=True, simulate_passage_s=0.05,
                                  stays=frozenset(people[3:4]))) as app:
        app.run()
        app.journal.gate_event("fault", at=1722877300.0, detail="relay feedback lost")
        app.journal.checkpoint(at=1722877301.0, force=True)
    older = root / "older.sqlite"
    shutil.copy(state / "journal.sqlite", older)
    with world.running(SimulatedRun(replay=crowd, fast=True, simulate_passage_s=0.05)) as app:
        app.run()  # everyone shows again: refused as already inside (or let in: voided)
        signed = app.journal.checkpoint(at=1722877400.0, force=True)
        assert signed is not None
        cosigned = signed.with_signature(tlog.cosign(signed.checkpoint, "2", PEER_KEY,
                                                     1722877401))
    (root / "cosigned.checkpoint").write_bytes(cosigned.encode())
    return {"journal": state / "journal.sqlite", "keys": keys, "older": older,
            "checkpoint": root / "cosigned.checkpoint"}


@pytest.fixture
def journal(recorded: dict[str, Path], tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "journal.sqlite"
    shutil.copy(recorded["journal"], copy)
    yield copy


def _edit(path: Path, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA foreign_keys=OFF")
        for s in statements:
            sql, args = (s, ()) if isinstance(s, str) else s
            db.execute(sql, args)


def _one(path: Path, sql: str) -> Any:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchone()


def verify(path: Path, recorded: dict[str, Path], capsys: pytest.CaptureFixture[str],
           *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["journal", "verify", "--journal", str(path), "--keys",
                 str(recorded["keys"]), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_an_honest_journal_verifies_with_its_own_and_a_cosigned_checkpoint(
        journal: Path, recorded: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = verify(journal, recorded, capsys, "--checkpoint", str(recorded["checkpoint"]))
    assert (code, out["ok"]) == (0, True), out
    kinds = dict(sqlite3.connect(journal).execute(
        "SELECT kind, COUNT(*) FROM journal_leaves GROUP BY kind").fetchall())
    assert set(kinds) == {"admit", "decision", "state", "gate_event"}
    # one leaf per record, but an admission and its decision share their `admit` leaf
    assert out["leaves"] == out["records"] - kinds["admit"] + kinds["state"]
    assert kinds["admit"] == _one(journal, "SELECT COUNT(*) FROM admissions")[0]
    assert out["cosignatures"] == 1 and out["checkpoints"] >= 3


def _admit_leaf(journal: Path, offset: int = 0) -> tuple[int, str]:
    """(index, scan id) of an admission's `admit` leaf."""
    index, scan = _one(journal, "SELECT idx, ref FROM journal_leaves WHERE kind = 'admit' "
                       f"ORDER BY idx LIMIT 1 OFFSET {offset}")
    return int(index), str(scan)


def test_an_edited_admission_row_is_named(journal: Path, recorded: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    index, scan = _admit_leaf(journal, 2)
    _edit(journal, ("UPDATE admissions SET ticket_id = 'CROWD-99999' WHERE scan_id = ?",
                    (scan,)))
    code, out = verify(journal, recorded, capsys)
    assert (code, out["first"]["what"], out["first"]["index"]) == (1, "changed", index)
    assert f"admission {scan}" in out["first"]["message"]
    assert "ticket_id is now 'CROWD-99999'" in out["first"]["message"]


def test_an_edited_admission_state_is_named(journal: Path, recorded: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _, scan = _admit_leaf(journal, 1)
    last = _one(journal, "SELECT MAX(idx) FROM journal_leaves WHERE ref = "
                f"'{scan}'")[0]  # its admit leaf, or the last state leaf after it
    _edit(journal, ("UPDATE admissions SET state = 'voided' WHERE scan_id = ?", (scan,)))
    code, out = verify(journal, recorded, capsys)
    assert (code, out["first"]["what"], out["first"]["index"]) == (1, "changed", last)
    assert scan in out["first"]["message"] and "'voided'" in out["first"]["message"]


def test_a_deleted_admission_row_is_named(journal: Path, recorded: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    index, scan = _admit_leaf(journal, 3)
    _edit(journal, ("DELETE FROM admissions WHERE scan_id = ?", (scan,)))
    code, out = verify(journal, recorded, capsys)
    assert (code, out["first"]["what"], out["first"]["index"]) == (1, "removed", index)
    assert scan in out["first"]["message"] and "its admission is" in out["first"]["message"]


def test_an_inserted_admission_row_is_named(journal: Path, recorded: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """An admission row added to a decision that admitted nobody (a refusal)."""
    scan = _one(journal, "SELECT ref FROM journal_leaves WHERE kind = 'decision' AND ref IN "
                "(SELECT scan_id FROM decisions WHERE verdict = 'refuse') ORDER BY idx")[0]
    _edit(journal, ("INSERT INTO admissions (scan_id, event, ticket_id, generation, gate, at, "
                    "state, updated_at) SELECT scan_id, event, ticket_id, generation, gate, "
                    "at, 'voided', at FROM decisions WHERE scan_id = ?", (scan,)))
    code, out = verify(journal, recorded, capsys)
    assert (code, out["first"]["what"]) == (1, "inserted")
    assert f"admission {scan} is in the journal but in no leaf" in out["first"]["message"]


def test_a_journal_with_the_earlier_admission_leaves_verifies(
        journal: Path, recorded: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A journal written before the `admit` leaf (a decision leaf, then an admission leaf,
    for each admission) still verifies, and an edit of it is still named."""
    with contextlib.closing(sqlite3.connect(journal)) as db:
        rows = db.execute("SELECT kind, ref, body FROM journal_leaves ORDER BY idx").fetchall()
    leaves: list[tuple[str, str, bytes]] = []
    for kind, ref, body in rows:
        leaf = json.loads(body)
        if kind == "admit":
            pairs = [("decision", [leaf[f] for f in ledger.DECISION_FIELDS]),
                     ("admission", [leaf["scan_id"], leaf["event"], leaf["ticket_id"],
                                    leaf["generation"], leaf["gate"], leaf["at"],
                                    leaf["state"], leaf["updated_at"]])]
        else:
            pairs = [(kind, [leaf[f] for f in ledger.FIELDS[kind]])]
        for k, values in pairs:
            leaves.append((k, ref, ledger.leaf_bytes(k, len(leaves), values)))
    _edit(journal, "DELETE FROM journal_leaves", "DELETE FROM journal_checkpoints",
          *[("INSERT INTO journal_leaves (idx, kind, ref, body) VALUES (?, ?, ?, ?)",
             (i, k, ref, body)) for i, (k, ref, body) in enumerate(leaves)])
    code, out = verify(journal, recorded, capsys)
    assert (code, out["ok"]) == (0, True), out
    assert out["leaves"] == len(leaves) > len(rows)
    index, scan = _one(journal, "SELECT idx, ref FROM journal_leaves WHERE kind = "
                       "'admission' ORDER BY idx LIMIT 1 OFFSET 2")
    _edit(journal, ("UPDATE admissions SET gate = '7' WHERE scan_id = ?", (scan,)))
    code, out = verify(journal, recorded, capsys)
    assert (code, out["first"]["what"], out["first"]["index"]) == (1, "changed", index)


def test_a_journal_from_before_the_tree_gets_its_records_as_leaves(
        journal: Path, recorded: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A journal written before the tree (records, no leaves, no origin) opened by the
    gate: its records become the first leaves in the order they were written, an admission
    and its decision as one `admit` leaf, and it verifies; an edit of it is named."""
    _edit(journal, "DELETE FROM journal_leaves", "DELETE FROM journal_checkpoints",
          "DELETE FROM journal_meta WHERE name = 'origin'")
    opened = Journal(journal, gate_id="1")
    opened.close()
    kinds = dict(sqlite3.connect(journal).execute(
        "SELECT kind, COUNT(*) FROM journal_leaves GROUP BY kind").fetchall())
    assert set(kinds) == {"admit", "decision", "gate_event"}
    assert kinds["admit"] == _one(journal, "SELECT COUNT(*) FROM admissions")[0]
    assert kinds["admit"] + kinds["decision"] == _one(journal,
                                                      "SELECT COUNT(*) FROM decisions")[0]
    code, out = verify(journal, recorded, capsys)
    assert (code, out["ok"]) == (0, True), out
    index, scan = _admit_leaf(journal, 1)
    _edit(journal, ("UPDATE admissions SET state = CASE state WHEN 'voided' THEN 'passed' "
                    "ELSE 'voided' END WHERE scan_id = ?", (scan,)))
    code, out = verify(journal, recorded, capsys)
    assert (code, out["first"]["what"], out["first"]["index"]) == (1, "changed", index)


def test_an_edited_row_is_named(journal: Path, recorded: dict[str, Path],
                                capsys: pytest.CaptureFixture[str]) -> None:
    index, scan = _one(journal, "SELECT idx, ref FROM journal_leaves WHERE kind = 'decision' "
                       "AND ref IN (SELECT scan_id FROM decisions WHERE verdict = 'refuse') "
                       "ORDER BY idx LIMIT 1")
    _edit(journal, ("UPDATE decisions SET verdict = 'admit' WHERE scan_id = ?", (scan,)))
    code, out = verify(journal, recorded, capsys)
    assert code == 1
    assert out["first"]["what"] == "changed" and out["first"]["index"] == index
    assert scan in out["first"]["message"] and "verdict" in out["first"]["message"]


def test_a_deleted_row_is_named(journal: Path, recorded: dict[str, Path],
                                capsys: pytest.CaptureFixture[str]) -> None:
    index, scan = _one(journal, "SELECT idx, ref FROM journal_leaves WHERE kind = 'decision' "
                       "AND ref IN (SELECT scan_id FROM decisions WHERE verdict = 'refuse') "
                       "ORDER BY idx DESC LIMIT 1")
    _edit(journal, ("DELETE FROM decisions WHERE scan_id = ?", (scan,)))
    code, out = verify(journal, recorded, capsys)
    assert (code, out["first"]["what"], out["first"]["index"]) == (1, "removed", index)
    assert scan in out["first"]["message"]


def test_a_deleted_row_with_its_leaf_is_named(journal: Path, recorded: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    index, scan = _one(journal, "SELECT idx, ref FROM journal_leaves WHERE kind = 'decision' "
                       "AND ref IN (SELECT scan_id FROM decisions WHERE verdict = 'refuse') "
                       "ORDER BY idx LIMIT 1")
    _edit(journal, ("DELETE FROM decisions WHERE scan_id = ?", (scan,)),
          ("DELETE FROM journal_leaves WHERE idx = ?", (index,)))
    code, out = verify(journal, recorded, capsys)
    assert (code, out["first"]["what"], out["first"]["index"]) == (1, "removed", index)


def test_two_swapped_records_are_named(journal: Path, recorded: dict[str, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (a,), (b,) = sqlite3.connect(journal).execute(
        "SELECT idx FROM journal_leaves WHERE kind = 'decision' ORDER BY idx LIMIT 2 OFFSET 3"
    ).fetchall()
    _edit(journal, ("UPDATE journal_leaves SET idx = -1 WHERE idx = ?", (a,)),
          ("UPDATE journal_leaves SET idx = ? WHERE idx = ?", (a, b)),
          ("UPDATE journal_leaves SET idx = ? WHERE idx = -1", (b,)))
    code, out = verify(journal, recorded, capsys)
    assert (code, out["first"]["what"], out["first"]["index"]) == (1, "reordered", a)
    assert f"written as leaf {b}" in out["first"]["message"]


def test_two_swapped_times_are_named(journal: Path, recorded: dict[str, Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    (a, ta), (b, tb) = sqlite3.connect(journal).execute(
        "SELECT l.ref, d.at FROM journal_leaves l JOIN decisions d ON d.scan_id = l.ref "
        "WHERE l.kind = 'decision' ORDER BY l.idx LIMIT 2").fetchall()
    _edit(journal, ("UPDATE decisions SET at = ? WHERE scan_id = ?", (tb, a)),
          ("UPDATE decisions SET at = ? WHERE scan_id = ?", (ta, b)))
    code, out = verify(journal, recorded, capsys)
    assert (code, out["first"]["what"]) == (1, "changed")
    assert a in out["first"]["message"] and "at is now" in out["first"]["message"]


def test_an_inserted_row_is_named(journal: Path, recorded: dict[str, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    _edit(journal, "INSERT INTO decisions (scan_id, at, gate, event, ticket_id, generation, "
          "verdict, reason, method) VALUES ('f00d', 1722877250.0, '1', 'PAR24-ATH05', "
          "'CROWD-99999', 0, 'admit', 'VALID', 'steward')")
    code, out = verify(journal, recorded, capsys)
    assert (code, out["first"]["what"]) == (1, "inserted")
    assert "decision f00d" in out["first"]["message"]


def test_a_cut_tail_is_named(journal: Path, recorded: dict[str, Path],
                             capsys: pytest.CaptureFixture[str]) -> None:
    size = _one(journal, "SELECT COUNT(*) FROM journal_leaves")[0]
    cut = size - 5
    refs = [r for (r,) in sqlite3.connect(journal).execute(
        "SELECT ref FROM journal_leaves WHERE idx >= ?", (cut,))]
    marks = ",".join("?" * len(refs))
    _edit(journal, (f"DELETE FROM admissions WHERE scan_id IN ({marks})", tuple(refs)),
          (f"DELETE FROM decisions WHERE scan_id IN ({marks})", tuple(refs)),
          ("DELETE FROM journal_leaves WHERE idx >= ?", (cut,)))
    code, out = verify(journal, recorded, capsys)  # the journal's own checkpoint tells
    assert (code, out["first"]["what"], out["first"]["index"]) == (1, "truncated", cut)
    _edit(journal, "DELETE FROM journal_checkpoints")  # and a peer's, when that is gone
    code, out = verify(journal, recorded, capsys, "--checkpoint", str(recorded["checkpoint"]))
    assert (code, out["first"]["what"], out["first"]["index"]) == (1, "truncated", cut)
    assert "given" in out["first"]["message"]


def test_an_older_copy_is_named(recorded: dict[str, Path],
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out = verify(recorded["older"], recorded, capsys)
    assert code == 0  # alone, an older copy is a consistent journal ...
    code, out = verify(recorded["older"], recorded, capsys, "--checkpoint",
                       str(recorded["checkpoint"]))
    assert (code, out["first"]["what"]) == (1, "truncated")  # ... not next to what peers saw
    older = _one(recorded["older"], "SELECT COUNT(*) FROM journal_leaves")[0]
    assert out["first"]["index"] == older


def test_a_rewritten_and_resigned_history_contradicts_the_peers(
        journal: Path, recorded: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Root with the gate's own key rewrites a leaf, its hash and every checkpoint: the
    journal is consistent again, but not with the checkpoint its peer cosigned."""
    index, scan, body = _one(journal, "SELECT idx, ref, body FROM journal_leaves WHERE kind "
                             "= 'decision' ORDER BY idx LIMIT 1 OFFSET 2")
    leaf = json.loads(body)
    leaf["detail"] = "never happened"
    forged = ledger.leaf_bytes("decision", index, [leaf[f] for f in ledger.DECISION_FIELDS])
    _edit(journal, ("UPDATE decisions SET detail = 'never happened' WHERE scan_id = ?",
                    (scan,)),
          ("UPDATE journal_leaves SET body = ? WHERE idx = ?", (forged, index)),
          "DELETE FROM journal_checkpoints")
    hashes = [tlog.leaf_hash(bytes(b)) for (b,) in sqlite3.connect(journal).execute(
        "SELECT body FROM journal_leaves ORDER BY idx")]
    origin = _one(journal, "SELECT value FROM journal_meta WHERE name = 'origin'")[0]
    resigned = tlog.sign_checkpoint(tlog.Checkpoint(origin, len(hashes), tlog.root(hashes)),
                                    "1", GATE_KEY)
    _edit(journal, ("INSERT INTO journal_checkpoints (size, at, note) VALUES (?, ?, ?)",
                    (len(hashes), 1722877500.0, resigned.encode())))
    code, out = verify(journal, recorded, capsys)
    assert code == 0  # on its own, it cannot be told apart ...
    code, out = verify(journal, recorded, capsys, "--checkpoint", str(recorded["checkpoint"]))
    assert (code, out["first"]["what"]) == (1, "forked")  # ... the peer's cosigned one can
    assert "rewritten" in out["first"]["message"]


def test_a_forged_checkpoint_signature_is_named(journal: Path, recorded: dict[str, Path],
                                                capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    signed = tlog.parse_checkpoint(recorded["checkpoint"].read_bytes())
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    forged = tlog.sign_checkpoint(signed.checkpoint, "1", other)
    path = tmp_path / "forged.checkpoint"
    path.write_bytes(forged.encode())
    code, out = verify(journal, recorded, capsys, "--checkpoint", str(path))
    assert (code, out["first"]["what"]) == (1, "signature")


def test_checkpoint_command_prints_the_latest_note(recorded: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "checkpoint", "--journal", str(recorded["journal"])]) == 0
    note = capsys.readouterr().out.encode()
    signed = tlog.parse_checkpoint(note)
    assert signed.checkpoint.size == _one(recorded["journal"],
                                          "SELECT COUNT(*) FROM journal_leaves")[0]
    tlog.check_signature(signed, "1", GATE_KEY.public_key())
