"""Uploads carry the journal's checkpoint and proofs; the platform's side checks each one
against the previous (real HTTP on loopback, real SQLite)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique import keyfiles
from portique.commands.main import main
from portique.runtime import journal as journal_module
from portique.runtime import ledger, tlog
from portique.runtime.journal import Journal
from portique.runtime.upload import Uploader
from portique.ticket.reasons import Verdict
from portique.ticket.trust import KeyRole

from .test_upload import Platform, _config, _decision, platform  # noqa: F401

KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"upload-tree-gate-1").digest())


def _journal(path: Path) -> Journal:
    journal = Journal(path, gate_id="1")
    journal.signer = ("1", KEY)
    return journal


def test_each_upload_is_proved_and_extends_the_previous(tmp_path: Path,
                                                        platform: Platform) -> None:  # noqa: F811
    journal = _journal(tmp_path / "j.sqlite")
    uploader = Uploader(journal, _config(platform.url), gate_id="1", event="PAR24-ATH05")
    scans = [journal.admit(_decision(i, Verdict.ADMIT)) for i in range(4)]
    journal.record(_decision(10))
    assert uploader.run_once().sent == 3
    journal.passage(scans[0], passed=True, at=1722877300.0)  # a state change: sent again
    journal.passage(scans[1], passed=False, at=1722877301.0)
    journal.gate_event("fault", at=1722877302.0, detail="relay feedback lost")
    while uploader.run_once().sent:
        pass
    assert len(platform.bodies) >= 3
    keys = {"1": KEY.public_key()}
    previous = None
    for body in platform.bodies:  # what the platform does with each, in order
        previous = ledger.verify_upload(body, gate_keys=keys, previous=previous)
    assert previous is not None and previous.checkpoint == journal.tree_head()
    assert {r["scan_id"] for b in platform.bodies for r in b["records"]} >= set(scans)

    # the same, as a command, on the files a platform keeps (each against the one before)
    first, last = tmp_path / "first.json", tmp_path / "last.json"
    first.write_text(json.dumps(platform.bodies[-2]))
    last.write_text(json.dumps(platform.bodies[-1]))
    keyfiles.new_key_pair(tmp_path / "keys", "1", role=KeyRole.GATE, private_key=KEY)
    assert main(["journal", "check-upload", "--upload", str(last), "--previous", str(first),
                 "--keys", str(tmp_path / "keys")]) == 0


def test_an_upload_that_contradicts_the_previous_is_refused(
        tmp_path: Path, platform: Platform, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    journal = _journal(tmp_path / "j.sqlite")
    uploader = Uploader(journal, _config(platform.url), gate_id="1", event="PAR24-ATH05")
    for i in range(3):
        journal.admit(_decision(i, Verdict.ADMIT))
    uploader.run_once()
    accepted = platform.bodies[-1]
    keys = {"1": KEY.public_key()}
    ledger.verify_upload(accepted, gate_keys=keys)

    # a record changed in transit (or by the gate after its leaf): its leaf says otherwise
    changed = json.loads(json.dumps(accepted))
    changed["records"][0]["ticket_id"] = "T999"
    with pytest.raises(tlog.TlogError, match="ticket_id"):
        ledger.verify_upload(changed, gate_keys=keys)

    # the journal replaced by a fresh file: another log, which the platform refuses
    journal.close()
    fresh = _journal(tmp_path / "fresh.sqlite")
    again = Uploader(fresh, _config(platform.url), gate_id="1", event="PAR24-ATH05")
    fresh.admit(_decision(5, Verdict.ADMIT))
    again.run_once()
    with pytest.raises(tlog.TlogError, match="replaced"):
        ledger.verify_upload(platform.bodies[-1], gate_keys=keys,
                             previous=tlog.parse_checkpoint(
                                 accepted["tree"]["checkpoint"].encode()))
    up, prev = tmp_path / "up.json", tmp_path / "prev.json"
    up.write_text(json.dumps(platform.bodies[-1]))
    prev.write_text(json.dumps(accepted))
    keyfiles.new_key_pair(tmp_path / "keys", "1", role=KeyRole.GATE, private_key=KEY)
    capsys.readouterr()
    assert main(["journal", "check-upload", "--upload", str(up), "--previous", str(prev),
                 "--keys", str(tmp_path / "keys")]) == 1
    assert "NOT CONSISTENT" in capsys.readouterr().out


def test_the_tree_follows_leaves_of_another_connection_and_rollbacks(tmp_path: Path) -> None:
    """The gate keeps its tree from the leaves it committed; leaves written by another
    connection on the same file, or rolled back, leave its checkpoints right."""
    path = tmp_path / "j.sqlite"
    one, two = _journal(path), _journal(path)
    first = one.admit(_decision(0, Verdict.ADMIT))
    assert one.checkpoint(at=1722877300.0) is not None
    two.record(_decision(1))  # another connection appends a leaf
    with pytest.raises(RuntimeError), one.transaction("a failed write") as db:
        one.exit_admissions(db, "PAR24-ATH05", "T0", at=1722877301.0)
        raise RuntimeError("rolled back, with its state leaf")
    one.passage(first, passed=True, at=1722877302.0)  # written after two's leaf
    signed = one.checkpoint(at=1722877303.0)
    two.close()
    one.close()
    assert signed is not None and signed.checkpoint.size == 3
    report = ledger.verify_journal(path, gate_keys={"1": KEY.public_key()})
    assert report.ok, report.findings
    assert (report.leaves, report.checkpoints) == (3, 2)


def test_a_gate_that_never_signs_keeps_its_tree_in_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # no key: no checkpoint, proof or upload ever takes the committed leaves; the tree
    # takes them itself every CATCH_UP_AFTER, so memory does not grow with the day
    monkeypatch.setattr(journal_module, "CATCH_UP_AFTER", 4)
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    try:
        for i in range(10):
            journal.record(_decision(i))
        assert len(journal._written) < 4
        assert journal.checkpoint(at=1722877400.0) is None  # nothing to sign with
        assert journal.tree_head().size == 10
    finally:
        journal.close()
    assert ledger.verify_journal(tmp_path / "j.sqlite", gate_keys={}).ok
