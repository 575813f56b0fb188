"""The sync client's HTTP against real loopback servers: a total deadline against servers
that trickle, validators it stores and sends back, 304 answers it did not ask for, and the
redirects it follows (or not)."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portique.revocation.errors import (
    FeedError,
    FeedHTTPError,
    FeedRedirectError,
    FeedTimeoutError,
)
from portique.revocation.format import INDEX_NAME
from portique.revocation.serve import make_server
from portique.revocation.store import FeedStore
from portique.revocation.sync import MAX_VALIDATOR_CHARS, FeedClient, SyncOutcome, SyncResult
from tests.revocation.conftest import (
    EVENT,
    STATE_1,
    STATE_2,
    T0,
    FaultyHandler,
    FeedServer,
    client,
    dump,
    publish_state,
    settings,
    trust,
)

SAFETY_NET = 120.0
"""Seconds a test waits for a sync that should end within about one: a guard against a
hung client only, never what a test asserts."""


def synced_at_1(server: FeedServer, tmp_path: Path) -> Path:
    publish_state(server.folder, STATE_1, at=T0 - 600)
    store_path = tmp_path / "state" / "feeds.db"
    with FeedStore.open(store_path) as store:
        assert client(store, server.url).sync().to_sequence == 1
    publish_state(server.folder, STATE_2, at=T0 - 300)
    return store_path


def run_in_thread(sync: Callable[[], SyncResult]) -> FeedError | SyncResult:
    """The sync's result or FeedError, from a thread the test waits for (and fails on if it
    never ends)."""
    outcome: list[FeedError | SyncResult] = []

    def target() -> None:
        try:
            outcome.append(sync())
        except FeedError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(SAFETY_NET)
    assert not thread.is_alive(), "the sync never returned while the server trickled"
    return outcome[0]


# --- a total deadline ---------------------------------------------------------------------

def trickle(server: FeedServer, where: str) -> Callable[[FaultyHandler, Path], bool]:
    """Answer one byte every 50 ms (until the client hangs up or the test ends): an endless
    header line, or the true file's bytes after its true headers (and then silence)."""
    def fault(handler: FaultyHandler, path: Path) -> bool:
        handler.close_connection = True
        body = path.read_bytes()
        try:
            if where == "headers":
                handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Padding: ")
                drip: Iterator[bytes] = iter(lambda: b"x", None)
            else:
                handler.send_response(200)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                drip = (body[i:i + 1] for i in range(len(body)))
            handler.wfile.flush()
            while not server.release.wait(0.05):
                handler.wfile.write(next(drip, b""))
                handler.wfile.flush()
        except OSError:  # the client hung up: what the test waits for
            pass
        return True
    return fault


@pytest.mark.parametrize("where", ["headers", "body"])
@pytest.mark.parametrize("name", [INDEX_NAME, "delta-1-2.tsv.gz"])
def test_a_trickling_server_meets_the_deadline_and_changes_nothing(
        feed_server: FeedServer, tmp_path: Path, where: str, name: str) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    before = dump(store_path)
    feed_server.faults[name] = trickle(feed_server, where)
    with FeedStore.open(store_path, shared=True) as store:
        sync = client(store, feed_server.url, timeout_seconds=5, download_seconds=1,
                      retries=0)
        error = run_in_thread(sync.sync)
    assert isinstance(error, FeedTimeoutError), error
    assert str(error) == (
        f"{feed_server.url}/{EVENT}/{name}: not complete within download_seconds=1 s from "
        "the connection to the last byte, headers included (the server trickles or stalls)")
    assert dump(store_path) == before


def test_cancel_cuts_a_download_at_once_and_changes_nothing(
        feed_server: FeedServer, tmp_path: Path) -> None:
    from portique.revocation.errors import FeedCancelledError

    store_path = synced_at_1(feed_server, tmp_path)
    before = dump(store_path)
    started = threading.Event()
    slow = trickle(feed_server, "body")

    def fault(handler: FaultyHandler, path: Path) -> bool:
        started.set()
        return slow(handler, path)

    feed_server.faults[INDEX_NAME] = fault
    with FeedStore.open(store_path, shared=True) as store:
        sync = client(store, feed_server.url, timeout_seconds=300, download_seconds=3600,
                      retries=3)
        outcome: list[FeedError | SyncResult] = []
        thread = threading.Thread(target=lambda: outcome.append(run_in_thread(sync.sync)))
        thread.start()
        assert started.wait(SAFETY_NET)
        sync.cancel()
        thread.join(SAFETY_NET)
    assert isinstance(outcome[0], FeedCancelledError), outcome
    assert "sync stopped before it finished (nothing applied)" in str(outcome[0])
    assert dump(store_path) == before


# --- validators ---------------------------------------------------------------------------

