"""Killing `gate sync` (SIGKILL) at each step of an apply leaves the old sequence or the
new one, never a mix; the store stays usable and the next sync completes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from portique import keyfiles
from portique.revocation.store import FeedStore
from portique.ticket.trust import KeyRole
from tests.revocation.conftest import (
    EVENT,
    FEED_KEY,
    FEED_KID,
    STATE_1,
    STATE_2,
    T0,
    FeedServer,
    client,
    publish_state,
    rows,
)
from tests.revocation.killpoint import KILLED_AT

ROOT = Path(__file__).resolve().parents[2]


def gate_config(tmp_path: Path, url: str) -> Path:
    keyfiles.new_key_pair(tmp_path / "keys", FEED_KID, role=KeyRole.FEED,
                          private_key=FEED_KEY)
    path = tmp_path / "gate.toml"
    path.write_text(f"""
[gate]
id = "g1"
event = "{EVENT}"
entrance = 1

[keys]
trust_dir = "keys"

[feeds]
store = "state/feeds.db"
base_url = "{url}"
retries = 0
timeout_seconds = 5
""", encoding="utf-8")
    return path


@pytest.mark.parametrize(("route", "point"), [
    ("deltas", "begin"), ("deltas", "rows"), ("deltas", "before-commit"),
    ("deltas", "committed"),
    ("snapshot", "cleared"), ("snapshot", "rows"), ("snapshot", "before-commit"),
    ("snapshot", "committed"),
])
def test_kill_during_apply_leaves_old_or_new(feed_server: FeedServer, tmp_path: Path,
                                             route: str, point: str) -> None:
    config = gate_config(tmp_path, feed_server.url)
    store_path = tmp_path / "state" / "feeds.db"
    publish_state(feed_server.folder, STATE_1, at=T0 - 600)
    with FeedStore.open(store_path) as store:
        client(store, feed_server.url).sync()
    publish_state(feed_server.folder, STATE_2, at=T0 - 300,
                  keep_deltas=100 if route == "deltas" else 0)
    old = rows(store_path)
    reference = tmp_path / "reference.db"
    shutil.copy(store_path, reference)
    with FeedStore.open(reference) as store:
        assert client(store, feed_server.url).sync().outcome.value == route
    new = rows(reference)
    assert old[0] == 1 and new[0] == 2 and old != new

    killed = subprocess.run(
        [sys.executable, "-m", "tests.revocation.killpoint", point, "sync", "--config",
         str(config)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert f"{KILLED_AT} {point!r}" in killed.stderr

    after = rows(store_path)
    assert after == (new if point == "committed" else old)
    with FeedStore.open(store_path) as store:  # still a sound store: the next sync completes
        assert client(store, feed_server.url).sync().to_sequence == 2
    assert rows(store_path) == new


def test_no_environment_variable_can_kill_a_sync(feed_server: FeedServer,
                                                 tmp_path: Path) -> None:
    """The kill hook exists for the test above only: the variable that once armed it, set
    to every step, leaves `gate sync` to finish its apply."""
    config = gate_config(tmp_path, feed_server.url)
    publish_state(feed_server.folder, STATE_1, at=T0 - 600)
    state = tmp_path / "state"
    for point in ("begin", "cleared", "rows", "before-commit", "committed"):
        shutil.rmtree(state, ignore_errors=True)  # a whole snapshot apply, every time
        synced = subprocess.run(
            [sys.executable, "-m", "portique", "sync", "--config", str(config)], cwd=ROOT,
            env={**os.environ, "PORTIQUE_FEED_TEST_HOOK": point}, capture_output=True,
            text=True, timeout=60, check=False)
        assert synced.returncode == 0, synced.stderr
        assert "killing" not in synced.stderr
        assert rows(state / "feeds.db")[0] == 1
