"""`gate sync` keeps the feed of every session a gate serves, the next one included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portique.commands.main import EXIT_OK
from portique.revocation.store import FeedStore
from tests.revocation.test_cli import (
    MANIFEST,
    T0,
    run,
    served,  # noqa: F401 (the loopback feed server fixture)
)

MORNING, EVENING = "PAR24-DAY-AM", "PAR24-DAY-PM"


def gate(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> Path:
    keys = tmp_path / "keys"
    for kid, role in (("feed-1", "feed"), ("iss-1", "issuer")):
        assert run(capsys, "keys", "new", "--kid", kid, "--role", role, "--out",
                   str(keys))[0] == EXIT_OK
    (tmp_path / "man.csv").write_text(MANIFEST, encoding="utf-8")
    config = tmp_path / "gate.toml"
    config.write_text(
        '[gate]\nid = "g1"\nentrance = 1\n[keys]\ntrust_dir = "keys"\n'
        f'[feeds]\nstore = "state/feeds.db"\nbase_url = "{url}"\nretries = 0\n'
        f'[[sessions]]\nevent = "{MORNING}"\nopens = "2024-08-05T08:00:00+02:00"\n'
        'closes = "2024-08-05T13:30:00+02:00"\n'
        f'[[sessions]]\nevent = "{EVENING}"\nopens = "2024-08-05T15:00:00+02:00"\n'
        'closes = "2024-08-05T23:30:00+02:00"\n', encoding="utf-8")
    return config


def publish(tmp_path: Path, capsys: pytest.CaptureFixture[str], event: str, revocations: str,
            at: int) -> None:
    (tmp_path / "rev.csv").write_text(revocations, encoding="utf-8")
    code, out = run(capsys, "feed", "publish", "--event", event, "--revocations",
                    str(tmp_path / "rev.csv"), "--manifest", str(tmp_path / "man.csv"),
                    "--key", str(tmp_path / "keys" / "feed-1.key"), "--out",
                    str(tmp_path / "www"), "--at", str(at), "--json")
    assert code == EXIT_OK, out


def test_sync_brings_every_listed_session(tmp_path: Path, served: str,  # noqa: F811
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = gate(tmp_path, served, capsys)
    publish(tmp_path, capsys, MORNING, "ticket_id,min_generation\nT-SOLD,2\n", T0 - 600)
    publish(tmp_path, capsys, EVENING, "ticket_id,min_generation\nT-GONE,cancelled\n",
            T0 - 500)
    code, out = run(capsys, "sync", "--config", str(config), "--json")
    assert code == EXIT_OK, out
    assert sorted(json.loads(line)["event"] for line in out.splitlines()) == [MORNING, EVENING]
    with FeedStore.open(tmp_path / "state" / "feeds.db") as store:
        assert store.min_valid_generation(MORNING, "T-SOLD") == 2
        assert store.min_valid_generation(EVENING, "T-GONE") == 0xFFFF
        assert store.min_valid_generation(EVENING, "T-SOLD") is None  # per session


def test_a_session_whose_feed_fails_does_not_stop_the_others(
        tmp_path: Path, served: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    config = gate(tmp_path, served, capsys)
    publish(tmp_path, capsys, EVENING, "ticket_id,min_generation\nT-GONE,cancelled\n",
            T0 - 500)  # the morning's is not published: HTTP 404
    code, out = run(capsys, "sync", "--config", str(config))
    assert code == 1
    assert f"sync of event {MORNING} failed" in out and "HTTP 404" in out
    assert f"event {EVENING}: " in out
    with FeedStore.open(tmp_path / "state" / "feeds.db") as store:
        assert store.status(MORNING) is None
        assert store.min_valid_generation(EVENING, "T-GONE") == 0xFFFF


def test_the_gate_reads_the_next_sessions_feed_once_synced_without_restart(
        tmp_path: Path, served: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    from portique.runtime.feedview import FeedUnavailableError, SharedFeedView

    config = gate(tmp_path, served, capsys)
    publish(tmp_path, capsys, MORNING, "ticket_id,min_generation\nT-SOLD,2\n", T0 - 600)
    assert run(capsys, "sync", "--config", str(config))[0] == 1  # no evening feed yet
    view = SharedFeedView(tmp_path / "state" / "feeds.db", event=MORNING,
                          events=(MORNING, EVENING))
    try:
        assert view.min_valid_generation(MORNING, "T-SOLD") == 2
        # never "nothing is revoked" for a session whose feed is not here: the steward
        with pytest.raises(FeedUnavailableError, match="no feed of session 'PAR24-DAY-PM'"):
            view.min_valid_generation(EVENING, "T-GONE")
        publish(tmp_path, capsys, EVENING, "ticket_id,min_generation\nT-GONE,cancelled\n",
                T0 - 500)
        assert run(capsys, "sync", "--config", str(config))[0] == EXIT_OK
        assert view.min_valid_generation(EVENING, "T-GONE") == 0xFFFF  # the same view
    finally:
        view.close()
