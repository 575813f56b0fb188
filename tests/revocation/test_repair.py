"""A store left contradicting the signed counts of its own sequence (rows changed behind
the feed's back, directly in SQLite) is repaired from that sequence's snapshot at the next
sync, against the real loopback server: an HTTP 304 to the stored validator cannot hide
it, and a failed repair leaves the next request unconditional."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from portique.revocation.errors import (
    FeedCountError,
    FeedGapError,
    FeedHashError,
    FeedHTTPError,
)
from portique.revocation.format import INDEX_NAME, index_body, parse_index, sign_index
from portique.revocation.store import FeedFile, FeedStore
from portique.revocation.sync import SyncOutcome
from portique.ticket.views import CANCELLED
from tests.revocation.conftest import (
    EVENT,
    FEED_KEY,
    FEED_KID,
    STATE_1,
    STATE_2,
    T0,
    FaultyHandler,
    FeedServer,
    client,
    publish_state,
    rows,
    trust,
)

SNAPSHOT_1 = "snapshot-1.tsv.gz"


def synced(server: FeedServer, tmp_path: Path) -> Path:
    """A store at sequence 1 (2 revocations, 3 manifest entries), with the dev server's
    ETag stored."""
    publish_state(server.folder, STATE_1, at=T0 - 600)
    store_path = tmp_path / "state" / "feeds.db"
    with FeedStore.open(store_path) as store:
        assert client(store, server.url).sync().outcome is SyncOutcome.SNAPSHOT
        assert store.http_cache(EVENT) is not None
    return store_path


def tamper(store_path: Path, *statements: str) -> None:
    """Change the store behind the feed's back (another program, a bug, a bad restore)."""
    connection = sqlite3.connect(store_path)
    with connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()


UNCANCEL = "DELETE FROM revocation WHERE ticket_id = 'T-GONE'"
"""T-GONE is cancelled: without its row the gate would let it in."""


def validators(seen: list[str | None]) -> Callable[[FaultyHandler, Path], bool]:
    """Record the If-None-Match of each index request; serve it normally."""
    def fault(handler: FaultyHandler, path: Path) -> bool:
        seen.append(handler.headers.get("If-None-Match"))
        return False
    return fault


def test_a_store_contradicting_its_counts_is_repaired_despite_a_304(
        feed_server: FeedServer, tmp_path: Path) -> None:
    store_path = synced(feed_server, tmp_path)
    tamper(store_path, UNCANCEL)
    seen: list[str | None] = []
    feed_server.faults[INDEX_NAME] = validators(seen)
    feed_server.requests.clear()
    with FeedStore.open(store_path) as store:
        result = client(store, feed_server.url).sync()
        assert (result.outcome, result.from_sequence, result.to_sequence) == (
            SyncOutcome.REPAIRED, 1, 1)
        assert result.files == (SNAPSHOT_1,)
        assert store.min_valid_generation(EVENT, "T-GONE") == CANCELLED
        assert store.held_counts(EVENT) == (2, 3)
        # the validator was answered 304, then the index asked again without it
        assert seen[0] is not None and seen[1:] == [None]
        assert [r.rsplit("/", 1)[-1] for r in feed_server.requests] == [
            INDEX_NAME, INDEX_NAME, SNAPSHOT_1]
        # repaired: the next sync is an ordinary 304 again
        assert client(store, feed_server.url).sync().outcome is SyncOutcome.UNCHANGED


def test_without_validators_the_same_sequence_is_repaired_from_the_snapshot(
        feed_server: FeedServer, tmp_path: Path) -> None:
    store_path = synced(feed_server, tmp_path)
    tamper(store_path, "DELETE FROM http_cache",
           "INSERT INTO manifest SELECT event, 'T-EXTRA', generation, order_ref, holder_name, "
           "category, entrances, flags, order_key, name_key FROM manifest "
           "WHERE ticket_id = 'T-KEEP'")
    with FeedStore.open(store_path) as store:
        result = client(store, feed_server.url).sync()
        assert result.outcome is SyncOutcome.REPAIRED
        assert store.manifest_entry(EVENT, "T-EXTRA") is None
        assert store.held_counts(EVENT) == (2, 3)
    sequence, revocations, manifest = rows(store_path)
    assert (sequence, len(revocations), len(manifest)) == (1, 2, 3)


