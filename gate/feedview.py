"""The feed store as the gate's threads share it: one SQLite connection behind a lock.

The gate reads the feed store from several threads: the decision loop (revocations), the
control socket (status, manual admits, the steward's lookups: one short-lived thread per
connection) and housekeeping (the feed's signed time). One connection serves them all,
one call at a time: reads take microseconds, and a fixed number of connections cannot
leak however many stewards connect. WAL lets it read while `gate sync` writes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from gate.errors import GateError
from revocation.format import ManifestEntry
from revocation.store import Candidate, FeedStore, StoreStatus, open_view


class FeedUnavailableError(GateError, OSError):
    """The feed store could not be read (damaged, or gone): the message names the cause."""


class SharedFeedView:
    """The revocation view, manifest lookups and feed status, from any thread."""

    def __init__(self, path: Path, *, event: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._store: FeedStore = open_view(self.path, event=event, shared=True)

    def min_valid_generation(self, event: str, ticket_id: str) -> int | None:
        with self._lock, self._reading():
            return self._store.min_valid_generation(event, ticket_id)

    def manifest_entry(self, event: str, ticket_id: str) -> ManifestEntry | None:
        with self._lock, self._reading():
            return self._store.manifest_entry(event, ticket_id)

    def lookup(self, event: str, query: str, *, limit: int = 10) -> tuple[Candidate, ...]:
        with self._lock, self._reading():
            return self._store.lookup(event, query, limit=limit)

    def status(self, event: str) -> StoreStatus | None:
        with self._lock, self._reading():
            return self._store.status(event)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise FeedUnavailableError(f"feed store {self.path}: cannot be read: {exc}") \
                from None

    def close(self) -> None:
        with self._lock:
            self._store.close()
