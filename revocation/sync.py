"""The sync client: brings the local store up to the newest signed feed over HTTP.

One ``sync()`` fetches ``<base_url>/<event>/index.json`` (conditionally: If-None-Match or
If-Modified-Since), verifies its signature and that it is not older than the store, then
downloads what is missing (the chain of deltas from the store's sequence, or the snapshot
when the chain has a gap, is damaged or would be larger) into temporary files, checks
each size and SHA-256 against the index, and only then applies them in one transaction.

Network failures are retried with exponential backoff and jitter. Any failure raises a
FeedError naming its cause and leaves the store exactly as it was.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import http.client
import logging
import random
import socket
import sqlite3
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from gate.trust import TrustStore
from revocation.errors import (
    FeedError,
    FeedFormatError,
    FeedFutureError,
    FeedGapError,
    FeedHashError,
    FeedHTTPError,
    FeedNetworkError,
    FeedReplayError,
    FeedTimeoutError,
    FeedTooLargeError,
    StoreError,
)
from revocation.format import INDEX_NAME, MAX_INDEX_BYTES, FeedIndex, FileRef, parse_index
from revocation.store import FeedFile, FeedStore, HttpCache, StoreStatus

log = logging.getLogger("revocation.sync")
T = TypeVar("T")

_CHUNK = 1 << 16
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "portique-gate-sync/1"


class SyncOutcome(enum.StrEnum):
    SNAPSHOT = "snapshot"
    """A new sequence, through the snapshot."""
    DELTAS = "deltas"
    """A new sequence, through the chain of deltas."""
    TIME_ONLY = "time_only"
    """Same sequence, newer signed time."""
    UNCHANGED = "unchanged"
    """The server has nothing newer (HTTP 304 or the same index)."""


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """How the client talks to the feed server."""

    base_url: str
    timeout_seconds: float = 10.0
    """Per connection attempt and per read: a server silent longer than this has stalled."""
    download_seconds: float = 300.0
    """Whole-file deadline, against a server that trickles bytes."""
    retries: int = 3
    """Extra attempts after a network failure (refused, timeout, truncated, 5xx)."""
    backoff_seconds: float = 1.0
    """First retry delay; doubles each time, with jitter of +-50%."""
    max_download_bytes: int = 256 << 20
    """Size cap for any one file."""
    purge_after_seconds: float | None = None
    """Purge holder names this long after an event ends; None: never automatically."""
    future_tolerance_seconds: float = 3600.0
    """An index signed more than this far ahead of the gate's clock is refused."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync did."""

    event: str
    outcome: SyncOutcome
    from_sequence: int | None
    to_sequence: int
    published_at: int
    downloaded_bytes: int
    files: tuple[str, ...]
    status: StoreStatus


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    data: bytes
    etag: str | None
    last_modified: str | None


