"""The sync client: brings the local store up to the newest signed feed over HTTP.

One ``sync()`` fetches ``<base_url>/<event>/index.json`` (conditionally: If-None-Match or
If-Modified-Since), verifies its signature and that it is not older than the store, then
downloads what is missing (the chain of deltas from the store's sequence, or the snapshot
when the chain has a gap, is damaged or would be larger) into temporary files, checks
each size and SHA-256 against the index, and only then applies them in one transaction.
A store found contradicting the signed counts of its own sequence is repaired from that
sequence's snapshot; a 304 is not believed while the store's rows contradict its counts.

Network failures are retried with exponential backoff and jitter. Any failure raises a
FeedError naming its cause and leaves the store exactly as it was.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import http.client
import logging
import random
import re
import socket
import sqlite3
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from portique.revocation.errors import (
    FeedCancelledError,
    FeedCountError,
    FeedError,
    FeedFormatError,
    FeedFutureError,
    FeedGapError,
    FeedHashError,
    FeedHTTPError,
    FeedNetworkError,
    FeedRedirectError,
    FeedReplayError,
    FeedSequenceJumpError,
    FeedTimeoutError,
    FeedTooLargeError,
    StoreError,
)
from portique.revocation.format import (
    INDEX_NAME,
    MAX_INDEX_BYTES,
    MAX_SEQUENCE_JUMP,
    FeedIndex,
    FileRef,
    parse_index,
)
from portique.revocation.store import FeedFile, FeedStore, HttpCache, StoreStatus
from portique.ticket.trust import TrustStore

log = logging.getLogger("portique.revocation.sync")
T = TypeVar("T")

_CHUNK = 1 << 16
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "portique-gate-sync/1"
MAX_VALIDATOR_CHARS = 256
"""The longest ETag or Last-Modified the gate stores and sends back (printable ASCII only)."""
_VALIDATOR_RE = re.compile(f"[ -~]{{1,{MAX_VALIDATOR_CHARS}}}")
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}


class SyncOutcome(enum.StrEnum):
    SNAPSHOT = "snapshot"
    """A new sequence, through the snapshot."""
    DELTAS = "deltas"
    """A new sequence, through the chain of deltas."""
    TIME_ONLY = "time_only"
    """Same sequence, newer signed time."""
    UNCHANGED = "unchanged"
    """The server has nothing newer (HTTP 304 or the same index)."""
    REPAIRED = "repaired"
    """Same sequence, but the store contradicted its signed counts: replaced by the
    sequence's snapshot."""


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
    redirect_origins: tuple[str, ...] = ()
    """Origins (``https://cdn.example.org``) besides the base URL's that a redirect may lead
    to, with the same scheme; no other redirect is followed."""


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
                 sleep: Callable[[float], None] | None = None,
                 rng: random.Random | None = None) -> None:
        """`trust` should hold keys of every role (load_trust_dir(role=None)) so an issuer
        key is refused as not a feed key; only FEED keys are ever accepted. `sleep` waits
        between retries (default: a wait that `cancel()` ends at once)."""
        self.store = store
        self.event = event
        self.trust = trust
        self.settings = settings
        self.work_dir = work_dir or store.path.parent
        self._clock = clock
        self._sleep = sleep or self._wait
        self._rng = rng or random.Random()
        self._cancelled = threading.Event()
        self._lock = threading.RLock()  # re-entrant: cancel() may run in a signal handler
        self._exchange: _Exchange | None = None
        self._opener = urllib.request.build_opener(
            _WatchedHTTPHandler(self), _WatchedHTTPSHandler(self),
            _SameOriginRedirects(self._redirect_refusal))

    def cancel(self) -> None:
        """Stop the sync in progress as soon as possible (and every later one): the download
        under way is cut, nothing is applied, and sync() raises FeedCancelledError. Safe to
        call from another thread or from a signal handler."""
        self._cancelled.set()
        with self._lock:
            exchange = self._exchange
        if exchange is not None:
            exchange.abort(_Exchange.CANCELLED)

    def _wait(self, seconds: float) -> None:
        self._cancelled.wait(seconds)

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
            # a validator stored before the bounds existed is not sent again
            etag = _validator(cache.etag, "ETag", self.index_url)
            last_modified = _validator(cache.last_modified, "Last-Modified", self.index_url)
            if etag:
                headers["If-None-Match"] = etag
            elif last_modified:
                headers["If-Modified-Since"] = last_modified
        try:
            response = self._fetch_index(headers)
        except FeedHTTPError as exc:
            # A strict server (or a cache in between) may refuse our validator for good:
            # never let that stop the gate from syncing.
            if not headers or not 400 <= exc.status < 500 or exc.status in _RETRY_STATUSES:
                raise
            log.warning("feed conditional request refused, asking again without validators: "
                        "event=%s url=%s status=%d headers=%s", self.event, self.index_url,
                        exc.status, ",".join(sorted(headers)))
            headers = {}
            response = self._fetch_index(headers)
        if response.status == 304 and headers and current is not None:
            held = self.store.held_counts(self.event)
            if held != (current.revocations, current.manifest):
                # the validator would hide it for as long as the index stays the same
                log.warning("feed store contradicts its signed counts, asking for the index "
                            "again without validators: event=%s sequence=%d holds "
                            "revocations=%d manifest=%d signed revocations=%d manifest=%d",
                            self.event, current.sequence, *held, current.revocations,
                            current.manifest)
                headers = {}
                response = self._fetch_index(headers)
        fetched_at = self._clock()
        if response.status == 304:
            if not headers or current is None:
                raise FeedHTTPError(
                    f"{self.index_url}: HTTP 304 Not Modified to a request without a "
                    "validator (no If-None-Match or If-Modified-Since was sent"
                    + ("" if current is not None else "; the store holds no feed yet")
                    + "): the server or a cache in between answers wrongly; nothing "
                    "changed", 304)
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
        new_cache = HttpCache(self.index_url,
                              _validator(response.etag, "ETag", self.index_url),
                              _validator(response.last_modified, "Last-Modified",
                                         self.index_url))
        have = 0 if current is None else current.sequence
        if index.sequence < have or (current is not None
                                     and index.published_at < current.published_at):
            raise FeedReplayError(
                f"{self.index_url}: sequence {index.sequence} signed at "
                f"{index.published_at} is older than the store's sequence {have} signed at "
                f"{current.published_at if current else 0} (replayed or rolled back)")
        if index.sequence - have > MAX_SEQUENCE_JUMP:
            raise FeedSequenceJumpError(
                f"{self.index_url}: sequence {index.sequence} is {index.sequence - have} "
                f"above the store's {have}, more than the {MAX_SEQUENCE_JUMP} a feed may "
                "jump at once; nothing downloaded")
        if index.sequence == have:
            outcome = (SyncOutcome.UNCHANGED if current is not None
                       and index.published_at == current.published_at
                       else SyncOutcome.TIME_ONLY)
            try:
                status = self.store.apply(index, [], fetched_at=fetched_at,
                                          http_cache=new_cache)
            except FeedCountError as exc:
                return self._repair(index, have, fetched_at, new_cache, exc)
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

    def _repair(self, index: FeedIndex, have: int, fetched_at: float, cache: HttpCache,
                cause: FeedCountError) -> SyncResult:
        """Replace a store contradicting the signed counts of its own sequence with that
        sequence's snapshot (checked like any other). If that fails too, the validators
        are dropped, so that the next sync asks for the index unconditionally and meets
        the contradiction again instead of an HTTP 304."""
        log.warning("feed store contradicts its signed index, repairing it from the "
                    "snapshot: event=%s sequence=%d cause=%s", self.event, have, cause)
        try:
            with _work_folder(self.work_dir) as tmp:
                files = [self._download(index.snapshot, Path(tmp))]
                status = self.store.apply(index, files, fetched_at=fetched_at,
                                          http_cache=cache, repair=True)
        except FeedError as exc:
            try:
                self.store.forget_http_cache(self.event)
            except FeedError as forget:
                log.error("feed validators not dropped: event=%s cause=%s", self.event,
                          forget)
            log.error("feed store still contradicts its signed index (repair failed, the "
                      "next sync asks again without validators): event=%s sequence=%d "
                      "error=%s cause=%s", self.event, have, type(exc).__name__, exc)
            raise
        log.warning("feed store repaired from the snapshot: event=%s sequence=%d "
                    "revocations=%d manifest=%d", self.event, have, status.revocations,
                    status.manifest)
        return self._done(SyncOutcome.REPAIRED, have, index, files, status)

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

    def _fetch_index(self, headers: Mapping[str, str]) -> _Response:
        return self._with_retries(self.index_url, lambda: self._fetch_bytes(
            self.index_url, headers, limit=MAX_INDEX_BYTES))

    def _fetch_bytes(self, url: str, headers: Mapping[str, str], *, limit: int) -> _Response:
        meta: dict[str, str | int | None] = {}
        data = b"".join(self._stream(url, headers, limit=limit, meta=meta))
        status = meta.get("status")
        return _Response(int(status) if isinstance(status, int) else 200, data,
                         _str(meta.get("etag")), _str(meta.get("last_modified")))

    def _stream(self, url: str, headers: Mapping[str, str], *, limit: int,
                meta: dict[str, str | int | None] | None = None) -> Iterator[bytes]:
        """The body of one GET, chunk by chunk, complete within download_seconds from the
        connection to the last byte (headers included), or FeedTimeoutError; cut at once
        by cancel() (FeedCancelledError)."""
        settings = self.settings
        exchange = _Exchange()
        with self._lock:
            self._exchange = exchange
        if self._cancelled.is_set():
            exchange.abort(_Exchange.CANCELLED)
        timer = threading.Timer(settings.download_seconds, exchange.abort,
                                args=(_Exchange.DEADLINE,))
        timer.daemon = True
        timer.start()
        try:
            for chunk in self._get(url, headers, limit=limit, meta=meta,
                                   exchange=exchange):
                if exchange.reason is not None:
                    break
                yield chunk
            reason = exchange.finish()
        except FeedError:
            reason = exchange.finish()
            if reason is None:
                raise
        finally:
            timer.cancel()
            exchange.finish()
            with self._lock:
                self._exchange = None
        if reason == _Exchange.CANCELLED:
            raise FeedCancelledError(f"{url}: sync stopped before it finished (nothing "
                                     "applied)")
        if reason == _Exchange.DEADLINE:
            raise FeedTimeoutError(f"{url}: not complete within download_seconds="
                                   f"{settings.download_seconds:g} s from the connection to "
                                   "the last byte, headers included (the server trickles or "
                                   "stalls)")

    def _get(self, url: str, headers: Mapping[str, str], *, limit: int,
             meta: dict[str, str | int | None] | None, exchange: _Exchange) -> Iterator[bytes]:
        if exchange.reason is not None:
            return
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})
        settings = self.settings
        try:
            response = self._opener.open(
                request, timeout=min(settings.timeout_seconds, settings.download_seconds))
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 304 and meta is not None:
                meta["status"] = 304
                return
            raise FeedHTTPError(f"{url}: HTTP {exc.code} {exc.reason}", exc.code) from None
        except FeedError:
            raise
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
            while exchange.reason is None:
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
            if exchange.reason is None and declared is not None and declared.isdigit() \
                    and received != int(declared):
                raise FeedNetworkError(f"{url}: body truncated after {received} of "
                                       f"{declared} bytes")

    def _connected(self, sock: socket.socket) -> None:
        """Every socket the opener connects, so that the deadline or cancel() can cut it."""
        with self._lock:
            exchange = self._exchange
        if exchange is not None:
            exchange.watch(sock)

    def _redirect_refusal(self, old_url: str, new_url: str) -> str | None:
        """Why a redirect from old_url to new_url is not followed, or None to follow it."""
        old, new = _origin(old_url), _origin(new_url)
        if new is None or old is None or new[0] != old[0]:
            return "a redirect never changes the scheme"
        base = _origin(self.settings.base_url)
        allowed = {base, *(_origin(o) for o in self.settings.redirect_origins)}
        if new not in allowed:
            return ("another origin than the feed's (feeds.redirect_origins lists the "
                    "others allowed)")
        return None

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
                if number + 1 == tries or self._cancelled.is_set():
                    raise
                cause = exc
            delay = self.settings.backoff_seconds * (2 ** number) * (0.5 + self._rng.random())
            log.info("feed fetch retry: url=%s attempt=%d/%d in=%.2fs cause=%s", url,
                     number + 2, tries, delay, cause)
            self._sleep(delay)
            if self._cancelled.is_set():
                raise FeedCancelledError(f"{url}: sync stopped before it finished (nothing "
                                         "applied)")
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


