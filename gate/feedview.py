"""The feed store as the gate's threads share it: one SQLite connection per thread.

A `FeedStore` belongs to the thread that opened it (SQLite's own rule, which Python
enforces), yet the gate reads it from several threads: the decision loop (revocations),
the control socket (status, manual admits, the steward's lookups, one thread per
connection) and housekeeping (the feed's signed time). Each thread here gets its own
connection on first use; WAL lets them all read while `gate sync` writes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from revocation.format import ManifestEntry
from revocation.store import Candidate, FeedStore, StoreStatus, open_view


class SharedFeedView:
    """The revocation view, manifest lookups and feed status, from any thread."""

    def __init__(self, path: Path, *, event: str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[FeedStore] = []
        first = open_view(self.path, event=event)  # refuses a store without this event
        self._adopt(first)

    def _adopt(self, store: FeedStore) -> FeedStore:
        self._local.store = store
        with self._lock:
            self._opened.append(store)
        return store

    def _store(self) -> FeedStore:
        store: FeedStore | None = getattr(self._local, "store", None)
        if store is None:
            store = self._adopt(FeedStore.open(self.path))
        return store

    def _release(self) -> None:
        """Forget this thread's connection (threads of the control socket are short)."""
        store: FeedStore | None = getattr(self._local, "store", None)
        if store is not None:
            self._local.store = None
            with self._lock:
                self._opened.remove(store)
            store.close()

    def min_valid_generation(self, event: str, ticket_id: str) -> int | None:
        return self._store().min_valid_generation(event, ticket_id)

    def manifest_entry(self, event: str, ticket_id: str) -> ManifestEntry | None:
        return self._store().manifest_entry(event, ticket_id)

    def lookup(self, event: str, query: str, *, limit: int = 10) -> tuple[Candidate, ...]:
        return self._store().lookup(event, query, limit=limit)

    def status(self, event: str) -> StoreStatus | None:
        return self._store().status(event)

    def close(self) -> None:
        """Close this thread's connection; the others close when their threads end."""
        self._release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store(), name)