def test_a_failed_repair_changes_nothing_and_the_next_sync_asks_unconditionally(
        feed_server: FeedServer, tmp_path: Path) -> None:
    store_path = synced(feed_server, tmp_path)
    tamper(store_path, UNCANCEL)
    before = rows(store_path)

    def unavailable(handler: FaultyHandler, path: Path) -> bool:
        handler.send_error(404, "gone")
        return True

    seen: list[str | None] = []
    feed_server.faults[INDEX_NAME] = validators(seen)
    feed_server.faults[SNAPSHOT_1] = unavailable
    with FeedStore.open(store_path) as store:
        with pytest.raises(FeedHTTPError, match=f"{SNAPSHOT_1}: HTTP 404"):
            client(store, feed_server.url).sync()
        assert rows(store_path) == before  # nothing applied
        assert store.http_cache(EVENT) is None  # the contradiction is remembered
        del feed_server.faults[SNAPSHOT_1]
        result = client(store, feed_server.url).sync()
        assert result.outcome is SyncOutcome.REPAIRED
        assert store.min_valid_generation(EVENT, "T-GONE") == CANCELLED
    # 304 to the validator, asked again without it; then unconditional from the start
    assert seen[0] is not None and seen[1:] == [None, None]


def test_a_repair_snapshot_is_checked_like_any_other(feed_server: FeedServer,
                                                      tmp_path: Path) -> None:
    """A damaged snapshot is refused: the store stays as it was (still contradicting,
    reported again at the next sync), never half replaced."""
    store_path = synced(feed_server, tmp_path)
    tamper(store_path, UNCANCEL)
    before = rows(store_path)

    def damaged(handler: FaultyHandler, path: Path) -> bool:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        handler.send_body(bytes(data))
        return True

    feed_server.faults[SNAPSHOT_1] = damaged
    with FeedStore.open(store_path) as store:
        with pytest.raises(FeedHashError, match=SNAPSHOT_1 + r": \d+ bytes with "
                           "SHA-256 .*, the signed index says"):
            client(store, feed_server.url).sync()
        assert rows(store_path) == before
        assert store.http_cache(EVENT) is None


def test_a_snapshot_contradicting_its_own_index_is_refused(feed_server: FeedServer,
                                                           tmp_path: Path) -> None:
    """The repair checks the snapshot's counts too: an index whose snapshot (hash right)
    holds 3 revocations while it signs 2 repairs nothing."""
    store_path = synced(feed_server, tmp_path)
    tamper(store_path, UNCANCEL)
    before = rows(store_path)
    other = publish_state(tmp_path / "other", STATE_2, at=T0 - 600)
    folder = feed_server.folder / EVENT
    shutil.copyfile(other.folder / SNAPSHOT_1, folder / SNAPSHOT_1)
    body = index_body(event=EVENT, kid=FEED_KID, sequence=1, published_at=T0 - 60,
                      ends_at=None, snapshot=other.snapshot, revocations=2, manifest=3,
                      deltas=())
    (folder / INDEX_NAME).write_bytes(sign_index(body, FEED_KEY))
    with FeedStore.open(store_path) as store, pytest.raises(FeedCountError) as raised:
        client(store, feed_server.url).sync()
    assert str(raised.value) == (
        f"{SNAPSHOT_1}: holds 3 revocations and 3 manifest entries at sequence 1, the "
        "signed index says 2 and 3 (nothing applied)")
    assert rows(store_path) == before


def test_a_repair_keeps_purged_names_purged(feed_server: FeedServer, tmp_path: Path) -> None:
    store_path = synced(feed_server, tmp_path)
    with FeedStore.open(store_path) as store:
        store.purge_personal_data(EVENT, now=float(T0))
    tamper(store_path, UNCANCEL)
    with FeedStore.open(store_path) as store:
        assert client(store, feed_server.url).sync().outcome is SyncOutcome.REPAIRED
        assert store.min_valid_generation(EVENT, "T-GONE") == CANCELLED
    assert {row[4] for row in rows(store_path)[2]} == {""}


def test_a_repair_is_only_the_snapshot_of_the_stores_own_sequence(
        feed_server: FeedServer, tmp_path: Path) -> None:
    store_path = synced(feed_server, tmp_path)
    publish_state(feed_server.folder, STATE_2, at=T0 - 300)
    folder = feed_server.folder / EVENT
    index = parse_index((folder / INDEX_NAME).read_bytes(), trust=trust(), event=EVENT)
    before = rows(store_path)
    with FeedStore.open(store_path) as store:
        with pytest.raises(FeedGapError, match="a repair replaces the store's own sequence 1"):
            store.apply(index, [FeedFile(index.snapshot, folder / index.snapshot.name)],
                        fetched_at=float(T0), repair=True)
        with pytest.raises(FeedGapError, match="a repair replaces"):
            store.apply(index, [], fetched_at=float(T0), repair=True)
    assert rows(store_path) == before