class FeedClient:
    """Syncs one event's feed into a store. Not thread-safe: one client per thread."""

    def __init__(self, store: FeedStore, *, event: str, trust: TrustStore,
                 settings: SyncSettings, work_dir: Path | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        """`trust` should hold keys of every role (load_trust_dir(role=None)) so an issuer
        key is refused as not a feed key; only FEED keys are ever accepted."""
        self.store = store
        self.event = event
        self.trust = trust
        self.settings = settings
        self.work_dir = work_dir or store.path.parent
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()

    @property
    def index_url(self) -> str:
        return f"{self.settings.base_url.rstrip('/')}/{self.event}/{INDEX_NAME}"

    def file_url(self, name: str) -> str:
        return f"{self.settings.base_url.rstrip('/')}/{self.event}/{name}"

    def sync(self) -> SyncResult:
        """Bring the store up to the server's newest feed, or raise FeedError and change
        nothing."""
        try:
            try:
                return self._sync()
            except sqlite3.Error as exc:  # the store's own reads; its writes raise StoreError
                raise StoreError(f"{self.store.path}: cannot read the feed store: {exc}") \
                    from None
        except FeedError as exc:
            log.warning("feed sync failed: event=%s url=%s error=%s cause=%s", self.event,
                        self.index_url, type(exc).__name__, exc)
            raise
        finally:
            self._purge_due()  # never raises: its failure must not replace the outcome

    def _sync(self) -> SyncResult:
        current = self.store.status(self.event)
        cache = self.store.http_cache(self.event)
        headers: dict[str, str] = {}
        if current is not None and cache is not None and cache.url == self.index_url:
            if cache.etag:
                headers["If-None-Match"] = cache.etag
            elif cache.last_modified:
                headers["If-Modified-Since"] = cache.last_modified
        response = self._with_retries(
            self.index_url, lambda: self._fetch_bytes(self.index_url, headers,
                                                      limit=MAX_INDEX_BYTES))
        fetched_at = self._clock()
        if response.status == 304 and current is not None:
            self.store.mark_fetched(self.event, fetched_at)
            log.info("feed unchanged: event=%s sequence=%d (HTTP 304)", self.event,
                     current.sequence)
            return SyncResult(self.event, SyncOutcome.UNCHANGED, current.sequence,
                              current.sequence, current.published_at, 0, (),
                              self.store.status(self.event) or current)
        index = parse_index(response.data, trust=self.trust, event=self.event)
        ahead = index.published_at - fetched_at
        if ahead > self.settings.future_tolerance_seconds:
            raise FeedFutureError(
                f"{self.index_url}: signed at {index.published_at}, {ahead:.0f} s ahead of "
                f"this gate's clock ({fetched_at:.0f}; at most "
                f"{self.settings.future_tolerance_seconds:g} s allowed): the publisher's "
                "clock is wrong, or this gate's is behind; nothing applied")
        new_cache = HttpCache(self.index_url, response.etag, response.last_modified)
        have = 0 if current is None else current.sequence
        if index.sequence < have or (current is not None
                                     and index.published_at < current.published_at):
            raise FeedReplayError(
                f"{self.index_url}: sequence {index.sequence} signed at "
                f"{index.published_at} is older than the store's sequence {have} signed at "
                f"{current.published_at if current else 0} (replayed or rolled back)")
        if index.sequence == have:
            outcome = (SyncOutcome.UNCHANGED if current is not None
                       and index.published_at == current.published_at
                       else SyncOutcome.TIME_ONLY)
            status = self.store.apply(index, [], fetched_at=fetched_at, http_cache=new_cache)
            return SyncResult(self.event, outcome, have, have, index.published_at,
                              len(response.data), (), status)
        with _work_folder(self.work_dir) as tmp:
            chain = _chain(index, have) if have else None
            if chain is not None and sum(d.size for d in chain) < index.snapshot.size:
                try:
                    files = [self._download(ref, Path(tmp)) for ref in chain]
                    status = self.store.apply(index, files, fetched_at=fetched_at,
                                              http_cache=new_cache)
                    return self._done(SyncOutcome.DELTAS, have, index, files, status)
                except (FeedHashError, FeedFormatError, FeedTooLargeError, FeedGapError) \
                        as exc:
                    log.warning("feed deltas unusable, falling back to the snapshot: "
                                "event=%s cause=%s", self.event, exc)
                except FeedHTTPError as exc:
                    if exc.status not in (403, 404, 410):
                        raise
                    log.warning("feed delta missing, falling back to the snapshot: "
                                "event=%s cause=%s", self.event, exc)
            elif have:
                log.info("feed chain has a gap from sequence %d: event=%s, using the "
                         "snapshot", have, self.event)
            files = [self._download(index.snapshot, Path(tmp))]
            status = self.store.apply(index, files, fetched_at=fetched_at,
                                      http_cache=new_cache)
            return self._done(SyncOutcome.SNAPSHOT, have, index, files, status)

    def _done(self, outcome: SyncOutcome, have: int, index: FeedIndex,
              files: list[FeedFile], status: StoreStatus) -> SyncResult:
        return SyncResult(self.event, outcome, have or None, index.sequence,
                          index.published_at, sum(f.ref.size for f in files),
                          tuple(f.ref.name for f in files), status)

    def _purge_due(self) -> None:
        """Purge the holder names due for it; a failure is logged, never raised (the sync's
        own outcome stands, and the next sync tries again)."""
        after = self.settings.purge_after_seconds
        if after is None:
            return
        try:
            self.store.purge_due(now=self._clock(), after_seconds=after)
        except FeedError as exc:
            log.error("feed purge failed, holder names kept until the next try: event=%s "
                      "error=%s cause=%s", self.event, type(exc).__name__, exc)
        except Exception:
            log.exception("feed purge failed, holder names kept until the next try: "
                          "event=%s", self.event)

    # --- HTTP ---------------------------------------------------------------------------

    def _download(self, ref: FileRef, folder: Path) -> FeedFile:
        """Download one file into `folder`, checking its size and SHA-256 on the way."""
        url = self.file_url(ref.name)
        cap = self.settings.max_download_bytes
        if ref.size > cap:
            raise FeedTooLargeError(f"{url}: the index declares {ref.size} bytes, more than "
                                    f"the {cap}-byte cap")
        path = folder / ref.name

        def attempt() -> FeedFile:
            digest = hashlib.sha256()
            size = 0
            try:
                with path.open("wb") as out:
                    for chunk in self._stream(url, {}, limit=ref.size):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
            except FeedError:  # FeedNetworkError is an OSError too
                raise
            except OSError as exc:  # writing the file: disk full, read-only, ...
                raise StoreError(f"{url}: cannot write the download to {path}: "
                                 f"{exc.strerror or exc}") from None
            if size != ref.size or digest.hexdigest() != ref.sha256:
                raise FeedHashError(f"{url}: {size} bytes with SHA-256 "
                                    f"{digest.hexdigest()[:16]}..., the signed index says "
                                    f"{ref.size} bytes and {ref.sha256[:16]}...")
            return FeedFile(ref, path)

        return self._with_retries(url, attempt)

    def _fetch_bytes(self, url: str, headers: Mapping[str, str], *, limit: int) -> _Response:
        meta: dict[str, str | int | None] = {}
        data = b"".join(self._stream(url, headers, limit=limit, meta=meta))
        status = meta.get("status")
        return _Response(int(status) if isinstance(status, int) else 200, data,
                         _str(meta.get("etag")), _str(meta.get("last_modified")))

    def _stream(self, url: str, headers: Mapping[str, str], *, limit: int,
                meta: dict[str, str | int | None] | None = None) -> Iterator[bytes]:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})
        settings = self.settings
        deadline = time.monotonic() + settings.download_seconds
        try:
            response = urllib.request.urlopen(request, timeout=settings.timeout_seconds)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 304 and meta is not None:
                meta["status"] = 304
                return
            raise FeedHTTPError(f"{url}: HTTP {exc.code} {exc.reason}", exc.code) from None
        except urllib.error.URLError as exc:
            raise _network_error(url, exc.reason) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _network_error(url, exc) from None
        with response:
            if meta is not None:
                meta.update(status=response.status, etag=response.headers.get("ETag"),
                            last_modified=response.headers.get("Last-Modified"))
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise FeedTooLargeError(f"{url}: the server announces {declared} bytes, "
                                        f"more than the {limit} expected at most")
            received = 0
            while True:
                if time.monotonic() > deadline:
                    raise FeedTimeoutError(f"{url}: download not finished after "
                                           f"{settings.download_seconds:g} s")
                try:
                    chunk = response.read(min(_CHUNK, limit + 1 - received))
                except http.client.IncompleteRead as exc:
                    raise FeedNetworkError(
                        f"{url}: body truncated after {received + len(exc.partial)} of "
                        f"{declared} bytes") from None
                except (OSError, http.client.HTTPException) as exc:
                    raise _network_error(url, exc) from None
                if not chunk:
                    break
                received += len(chunk)
                if received > limit:
                    raise FeedTooLargeError(f"{url}: body larger than the {limit} bytes "
                                            "expected at most")
                yield chunk
            if declared is not None and declared.isdigit() and received != int(declared):
                raise FeedNetworkError(f"{url}: body truncated after {received} of "
                                       f"{declared} bytes")

    def _with_retries(self, url: str, attempt: Callable[[], T]) -> T:
        tries = self.settings.retries + 1
        for number in range(tries):
            try:
                return attempt()
            except FeedHTTPError as exc:
                if exc.status not in _RETRY_STATUSES or number + 1 == tries:
                    raise
                cause: FeedError = exc
            except FeedNetworkError as exc:
                if number + 1 == tries:
                    raise
                cause = exc
            delay = self.settings.backoff_seconds * (2 ** number) * (0.5 + self._rng.random())
            log.info("feed fetch retry: url=%s attempt=%d/%d in=%.2fs cause=%s", url,
                     number + 2, tries, delay, cause)
            self._sleep(delay)
        raise AssertionError("unreachable")


