"""The local feed store: one SQLite file (WAL) holding the last good feed of each event.

It answers the decision core's question ("the lowest generation of this ticket still
valid") with one prepared point query, and the steward's manifest lookups. A verified
snapshot or chain of deltas is applied in one transaction: a reader, a crash or a kill at
any instant sees the old sequence or the new one, never a mix; an older sequence is never
applied over a newer one.

The file holds holder names: it is created mode 0640 and must belong to the gate's service
user (docs/feeds.md, "Personal data"). Names are purged a configured time after the event
ends, and a purged event never gets names back from later feeds.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import hashlib
import io
import itertools
import json
import logging
import os
import re
import sqlite3
import stat
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import sqlite_utils

from portique.revocation.errors import (
    FeedCountError,
    FeedFormatError,
    FeedGapError,
    FeedHashError,
    FeedReplayError,
    FeedSequenceJumpError,
    StoreError,
)
from portique.revocation.format import (
    INDEX_NAME,
    MAX_SEQUENCE_JUMP,
    FeedIndex,
    FileKind,
    FileRef,
    ManifestEntry,
    Op,
    Record,
    fold,
    fold_ticket_id,
    iter_records,
    sanitise_holder_name,
)
from portique.ticket.credential import Flag

log = logging.getLogger("portique.revocation.store")

SCHEMA_VERSION = 4
FILE_MODE = 0o640
HOOK_POINTS = ("begin", "cleared", "rows", "before-commit", "committed")
"""The apply steps at which `_test_hook` is called."""

_test_hook: Callable[[str], None] | None = None
"""Testing only, and None in production: called with each apply step's name.

