"""The feed store as the gate's threads share it: the decision's connection behind a lock,
and a few read-only connections of their own for the stewards' lookups.

The gate reads the feed store from several threads: the decision loop (revocations), the
control socket (status, manual admits, the steward's lookups: one short-lived thread per
connection) and housekeeping (the feed's signed time). The decision's point queries, the
status and the manual admits share one connection, one call at a time: each takes
microseconds. A lookup may read thousands of index entries: it never takes that
connection or its lock. It borrows one of at most `LOOKUP_READERS` read-only connections
(opened on first use, kept for the next lookup), so a fixed number of connections serves
however many stewards connect; a lookup finding none free within `LOOKUP_WAIT_S` is
refused with a clear error. WAL lets all of them read while `gate sync` writes.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from portique.base.errors import GateError
from portique.revocation.errors import StoreError
from portique.revocation.format import ManifestEntry
from portique.revocation.store import Candidate, FeedStore, LookupResult, StoreStatus, open_view

log = logging.getLogger("portique.runtime.feedview")

LOOKUP_READERS = 2
"""Read-only connections kept for lookups: lookups beyond that many at once wait."""
LOOKUP_WAIT_S = 2.0
"""How long a lookup waits for a free read-only connection before it is refused (each
lookup holds one for at most its time budget, revocation.store.LOOKUP_BUDGET_S)."""


class FeedUnavailableError(GateError, OSError):
    """The feed store could not be read (damaged, or gone): the message names the cause."""


class LookupBusyError(GateError, TimeoutError):
    """Every read-only connection for lookups stayed busy: the steward may try again."""


class SharedFeedView:
    """The revocation view, manifest lookups and feed status, from any thread."""

    def __init__(self, path: Path, *, event: str, readers: int = LOOKUP_READERS,
                 wait_s: float = LOOKUP_WAIT_S, events: tuple[str, ...] = ()) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._store: FeedStore = open_view(self.path, event=event, shared=True)
        self._events = frozenset(events or (event,))
        """The sessions this gate serves: a code of one whose feed is not here yet is
        never decided as if nothing were revoked (FeedUnavailableError, the steward)."""
        self._held: set[str] = {event}
        self._reader_count = readers
        self._readers = threading.BoundedSemaphore(readers)
        self._wait_s = wait_s
        self._idle: list[FeedStore] = []
        self._idle_lock = threading.Lock()
        self._closed = False

    def min_valid_generation(self, event: str, ticket_id: str) -> int | None:
        with self._lock, self._reading():
            if event not in self._held and event in self._events:
                if self._store.status(event) is None:
                    raise FeedUnavailableError(f"feed store {self.path}: no feed of session "
                                               f"{event!r} yet (gate sync brings it)")
                self._held.add(event)  # there for good: the store never drops a feed
            return self._store.min_valid_generation(event, ticket_id)

    def manifest_entry(self, event: str, ticket_id: str) -> ManifestEntry | None:
        with self._lock, self._reading():
            return self._store.manifest_entry(event, ticket_id)

    def status(self, event: str) -> StoreStatus | None:
        with self._lock, self._reading():
            return self._store.status(event)

    # --- lookups, on their own connections --------------------------------------------

    def lookup(self, event: str, query: str, *, limit: int = 10) -> tuple[Candidate, ...]:
        return self.search(event, query, limit=limit).candidates

    def search(self, event: str, query: str, *, limit: int = 10,
               deadline: float | None = None) -> LookupResult:
        with self.lookup_store() as store, self._reading():
            return store.search(event, query, limit=limit, deadline=deadline)

    @contextlib.contextmanager
    def lookup_store(self) -> Iterator[FeedStore]:
        """A read-only store of this thread's own for the time of one lookup (its search
        and the revocations of what it found), never the decision's connection."""
        if not self._readers.acquire(timeout=self._wait_s):
            log.warning("manifest lookup refused: all %d lookup connections busy for %.1f s "
                        "store=%s", self._reader_count, self._wait_s, self.path)
            raise LookupBusyError(f"feed store {self.path}: too many lookups at once, try "
                                  "again")
        try:
            store = self._borrow()
            healthy = False
            try:
                yield store
                healthy = True
            finally:
                self._give_back(store, healthy=healthy)
        finally:
            self._readers.release()

    def _borrow(self) -> FeedStore:
        with self._idle_lock:
            if self._closed:
                raise FeedUnavailableError(f"feed store {self.path}: closed")
            if self._idle:
                return self._idle.pop()
        try:
            return FeedStore.open_reader(self.path)
        except StoreError as exc:
            raise FeedUnavailableError(f"feed store {self.path}: cannot be read: {exc}") \
                from None

    def _give_back(self, store: FeedStore, *, healthy: bool) -> None:
        """Keep a reader for the next lookup, unless it failed (a fresh one is opened)."""
        with self._idle_lock:
            if healthy and not self._closed:
                self._idle.append(store)
                return
        store.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise FeedUnavailableError(f"feed store {self.path}: cannot be read: {exc}") \
                from None

    def close(self) -> None:
        with self._idle_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for store in idle:
            store.close()
        with self._lock:
            self._store.close()