@contextlib.contextmanager
def _work_folder(parent: Path) -> Iterator[str]:
    """A private temporary folder (mode 0700) for the downloads, deleted after use."""
    try:
        folder = tempfile.TemporaryDirectory(dir=parent, prefix=".feed-sync-",
                                             ignore_cleanup_errors=True)
    except OSError as exc:
        raise StoreError(f"{parent}: cannot create a folder for the downloads: "
                         f"{exc.strerror or exc}") from None
    with folder as path:
        yield path


def _chain(index: FeedIndex, have: int) -> list[FileRef] | None:
    """The deltas leading from sequence `have` to the index's, or None on a gap."""
    by_from = {d.from_sequence: d for d in index.deltas}
    chain: list[FileRef] = []
    at = have
    while at < index.sequence:
        step = by_from.get(at)
        if step is None:
            return None
        chain.append(step)
        at = step.to_sequence
    return chain if at == index.sequence else None


def _network_error(url: str, reason: object) -> FeedNetworkError:
    if isinstance(reason, socket.timeout | TimeoutError):
        return FeedTimeoutError(f"{url}: no answer within the timeout (server stalled)")
    if isinstance(reason, ConnectionRefusedError):
        return FeedNetworkError(f"{url}: connection refused")
    if isinstance(reason, ConnectionResetError | http.client.RemoteDisconnected):
        return FeedNetworkError(f"{url}: connection closed by the server ({reason})")
    return FeedNetworkError(f"{url}: {reason}")


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def watch(client: FeedClient, *, interval: float, stop: threading.Event,
          on_result: Callable[[SyncResult], None] | None = None,
          on_error: Callable[[FeedError], None] | None = None,
          rng: random.Random | None = None) -> None:
    """Sync every `interval` seconds (+-10% jitter) until `stop` is set. Errors are
    reported to on_error and the loop goes on with the last good data in force: a
    FeedError as it is; any other exception (a bug) is logged with its traceback and
    reported as a FeedError naming it."""
    jitter = rng or random.Random()
    while not stop.is_set():
        try:
            result = client.sync()
        except FeedError as exc:
            if on_error is not None:
                on_error(exc)
        except Exception as exc:
            log.exception("feed sync failed unexpectedly: event=%s", client.event)
            if on_error is not None:
                on_error(FeedError(f"{client.index_url}: unexpected {type(exc).__name__}: "
                                   f"{exc}"))
        else:
            if on_result is not None:
                on_result(result)
        stop.wait(interval * (0.9 + 0.2 * jitter.random()))