def with_etag(etag: str) -> Callable[[FaultyHandler, Path], bool]:
    def fault(handler: FaultyHandler, path: Path) -> bool:
        body = path.read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("ETag", etag)
        handler.send_header("Last-Modified", etag)
        handler.end_headers()
        handler.wfile.write(body)
        return True
    return fault


def strict(seen: list[str | None]) -> Callable[[FaultyHandler, Path], bool]:
    """A strict server: a validator over 8 KiB is a 400; others are served normally."""
    def fault(handler: FaultyHandler, path: Path) -> bool:
        sent = handler.headers.get("If-None-Match") or handler.headers.get("If-Modified-Since")
        seen.append(sent)
        if sent is not None and len(sent) > 8192:
            handler.send_error(400, "request header too large")
            return True
        return False
    return fault


@pytest.mark.parametrize("etag", ['"' + "e" * (16 << 10) + '"', '"caf\u00e9"', '"tab\there"',
                                  "x" * (MAX_VALIDATOR_CHARS + 1)],
                         ids=["16-KiB", "latin-1", "tab", "257-characters"])
def test_an_oversized_or_unprintable_validator_is_not_stored_nor_sent(
        feed_server: FeedServer, tmp_path: Path, etag: str) -> None:
    publish_state(feed_server.folder, STATE_1, at=T0 - 600)
    feed_server.faults[INDEX_NAME] = with_etag(etag)
    with FeedStore.open(tmp_path / "feeds.db") as store:
        assert client(store, feed_server.url).sync().outcome is SyncOutcome.SNAPSHOT
        cache = store.http_cache(EVENT)
        assert cache is not None and (cache.etag, cache.last_modified) == (None, None)
        seen: list[str | None] = []
        feed_server.faults[INDEX_NAME] = strict(seen)
        assert client(store, feed_server.url).sync().outcome is SyncOutcome.UNCHANGED
    assert seen == [None]  # the next request was unconditional


def test_a_validator_at_the_bound_is_stored_and_sent(feed_server: FeedServer,
                                                     tmp_path: Path) -> None:
    publish_state(feed_server.folder, STATE_1, at=T0 - 600)
    etag = '"' + "v" * (MAX_VALIDATOR_CHARS - 2) + '"'
    feed_server.faults[INDEX_NAME] = with_etag(etag)
    with FeedStore.open(tmp_path / "feeds.db") as store:
        client(store, feed_server.url).sync()
        assert store.http_cache(EVENT).etag == etag  # type: ignore[union-attr]
        seen: list[str | None] = []
        feed_server.faults[INDEX_NAME] = strict(seen)
        client(store, feed_server.url).sync()
    assert seen == [etag]


def test_an_oversized_validator_stored_earlier_is_not_sent_again(
        feed_server: FeedServer, tmp_path: Path) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    connection = sqlite3.connect(store_path)
    with connection:
        connection.execute("UPDATE http_cache SET etag = ?", ('"' + "e" * (16 << 10) + '"',))
    connection.close()
    seen: list[str | None] = []
    feed_server.faults[INDEX_NAME] = strict(seen)
    with FeedStore.open(store_path) as store:
        assert client(store, feed_server.url).sync().to_sequence == 2
    assert len(seen[0] or "") <= MAX_VALIDATOR_CHARS


def test_a_client_error_to_a_conditional_request_is_asked_again_unconditionally(
        feed_server: FeedServer, tmp_path: Path) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    seen: list[str | None] = []

    def refuses_validators(handler: FaultyHandler, path: Path) -> bool:
        sent = handler.headers.get("If-None-Match")
        seen.append(sent)
        if sent is not None:
            handler.send_error(412, "precondition not supported")
            return True
        return False

    feed_server.faults[INDEX_NAME] = refuses_validators
    with FeedStore.open(store_path) as store:
        result = client(store, feed_server.url).sync()
        assert (result.outcome, result.to_sequence) == (SyncOutcome.DELTAS, 2)
    assert seen[0] is not None and seen[1:] == [None]


def test_a_304_on_an_empty_store_is_an_error(feed_server: FeedServer, tmp_path: Path) -> None:
    publish_state(feed_server.folder, STATE_1, at=T0 - 600)

    def not_modified(handler: FaultyHandler, path: Path) -> bool:
        handler.send_response(304)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True

    feed_server.faults[INDEX_NAME] = not_modified
    with FeedStore.open(tmp_path / "feeds.db") as store:
        with pytest.raises(FeedHTTPError) as raised:
            client(store, feed_server.url).sync()
        assert raised.value.status == 304
        assert str(raised.value) == (
            f"{feed_server.url}/{EVENT}/{INDEX_NAME}: HTTP 304 Not Modified to a request "
            "without a validator (no If-None-Match or If-Modified-Since was sent; the store "
            "holds no feed yet): the server or a cache in between answers wrongly; nothing "
            "changed")
        assert store.status(EVENT) is None