def _validator(value: str | None, header: str, url: str) -> str | None:
    """An ETag or Last-Modified the gate may store and send back: at most
    MAX_VALIDATOR_CHARS printable ASCII characters; anything else is dropped (the next
    request is then unconditional), never stored."""
    if value is None or _VALIDATOR_RE.fullmatch(value):
        return value
    log.warning("feed validator ignored, not stored: url=%s header=%s length=%d (at most %d "
                "printable ASCII characters)", url, header, len(value), MAX_VALIDATOR_CHARS)
    return None


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http or https URL, or None."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


class _Exchange:
    """One HTTP exchange under a deadline: abort() shuts its sockets down, so that a read
    blocked on a trickling or silent server returns at once."""

    DEADLINE = "deadline"
    CANCELLED = "cancelled"

    def __init__(self) -> None:
        self._lock = threading.RLock()  # re-entrant: abort() may run in a signal handler
        self._sockets: list[socket.socket] = []
        self._done = False
        self.reason: str | None = None

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.reason is not None:
                _shut(sock)

    def abort(self, reason: str) -> None:
        with self._lock:
            if self._done or self.reason is not None:
                return
            self.reason = reason
            for sock in self._sockets:
                _shut(sock)

    def finish(self) -> str | None:
        """End the exchange (a later abort does nothing); why it was aborted, or None."""
        with self._lock:
            self._done = True
            return self.reason


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to cut
        sock.shutdown(socket.SHUT_RDWR)


