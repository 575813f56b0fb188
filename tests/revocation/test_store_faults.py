"""The store on a real file system that fills up: SQLite's failures arrive as StoreError
naming the cause, the last good list stays in force, `gate sync --watch` goes on, a purge
that fails never hides the sync's own outcome, and nothing stored is lost."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from portique.revocation.errors import FeedError, FeedSignatureError, StoreError
from portique.revocation.format import INDEX_NAME
from portique.revocation.publish import FeedState
from portique.revocation.store import FeedStore
from portique.revocation.sync import FeedClient, SyncResult, watch
from tests.revocation.conftest import (
    EVENT,
    STATE_1,
    T0,
    FeedServer,
    client,
    entry,
    publish_state,
    rows,
    settings,
    trust,
)
from tests.revocation.test_sync_faults import assert_last_good_list, resigned
from tests.smalldisk import fill, small_tmpfs

# Sequence 2: enough holders that applying it needs far more room than the WAL holds.
BIG = FeedState(revocations={**STATE_1.revocations, "T-KEEP": 1},
                manifest={**STATE_1.manifest, **{
                    f"T-{n:05d}": entry(f"T-{n:05d}", 0, f"Holder {n:05d} " + "x" * 100)
                    for n in range(3000)}})


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs for the store."""
    with small_tmpfs(tmp_path / "small", "8m") as folder:
        yield folder


def synced(store: FeedStore, server: FeedServer, downloads: Path | None = None) -> FeedClient:
    """A client whose store holds sequence 1, downloading into `downloads` (default: next
    to the store)."""
    publish_state(server.folder, STATE_1, at=T0 - 600, ends_at=T0 - 7200)
    sync = client(store, server.url)
    if downloads is not None:
        downloads.mkdir(exist_ok=True)
        sync.work_dir = downloads
    assert sync.sync().to_sequence == 1
    return sync


def names(store_path: Path) -> list[object]:
    return [row[4] for row in rows(store_path)[2]]


def test_a_full_disk_during_apply_is_a_store_error_and_watch_goes_on(
        small_disk: Path, tmp_path: Path, feed_server: FeedServer) -> None:
    store_path = small_disk / "feeds.db"
    with FeedStore.open(store_path) as store:
        sync = synced(store, feed_server, tmp_path / "downloads")
        publish_state(feed_server.folder, BIG, at=T0 - 300, ends_at=T0 - 7200)
        before = rows(store_path)
        filler = fill(small_disk)

        with pytest.raises(StoreError, match=r"cannot apply sequence 2 .*full"):
            sync.sync()
        assert rows(store_path) == before
        assert_last_good_list(store)

        errors: list[FeedError] = []
        results: list[SyncResult] = []

        def failed(exc: FeedError) -> None:
            errors.append(exc)
            filler.unlink()  # the operator frees some room

        def done(result: SyncResult) -> None:
            results.append(result)
            stop.set()

        stop = threading.Event()
        watch(sync, interval=0.01, stop=stop, on_result=done, on_error=failed)
        assert [type(e) for e in errors] == [StoreError]
        assert "full" in str(errors[0])
        assert [r.to_sequence for r in results] == [2]
        assert store.status(EVENT).manifest == len(BIG.manifest)  # type: ignore[union-attr]


def test_a_full_disk_during_download_is_a_store_error(small_disk: Path,
                                                      feed_server: FeedServer) -> None:
    store_path = small_disk / "feeds.db"
    with FeedStore.open(store_path) as store:
        sync = synced(store, feed_server)  # downloads go next to the store
        publish_state(feed_server.folder, BIG, at=T0 - 300, ends_at=T0 - 7200)
        before = rows(store_path)
        filler = fill(small_disk)
        with pytest.raises(StoreError, match=r"No space left on device"):
            sync.sync()
        assert rows(store_path) == before
        assert_last_good_list(store)
        filler.unlink()
    assert not [p for p in small_disk.iterdir() if p.name.startswith(".feed-sync-")]


def test_a_purge_failing_on_a_full_disk_keeps_the_sync_outcome(
        small_disk: Path, tmp_path: Path, feed_server: FeedServer,
        caplog: pytest.LogCaptureFixture) -> None:
    """The disk fills up between the apply and the purge (the purge asks the clock first):
    the sync still reports its new sequence, the purge's failure is logged, the names
    stay, and the next sync purges them."""
    store_path = small_disk / "feeds.db"
    fillers: list[Path] = []

    def clock() -> float:
        calls.append(1)
        if len(calls) == 2 and not fillers:  # 1: the fetch time, 2: the purge's
            fillers.append(fill(small_disk))
        return float(T0)

    calls: list[int] = []
    with FeedStore.open(store_path) as store:
        synced(store, feed_server, tmp_path / "downloads")
        publish_state(feed_server.folder, BIG, at=T0 - 300, ends_at=T0 - 7200)
        purging = FeedClient(store, event=EVENT, trust=trust(),
                             settings=dataclasses.replace(settings(feed_server.url),
                                                          purge_after_seconds=3600.0),
                             work_dir=tmp_path / "downloads", clock=clock)
        with caplog.at_level(logging.ERROR, logger="portique.revocation.sync"):
            result = purging.sync()
        assert (result.to_sequence, len(fillers)) == (2, 1)
        assert "feed purge failed" in caplog.text and "full" in caplog.text
        assert store.status(EVENT).purged_at is None  # type: ignore[union-attr]
        assert "Marie Dupont" in names(store_path)

        fillers[0].unlink()
        purging.sync()
        assert store.status(EVENT).purged_at == T0  # type: ignore[union-attr]
        assert set(names(store_path)) == {""}


def test_a_purge_failure_does_not_replace_the_sync_error(
        small_disk: Path, tmp_path: Path, feed_server: FeedServer,
        caplog: pytest.LogCaptureFixture) -> None:
    store_path = small_disk / "feeds.db"
    with FeedStore.open(store_path) as store:
        synced(store, feed_server, tmp_path / "downloads")
        feed_server.faults[INDEX_NAME] = resigned((None, ""), flip_signature=True)
        purging = FeedClient(store, event=EVENT, trust=trust(),
                             settings=dataclasses.replace(settings(feed_server.url),
                                                          purge_after_seconds=3600.0),
                             work_dir=tmp_path / "downloads", clock=lambda: float(T0))
        filler = fill(small_disk)
        with caplog.at_level(logging.ERROR, logger="portique.revocation.sync"), \
                pytest.raises(FeedSignatureError, match="bad signature"):
            purging.sync()
        assert "feed purge failed" in caplog.text and "StoreError" in caplog.text
        assert "Marie Dupont" in names(store_path)
        assert_last_good_list(store)
        filler.unlink()