def test_a_304_to_a_request_without_validator_is_an_error(feed_server: FeedServer,
                                                          tmp_path: Path) -> None:
    publish_state(feed_server.folder, STATE_1, at=T0 - 600)
    feed_server.faults[INDEX_NAME] = with_etag("\x01")  # served, but nothing to store
    store_path = tmp_path / "feeds.db"
    with FeedStore.open(store_path) as store:
        client(store, feed_server.url).sync()
    before = dump(store_path)
    publish_state(feed_server.folder, STATE_2, at=T0 - 300)

    def not_modified(handler: FaultyHandler, path: Path) -> bool:
        handler.send_response(304)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True

    feed_server.faults[INDEX_NAME] = not_modified
    with FeedStore.open(store_path) as store, pytest.raises(
            FeedHTTPError, match="HTTP 304 Not Modified to a request without a validator "
            r"\(no If-None-Match or If-Modified-Since was sent\)"):
        client(store, feed_server.url).sync()
    assert dump(store_path) == before  # not even the time of contact


# --- redirects ----------------------------------------------------------------------------

def redirect_to(location: Callable[[], str]) -> Callable[[FaultyHandler, Path], bool]:
    def fault(handler: FaultyHandler, path: Path) -> bool:
        if handler.path.startswith("/mirror/"):
            return False  # the redirect's target is served
        handler.send_response(302)
        handler.send_header("Location", location())
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True
    return fault


@pytest.fixture
def other_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A second loopback server (another origin) serving a copy of the feed folder."""
    folder = tmp_path / "other"
    folder.mkdir()
    requests: list[str] = []
    handler = type("Handler", (FaultyHandler,), {"faults": {}, "requests": requests})
    server = make_server(folder, handler=handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}", requests
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def redirecting_client(store: FeedStore, url: str, *allowed: str) -> FeedClient:
    return FeedClient(store, event=EVENT, trust=trust(),
                      settings=dataclasses.replace(settings(url), redirect_origins=allowed),
                      clock=lambda: float(T0))


def test_a_redirect_within_the_feeds_origin_is_followed(feed_server: FeedServer,
                                                        tmp_path: Path) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    shutil.copytree(feed_server.folder / EVENT, feed_server.folder / "mirror" / EVENT)
    feed_server.faults[INDEX_NAME] = redirect_to(lambda: f"/mirror/{EVENT}/{INDEX_NAME}")
    with FeedStore.open(store_path) as store:
        assert redirecting_client(store, feed_server.url).sync().to_sequence == 2
    assert f"/mirror/{EVENT}/{INDEX_NAME}" in feed_server.requests


def test_a_redirect_to_another_origin_is_refused(
        feed_server: FeedServer, tmp_path: Path, other_server: tuple[str, list[str]]) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    other_url, other_requests = other_server
    shutil.copytree(feed_server.folder / EVENT, tmp_path / "other" / EVENT)
    target = f"{other_url}/{EVENT}/{INDEX_NAME}"
    feed_server.faults[INDEX_NAME] = redirect_to(lambda: target)
    before = dump(store_path)
    with FeedStore.open(store_path) as store, pytest.raises(FeedRedirectError) as raised:
        redirecting_client(store, feed_server.url).sync()
    assert str(raised.value) == (
        f"{feed_server.url}/{EVENT}/{INDEX_NAME}: HTTP 302 redirect to {target!r} not "
        "followed: another origin than the feed's (feeds.redirect_origins lists the others "
        "allowed)")
    assert other_requests == []
    assert dump(store_path) == before


def test_a_redirect_to_an_allowed_origin_is_followed(
        feed_server: FeedServer, tmp_path: Path, other_server: tuple[str, list[str]]) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    other_url, other_requests = other_server
    shutil.copytree(feed_server.folder / EVENT, tmp_path / "other" / EVENT)
    feed_server.faults["*.tsv.gz"] = redirect_to(
        lambda: f"{other_url}/{EVENT}/delta-1-2.tsv.gz")
    with FeedStore.open(store_path) as store:
        result = redirecting_client(store, feed_server.url, other_url).sync()
        assert (result.outcome, result.to_sequence) == (SyncOutcome.DELTAS, 2)
    assert other_requests == [f"/{EVENT}/delta-1-2.tsv.gz"]


def test_a_redirect_to_another_scheme_is_refused_even_when_allowed(
        feed_server: FeedServer, tmp_path: Path) -> None:
    store_path = synced_at_1(feed_server, tmp_path)
    https = feed_server.url.replace("http://", "https://")
    feed_server.faults[INDEX_NAME] = redirect_to(lambda: f"{https}/{EVENT}/{INDEX_NAME}")
    before = dump(store_path)
    feed_server.requests.clear()
    with FeedStore.open(store_path) as store, pytest.raises(
            FeedRedirectError, match="not followed: a redirect never changes the scheme"):
        redirecting_client(store, feed_server.url, https).sync()
    assert feed_server.requests == [f"/{EVENT}/{INDEX_NAME}"]  # no TLS attempt either
    assert dump(store_path) == before