Nothing in the gate sets it: no environment variable, configuration key or command line
option can. Only a test-only module (tests/revocation/killpoint.py, which kills the
process at a chosen step to prove an apply is atomic) assigns it, in its own process.
"""

_SCHEMA = """
CREATE TABLE feed_state (
    event TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL,
    published_at INTEGER NOT NULL,
    fetched_at REAL NOT NULL,
    kid TEXT NOT NULL,
    index_sha256 TEXT NOT NULL,
    ends_at INTEGER,
    revocations INTEGER NOT NULL,
    manifest INTEGER NOT NULL,
    purged_at REAL
) WITHOUT ROWID;
CREATE TABLE revocation (
    event TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    min_generation INTEGER NOT NULL,
    PRIMARY KEY (event, ticket_id)
) WITHOUT ROWID;
CREATE TABLE manifest (
    event TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    order_ref TEXT NOT NULL,
    holder_name TEXT NOT NULL,
    category TEXT NOT NULL,
    entrances TEXT NOT NULL,
    flags INTEGER NOT NULL,
    order_key TEXT NOT NULL,
    name_key TEXT NOT NULL,
    PRIMARY KEY (event, ticket_id)
) WITHOUT ROWID;
CREATE INDEX manifest_by_order ON manifest (event, order_key);
CREATE INDEX manifest_by_name ON manifest (event, name_key);
CREATE INDEX manifest_by_ticket ON manifest (event, ticket_id COLLATE NOCASE);
CREATE TABLE http_cache (
    event TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT
) WITHOUT ROWID;
"""

_MIN_VALID = "SELECT min_generation FROM revocation WHERE event = ? AND ticket_id = ?"
_SET_REVOCATION = ("INSERT OR REPLACE INTO revocation (event, ticket_id, min_generation) "
                   "VALUES (?, ?, ?)")
_SET_MANIFEST = ("INSERT OR REPLACE INTO manifest (event, ticket_id, generation, order_ref, "
                 "holder_name, category, entrances, flags, order_key, name_key) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_REMOVE = {Op.REMOVE_REVOCATION: "DELETE FROM revocation WHERE event = ? AND ticket_id = ?",
           Op.REMOVE_MANIFEST: "DELETE FROM manifest WHERE event = ? AND ticket_id = ?"}
_SEARCH_INDEXES = {
    "manifest_by_order": "CREATE INDEX manifest_by_order ON manifest (event, order_key)",
    "manifest_by_name": "CREATE INDEX manifest_by_name ON manifest (event, name_key)",
    "manifest_by_ticket": "CREATE INDEX manifest_by_ticket ON manifest "
                          "(event, ticket_id COLLATE NOCASE)",
}

# The words of every holder name, for lookups by any word of a name ("dupont" finds
# "Hélène Dupont") without reading the whole manifest: an FTS5 index of the folded name
# (contentless: it holds tokens, not the text), keyed by a small integer per manifest entry
# (the manifest is WITHOUT ROWID). Triggers keep both in step with every write to the
# manifest, whoever makes it; a snapshot of the only event drops them and builds them
# again in one pass after its bulk insert, as it does the indexes above.
_WORD_SEARCH_TABLES = (
    "CREATE TABLE manifest_word_key (id INTEGER PRIMARY KEY, event TEXT NOT NULL, "
    "ticket_id TEXT NOT NULL)",
    "CREATE VIRTUAL TABLE manifest_words USING fts5(name_key, content='', detail=none, "
    "tokenize='unicode61 remove_diacritics 0')",
)
_WORD_SEARCH_FILL = (  # in key order throughout: FTS5 takes ascending rowids far faster
    "INSERT INTO manifest_word_key (event, ticket_id) SELECT event, ticket_id "
    "FROM manifest NOT INDEXED WHERE name_key != '' ORDER BY event, ticket_id",
    "CREATE UNIQUE INDEX manifest_word_key_by_ticket ON manifest_word_key (event, ticket_id)",
    # no merging while it fills, then one merge into a single segment: later small writes
    # (deltas) then only ever merge small segments among themselves
    "INSERT INTO manifest_words (manifest_words, rank) VALUES ('automerge', 0)",
    "INSERT INTO manifest_words (rowid, name_key) SELECT k.id, m.name_key "
    "FROM manifest_word_key AS k CROSS JOIN manifest AS m "
    "ON m.event = k.event AND m.ticket_id = k.ticket_id ORDER BY k.id",
    "INSERT INTO manifest_words (manifest_words) VALUES ('optimize')",
    "INSERT INTO manifest_words (manifest_words, rank) VALUES ('automerge', 4)",
)
_UNINDEX = (
    # The words of entry `{key}` leave the index, unless its name stays `{name}` (then the
    # index is left as it is: a resale to the same holder, a new generation, costs nothing).
    "INSERT INTO manifest_words (manifest_words, rowid, name_key) "
    "SELECT 'delete', k.id, m.name_key FROM manifest_word_key AS k JOIN manifest AS m "
    "ON m.event = k.event AND m.ticket_id = k.ticket_id "
    "WHERE k.event = {key}.event AND k.ticket_id = {key}.ticket_id "
    "AND m.name_key IS NOT {name}; "
    "DELETE FROM manifest_word_key WHERE event = {key}.event AND ticket_id = {key}.ticket_id "
    "AND NOT EXISTS (SELECT 1 FROM manifest WHERE event = {key}.event "
    "AND ticket_id = {key}.ticket_id AND name_key IS {name});")
_NOT_INDEXED = ("NEW.name_key != '' AND NOT EXISTS (SELECT 1 FROM manifest_word_key "
                "WHERE event = NEW.event AND ticket_id = NEW.ticket_id)")
_INDEX_NEW = (  # the entry's words enter the index, unless they are in it already
    "INSERT INTO manifest_words (rowid, name_key) SELECT (SELECT coalesce(max(id), 0) + 1 "
    f"FROM manifest_word_key), NEW.name_key WHERE {_NOT_INDEXED}; "
    "INSERT INTO manifest_word_key (id, event, ticket_id) SELECT (SELECT coalesce(max(id), "
    f"0) + 1 FROM manifest_word_key), NEW.event, NEW.ticket_id WHERE {_NOT_INDEXED};")
_SAME_KEY_NAME = ("CASE WHEN OLD.event IS NEW.event AND OLD.ticket_id IS NEW.ticket_id "
                  "THEN NEW.name_key END")
_WORD_SEARCH_TRIGGERS = (
    # Before the row is written, while the replaced entry (INSERT OR REPLACE) is still
    # there to be compared; after it, whether or not the replacement fired the delete
    # trigger (recursive triggers), the words are indexed if they are not.
    "CREATE TRIGGER manifest_words_insert_old BEFORE INSERT ON manifest BEGIN "
    + _UNINDEX.format(key="NEW", name="NEW.name_key") + " END",
    "CREATE TRIGGER manifest_words_insert AFTER INSERT ON manifest BEGIN "
    + _INDEX_NEW + " END",
    "CREATE TRIGGER manifest_words_update_old BEFORE UPDATE OF event, ticket_id, name_key "
    "ON manifest BEGIN " + _UNINDEX.format(key="OLD", name=_SAME_KEY_NAME) + " END",
    "CREATE TRIGGER manifest_words_update AFTER UPDATE OF event, ticket_id, name_key "
    "ON manifest BEGIN " + _INDEX_NEW + " END",
    "CREATE TRIGGER manifest_words_delete BEFORE DELETE ON manifest BEGIN "
    + _UNINDEX.format(key="OLD", name="NULL") + " END",
)
_WORD_SEARCH = (*_WORD_SEARCH_TABLES, *_WORD_SEARCH_FILL, *_WORD_SEARCH_TRIGGERS)
"""Creates the word search of a store (its tables, filled from the manifest, and triggers)."""
_WORD_SEARCH_DROP = (
    *(f"DROP TRIGGER {s.split()[2]}" for s in _WORD_SEARCH_TRIGGERS),
    "DROP TABLE manifest_words",
    "DROP TABLE manifest_word_key",
)
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (_SEARCH_INDEXES["manifest_by_ticket"],),  # lookups by ticket id ignore case
    2: (*(d.replace("DROP TRIGGER", "DROP TRIGGER IF EXISTS").replace(
        "DROP TABLE", "DROP TABLE IF EXISTS") for d in _WORD_SEARCH_DROP),
        *_WORD_SEARCH),  # lookups by any word of a name use an index
    3: (  # names stored before they were cleaned on parse are cleaned once, in place
        "UPDATE manifest SET holder_name = portique_clean_name(holder_name), "
        "name_key = portique_fold(portique_clean_name(holder_name)) "
        "WHERE holder_name != portique_clean_name(holder_name)",),
}
"""Statements taking a store from schema version N to N + 1 (with the SQL functions
`_MIGRATION_FUNCTIONS` on the connection)."""
_MIGRATION_FUNCTIONS: dict[str, Callable[[str], str]] = {
    "portique_clean_name": sanitise_holder_name, "portique_fold": fold}
LOOKUP_BUDGET_S = 0.1
"""Time a manifest lookup may take (all its store queries together): past it the lookup
stops and answers what it found so far, marked truncated."""
WORD_CANDIDATES = 2000
"""Names containing the query's words examined at most by one lookup, ranked among
themselves: a query matching more (one common word) is answered marked truncated."""
_PROGRESS_STEPS = 1000
"""SQLite virtual machine steps between two checks of a lookup's time budget."""
_BUSY_TIMEOUT_MS = 30_000
_CHECKPOINT_WAIT_MS = 200
_CHECKPOINT_TRIES = 5
_APPLY_CACHE_KIB = 32768
_MANIFEST_COLUMNS = "ticket_id, generation, order_ref, holder_name, category, entrances, flags"
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """What the store holds for one event, and when the publisher signed it."""

    event: str
    sequence: int
    published_at: int
    """The publisher's signed time of the newest index applied (Unix seconds)."""
    fetched_at: float
    """When this gate last heard from the feed server successfully (its own clock)."""
    kid: str
    revocations: int
    manifest: int
    ends_at: int | None
    purged_at: float | None
    """When holder names were purged, or None."""
    index_sha256: str

    def age(self, now: float) -> float:
        """Seconds between the publisher's signed time and `now`."""
        return now - self.published_at


