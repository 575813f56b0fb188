"""End to end through the `gate` command: keys, publish from CSV, serve, sync, check."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from portique.base.timeparse import format_time
from portique.commands.main import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, main
from portique.revocation.format import INDEX_NAME
from portique.revocation.serve import make_server
from portique.revocation.store import FeedStore
from tests.revocation.conftest import EVENT, T0, FaultyHandler, FeedServer

REVOCATIONS_1 = "ticket_id,min_generation\nT-SOLD,2\n"
REVOCATIONS_2 = "ticket_id,min_generation\nT-SOLD,2\nT-GONE,cancelled\n"
MANIFEST = ("ticket_id,generation,order_ref,holder_name,category,entrances,flags\n"
            'T-SOLD,2,ORD-100,Zoë Lefèvre,CAT A,"1,3",accessible\n'
            "T-GONE,0,ORD-200,Jean-Pierre  Œuvray,CAT B,1,\n"
            "T-KEEP,0,ORD-300,Marie Dupont,CAT B,1 2,paper reentry\n")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "www").mkdir()
    server = make_server(tmp_path / "www")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}"
    server.shutdown()
    server.server_close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def setup_gate(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> Path:
    keys = tmp_path / "keys"
    for kid, role in (("feed-1", "feed"), ("iss-1", "issuer")):
        assert run(capsys, "keys", "new", "--kid", kid, "--role", role, "--out",
                   str(keys))[0] == EXIT_OK
    (tmp_path / "man.csv").write_text(MANIFEST, encoding="utf-8")
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "g1"\nevent = "{EVENT}"\nentrance = 1\n'
                      f'[keys]\ntrust_dir = "keys"\n'
                      f'[feeds]\nstore = "state/feeds.db"\nbase_url = "{url}"\nretries = 0\n',
                      encoding="utf-8")
    return config


def publish(tmp_path: Path, capsys: pytest.CaptureFixture[str], revocations: str, *,
            at: int, key: str = "feed-1") -> tuple[int, str]:
    (tmp_path / "rev.csv").write_text(revocations, encoding="utf-8")
    return run(capsys, "feed", "publish", "--event", EVENT, "--revocations",
               str(tmp_path / "rev.csv"), "--manifest", str(tmp_path / "man.csv"), "--key",
               str(tmp_path / "keys" / f"{key}.key"), "--out", str(tmp_path / "www"),
               "--at", str(at), "--json")


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], ticket: str,
          generation: int) -> tuple[int, dict[str, object]]:
    ticket_file = tmp_path / f"{ticket}-{generation}.json"
    if not ticket_file.exists():
        assert run(capsys, "ticket", "issue", "--key", str(tmp_path / "keys" / "iss-1.key"),
                   "--event", EVENT, "--ticket", ticket, "--generation", str(generation),
                   "--valid-from", str(T0 - 3600), "--valid-until", str(T0 + 3600),
                   "--entrances", "1", "--paper", "--out", str(ticket_file))[0] == EXIT_OK
    code_text = json.loads(ticket_file.read_text(encoding="utf-8"))["code"]
    code, out = run(capsys, "check", code_text, "--config", str(tmp_path / "gate.toml"),
                    "--at", str(T0), "--json")
    return code, json.loads(out) if code != EXIT_USAGE else {"error": out}


def test_publish_sync_and_check_refuse_superseded_and_cancelled(
        tmp_path: Path, served: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = setup_gate(tmp_path, served, capsys)
    # configured for feeds but never synced: check refuses to run rather than ignore them
    code, refused = check(tmp_path, capsys, "T-KEEP", 0)
    assert code == EXIT_USAGE
    assert "no feed store yet (run `gate sync` first)" in str(refused["error"])

    assert publish(tmp_path, capsys, REVOCATIONS_1, at=T0 - 600)[0] == EXIT_OK
    code, out = run(capsys, "sync", "--config", str(config), "--json")
    assert code == EXIT_OK
    assert json.loads(out.splitlines()[-1])["outcome"] == "snapshot"
    store_file = tmp_path / "state" / "feeds.db"
    assert stat.S_IMODE(store_file.stat().st_mode) == 0o640

    code, decision = check(tmp_path, capsys, "T-SOLD", 1)
    assert (code, decision["reason"]) == (EXIT_REFUSED, "SUPERSEDED")
    code, decision = check(tmp_path, capsys, "T-GONE", 0)
    assert decision["reason"] == "PAPER_TICKET"  # not yet cancelled at sequence 1

    code, out = publish(tmp_path, capsys, REVOCATIONS_2, at=T0 - 300)
    assert json.loads(out)["delta"] == "delta-1-2.tsv.gz"
    code, out = run(capsys, "sync", "--config", str(config), "--json")
    assert json.loads(out.splitlines()[-1])["outcome"] == "deltas"

    code, decision = check(tmp_path, capsys, "T-GONE", 0)
    assert (code, decision["reason"]) == (EXIT_REFUSED, "CANCELLED")
    code, decision = check(tmp_path, capsys, "T-SOLD", 2)
    assert decision["reason"] == "PAPER_TICKET"  # the current generation goes on

    code, out = run(capsys, "feed", "status", "--config", str(config), "--json")
    status = json.loads(out)
    assert (status["sequence"], status["revocations"], status["manifest"]) == (2, 2, 3)
    assert status["published_at"] == format_time(T0 - 300)

    code, out = run(capsys, "feed", "lookup", "oeuvray JEAN", "--config", str(config),
                    "--json")
    matches = json.loads(out)["matches"]
    assert [m["ticket_id"] for m in matches] == ["T-GONE"]
    assert matches[0]["holder_name"] == "Jean-Pierre Œuvray"
    assert matches[0]["cancelled"] is True  # cancelled at sequence 2, and said so
    code, out = run(capsys, "feed", "lookup", "oeuvrai jean-piere", "--config", str(config))
    # a typo in each word: the steward screen's lookup finds the name, marked cancelled
    assert code == EXIT_OK and "Jean-Pierre Œuvray" in out and "CANCELLED" in out
    assert "(near " in out


def test_the_publisher_refuses_an_issuer_key(
        tmp_path: Path, served: str, capsys: pytest.CaptureFixture[str]) -> None:
    setup_gate(tmp_path, served, capsys)
    code, out = publish(tmp_path, capsys, REVOCATIONS_1, at=T0, key="iss-1")
    assert code == EXIT_USAGE
    assert "role issuer, not feed; feeds are signed with a feed key" in out
    assert not (tmp_path / "www" / EVENT).exists()


def test_bad_csv_is_refused_with_its_line_and_nothing_is_written(
        tmp_path: Path, served: str, capsys: pytest.CaptureFixture[str]) -> None:
    setup_gate(tmp_path, served, capsys)
    assert publish(tmp_path, capsys, REVOCATIONS_1, at=T0 - 600)[0] == EXIT_OK
    folder = tmp_path / "www" / EVENT
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, out = publish(tmp_path, capsys, "ticket_id,min_generation\nT-SOLD,2\nT-X,soon\n",
                        at=T0)
    assert code == EXIT_USAGE
    assert ("rev.csv: line 3, column min_generation: must be a number (ASCII digits 0-9) or "
            "'cancelled', got 'soon'") in out
    (tmp_path / "man.csv").write_text(MANIFEST + "T-BAD,0,ORD-9,Name,CAT,40,\n",
                                      encoding="utf-8")
    code, out = publish(tmp_path, capsys, REVOCATIONS_1, at=T0)
    assert code == EXIT_USAGE and "man.csv: line 5, column entrances: must be one or more " \
        "of 1-32, got [40]" in out
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_sync_failure_exits_1_and_names_the_cause(
        tmp_path: Path, served: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = setup_gate(tmp_path, served, capsys)
    code, out = run(capsys, "sync", "--config", str(config))
    assert code == 1
    assert "HTTP 404" in out and "last good data kept" in out


def test_purge_erases_names_and_keeps_them_out(
        tmp_path: Path, served: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = setup_gate(tmp_path, served, capsys)
    publish(tmp_path, capsys, REVOCATIONS_1, at=T0 - 600)
    run(capsys, "sync", "--config", str(config))
    _, out = run(capsys, "feed", "purge", "--config", str(config), "--now", "--json")
    assert json.loads(out)["purged"] == [{"event": EVENT, "names": 3, "wal_truncated": True}]
    publish(tmp_path, capsys, REVOCATIONS_2, at=T0 - 300)
    run(capsys, "sync", "--config", str(config))
    with FeedStore.open(tmp_path / "state" / "feeds.db") as store:
        assert store.status(EVENT).sequence == 2  # type: ignore[union-attr]
        assert {store.manifest_entry(EVENT, t).holder_name  # type: ignore[union-attr]
                for t in ("T-SOLD", "T-GONE", "T-KEEP")} == {""}
        assert [c.entry.ticket_id for c in store.lookup(EVENT, "ord-300")] == ["T-KEEP"]
    raw = (tmp_path / "state" / "feeds.db").read_bytes()
    assert "Lefèvre".encode() not in raw and b"Dupont" not in raw


def test_sync_watch_keeps_going_until_sigterm(
        tmp_path: Path, served: str, capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import queue
    import signal
    import subprocess
    import sys

    config = setup_gate(tmp_path, served, capsys)
    publish(tmp_path, capsys, REVOCATIONS_1, at=T0 - 600)
    root = Path(__file__).resolve().parents[2]
    watcher = subprocess.Popen(
        [sys.executable, "-m", "portique", "sync", "--config", str(config), "--watch",
         "--interval", "0.2", "--json"], cwd=root, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    assert watcher.stdout is not None and watcher.stderr is not None
    # Each sync prints one JSON line: the test waits for the lines it needs, however slow
    # the machine; both pipes are drained so a chatty watcher never blocks on them.
    lines: queue.Queue[str | None] = queue.Queue()
    errors: list[str] = []

    def drain_stdout() -> None:
        for line in watcher.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(None)

    readers = [threading.Thread(target=drain_stdout, daemon=True),
               threading.Thread(target=lambda: errors.extend(watcher.stderr),  # type: ignore[arg-type]
                                daemon=True)]
    for reader in readers:
        reader.start()
    outcomes: list[str] = []

    def until(outcome: str) -> None:
        while outcome not in outcomes:
            line = lines.get(timeout=300)  # a safety net against a hung watcher only
            assert line is not None, f"the watcher ended: {''.join(errors)}"
            outcomes.append(json.loads(line).get("outcome", "failed"))

    try:
        until("snapshot")
        publish(tmp_path, capsys, REVOCATIONS_2, at=T0 - 300)
        until("deltas")
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=300)
        for reader in readers:
            reader.join(timeout=60)
    assert watcher.returncode == EXIT_OK, "".join(errors)
    assert outcomes[0] == "snapshot" and "failed" not in outcomes
    with FeedStore.open(tmp_path / "state" / "feeds.db") as store:
        assert store.status(EVENT).sequence == 2  # type: ignore[union-attr]


def test_sync_watch_stops_promptly_on_sigterm_in_the_middle_of_a_trickling_download(
        tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]) -> None:
    """The server sends one byte of index.json every 50 ms: the download would go on for
    feeds.download_seconds (300 s by default); SIGTERM ends it, and the watcher, at once."""
    import os
    import signal
    import subprocess
    import sys

    config = setup_gate(tmp_path, feed_server.url, capsys)
    publish(tmp_path, capsys, REVOCATIONS_1, at=T0 - 600)
    started = threading.Event()

    def trickle(handler: FaultyHandler, path: Path) -> bool:
        handler.close_connection = True
        body = path.read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        started.set()
        try:
            for i in range(len(body)):
                if feed_server.release.wait(0.05):
                    break
                handler.wfile.write(body[i:i + 1])
                handler.wfile.flush()
        except OSError:  # the watcher hung up
            pass
        return True

    feed_server.faults[INDEX_NAME] = trickle
    root = Path(__file__).resolve().parents[2]
    watcher = subprocess.Popen(
        [sys.executable, "-m", "portique", "sync", "--config", str(config), "--watch", "--json"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ))
    try:
        assert started.wait(300), "the watcher never asked for the index"
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=60)  # a safety net against a hung watcher
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()
    assert watcher.returncode == EXIT_OK, err
    assert [json.loads(line) for line in out.splitlines()] == [
        {"event": EVENT, "stopped": "SIGTERM"}]
    assert "feed sync stopped: event=PAR24-ATH05 cause=" in err
    assert "sync stopped before it finished (nothing applied)" in err
    with FeedStore.open(tmp_path / "state" / "feeds.db") as store:
        assert store.status(EVENT) is None


def test_feeds_config_is_checked_with_the_key_path() -> None:
    from portique.base.errors import ConfigError
    from portique.runtime.config import from_dict

    base = {"gate": {"id": "g1", "event": EVENT, "entrance": 1},
            "keys": {"trust_dir": "/k"}}
    config = from_dict({**base, "feeds": {"store": "feeds.db",
                                          "base_url": "https://feeds.example.org"}},
                       base_dir=Path("/etc/portique"))
    assert config.feeds is not None
    assert config.feeds.store == Path("/etc/portique/feeds.db")
    assert config.feeds.sync_settings().max_download_bytes == 256 << 20
    with pytest.raises(ConfigError, match=r"feeds\.base_url: must be an http"):
        from_dict({**base, "feeds": {"store": "f.db", "base_url": "ftp://x"}})
    with pytest.raises(ConfigError, match=r"feeds\.retries: must be at most 10, got 11"):
        from_dict({**base, "feeds": {"store": "f.db", "base_url": "http://x", "retries": 11}})
    with pytest.raises(ConfigError, match=r"feeds\.poll: unknown key"):
        from_dict({**base, "feeds": {"store": "f.db", "base_url": "http://x", "poll": 1}})


def test_redirect_origins_must_be_origins_of_the_base_urls_scheme() -> None:
    from portique.base.errors import ConfigError
    from portique.runtime.config import from_dict

    base = {"gate": {"id": "g1", "event": EVENT, "entrance": 1}, "keys": {"trust_dir": "/k"}}
    feeds = {"store": "f.db", "base_url": "https://feeds.example.org"}
    config = from_dict({**base, "feeds": {**feeds, "redirect_origins": [
        "https://cdn.example.net", "https://cdn2.example.net:8443/"]}})
    assert config.feeds is not None
    assert config.feeds.sync_settings().redirect_origins == (
        "https://cdn.example.net", "https://cdn2.example.net:8443/")
    for wrong in ("http://cdn.example.net", "https://cdn.example.net/feeds", "cdn.example.net"):
        with pytest.raises(ConfigError, match=r"feeds\.redirect_origins\[0\]: must be an "
                           r"origin https://host\[:port\]"):
            from_dict({**base, "feeds": {**feeds, "redirect_origins": [wrong]}})
