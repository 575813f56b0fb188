"""The harness itself: it loses what was never synced, keeps what was."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import PowerCutMount


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[PowerCutMount]:
    mount = PowerCutMount(tmp_path)
    mount.mount()
    try:
        yield mount
    finally:
        mount.unmount()


def _write(path: Path, data: bytes, *, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_unsynced_file_is_gone_after_a_cut_and_a_synced_one_stays(
        disk: PowerCutMount) -> None:
    root = disk.mountpoint
    _write(root / "synced", b"kept", sync=True)
    _write(root / "unsynced", b"lost", sync=False)
    _sync_dir(root)  # both names are durable; only one file's bytes are
    _write(root / "unnamed", b"no name", sync=True)  # its bytes, not its name
    assert (root / "unsynced").read_bytes() == b"lost"  # before the cut, all is there
    dropped = disk.cut()
    assert dropped["unsynced_files"] >= 1 and dropped["unsynced_names"] == 1
    disk.mount()
    assert (root / "synced").read_bytes() == b"kept"
    assert (root / "unsynced").read_bytes() == b""
    assert not (root / "unnamed").exists()


def test_rename_without_the_directory_fsync_is_undone(disk: PowerCutMount) -> None:
    root = disk.mountpoint
    _write(root / "state", b"old", sync=True)
    _sync_dir(root)
    _write(root / "state.tmp", b"new", sync=True)
    os.replace(root / "state.tmp", root / "state")
    assert (root / "state").read_bytes() == b"new"
    disk.cut()
    disk.mount()
    assert (root / "state").read_bytes() == b"old"
    _write(root / "state.tmp", b"new", sync=True)
    os.replace(root / "state.tmp", root / "state")
    _sync_dir(root)
    disk.cut()
    disk.mount()
    assert (root / "state").read_bytes() == b"new"
    assert not (root / "state.tmp").exists()


def test_a_torn_write_keeps_whole_leading_sectors_only(disk: PowerCutMount) -> None:
    root = disk.mountpoint
    _write(root / "f", b"\0" * 8192, sync=True)
    _sync_dir(root)
    fd = os.open(root / "f", os.O_WRONLY)
    try:
        os.pwrite(fd, b"\xff" * 3072, 512)  # six sectors, within one page
    finally:
        os.close(fd)
    dropped = disk.cut(tear_seed=3)  # this seed keeps four of the six sectors
    disk.mount()
    data = (root / "f").read_bytes()
    kept = dropped["torn_bytes"]
    assert len(data) == 8192 and kept % 512 == 0 and 0 < kept < 3072
    assert data[512:512 + kept] == b"\xff" * kept
    assert data[512 + kept:] == b"\0" * (8192 - 512 - kept)
    assert data[:512] == b"\0" * 512


def test_sqlite_in_wal_mode_keeps_committed_transactions(disk: PowerCutMount) -> None:
    path = disk.mountpoint / "db.sqlite"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE t (n INTEGER)")
        for n in range(50):
            db.execute("INSERT INTO t VALUES (?)", (n,))
        db.execute("PRAGMA synchronous=OFF")  # from here on nothing is synced
        for n in range(50, 60):
            db.execute("INSERT INTO t VALUES (?)", (n,))
        assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 60
        disk.cut(tear_seed=1)
    disk.mount()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 50