@dataclass(frozen=True, slots=True)
class HttpCache:
    """The validators of the last index fetched, for a conditional request."""

    url: str
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True, slots=True)
class FeedFile:
    """A downloaded snapshot or delta file, ready to be applied."""

    ref: FileRef
    path: Path


class MatchKind(enum.IntEnum):
    """How a manifest entry matched a lookup; lower is better."""

    TICKET_ID = 0
    ORDER_REF = 1
    NAME = 2
    NAME_PREFIX = 3
    NAME_WORDS = 4


@dataclass(frozen=True, slots=True)
class Candidate:
    """One manifest entry found by a lookup, with how it matched."""

    match: MatchKind
    entry: ManifestEntry


@dataclass(frozen=True, slots=True)
class LookupResult:
    """What a lookup found, best first, and whether it stopped short (its time budget ran
    out, or more names held the query's words than it examines)."""

    candidates: tuple[Candidate, ...]
    truncated: bool


@dataclass(frozen=True, slots=True)
class PurgeResult:
    event: str
    names: int
    """Holder names erased."""
    at: float
    wal_truncated: bool = True
    """False when readers kept the WAL from being checkpointed and truncated: copies of the
    erased names may remain in it until the next checkpoint (a warning is logged)."""


class _Found:
    """The candidates of one lookup as its stages add them, within its time budget."""

    def __init__(self, event: str, limit: int, deadline: float) -> None:
        self.event = event
        self.limit = limit
        self.deadline = deadline
        self.started = time.monotonic()
        self.candidates: dict[str, Candidate] = {}
        self.truncated = False

    def over_time(self) -> int:
        """SQLite's progress handler: non-zero interrupts the running query."""
        return int(time.monotonic() > self.deadline)

    def rows(self, connection: sqlite3.Connection, kind: MatchKind, sql: str,
             params: tuple[Any, ...]) -> list[Any] | None:
        """The query's rows, or None when the time budget interrupted it (then truncated)."""
        try:
            return connection.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if not self.over_time():
                raise
            self.truncated = True
            log.info("manifest lookup stopped at its time budget: event=%s stage=%s "
                     "found=%d after_ms=%.0f (%s)", self.event, kind.name.lower(),
                     len(self.candidates), (time.monotonic() - self.started) * 1000, exc)
            return None

    def take(self, connection: sqlite3.Connection, kind: MatchKind, sql: str,
             params: tuple[Any, ...]) -> bool:
        """Add a stage's matches (its SQL ends with LIMIT ?); True when the lookup is over
        (enough candidates, or out of time)."""
        rows = self.rows(connection, kind, sql, (*params, self.limit))
        if rows is None:
            return True
        for row in rows:
            if row[0] not in self.candidates:
                self.candidates[row[0]] = Candidate(kind, _entry(row))
                if len(self.candidates) >= self.limit:
                    return True
        return False


