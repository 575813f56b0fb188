"""The files a running gate trusts and keeps: refused when others could change them, the
journal and the feed store created 0640 and never through a symbolic link, a journal
moved away under a running gate noticed before the next admission."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from portique.devtools.simulation import SimulatedRun
from portique.keyfiles import UnsafeFileError
from portique.revocation.errors import StoreError
from portique.revocation.store import FeedStore
from portique.runtime.journal import Journal, JournalError
from portique.ticket import credential
from portique.ticket.decision import Decision
from portique.ticket.reasons import Reason, Verdict
from portique.ticket.views import TicketKey

from .conftest import EVENT, FIXTURES, World, clip, fixture_key


def test_gate_run_refuses_a_key_folder_others_can_change(world: World, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    shutil.copytree(FIXTURES / "keys", keys, ignore=shutil.ignore_patterns("*.key"))
    keys.chmod(0o777)
    world.sections["keys"] = {"trust_dir": str(keys)}
    with pytest.raises(UnsafeFileError, match=f"key folder {keys}: writable by group or "
                       rf"others \(mode 0777\): run `chmod go-w {keys}`"):
        world.build(SimulatedRun(replay=clip("empty"), fast=True))
    assert not (world.state / "journal.sqlite").exists()  # refused before anything began


def test_gate_run_refuses_keys_in_a_folder_another_user_owns(world: World,
                                                             tmp_path: Path) -> None:
    # that user may swap the trust folder for one of their own, keys and all
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    keys = theirs / "keys"
    shutil.copytree(FIXTURES / "keys", keys, ignore=shutil.ignore_patterns("*.key"))
    os.chown(theirs, 65534, 65534)
    world.sections["keys"] = {"trust_dir": str(keys)}
    with pytest.raises(UnsafeFileError, match=f"key folder {keys}: the folder {theirs} above "
                       f"it is owned by uid 65534.*run `chown root: {theirs}`"):
        world.build(SimulatedRun(replay=clip("empty"), fast=True))
    assert not (world.state / "journal.sqlite").exists()


def test_gate_run_refuses_a_linked_key_in_a_folder_its_group_can_change(
        world: World, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    shutil.copytree(FIXTURES / "keys", keys, ignore=shutil.ignore_patterns("*.key"))
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o775)
    shared.chmod(0o775)
    linked = next(keys.glob("*.pub"))
    shutil.move(linked, shared / linked.name)
    linked.symlink_to(shared / linked.name)
    world.sections["keys"] = {"trust_dir": str(keys)}
    with pytest.raises(UnsafeFileError, match=f"public key {linked}: the folder {shared} above "
                       rf"it is writable by its group \(mode 0775\): run `chmod g-w {shared}`"):
        world.build(SimulatedRun(replay=clip("empty"), fast=True))
    assert not (world.state / "journal.sqlite").exists()


def test_gate_run_refuses_a_config_others_can_change(world: World, tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "1"\nevent = "{EVENT}"\nentrance = 2\n'
                      f'[keys]\ntrust_dir = "{FIXTURES / "keys"}"\n'
                      f'[journal]\npath = "{world.state / "journal.sqlite"}"\n', encoding="utf-8")
    config.chmod(0o666)
    done = subprocess.run([sys.executable, "-m", "portique", "run", "--config", str(config)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert f"config {config}: writable by group or others (mode 0666)" in done.stderr
    assert not (world.state / "journal.sqlite").exists()


def _valid_code(at: float) -> str:
    from portique.commands.main import load_ticket

    level1 = load_ticket(FIXTURES / "tickets" / "alice.json")
    return credential.dynamic_code(level1, fixture_key("dev-alice"), credential.step_at(at))


def test_a_journal_moved_under_a_running_gate_stops_admissions(world: World) -> None:
    journal = world.state / "journal.sqlite"
    moved = world.state / "journal-moved.sqlite"
    at = 1722877205.0
    with world.running(SimulatedRun(replay=clip("empty"), fast=True,
                                  simulate_passage_s=0.05)) as app:
        app.clock.current = at  # type: ignore[union-attr]
        journal.rename(moved)
        event = app.daemon.handle_code(_valid_code(at))
        assert (event["verdict"], event["reason"]) == ("steward", "JOURNAL_UNAVAILABLE")
        error = app.status()["journal"]["last_error"]
        assert f"journal {journal}: the journal file open is no longer at this path" in error
        assert "no file is there now" in error
        moved.rename(journal)  # put back: the same file takes admissions again
        app.clock.current = at + 20  # type: ignore[union-attr]
        again = app.daemon.handle_code(_valid_code(at + 20))
        assert (again["verdict"], again["reason"]) == ("admit", "VALID")
    assert world.unlocks() == 1
    assert world.admissions() == [("PAR24-000101", "passed")]


def test_a_journal_replaced_by_another_file_stops_admissions(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path, gate_id="1")
    try:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").rename(tmp_path / f"old.sqlite{suffix}")
        Journal(path, gate_id="1").close()  # a fresh, empty journal at the path
        decision = Decision(Verdict.ADMIT, Reason.VALID, 1722877200.0,
                            TicketKey(EVENT, "T1", 0))
        with pytest.raises(JournalError, match="another file is there now"):
            journal.admit(decision)
    finally:
        journal.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "old.sqlite")) as db:
        assert db.execute("SELECT COUNT(*) FROM admissions").fetchone() == (0,)


def test_journal_is_created_0640_even_with_umask_022(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        journal = Journal(tmp_path / "state" / "journal.sqlite", gate_id="1")
        journal.gate_event("test", at=1722877200.0)
        journal.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "state" / "journal.sqlite").stat().st_mode) == 0o640


def test_a_journal_others_could_read_is_closed_to_them(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path, gate_id="1").close()
    path.chmod(0o644)
    Journal(path, gate_id="1").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_symlinked_journal_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.sqlite"
    target.write_bytes(b"not mine")
    target.chmod(0o644)
    link = tmp_path / "journal.sqlite"
    link.symlink_to(target)
    with pytest.raises(JournalError, match=f"journal {link}: is a symbolic link: refused"):
        Journal(link, gate_id="1")
    assert target.read_bytes() == b"not mine"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_symlinked_feed_store_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"someone else's file")
    target.chmod(0o644)
    link = tmp_path / "feeds.db"
    link.symlink_to(target)
    with pytest.raises(StoreError, match=f"{link}: is a symbolic link: refused"):
        FeedStore.open(link)
    assert target.read_bytes() == b"someone else's file"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # chmod did not follow the link
