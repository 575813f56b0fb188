"""The sync client against a real loopback server that misbehaves: every fault leaves the
store byte for byte as it was, names its cause, and the gate keeps deciding on the last
good list."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from portique.revocation.errors import (
    FeedError,
    FeedEventError,
    FeedFormatError,
    FeedFutureError,
    FeedHashError,
    FeedHTTPError,
    FeedKeyError,
    FeedNetworkError,
    FeedReplayError,
    FeedSignatureError,
    FeedTimeoutError,
    FeedTooLargeError,
)
from portique.revocation.format import INDEX_NAME
from portique.revocation.store import FeedStore
from portique.revocation.sync import SyncOutcome, SyncResult, watch
from portique.ticket.reasons import Reason
from tests.revocation.conftest import (
    EVENT,
    ISSUER_KEY,
    ISSUER_KID,
    OTHER_EVENT,
    ROGUE_FEED_KEY,
    STATE_1,
    STATE_2,
    T0,
    FaultyHandler,
    FeedServer,
    client,
    decide_on,
    dump,
    publish_state,
)


def synced_at_1(server: FeedServer, tmp_path: Path) -> Path:
    """A store synced to sequence 1 from the server; then sequence 2 is published."""
    publish_state(server.folder, STATE_1, at=T0 - 600)
    store_path = tmp_path / "state" / "feeds.db"
    with FeedStore.open(store_path) as store:
        assert client(store, server.url).sync().to_sequence == 1
    publish_state(server.folder, STATE_2, at=T0 - 300)
    return store_path


def assert_last_good_list(store: FeedStore) -> None:
    """Sequence 1's decisions: T-SOLD generation 1 superseded, T-GONE cancelled, T-KEEP
    generation 0 still fine (sequence 2 would void it)."""
    assert decide_on(store, "T-SOLD", 1).reason is Reason.SUPERSEDED
    assert decide_on(store, "T-GONE", 5).reason is Reason.CANCELLED
    assert decide_on(store, "T-KEEP", 0).reason is Reason.PAPER_TICKET


def served(data: bytes) -> Callable[[FaultyHandler, Path], bool]:
    def fault(handler: FaultyHandler, path: Path) -> bool:
        handler.send_body(data)
        return True
    return fault


def truncated(handler: FaultyHandler, path: Path) -> bool:
    body = path.read_bytes()
    handler.send_body(body[: len(body) // 2], length=len(body))
    handler.close_connection = True
    return True


def flipped(handler: FaultyHandler, path: Path) -> bool:
    body = bytearray(path.read_bytes())
    body[len(body) // 2] ^= 0x10
    handler.send_body(bytes(body))
    return True


def error_500(handler: FaultyHandler, path: Path) -> bool:
    handler.send_error(500, "broken")
    return True


def endless(handler: FaultyHandler, path: Path) -> bool:
    handler.send_response(200)
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True
    try:
        for _ in range(64):
            handler.wfile.write(b"x" * 65536)
    except OSError:
        pass
    return True


def resigned(key_kid: tuple[object, str], *, flip_signature: bool = False
             ) -> Callable[[FaultyHandler, Path], bool]:
    """The true index, signed again by another key (or with one signature bit flipped)."""
    import json

    from portique.revocation.format import sign_index

    def fault(handler: FaultyHandler, path: Path) -> bool:
        raw = json.loads(path.read_bytes())
        if flip_signature:
            signature = bytearray(bytes.fromhex(raw["signature"]))
            signature[10] ^= 0x01
            raw["signature"] = signature.hex()
            from portique.revocation.format import canonical_json

            handler.send_body(canonical_json(raw) + b"\n")
            return True
        key, kid = key_kid
        body = {k: v for k, v in raw.items() if k != "signature"}
        body["kid"] = kid
        handler.send_body(sign_index(body, key))  # type: ignore[arg-type]
        return True
    return fault


FAULTS: dict[str, tuple[str, Callable[[FaultyHandler, Path], bool], type[FeedError], str]] = {
    "truncated body": ("*.tsv.gz", truncated, FeedNetworkError, "truncated"),
    "flipped bit": ("*.tsv.gz", flipped, FeedHashError, "SHA-256"),
    "bad signature": (INDEX_NAME, resigned((None, ""), flip_signature=True),
                      FeedSignatureError, "bad signature"),
    "unknown key": (INDEX_NAME, resigned((ROGUE_FEED_KEY, "feed-rogue")), FeedKeyError,
                    "unknown key 'feed-rogue'"),
    "issuer key": (INDEX_NAME, resigned((ISSUER_KEY, ISSUER_KID)), FeedKeyError,
                   "key 'iss-1' has role issuer, not feed"),
    "oversize index": (INDEX_NAME, endless, FeedTooLargeError, "larger than"),
    "oversize file": ("*.tsv.gz", endless, FeedTooLargeError, "larger than"),
    "deeply nested index": (INDEX_NAME, served(b"[" * 100_000), FeedFormatError,
                            "nested too deeply"),
    "answers 500": (INDEX_NAME, error_500, FeedHTTPError, "HTTP 500"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_changes_nothing_and_names_its_cause(feed_server: FeedServer, tmp_path: Path,
                                                     fault: str) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    before = dump(store_path)
    pattern, action, error, cause = FAULTS[fault]
    feed_server.faults[pattern] = action
    with FeedStore.open(store_path) as store:
        with pytest.raises(error) as raised:
            client(store, feed_server.url).sync()
        assert cause in str(raised.value)
        assert_last_good_list(store)
        assert store.status(EVENT).sequence == 1  # type: ignore[union-attr]
    assert dump(store_path) == before


def test_the_same_sync_succeeds_once_the_fault_is_gone(feed_server: FeedServer,
                                                       tmp_path: Path) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    feed_server.faults["*.tsv.gz"] = flipped
    with FeedStore.open(store_path) as store:
        with pytest.raises(FeedHashError):
            client(store, feed_server.url).sync()
        feed_server.faults.clear()
        result = client(store, feed_server.url).sync()
        assert (result.outcome, result.to_sequence) == (SyncOutcome.DELTAS, 2)
        assert decide_on(store, "T-KEEP", 0).reason is Reason.SUPERSEDED


def test_a_damaged_delta_falls_back_to_the_snapshot(feed_server: FeedServer,
                                                    tmp_path: Path) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    feed_server.faults["delta-1-2.tsv.gz"] = flipped
    with FeedStore.open(store_path) as store:
        result = client(store, feed_server.url, max_download_bytes=1 << 20).sync()
        assert (result.outcome, result.files) == (SyncOutcome.SNAPSHOT, ("snapshot-2.tsv.gz",))
        assert decide_on(store, "T-KEEP", 0).reason is Reason.SUPERSEDED


def test_an_older_sequence_replayed_is_refused(feed_server: FeedServer, tmp_path: Path) -> None:
    publish_state(feed_server.folder, STATE_1, at=T0 - 600)
    old_index = (feed_server.folder / EVENT / INDEX_NAME).read_bytes()
    publish_state(feed_server.folder, STATE_2, at=T0 - 300)
    store_path = tmp_path / "feeds.db"
    with FeedStore.open(store_path) as store:
        assert client(store, feed_server.url).sync().to_sequence == 2
    before = dump(store_path)
    feed_server.faults[INDEX_NAME] = served(old_index)
    with FeedStore.open(store_path) as store:
        with pytest.raises(FeedReplayError, match="older than the store's sequence 2"):
            client(store, feed_server.url).sync()
        assert decide_on(store, "T-KEEP", 0).reason is Reason.SUPERSEDED
    assert dump(store_path) == before


def test_another_events_feed_is_refused(feed_server: FeedServer, tmp_path: Path) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    other = tmp_path / "other"
    publish_state(other, STATE_2, at=T0, event=OTHER_EVENT)
    feed_server.faults[INDEX_NAME] = served((other / OTHER_EVENT / INDEX_NAME).read_bytes())
    before = dump(store_path)
    with FeedStore.open(store_path) as store:
        with pytest.raises(FeedEventError, match=f"feed of event '{OTHER_EVENT}'"):
            client(store, feed_server.url).sync()
        assert_last_good_list(store)
    assert dump(store_path) == before


def test_a_gap_in_the_chain_takes_the_snapshot(feed_server: FeedServer, tmp_path: Path) -> None:
    publish_state(feed_server.folder, STATE_1, at=T0 - 600)
    store_path = tmp_path / "feeds.db"
    with FeedStore.open(store_path) as store:
        client(store, feed_server.url).sync()
    # two more publications, and the index keeps only the last delta (2-3): a gap from 1
    publish_state(feed_server.folder, STATE_2, at=T0 - 300, keep_deltas=1)
    publish_state(feed_server.folder, STATE_1, at=T0 - 200, keep_deltas=1)
    with FeedStore.open(store_path) as store:
        result = client(store, feed_server.url).sync()
        assert (result.outcome, result.from_sequence, result.to_sequence) == (
            SyncOutcome.SNAPSHOT, 1, 3)
    assert not any("delta" in r for r in feed_server.requests)


def test_a_gap_with_a_damaged_snapshot_changes_nothing(feed_server: FeedServer,
                                                       tmp_path: Path) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    publish_state(feed_server.folder, STATE_1, at=T0 - 200, keep_deltas=1)
    feed_server.faults["snapshot-3.tsv.gz"] = flipped
    before = dump(store_path)
    with FeedStore.open(store_path) as store:
        with pytest.raises(FeedHashError, match=r"snapshot-3\.tsv\.gz"):
            client(store, feed_server.url).sync()
        assert_last_good_list(store)
    assert dump(store_path) == before


def test_a_file_over_the_size_cap_is_not_downloaded(feed_server: FeedServer,
                                                    tmp_path: Path) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    publish_state(feed_server.folder, STATE_1, at=T0 - 100, keep_deltas=0)  # snapshot only
    before = dump(store_path)
    feed_server.requests.clear()
    with FeedStore.open(store_path) as store:
        with pytest.raises(FeedTooLargeError, match="more than the 100-byte cap"):
            client(store, feed_server.url, max_download_bytes=100).sync()
        assert_last_good_list(store)
    assert not any(r.endswith(".tsv.gz") for r in feed_server.requests)
    assert dump(store_path) == before


def test_a_stalled_server_times_out(feed_server: FeedServer, tmp_path: Path) -> None:
    store_path = synced_at_1(feed_server, tmp_path)

    def stall(handler: FaultyHandler, path: Path) -> bool:
        feed_server.release.wait(10)
        return True

    feed_server.faults[INDEX_NAME] = stall
    before = dump(store_path)
    with FeedStore.open(store_path) as store:
        with pytest.raises(FeedTimeoutError, match="stalled"):  # it gave up on the server
            client(store, feed_server.url, timeout_seconds=0.2, retries=1).sync()
        assert_last_good_list(store)
    feed_server.release.set()
    assert dump(store_path) == before


def test_a_server_that_refuses_connections(tmp_path: Path, feed_server: FeedServer) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    before = dump(store_path)
    sleeps: list[float] = []
    with FeedStore.open(store_path) as store:
        sync = client(store, f"http://127.0.0.1:{port}", retries=3, backoff_seconds=0.01)
        sync._sleep = sleeps.append
        with pytest.raises(FeedNetworkError, match="connection refused"):
            sync.sync()
        assert_last_good_list(store)
    # three retries, each delay about double the previous one (with jitter of +-50%)
    assert len(sleeps) == 3
    assert all(0.005 * 2 ** n <= s <= 0.015 * 2 ** n for n, s in enumerate(sleeps))
    assert dump(store_path) == before


def test_a_500_then_success_is_retried(feed_server: FeedServer, tmp_path: Path) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    failures = [1]

    def once(handler: FaultyHandler, path: Path) -> bool:
        if failures:
            failures.pop()
            handler.send_error(503, "busy")
            return True
        return False

    feed_server.faults[INDEX_NAME] = once
    with FeedStore.open(store_path) as store:
        assert client(store, feed_server.url, retries=2).sync().to_sequence == 2


def test_conditional_request_answers_304(feed_server: FeedServer, tmp_path: Path) -> None:
    publish_state(feed_server.folder, STATE_1, at=T0 - 600)
    with FeedStore.open(tmp_path / "feeds.db") as store:
        assert client(store, feed_server.url).sync().outcome is SyncOutcome.SNAPSHOT
        again = client(store, feed_server.url).sync()
        assert again.outcome is SyncOutcome.UNCHANGED
        assert again.downloaded_bytes == 0
        # an unchanged republication moves the signed time only
        publish_state(feed_server.folder, STATE_1, at=T0 - 60)
        later = client(store, feed_server.url).sync()
        assert later.outcome is SyncOutcome.TIME_ONLY
        assert store.status(EVENT).published_at == T0 - 60  # type: ignore[union-attr]
        assert store.status(EVENT).sequence == 1  # type: ignore[union-attr]


def test_watch_survives_a_deeply_nested_index_and_syncs_once_it_is_gone(
        feed_server: FeedServer, tmp_path: Path) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    nested = served(b"[" * 100_000)

    def once(handler: FaultyHandler, path: Path) -> bool:
        del feed_server.faults[INDEX_NAME]
        return nested(handler, path)

    feed_server.faults[INDEX_NAME] = once
    errors: list[FeedError] = []
    results: list[SyncResult] = []
    stop = threading.Event()

    def done(result: SyncResult) -> None:
        results.append(result)
        stop.set()

    def failed(exc: FeedError) -> None:
        errors.append(exc)
        if len(errors) > 1:  # only the first sync meets the fault
            stop.set()

    with FeedStore.open(store_path) as store:
        watch(client(store, feed_server.url), interval=0.01, stop=stop, on_result=done,
              on_error=failed)
    assert [type(e) for e in errors] == [FeedFormatError]
    assert "nested too deeply" in str(errors[0])
    assert [r.to_sequence for r in results] == [2]


def test_an_index_signed_in_the_future_is_refused_and_honest_feeds_go_on(
        feed_server: FeedServer, tmp_path: Path) -> None:
    """A publisher whose clock says two hours ahead must not lock the gate out of every
    honest feed that follows: its index is refused before anything is written."""
    store_path = synced_at_1(feed_server, tmp_path)
    honest = tmp_path / "honest"
    shutil.copytree(feed_server.folder / EVENT, honest)  # sequence 2, signed at T0 - 300
    shutil.rmtree(feed_server.folder / EVENT)
    publish_state(feed_server.folder, STATE_1, at=T0 - 600)
    publish_state(feed_server.folder, STATE_2, at=T0 + 7200)  # the clock is wrong
    before = dump(store_path)
    with FeedStore.open(store_path) as store:
        with pytest.raises(FeedFutureError, match=r"7200 s ahead of this gate's clock"):
            client(store, feed_server.url).sync()
        assert_last_good_list(store)
    assert dump(store_path) == before

    shutil.rmtree(feed_server.folder / EVENT)
    shutil.copytree(honest, feed_server.folder / EVENT)
    with FeedStore.open(store_path) as store:
        assert client(store, feed_server.url).sync().to_sequence == 2
        publish_state(feed_server.folder, STATE_2, at=T0 + 1800)  # within the tolerance
        assert client(store, feed_server.url).sync().outcome is SyncOutcome.TIME_ONLY
        with pytest.raises(FeedReplayError):  # never back to an older signed time
            shutil.rmtree(feed_server.folder / EVENT)
            shutil.copytree(honest, feed_server.folder / EVENT)
            client(store, feed_server.url).sync()
        assert store.status(EVENT).published_at == T0 + 1800  # type: ignore[union-attr]