class FeedStore:
    """The local store of feeds. Belongs to the thread that opened it; open one per thread
    (readers never block the writer, WAL)."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._conn = connection
        self._db = sqlite_utils.Database(connection)

    @classmethod
    def open(cls, path: Path, *, shared: bool = False) -> FeedStore:
        """Open (creating it, mode 0640) the store file at `path`.

        `shared`: the connection may be used from other threads, one at a time (the
        caller serialises the calls, as portique.runtime.feedview does).
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # the file itself, never a symbolic link's target (O_NOFOLLOW, fchmod)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         FILE_MODE)
            try:
                mode = stat.S_IMODE(os.fstat(fd).st_mode)
                if mode & 0o007:
                    os.fchmod(fd, mode & ~0o007)
                    log.warning("feed store %s was readable by others (mode %o): now %o",
                                path, mode, mode & ~0o007)
            finally:
                os.close(fd)
            connection = sqlite3.connect(path, isolation_level=None,
                                         timeout=_BUSY_TIMEOUT_MS / 1000,
                                         check_same_thread=not shared)
        except OSError as exc:
            why = "is a symbolic link: refused, feeds.store must name the file itself" \
                if exc.errno == errno.ELOOP else f"cannot open the feed store: {exc.strerror}"
            raise StoreError(f"{path}: {why}") from None
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the feed store: {exc}") from None
        store = cls(path, connection)
        try:
            store._prepare()
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise StoreError(f"{path}: not a feed store ({exc})") from None
        except StoreError:
            connection.close()
            raise
        return store

    @classmethod
    def open_reader(cls, path: Path) -> FeedStore:
        """A read-only connection to the existing store at `path`, for lookups: it may be
        used from any thread, one at a time, and never writes (nor migrates) anything.
        WAL lets it read beside the gate's own connection and `gate sync` without either
        waiting on the other."""
        path = Path(path)
        try:
            connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                                         isolation_level=None,
                                         timeout=_BUSY_TIMEOUT_MS / 1000,
                                         check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the feed store to read: {exc}") from None
        try:
            connection.execute("PRAGMA query_only = ON")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            connection.close()
            raise StoreError(f"{path}: not a feed store ({exc})") from None
        if version != SCHEMA_VERSION:
            connection.close()
            raise StoreError(f"{path}: store schema version {version}, this gate reads "
                             f"{SCHEMA_VERSION} (open it once for writing to migrate it)")
        return cls(path, connection)

    def _prepare(self) -> None:
        self._db.enable_wal()
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA foreign_keys = OFF")
        # INSERT OR REPLACE fires no delete trigger: the word index keeps an unchanged name
        # as it is (its triggers are right either way, this only spares the work)
        self._conn.execute("PRAGMA recursive_triggers = OFF")
        self._conn.execute(f"PRAGMA cache_size = -{_APPLY_CACHE_KIB}")
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: store schema version {version}, this gate knows "
                             f"{SCHEMA_VERSION}")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                for statement in _WORD_SEARCH:
                    self._conn.execute(statement)
            elif version < SCHEMA_VERSION:
                for name, function in _MIGRATION_FUNCTIONS.items():
                    self._conn.create_function(name, 1, function, deterministic=True)
                for step in range(version, SCHEMA_VERSION):
                    for statement in _MIGRATIONS[step]:
                        self._conn.execute(statement)
                log.info("feed store %s: schema version %d -> %d", self.path, version,
                         SCHEMA_VERSION)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def close(self) -> None:
        self._conn.close()

    def _rollback(self) -> None:
        """Roll the open transaction back, if SQLite has not already (it does by itself on
        some errors: disk full, I/O error), never hiding the error being handled."""
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.warning("feed store %s: rollback failed (%s)", self.path, exc)

    def _store_error(self, what: str, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"{self.path}: cannot {what}: {exc} (SQLite "
                          f"{getattr(exc, 'sqlite_errorname', type(exc).__name__)})")

    def __enter__(self) -> FeedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the decision core's view -------------------------------------------------------

    def min_valid_generation(self, event: str, ticket_id: str) -> int | None:
        """The lowest generation still valid, CANCELLED, or None when nothing is revoked."""
        row = self._conn.execute(_MIN_VALID, (event, ticket_id)).fetchone()
        return None if row is None else int(row[0])

    # --- the steward's lookups ------------------------------------------------------------

    def manifest_entry(self, event: str, ticket_id: str) -> ManifestEntry | None:
        row = self._conn.execute(
            f"SELECT {_MANIFEST_COLUMNS} FROM manifest WHERE event = ? AND ticket_id = ?",
            (event, ticket_id)).fetchone()
        return None if row is None else _entry(row)

    def lookup(self, event: str, query: str, *, limit: int = 10) -> tuple[Candidate, ...]:
        """Manifest entries matching `query`, best first (see `search`)."""
        return self.search(event, query, limit=limit).candidates

    def search(self, event: str, query: str, *, limit: int = 10,
               deadline: float | None = None) -> LookupResult:
        """Manifest entries matching `query`, best first: the ticket id, the order
        reference, the holder name, a name starting with the query, then names holding
        every word of the query as the start of a word. Case and accents are ignored (the
        ticket id through its own NOCASE index).

        Every query is an index search (never a scan of the manifest), and all of them
        together stop at `deadline` (`time.monotonic()`; by default `LOOKUP_BUDGET_S` from
        now): what was found by then is answered, marked truncated."""
        if limit < 1:
            return LookupResult((), truncated=False)
        found = _Found(event, limit, time.monotonic() + LOOKUP_BUDGET_S
                       if deadline is None else deadline)
        self._conn.set_progress_handler(found.over_time, _PROGRESS_STEPS)
        try:
            if not self._search_exact(found, query):
                self._search_words(found, fold(query))
        finally:
            self._conn.set_progress_handler(None, 0)
        return LookupResult(tuple(found.candidates.values()), truncated=found.truncated)

    def _search_exact(self, found: _Found, query: str) -> bool:
        """The exact stages, each one search of its own index (INDEXED BY: the planner
        could otherwise walk the whole name index for the ORDER BY); True when over."""
        def select(index: str, where: str) -> str:
            return (f"SELECT {_MANIFEST_COLUMNS} FROM manifest INDEXED BY {index} "
                    f"WHERE event = ? AND {where} ORDER BY name_key, ticket_id LIMIT ?")

        event = found.event
        ticket_key = fold_ticket_id(query)
        if ticket_key and found.take(self._conn, MatchKind.TICKET_ID, select(
                "manifest_by_ticket", "ticket_id = ? COLLATE NOCASE"), (event, ticket_key)):
            return True
        key = fold(query)
        if not key:
            return True
        return found.take(self._conn, MatchKind.ORDER_REF,
                          select("manifest_by_order", "order_key = ?"), (event, key)) or \
            found.take(self._conn, MatchKind.NAME, select("manifest_by_name", "name_key = ?"),
                       (event, key)) or \
            found.take(self._conn, MatchKind.NAME_PREFIX,
                       select("manifest_by_name", "name_key >= ? AND name_key < ?"),
                       (event, key, key + "\U0010ffff"))

    def _search_words(self, found: _Found, key: str) -> None:
        """Names holding every word of `key` as the start of a word. The word index gives
        at most WORD_CANDIDATES entries holding each word's tokens as token prefixes (a
        superset), the exact rule is checked on those; more than that many in the index
        marks the answer truncated (ranked among the first ones only)."""
        words = [w for w in key.split(" ") if w]
        terms = [t for w in words for t in _TOKEN.findall(w)]
        if not terms:
            return  # nothing a name could be found by (only punctuation)
        match = " AND ".join('"' + t.replace('"', '""') + '"*' for t in terms)
        ids = found.rows(self._conn, MatchKind.NAME_WORDS,
                         "SELECT rowid FROM manifest_words WHERE manifest_words MATCH ? "
                         "LIMIT ?", (match, WORD_CANDIDATES + 1))
        if ids is None:
            return
        if len(ids) > WORD_CANDIDATES:
            found.truncated = True
        pattern = " AND ".join(["(' ' || m.name_key) LIKE ? ESCAPE '\\'"] * len(words))
        columns = ", ".join(f"m.{c.strip()}" for c in _MANIFEST_COLUMNS.split(","))
        found.take(self._conn, MatchKind.NAME_WORDS,
                   # CROSS JOIN keeps this order: the planner would rather walk the whole
                   # name index of the event for the ORDER BY
                   f"SELECT {columns} FROM json_each(?) AS j "
                   "CROSS JOIN manifest_word_key AS k ON k.id = j.value "
                   "CROSS JOIN manifest AS m "
                   "ON m.event = k.event AND m.ticket_id = k.ticket_id "
                   f"WHERE k.event = ? AND {pattern} ORDER BY m.name_key, m.ticket_id "
                   "LIMIT ?",
                   (json.dumps([r[0] for r in ids[:WORD_CANDIDATES]]), found.event,
                    *("% " + _like_escape(w) + "%" for w in words)))

    # --- state ----------------------------------------------------------------------------

    def status(self, event: str) -> StoreStatus | None:
        """What the store holds for `event`, or None before its first feed."""
        row = self._conn.execute(
            "SELECT event, sequence, published_at, fetched_at, kid, revocations, manifest, "
            "ends_at, purged_at, index_sha256 FROM feed_state WHERE event = ?",
            (event,)).fetchone()
        return None if row is None else StoreStatus(*row)

    def events(self) -> tuple[str, ...]:
        return tuple(r[0] for r in self._conn.execute(
            "SELECT event FROM feed_state ORDER BY event"))

    def http_cache(self, event: str) -> HttpCache | None:
        row = self._conn.execute("SELECT url, etag, last_modified FROM http_cache "
                                 "WHERE event = ?", (event,)).fetchone()
        return None if row is None else HttpCache(*row)

    # --- writing --------------------------------------------------------------------------

    def apply(self, index: FeedIndex, files: Sequence[FeedFile], *, fetched_at: float,
              http_cache: HttpCache | None = None, repair: bool = False) -> StoreStatus:
        """Apply a verified index with its snapshot, or its chain of deltas from the
        store's sequence, or nothing (same sequence: the signed time moves on), in one
        transaction. Each file's size and SHA-256 are checked again as it streams in; any
        error rolls everything back and the store keeps what it had; an SQLite failure (disk
        full, read-only, locked) is raised as StoreError.

        `repair`: the index's own snapshot may replace a store already at its sequence
        (one found contradicting the signed counts of that sequence); checked the same
        way as any snapshot."""
        try:
            return self._apply(index, files, fetched_at=fetched_at, http_cache=http_cache,
                               repair=repair)
        except sqlite3.Error as exc:
            raise self._store_error(f"apply sequence {index.sequence} of event {index.event} "
                                    "(nothing changed)", exc) from None

    def _apply(self, index: FeedIndex, files: Sequence[FeedFile], *, fetched_at: float,
               http_cache: HttpCache | None, repair: bool) -> StoreStatus:
        event = index.event
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            _hook("begin")
            current = self.status(event)
            snapshot = _check_plan(index, files, current, repair=repair)
            rebuild = False
            if snapshot:
                rebuild = self._clear(event)
                _hook("cleared")
            purged = current is not None and current.purged_at is not None
            rows_seen = 0
            for feed_file in files:
                rows_seen += self._apply_file(event, feed_file, purged=purged,
                                              first=rows_seen == 0)
            if rebuild:
                for statement in (*_SEARCH_INDEXES.values(), *_WORD_SEARCH):
                    self._conn.execute(statement)
            revocations = self._count("revocation", event)
            manifest = self._count("manifest", event)
            if (revocations, manifest) != (index.revocations, index.manifest):
                # A snapshot, a chain of deltas or a re-signed index alike: what the store
                # would now hold must be what the publisher signed for this sequence.
                source = (index.snapshot.name if snapshot else
                          "+".join(f.ref.name for f in files) if files else INDEX_NAME)
                raise FeedCountError(
                    f"{source}: holds {revocations} revocations and {manifest} manifest "
                    f"entries at sequence {index.sequence}, the signed index says "
                    f"{index.revocations} and {index.manifest} (nothing applied)")
            self._conn.execute(
                "INSERT OR REPLACE INTO feed_state (event, sequence, published_at, "
                "fetched_at, kid, index_sha256, ends_at, revocations, manifest, purged_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event, index.sequence, index.published_at, fetched_at, index.kid,
                 index.sha256, index.ends_at, revocations, manifest,
                 None if current is None else current.purged_at))
            if http_cache is not None:
                self._conn.execute(
                    "INSERT OR REPLACE INTO http_cache (event, url, etag, last_modified) "
                    "VALUES (?, ?, ?, ?)",
                    (event, http_cache.url, http_cache.etag, http_cache.last_modified))
            _hook("before-commit")
            self._conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        _hook("committed")
        status = self.status(event)
        assert status is not None
        log.info("feed applied: event=%s sequence=%s->%d via=%s files=%d published_at=%d "
                 "revocations=%d manifest=%d", event,
                 "none" if current is None else current.sequence, index.sequence,
                 ("repair-snapshot" if repair else "snapshot") if snapshot
                 else "deltas" if files else "index-only",
                 len(files), index.published_at, revocations, manifest)
        return status

    def held_counts(self, event: str) -> tuple[int, int]:
        """(revocations, manifest entries) the store holds for `event`, counted now: equal
        to its status's counts unless the store was changed behind the feed's back."""
        return self._count("revocation", event), self._count("manifest", event)

    def forget_http_cache(self, event: str) -> None:
        """Drop the validators of `event`'s last index, so that the next request is
        unconditional (a store found inconsistent must not be hidden behind a 304)."""
        try:
            self._conn.execute("DELETE FROM http_cache WHERE event = ?", (event,))
        except sqlite3.Error as exc:
            raise self._store_error(f"drop the HTTP validators of {event}", exc) from None

    def mark_fetched(self, event: str, fetched_at: float) -> None:
        """Record a successful contact that brought nothing new (HTTP 304)."""
        try:
            self._conn.execute("UPDATE feed_state SET fetched_at = ? WHERE event = ?",
                               (fetched_at, event))
        except sqlite3.Error as exc:
            raise self._store_error(f"record the contact with the feed server of {event}",
                                    exc) from None

    def purge_personal_data(self, event: str, *, now: float) -> PurgeResult:
        """Erase every holder name of `event` now, and keep later feeds from bringing them
        back. Deleted content is overwritten (secure_delete) and the WAL truncated; an
        SQLite failure is raised as StoreError and leaves the names as they were."""
        try:
            return self._purge(event, now)
        except sqlite3.Error as exc:
            raise self._store_error(f"purge the holder names of {event}", exc) from None

    def _purge(self, event: str, now: float) -> PurgeResult:
        self._conn.execute("PRAGMA secure_delete = ON")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                names = self._conn.execute(
                    "UPDATE manifest SET holder_name = '', name_key = '' "
                    "WHERE event = ? AND holder_name != ''", (event,)).rowcount
                # The triggers took the names' words out of the word index; merging its
                # segments drops them from the file too (not only marked deleted).
                self._conn.execute("INSERT INTO manifest_words (manifest_words) "
                                   "VALUES ('optimize')")
                self._conn.execute("UPDATE feed_state SET purged_at = ? WHERE event = ?",
                                   (now, event))
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            truncated = self._truncate_wal(event)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA secure_delete = OFF")
        log.info("personal data purged: event=%s names=%d wal_truncated=%s", event, names,
                 truncated)
        return PurgeResult(event, names, now, truncated)

    def _truncate_wal(self, event: str) -> bool:
        """Copy every WAL frame into the main file and truncate the WAL, where the pages
        written before the purge (holder names included) otherwise live on. A reader still
        on an older snapshot keeps the checkpoint from completing (SQLite reports it busy):
        try a few times, waiting briefly each time, then warn. False if not truncated."""
        cause = "readers kept it busy"
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
            for _ in range(_CHECKPOINT_TRIES):
                busy, _frames, _copied = self._conn.execute(
                    "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    return True
        except sqlite3.Error as exc:
            cause = str(exc)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        log.warning("personal data purged from the store, but its WAL could not be "
                    "truncated (%s after %d tries): holder names of event %s may remain in "
                    "%s-wal until the next checkpoint", cause, _CHECKPOINT_TRIES, event,
                    self.path)
        return False

    def purge_due(self, *, now: float, after_seconds: float) -> tuple[PurgeResult, ...]:
        """Purge the holder names of every event that ended more than `after_seconds` ago."""
        try:
            due = [r[0] for r in self._conn.execute(
                "SELECT event FROM feed_state WHERE purged_at IS NULL AND ends_at IS NOT NULL "
                "AND ends_at + ? <= ?", (after_seconds, now))]
        except sqlite3.Error as exc:
            raise self._store_error("find the events due for purge", exc) from None
        return tuple(self.purge_personal_data(event, now=now) for event in due)

    def _clear(self, event: str) -> bool:
        """Delete the event's rows; True when the search indexes were dropped, to be
        built again after the bulk insert (far faster than a million random inserts)."""
        others = self._conn.execute("SELECT 1 FROM feed_state WHERE event != ? LIMIT 1",
                                    (event,)).fetchone()
        if others is not None:
            self._conn.execute("DELETE FROM revocation WHERE event = ?", (event,))
            self._conn.execute("DELETE FROM manifest WHERE event = ?", (event,))
            return False
        # The only event: whole-table deletes, and the indexes rebuilt in one pass.
        for name in _SEARCH_INDEXES:
            self._conn.execute(f"DROP INDEX {name}")
        for statement in _WORD_SEARCH_DROP:
            self._conn.execute(statement)
        self._conn.execute("DELETE FROM revocation")
        self._conn.execute("DELETE FROM manifest")
        return True

    def _count(self, table: str, event: str) -> int:
        row = self._conn.execute(f"SELECT count(*) FROM {table} WHERE event = ?",
                                 (event,)).fetchone()
        return int(row[0])

    def _apply_file(self, event: str, feed_file: FeedFile, *, purged: bool,
                    first: bool) -> int:
        ref = feed_file.ref
        try:
            raw = feed_file.path.open("rb")
        except OSError as exc:
            raise FeedFormatError(f"{ref.name}: cannot read the download: {exc.strerror}") \
                from None
        with raw:
            hashing = _HashingReader(raw)
            text = io.TextIOWrapper(io.BufferedReader(_OneGzipMember(hashing, ref.name),
                                                      buffer_size=_CHUNK),
                                    encoding="utf-8", newline="\n")
            counter = itertools.count(1)
            try:
                records = _counted(iter_records(text, ref, event), counter, hook=first)
                for op, group in itertools.groupby(records, key=lambda r: r[0]):
                    self._write(op, event, group, purged=purged)
                while hashing.read(_CHUNK):
                    pass
            except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
                raise FeedFormatError(f"{ref.name}: cannot be read as gzip UTF-8 text "
                                      f"({exc})") from None
        if hashing.size != ref.size or hashing.hexdigest() != ref.sha256:
            raise FeedHashError(f"{ref.name}: {hashing.size} bytes with SHA-256 "
                                f"{hashing.hexdigest()[:16]}..., the index says {ref.size} "
                                f"bytes and {ref.sha256[:16]}...")
        return next(counter) - 1

    def _write(self, op: Op, event: str, group: Iterable[Record], *, purged: bool) -> None:
        if op is Op.SET_REVOCATION:
            self._conn.executemany(_SET_REVOCATION,
                                   ((event, ticket_id, values[0]) for _, ticket_id, values
                                    in group))
        elif op is Op.SET_MANIFEST:
            self._conn.executemany(_SET_MANIFEST, _manifest_rows(event, group, purged))
        else:
            self._conn.executemany(_REMOVE[op], ((event, ticket_id) for _, ticket_id, _ in
                                                 group))


def _manifest_rows(event: str, group: Iterable[Record], purged: bool) -> Iterator[
        tuple[Any, ...]]:
    for _, ticket_id, values in group:
        generation, order_ref, holder, category, entrances, flags = values
        holder_text = "" if purged else str(holder)
        yield (event, ticket_id, generation, order_ref, holder_text, category, entrances,
               flags, fold(str(order_ref)), fold(holder_text))


def _counted(records: Iterator[Record], counter: Iterator[int], *, hook: bool) -> Iterator[
        Record]:
    for record in records:
        if next(counter) == 2 and hook:
            _hook("rows")
        yield record


def _check_plan(index: FeedIndex, files: Sequence[FeedFile],
                current: StoreStatus | None, *, repair: bool = False) -> bool:
    """Whether the files replace everything (a snapshot); refuse any plan that would move
    the store back, skip a sequence or mix a snapshot with deltas. `repair`: the index's
    snapshot at the store's own sequence, and nothing else."""
    have = 0 if current is None else current.sequence
    if index.sequence < have:
        raise FeedReplayError(f"feed of event {index.event} at sequence {index.sequence} is "
                              f"older than the store's {have}")
    if index.sequence - have > MAX_SEQUENCE_JUMP:
        raise FeedSequenceJumpError(
            f"feed of event {index.event}: sequence {index.sequence} is "
            f"{index.sequence - have} above the store's {have}, more than the "
            f"{MAX_SEQUENCE_JUMP} a feed may jump at once")
    if current is not None and index.published_at < current.published_at:
        raise FeedReplayError(f"feed of event {index.event} signed at {index.published_at}, "
                              f"before the store's {current.published_at}")
    if repair and (current is None or index.sequence != have or not files
                   or files[0].ref.kind is not FileKind.SNAPSHOT):
        raise FeedGapError(f"a repair replaces the store's own sequence {have} with the "
                           f"snapshot of that sequence, not sequence {index.sequence} "
                           "nor anything else")
    if not files:
        if index.sequence != have:
            raise FeedGapError(f"index at sequence {index.sequence} with no file to reach it "
                               f"from {have}")
        return False
    if files[0].ref.kind is FileKind.SNAPSHOT:
        if len(files) != 1 or files[0].ref != index.snapshot:
            raise FeedGapError("a snapshot is applied alone, and only the index's own")
        if index.sequence == have and not repair:
            raise FeedReplayError(f"store already at sequence {have}")
        return True
    expected = have
    for feed_file in files:
        ref = feed_file.ref
        if ref.kind is not FileKind.DELTA or ref.from_sequence != expected \
                or ref not in index.deltas:
            raise FeedGapError(f"delta {ref.name} does not continue from sequence {expected}")
        expected = ref.to_sequence
    if expected != index.sequence:
        raise FeedGapError(f"deltas end at sequence {expected}, the index is at "
                           f"{index.sequence}")
    return False


def _entry(row: Sequence[Any]) -> ManifestEntry:
    return ManifestEntry(row[0], row[1], row[2], row[3], row[4],
                         frozenset(int(e) for e in row[5].split(",")), Flag(row[6]))


_TOKEN = re.compile(r"[^\W_]+")
"""What the word index (FTS5 unicode61) takes as one token: a run of letters and digits."""


def _like_escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _hook(point: str) -> None:
    if _test_hook is not None:
        _test_hook(point)


class _OneGzipMember(io.RawIOBase):
    """The decompressed bytes of a gzip stream holding exactly one member (RFC 1952):
    a second member, zero padding or any other byte after the first is refused."""

    def __init__(self, raw: io.RawIOBase, name: str) -> None:
        self._raw = raw
        self._name = name
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = len(buffer)
        while not self._ended and wanted:
            if self._inflate.eof:
                self._ended = True
                if self._inflate.unused_data or self._raw.read(1):  # b"" at the end
                    raise FeedFormatError(f"{self._name}: bytes after the end of the gzip "
                                          "member (a feed file is one gzip member)")
                break
            if not self._pending:
                self._pending = self._raw.read(_CHUNK) or b""
                if not self._pending:
                    raise EOFError("the file ends inside the gzip member (truncated?)")
            out = self._inflate.decompress(self._pending, wanted)
            self._pending = self._inflate.unconsumed_tail
            if out:
                buffer[:len(out)] = out
                return len(out)
        return 0


class _HashingReader(io.RawIOBase):
    """A read-only stream that hashes and counts every byte read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._hash.update(data)
        self.size += n
        return n

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def open_view(path: Path, *, event: str, shared: bool = False) -> FeedStore:
    """The store as the decision core's revocation view, for a gate serving `event`.

    Refuses (StoreError) a store that does not exist or holds no feed of `event` yet: a
    gate configured for feeds must not silently decide as if nothing were revoked.
    """
    if not Path(path).is_file():
        raise StoreError(f"feeds.store {path}: no feed store yet (run `gate sync` first)")
    store = FeedStore.open(path, shared=shared)
    if store.status(event) is None:
        store.close()
        raise StoreError(f"feeds.store {path}: no feed of event {event!r} yet "
                         "(run `gate sync` first)")
    return store