def _watched_connect(client: FeedClient, address: tuple[str, int], timeout: Any = None,
                     source_address: Any = None, **kwargs: Any) -> socket.socket:
    sock = socket.create_connection(address, timeout, source_address, **kwargs)
    client._connected(sock)
    return sock


class _WatchedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, client: FeedClient, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._create_connection = functools.partial(_watched_connect, client)


class _WatchedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, client: FeedClient, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        # the TCP socket, before TLS: the handshake is under the deadline too
        self._create_connection = functools.partial(_watched_connect, client)


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, client: FeedClient) -> None:
        super().__init__()
        self._client = client

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTPConnection, client=self._client),
                            req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, client: FeedClient) -> None:
        super().__init__()
        self._client = client
        self._tls = ssl.create_default_context()

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTPSConnection, client=self._client),
                            req, context=self._tls)


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only within the feed's origin (or an allowed one), never to
    another scheme; any other is a FeedRedirectError."""

    max_redirections = MAX_REDIRECTS

    def __init__(self, refusal: Callable[[str, str], str | None]) -> None:
        super().__init__()
        self._refusal = refusal

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int,
                         msg: str, headers: Any, newurl: str) -> urllib.request.Request | None:
        problem = self._refusal(req.full_url, newurl)
        if problem is not None:
            fp.close()
            raise FeedRedirectError(f"{req.full_url}: HTTP {code} redirect to "
                                    f"{newurl[:200]!r} not followed: {problem}")
        log.info("feed redirect followed: from=%s to=%s status=%d", req.full_url, newurl,
                 code)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


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
            if stop.is_set():  # stopped while syncing (cancel()): not a failure to report
                log.info("feed sync stopped: event=%s cause=%s", client.event, exc)
                break
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

