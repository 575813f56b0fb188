"""The journal: every decision, durably, in SQLite (WAL, synchronous FULL).

An admission is committed (and fsynced) *before* the lock opens. Its passage outcome
follows: ``passed`` when the sensor saw the person through, ``voided`` at the timeout
(the ticket can be used again), ``exited`` when an exit gate recorded them going out.
The admission's ``at`` is the decision's time; ``released_at``, written with the outcome,
is when the lock opened for it (later than ``at`` when the visitor was decided while the
person before them was still passing; empty for an admission voided before its release).
An admission whose outcome was never written (the process died with the lock open)
stays ``open`` and counts as inside: after a crash nobody gets in twice.

A partial unique index makes "admitted twice" impossible at the database level: at most
one admission per (event, ticket) may be ``open`` or ``passed`` at any time.

The journal is also the gate's admissions view for anti-passback, and the queue of what
is still to be uploaded to the platform (``uploads``: what was uploaded survives restarts).
Admissions made at the venue's other gates, learnt through the mesh (portique/runtime/mesh/), sit in
``peer_admissions`` beside this gate's own, so the unique index above stays this gate's
guarantee; anti-passback reads both.

Every record is also a leaf of the gate's Merkle tree (portique/runtime/ledger.py,
docs/journal.md), written here in the record's own transaction (`_leaf`: every statement
below that writes a record writes its leaf next); `checkpoint`
signs the tree head (a C2SP checkpoint) with the gate's key, at a cadence and before
every upload, so that an edit of the file afterwards shows (`gate journal verify`).
"""

from __future__ import annotations

import base64
import contextlib
import enum
import errno
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.base.configschema import setting
from portique.base.errors import GateError
from portique.runtime import ledger, tlog
from portique.ticket.decision import Decision
from portique.ticket.reasons import Reason, Verdict
from portique.ticket.rules import Stay, stays_of
from portique.ticket.views import Admission

log = logging.getLogger("portique.runtime.journal")

FILE_MODE = 0o640
"""The journal holds who came in when: never readable by others (less under systemd's
UMask=0077)."""
CATCH_UP_AFTER = 4096
"""Committed leaves kept in memory for the tree at most: beyond that many the tree takes
them at once (a checkpoint, a proof or an upload does otherwise; a gate with no key to
sign with asks for none of those)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    scan_id     TEXT PRIMARY KEY,
    at          REAL NOT NULL,
    gate        TEXT NOT NULL,
    event       TEXT,
    ticket_id   TEXT,
    generation  INTEGER,
    verdict     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    method      TEXT NOT NULL,
    latency_ms  REAL,
    steward     TEXT,
    note        TEXT,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS decisions_ticket ON decisions (event, ticket_id, at);
CREATE INDEX IF NOT EXISTS decisions_at ON decisions (at);
CREATE TABLE IF NOT EXISTS admissions (
    scan_id     TEXT PRIMARY KEY REFERENCES decisions (scan_id),
    event       TEXT NOT NULL,
    ticket_id   TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    gate        TEXT NOT NULL,
    at          REAL NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('open', 'passed', 'voided', 'exited')),
    updated_at  REAL NOT NULL,
    released_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS admissions_one_inside
    ON admissions (event, ticket_id) WHERE state IN ('open', 'passed');
CREATE INDEX IF NOT EXISTS admissions_ticket ON admissions (event, ticket_id, at);
CREATE TABLE IF NOT EXISTS gate_events (
    at          REAL NOT NULL,
    gate        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    steward     TEXT,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS uploads (
    scan_id     TEXT PRIMARY KEY REFERENCES decisions (scan_id),
    state       TEXT,
    uploaded_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS peer_admissions (
    gate        TEXT NOT NULL,
    scan_id     TEXT NOT NULL,
    event       TEXT NOT NULL,
    ticket_id   TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    at          REAL NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('admitted', 'voided', 'exited')),
    updated_at  REAL NOT NULL,
    PRIMARY KEY (gate, scan_id)
);
CREATE INDEX IF NOT EXISTS peer_admissions_ticket ON peer_admissions (event, ticket_id, at);
"""


_ADD_LEAF = "INSERT INTO journal_leaves (idx, kind, ref, body) VALUES (?, ?, ?, ?)"
_NEXT_LEAF = "SELECT COALESCE(MAX(idx), -1) + 1 FROM journal_leaves"
_STATE_RETURNING = " RETURNING scan_id, state, updated_at"

# A record waits for upload when it never went, or its admission state changed since.
_PENDING = "u.scan_id IS NULL OR (a.state IS NOT NULL AND u.state IS NOT a.state)"


def _waits(scan: str, *, decision: str | None = None, state: str | None = None,
           upload: tuple[str, str] | None = None) -> str:
    """SQL: 1 when decision `scan` waits for upload, else 0 (the rule of _PENDING). Each
    keyword gives the SQL of what a trigger knows better than the tables: the decision's
    presence, the admission's state, the upload row's (presence, state)."""
    present = decision or f"EXISTS (SELECT 1 FROM decisions WHERE scan_id = {scan})"
    a_state = state or f"(SELECT state FROM admissions WHERE scan_id = {scan})"
    uploaded, u_state = upload or (f"EXISTS (SELECT 1 FROM uploads WHERE scan_id = {scan})",
                                   f"(SELECT state FROM uploads WHERE scan_id = {scan})")
    return (f"({present} AND (NOT {uploaded} OR ({a_state} IS NOT NULL AND "
            f"{u_state} IS NOT {a_state})))")


def _bump(name: str, delta: str) -> str:
    return (f"INSERT INTO journal_counts (name, n) VALUES ({name}, {delta}) "
            "ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;")


def _backlog(after: str, before: str) -> str:
    return _bump("'backlog'", f"{after} - {before}")


# What `status` shows is counted once at open, then kept by these (TEMP: this connection's
# own, in memory, so nothing in the file changes) on every write of this connection,
# whichever component makes it (the mesh writes through `transaction`). Each trigger adds
# the change it makes: the decision's verdict, the admission's state, and whether the
# decision waits for upload, after the write minus before it.
_COUNTERS = (
    "CREATE TEMP TABLE journal_counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL) "
    "WITHOUT ROWID",
    "CREATE TEMP TRIGGER count_decision_insert AFTER INSERT ON main.decisions BEGIN "
    + _bump("'verdict:' || NEW.verdict", "1")
    + _backlog(_waits("NEW.scan_id"), "0") + " END",
    "CREATE TEMP TRIGGER count_decision_delete AFTER DELETE ON main.decisions BEGIN "
    + _bump("'verdict:' || OLD.verdict", "-1")
    + _backlog("0", _waits("OLD.scan_id", decision="1")) + " END",
    "CREATE TEMP TRIGGER count_decision_verdict AFTER UPDATE OF verdict ON main.decisions "
    "BEGIN " + _bump("'verdict:' || OLD.verdict", "-1")
    + _bump("'verdict:' || NEW.verdict", "1") + " END",
    "CREATE TEMP TRIGGER count_admission_insert AFTER INSERT ON main.admissions BEGIN "
    + _bump("'state:' || NEW.state", "1")
    + _backlog(_waits("NEW.scan_id"), _waits("NEW.scan_id", state="NULL")) + " END",
    "CREATE TEMP TRIGGER count_admission_delete AFTER DELETE ON main.admissions BEGIN "
    + _bump("'state:' || OLD.state", "-1")
    + _backlog(_waits("OLD.scan_id"), _waits("OLD.scan_id", state="OLD.state")) + " END",
    "CREATE TEMP TRIGGER count_admission_state AFTER UPDATE OF state ON main.admissions "
    "BEGIN " + _bump("'state:' || OLD.state", "-1") + _bump("'state:' || NEW.state", "1")
    + _backlog(_waits("NEW.scan_id"), _waits("NEW.scan_id", state="OLD.state")) + " END",
    "CREATE TEMP TRIGGER count_upload_insert AFTER INSERT ON main.uploads BEGIN "
    + _backlog(_waits("NEW.scan_id"), _waits("NEW.scan_id", upload=("0", "NULL"))) + " END",
    "CREATE TEMP TRIGGER count_upload_delete AFTER DELETE ON main.uploads BEGIN "
    + _backlog(_waits("OLD.scan_id"), _waits("OLD.scan_id", upload=("1", "OLD.state")))
    + " END",
    "CREATE TEMP TRIGGER count_upload_state AFTER UPDATE OF state ON main.uploads BEGIN "
    + _backlog(_waits("NEW.scan_id"), _waits("NEW.scan_id", upload=("1", "OLD.state")))
    + " END",
)
_RECOUNT = (
    "DELETE FROM journal_counts",
    "INSERT INTO journal_counts (name, n) SELECT 'verdict:' || verdict, COUNT(*) "
    "FROM decisions GROUP BY verdict",
    "INSERT INTO journal_counts (name, n) SELECT 'state:' || state, COUNT(*) "
    "FROM admissions GROUP BY state",
    "INSERT INTO journal_counts (name, n) SELECT 'backlog', COUNT(*) FROM decisions d "
    f"LEFT JOIN admissions a USING (scan_id) LEFT JOIN uploads u USING (scan_id) "
    f"WHERE {_PENDING}",
)


@dataclass(frozen=True)
class JournalConfig:
    path: Path = setting(Path("/var/lib/portique/journal.sqlite"),
                         description="The journal's SQLite file (in the state directory)")
    key_file: Path | None = setting(None, description="The gate's Ed25519 private key that "
                                    "signs the journal's checkpoints (PEM, mode 0600); "
                                    "default: mesh.key_file, if the mesh is set up")
    checkpoint_interval_s: float = setting(60.0, description="Seconds between two signed "
                                           "checkpoints of the journal's tree (one is also "
                                           "signed before every upload)",
                                           minimum=1.0, maximum=86400.0)


class Method(enum.StrEnum):
    """How a decision came about."""

    CAMERA = "camera"
    STEWARD = "steward"
    PAPER = "paper"
    """A steward settled a printed confirmation."""


class AdmissionState(enum.StrEnum):
    OPEN = "open"
    PASSED = "passed"
    VOIDED = "voided"
    EXITED = "exited"


class JournalError(GateError, OSError):
    """The journal cannot be written: no admission may happen without a durable record."""


class AlreadyInsideError(GateError, ValueError):
    """The ticket already has an admission in force (caught by the database itself)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One journalled decision, as read back."""

    scan_id: str
    at: float
    gate: str
    event: str | None
    ticket_id: str | None
    generation: int | None
    verdict: Verdict
    reason: Reason
    method: Method
    latency_ms: float | None
    steward: str | None
    note: str | None
    detail: str
    admission_state: AdmissionState | None = None


def _why_unwritable(path: Path, exc: BaseException) -> str:
    try:
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
            return "the state directory is on a read-only file system"
    except OSError:
        pass
    return str(exc)


def _create_file(path: Path) -> tuple[int, int]:
    """Create (mode 0640) or open the journal file itself, never through a symbolic link;
    take read access from others if they have it. Returns its (st_dev, st_ino)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise JournalError(f"journal {path}: is a symbolic link: refused, journal.path must "
                           "name the file itself") from None
    try:
        st = os.fstat(fd)
        mode = st.st_mode & 0o7777
        if mode & 0o007:
            os.fchmod(fd, mode & ~0o007)
            log.warning("journal file was open to others, access removed path=%s "
                        "mode=%04o now=%04o", path, mode, mode & ~0o007)
    finally:
        os.close(fd)
    return st.st_dev, st.st_ino


def _add_released_at(db: sqlite3.Connection) -> None:
    """A journal written before admissions had `released_at` gets the column (empty)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(admissions)")}
    if "released_at" not in columns:
        db.execute("ALTER TABLE admissions ADD COLUMN released_at REAL")


class Journal:
    """The gate's durable record. Thread-safe: one connection behind a lock."""

    def __init__(self, path: Path, *, gate_id: str) -> None:
        self.path = path
        self.gate_id = gate_id
        self._lock = threading.RLock()
        self.unwritable: str | None = None
        """Why the journal cannot be written (then every admission is refused), or None."""
        self._identity: tuple[int, int] | None = None
        """(st_dev, st_ino) of the file open: the path must still name it at each admission."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            identity = _create_file(path)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                       timeout=5.0)
            self._identity = identity
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            _add_released_at(self._db)
            self._db.executescript(ledger.SCHEMA)
            self._check_same_file()
        except JournalError:
            with contextlib.suppress(AttributeError):
                self._db.close()
            raise
        except (sqlite3.Error, OSError) as exc:
            if not path.is_file():
                raise JournalError(f"journal {path}: cannot open: {exc}") from None
            # A state directory gone read-only: keep what is recorded readable (for
            # anti-passback and stewards), and refuse every admission with the cause.
            self.unwritable = f"journal {path}: cannot be written: {_why_unwritable(path, exc)}"
            try:
                self._db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True,
                                           check_same_thread=False, isolation_level=None)
                self._db.execute("SELECT COUNT(*) FROM decisions").fetchone()
            except sqlite3.Error as again:
                raise JournalError(f"journal {path}: cannot open: {again}") from None
        self.signer: tuple[str, Ed25519PrivateKey] | None = None
        """(key name, key) that signs checkpoints: the gate id and its key (set by wiring)."""
        self._next_leaf = 0
        """The index of the next leaf (set from the file by `_start_tree`)."""
        self._pending: list[tuple[int, str, str, bytes]] = []
        """(index, kind, ref, leaf hash) of the leaves written in the transaction open."""
        self._written: list[tuple[int, str, str, bytes]] = []
        """The same, of the leaves committed since the tree was last brought up to date (it
        takes them from here rather than from the file: `_catch_up`)."""
        self._from_file = False
        """Whether leaves of another connection were met: the tree then reads the file."""
        self._tree = tlog.Tree()
        self._leaves_of: dict[str, list[int]] = {}
        self.last_checkpoint: tlog.SignedCheckpoint | None = None
        self.last_checkpoint_at = 0.0
        self._start_counters()

    def _start_counters(self) -> None:
        """Count what `status` shows once, now, and keep the counts on every later write
        of this connection (call it again on any new connection)."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                try:
                    for statement in _COUNTERS:
                        self._db.execute(statement)
                    for statement in _RECOUNT:
                        self._db.execute(statement)
                    if self.unwritable is None:
                        self._start_tree()
                    else:
                        row = self._db.execute("SELECT value FROM journal_meta WHERE name = "
                                               "'origin'").fetchone()
                        self.origin = "" if row is None else str(row[0])
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path}: cannot count its records: {exc}") \
                    from None

    def _start_tree(self) -> None:
        """The log's origin (made once, with the journal) and, for a journal from before
        the tree, its records as the first leaves, in the order they were written."""
        db = self._db
        if db.execute("SELECT 1 FROM journal_meta WHERE name = 'origin'").fetchone() is None:
            origin = f"portique.journal/{self.gate_id}/{uuid.uuid4().hex[:16]}"
            db.execute("INSERT INTO journal_meta (name, value) VALUES ('origin', ?)",
                       (origin,))
        if db.execute("SELECT 1 FROM journal_leaves LIMIT 1").fetchone() is None:
            n = 0
            for row in db.execute(f"SELECT {', '.join(ledger.DECISION_FIELDS)} FROM decisions "
                                  "ORDER BY rowid").fetchall():
                admission = db.execute(f"SELECT {', '.join(ledger.ADMISSION_FIELDS)} FROM "
                                       "admissions WHERE scan_id = ?", (row[0],)).fetchone()
                if admission is not None and ledger.repeats(admission, row):
                    n = self._backfill(n, "admit", row[0], (*row, *admission[6:8]))
                    continue
                n = self._backfill(n, "decision", row[0], row)
                if admission is not None:
                    n = self._backfill(n, "admission", row[0], admission)
            for row in db.execute(f"SELECT {', '.join(ledger.GATE_EVENT_FIELDS)} FROM "
                                  "gate_events ORDER BY rowid").fetchall():
                n = self._backfill(n, "gate_event", str(row[0]), row)
        self.origin = str(db.execute(
            "SELECT value FROM journal_meta WHERE name = 'origin'").fetchone()[0])
        self._next_leaf = int(db.execute(_NEXT_LEAF).fetchone()[0])

    def _backfill(self, n: int, kind: str, ref: str, row: tuple[Any, ...]) -> int:
        body = ledger.leaf_bytes(kind, n, row)
        self._db.execute("INSERT INTO journal_leaves (idx, kind, ref, body) VALUES "
                         "(?, ?, ?, ?)", (n, kind, ref, body))
        return n + 1

    # --- the tree -----------------------------------------------------------------------

    def _leaf(self, db: sqlite3.Connection, kind: str, ref: str, values: Sequence[Any]) -> None:
        """The leaf of a record just written, at the next index, in the record's
        transaction (under the lock; `_write` takes the index back on a rollback)."""
        index = self._next_leaf
        body = ledger.leaf_bytes(kind, index, values)
        try:
            db.execute(_ADD_LEAF, (index, kind, ref, body))
        except sqlite3.IntegrityError:
            # Leaves this connection did not write (another connection on the file): the
            # next index is after the last leaf there is, and the tree is brought up to
            # date from the file.
            index = int(db.execute(_NEXT_LEAF).fetchone()[0])
            body = ledger.leaf_bytes(kind, index, values)
            db.execute(_ADD_LEAF, (index, kind, ref, body))
            self._from_file = True
        self._pending.append((index, kind, ref, tlog.leaf_hash(body)))
        self._next_leaf = index + 1

    def _state_leaves(self, db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> None:
        """Run an UPDATE of admissions' state (ending in RETURNING scan_id, state,
        updated_at) and write a `state` leaf for every admission it changed."""
        for scan_id, state, updated_at in db.execute(sql, args).fetchall():
            self._leaf(db, "state", scan_id, (scan_id, state, updated_at))

    def exit_admissions(self, db: sqlite3.Connection, event: str, ticket_id: str, *,
                        at: float, before: float | None = None) -> None:
        """In a write transaction (`transaction`): the ticket's admissions in force (made
        before `before`, if given) end as `exited` at `at`, each with its state leaf."""
        sql = ("UPDATE admissions SET state = 'exited', updated_at = ? WHERE event = ? AND "
               "ticket_id = ? AND state IN ('open', 'passed')")
        args: tuple[Any, ...] = (float(at), event, ticket_id)
        if before is not None:
            sql, args = sql + " AND at < ?", (*args, before)
        self._state_leaves(db, sql + _STATE_RETURNING, args)

    def _catch_up(self) -> None:
        """Bring the in-memory tree (and which leaves are about which decision) up to the
        leaves written (under the lock): from the hashes of the leaves this connection
        committed, when they follow the tree's last leaf one by one, else from the file."""
        written, self._written = self._written, []
        size = self._tree.size
        if written and not self._from_file and written[0][0] == size:  # one by one: `_leaf`
            self._tree.extend([h for _, _, _, h in written])
            for idx, kind, ref, _ in written:
                if kind != "gate_event":
                    self._leaves_of.setdefault(ref, []).append(idx)
            return
        self._from_file = False
        rows = self._db.execute(
            "SELECT idx, kind, ref, body FROM journal_leaves WHERE idx >= ? ORDER BY idx",
            (self._tree.size,)).fetchall()
        if not rows:
            return
        self._tree.extend([tlog.leaf_hash(bytes(body)) for _, _, _, body in rows])
        leaves_of = self._leaves_of
        for idx, kind, ref, _ in rows:
            if kind != "gate_event":
                leaves_of.setdefault(str(ref), []).append(int(idx))

    def tree_head(self) -> tlog.Checkpoint:
        with self._lock:
            self._catch_up()
            return tlog.Checkpoint(self.origin, self._tree.size, self._tree.root())

    def checkpoint(self, *, at: float, force: bool = False) -> tlog.SignedCheckpoint | None:
        """Sign the tree head and keep it in the journal (None: no key, or nothing new
        since the last one unless `force`)."""
        if self.signer is None or self.unwritable is not None:
            return None
        name, key = self.signer
        with self._lock:
            head = self.tree_head()
            last = self._db.execute("SELECT size, note FROM journal_checkpoints ORDER BY "
                                    "size DESC LIMIT 1").fetchone()
            if last is not None and last[0] == head.size and not force:
                self.last_checkpoint = tlog.parse_checkpoint(bytes(last[1]))
                self.last_checkpoint_at = at
                return self.last_checkpoint
            signed = tlog.sign_checkpoint(head, name, key)
            with self._write("a checkpoint") as db:
                db.execute("INSERT OR IGNORE INTO journal_checkpoints (size, at, note) "
                           "VALUES (?, ?, ?)", (head.size, at, signed.encode()))
            self.last_checkpoint, self.last_checkpoint_at = signed, at
        log.info("journal checkpoint signed gate=%s size=%d", self.gate_id, head.size)
        return signed

    def add_cosignature(self, size: int, signature: tlog.Signature) -> bool:
        """Keep a peer's cosignature with this gate's checkpoint of `size` (checked by the
        caller). False when there is no such checkpoint."""
        with self._lock:
            row = self._db.execute("SELECT note FROM journal_checkpoints WHERE size = ?",
                                   (size,)).fetchone()
            if row is None:
                return False
            signed = tlog.parse_checkpoint(bytes(row[0])).with_signature(signature)
            with self._write("a cosignature") as db:
                db.execute("UPDATE journal_checkpoints SET note = ? WHERE size = ?",
                           (signed.encode(), size))
        return True

    def checkpoints(self, *, since_size: int = 0) -> list[tlog.SignedCheckpoint]:
        with self._lock:
            rows = self._db.execute("SELECT note FROM journal_checkpoints WHERE size >= ? "
                                    "ORDER BY size", (since_size,)).fetchall()
        return [tlog.parse_checkpoint(bytes(r[0])) for r in rows]

    def proofs(self, scan_ids: list[str], size: int) -> dict[str, list[dict[str, Any]]]:
        """For each decision, its leaves in the tree of `size` leaves: index, bytes and
        inclusion proof (docs/journal.md, "Proofs in an upload")."""
        indexes = self.leaf_indexes(scan_ids)
        out: dict[str, list[dict[str, Any]]] = {}
        with self._lock:
            self._catch_up()
            for scan_id, leaves in indexes.items():
                out[scan_id] = []
                for idx in leaves:
                    if idx >= size:
                        continue
                    body = self._db.execute("SELECT body FROM journal_leaves WHERE idx = ?",
                                            (idx,)).fetchone()[0]
                    out[scan_id].append({
                        "index": idx, "leaf": base64.b64encode(bytes(body)).decode(),
                        "proof": [base64.b64encode(h).decode()
                                  for h in self._tree.inclusion_proof(idx, size)]})
        return out

    def consistency(self, old: int, new: int) -> list[bytes]:
        with self._lock:
            self._catch_up()
            return self._tree.consistency_proof(old, new)

    def meta(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM journal_meta WHERE name = ?",
                                   (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        with self._write("the journal's own state") as db:
            db.execute("INSERT INTO journal_meta (name, value) VALUES (?, ?) ON CONFLICT "
                       "(name) DO UPDATE SET value = excluded.value", (name, value))

    def leaf_indexes(self, scan_ids: list[str]) -> dict[str, list[int]]:
        """The leaves (indexes) about each of these decisions: its decision, admission and
        state leaves."""
        with self._lock:
            self._catch_up()
            return {s: list(self._leaves_of.get(s, ())) for s in scan_ids}

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT n FROM journal_counts WHERE name = ?",
                               (name,)).fetchone()
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _check_same_file(self) -> None:
        """JournalError unless the journal's path still names the file open (one stat).

        Moved, replaced or deleted under a running gate, the open file would take the
        admissions while the path, opened at the next start, knows none of them: the
        same tickets would be admitted again.
        """
        if self._identity is None:
            return
        try:
            st = os.stat(self.path)
            now = "another file is there now"
        except FileNotFoundError:
            st, now = None, "no file is there now"
        except OSError as exc:
            st, now = None, f"it cannot be read ({exc.strerror})"
        if st is None or (st.st_dev, st.st_ino) != self._identity:
            raise JournalError(
                f"journal {self.path}: the journal file open is no longer at this path "
                f"(moved, replaced or deleted while the gate ran; {now}): nobody is "
                "admitted until it is put back (a restart would start an empty journal "
                "that does not know who is inside)")

    @contextmanager
    def _write(self, what: str, *, same_file: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction, committed (and fsynced) on exit, rolled back on any error.
        `same_file`: checked, right before the commit, that the path still names the file
        written (an admission)."""
        if self.unwritable is not None:
            raise JournalError(f"{self.unwritable}; {what} not recorded")
        with self._lock:
            next_leaf, self._pending = self._next_leaf, []
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    if same_file:
                        self._check_same_file()
                    self._db.execute("COMMIT")
                    self._written.extend(self._pending)
                except BaseException:
                    self._next_leaf = next_leaf  # the leaves written are rolled back too
                    if self._db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path}: cannot record {what}: {exc}") \
                    from None
            if len(self._written) >= CATCH_UP_AFTER:
                self._catch_up()  # a gate that never signs: its tree in step all the same

    @contextmanager
    def transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction for a component that keeps its own tables in the journal
        (the mesh); committed on exit. JournalError when the journal cannot be written.
        A record it changes needs its leaf: admissions end through `exit_admissions`."""
        with self._write(what) as db:
            yield db

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads, under the journal's lock."""
        with self._lock:
            yield self._db

    # --- writing ----------------------------------------------------------------------

    def record(self, decision: Decision, *, method: Method = Method.CAMERA,
               latency_ms: float | None = None, steward: str | None = None,
               note: str | None = None) -> str:
        """Journal a decision that admits nobody (refuse, steward, exit refused...)."""
        scan_id = uuid.uuid4().hex
        with self._write("a decision") as db:
            values = self._insert(db, scan_id, decision, method, latency_ms, steward, note)
            self._leaf(db, "decision", scan_id, values)
            if decision.reason is Reason.EXIT and decision.previous is not None:
                self.exit_admissions(db, decision.previous.event,
                                     decision.previous.ticket_id, at=decision.at)
        return scan_id

    def admit(self, decision: Decision, *, method: Method = Method.CAMERA,
              latency_ms: float | None = None, steward: str | None = None,
              note: str | None = None) -> str:
        """Journal an admission, durably, before the lock may open; returns its scan id.

        Raises AlreadyInsideError when the ticket already has an admission in force and
        JournalError when it cannot be written: in both cases the lock must stay closed.
        """
        ticket = decision.ticket
        if ticket is None or decision.verdict is not Verdict.ADMIT:
            raise ValueError("only an admit decision about a ticket can be an admission")
        scan_id = uuid.uuid4().hex
        try:
            with self._write("an admission", same_file=True) as db:
                if decision.auto_exit is not None:
                    # The session's automatic exit let the holder out: the earlier stay
                    # ends then, in the same transaction as the re-entry.
                    self.exit_admissions(db, ticket.event, ticket.ticket_id,
                                         at=decision.auto_exit, before=decision.auto_exit)
                values = self._insert(db, scan_id, decision, method, latency_ms, steward, note)
                at = values[1]
                db.execute(
                    "INSERT INTO admissions (scan_id, event, ticket_id, generation, gate, at, "
                    "state, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?)",
                    (scan_id, ticket.event, ticket.ticket_id, ticket.generation, self.gate_id,
                     at, at))
                self._leaf(db, "admit", scan_id, (*values, "open", at))
        except sqlite3.IntegrityError:
            raise AlreadyInsideError(f"ticket {ticket.ticket_id} of {ticket.event} is already "
                                "admitted") from None
        return scan_id

    def passage(self, scan_id: str, *, passed: bool, at: float,
                released_at: float | None = None) -> None:
        """The passage outcome of an open admission: passed, or voided at the timeout.

        `released_at` is when the lock opened for it (the decision's time is the
        admission's `at`; a visitor decided while the lane was busy is released later).
        None for an admission voided before its release (the gate stopped first).
        """
        state = AdmissionState.PASSED if passed else AdmissionState.VOIDED
        with self._write("a passage") as db:
            self._state_leaves(db, "UPDATE admissions SET state = ?, updated_at = ?, "
                               "released_at = ? WHERE scan_id = ? AND state = 'open'"
                               + _STATE_RETURNING,
                               (state.value, float(at), released_at, scan_id))

    def _insert(self, db: sqlite3.Connection, scan_id: str, decision: Decision, method: Method,
                latency_ms: float | None, steward: str | None, note: str | None
                ) -> tuple[Any, ...]:
        """Write the decision row; returns its values (ledger.DECISION_FIELDS), as stored
        (times as floats: the columns are REAL)."""
        ticket = decision.ticket
        values = (scan_id, float(decision.at), self.gate_id,
                  None if ticket is None else ticket.event,
                  None if ticket is None else ticket.ticket_id,
                  None if ticket is None else ticket.generation,
                  decision.verdict.value, decision.reason.value, method.value,
                  None if latency_ms is None else float(latency_ms), steward, note,
                  decision.detail)
        db.execute(
            "INSERT INTO decisions (scan_id, at, gate, event, ticket_id, generation, verdict, "
            "reason, method, latency_ms, steward, note, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        return values

    def gate_event(self, kind: str, *, at: float, steward: str | None = None,
                   detail: str = "") -> None:
        """Something that happened to the gate itself (fire alarm raised, free egress ended
        by a steward, a relay fault): kept with the decisions for the venue's record."""
        with self._write("a gate event") as db:
            values = (float(at), self.gate_id, kind, steward, detail)
            rowid = db.execute("INSERT INTO gate_events (at, gate, kind, steward, detail) "
                               "VALUES (?, ?, ?, ?, ?)", values).lastrowid
            self._leaf(db, "gate_event", str(rowid), (rowid, *values))

    def gate_events(self, *, limit: int = 100) -> list[tuple[float, str, str | None, str]]:
        """(time, kind, steward, detail), latest first."""
        with self._lock:
            rows = self._db.execute("SELECT at, kind, steward, detail FROM gate_events "
                                    "ORDER BY at DESC, rowid DESC LIMIT ?", (limit,)).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    # --- reading ----------------------------------------------------------------------

    def last_admission(self, event: str, ticket_id: str) -> Admission | None:
        """AdmissionsView: the ticket's latest admission not voided, here or at a peer gate.

        A peer's ``exited`` record (an exit gate saw the holder out) is an admission no
        longer inside, dated at the exit.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT generation, gate, at, state FROM ("
                "SELECT generation, gate, at, state, rowid AS r, 0 AS peer FROM admissions "
                "WHERE event = ? AND ticket_id = ? AND state != 'voided' UNION ALL "
                "SELECT generation, gate, at, state, rowid AS r, 1 AS peer FROM "
                "peer_admissions WHERE event = ? AND ticket_id = ? AND state != 'voided') "
                "ORDER BY at DESC, peer, r DESC LIMIT 1",
                (event, ticket_id, event, ticket_id)).fetchone()
        if row is None:
            return None
        return Admission(event, ticket_id, row[0], row[1], row[2], inside=row[3] != "exited")

    # Admissions and exits as the venue knows them. An admission: this gate's (not voided)
    # or another gate's (a peer record still `admitted`). An exit: an exit decision in
    # this journal, or another gate's `exited` record (the mesh also stores this gate's
    # own there: the scan id tells them apart).
    _ENTRIES = ("SELECT event, ticket_id, at, gate FROM admissions WHERE state != 'voided' "
                "{where} UNION ALL SELECT event, ticket_id, at, gate FROM peer_admissions "
                "WHERE state = 'admitted' {where}")
    _EXITS = ("SELECT event, ticket_id, at FROM decisions WHERE reason = 'EXIT' AND "
              "verdict = 'admit' {where} UNION SELECT event, ticket_id, at FROM "
              "peer_admissions WHERE state = 'exited' AND scan_id NOT IN (SELECT scan_id "
              "FROM decisions) {where}")

    def stays(self, event: str, ticket_id: str) -> tuple[Stay, ...]:
        """HistoryView: the ticket's admissions into `event` not voided, here and at the
        venue's other gates, each ended by the exit recorded after it (if any)."""
        where = "AND event = ? AND ticket_id = ?"
        with self._lock:
            entries = self._db.execute(self._ENTRIES.format(where=where),
                                       (event, ticket_id) * 2).fetchall()
            exits = self._db.execute(self._EXITS.format(where=where),
                                     (event, ticket_id) * 2).fetchall()
        return stays_of([(at, gate) for _, _, at, gate in entries], [at for *_, at in exits])

    def occupancy(self, cutoffs: dict[str, float | None]
                  ) -> dict[tuple[str, str], tuple[int, int, int]]:
        """(event, gate) -> (inside, entries, exits) for the sessions in `cutoffs`, over
        this gate's records and the venue's other gates' (the mesh); `gate` is the gate
        that admitted.

        entries: admissions not voided (an admission whose lock is open counts);
        inside: tickets whose latest stay (rules.stays_of) has no exit and began at or
        after the session's last automatic exit (`cutoffs[event]`, or None);
        exits = entries - inside: recorded exits, automatic ones, and stays a later
        admission ended. One read of the records; counted per ticket.
        """
        if not cutoffs:
            return {}
        where = f"AND event IN ({', '.join('?' for _ in cutoffs)})"
        events = tuple(cutoffs)
        with self._lock:
            entries = self._db.execute(self._ENTRIES.format(where=where),
                                       events * 2).fetchall()
            exits = self._db.execute(self._EXITS.format(where=where), events * 2).fetchall()
        admitted: dict[tuple[str, str], list[tuple[float, str]]] = {}
        for event, ticket_id, at, gate in entries:
            admitted.setdefault((event, ticket_id), []).append((at, gate))
        out_times: dict[tuple[str, str], list[float]] = {}
        for event, ticket_id, at in exits:
            out_times.setdefault((event, ticket_id), []).append(at)
        counts: dict[tuple[str, str], list[int]] = {}
        for (event, ticket_id), seen in admitted.items():
            stays = stays_of(seen, out_times.get((event, ticket_id), ()))
            for stay in stays:
                counts.setdefault((event, stay.gate), [0, 0])[0] += 1
            last, cutoff = stays[-1], cutoffs[event]
            if last.exited_at is None and (cutoff is None or last.at >= cutoff):
                counts[(event, last.gate)][1] += 1
        return {key: (inside, n, n - inside) for key, (n, inside) in counts.items()}

    def entries(self, *, limit: int = 100, event: str | None = None,
                ticket_id: str | None = None) -> list[Entry]:
        """Latest decisions first, optionally of one ticket."""
        where, args = "", []
        if ticket_id is not None:
            where, args = "WHERE d.event IS ? AND d.ticket_id = ?", [event, ticket_id]
        with self._lock:
            rows = self._db.execute(
                "SELECT d.scan_id, d.at, d.gate, d.event, d.ticket_id, d.generation, "
                "d.verdict, d.reason, d.method, d.latency_ms, d.steward, d.note, d.detail, "
                f"a.state FROM decisions d LEFT JOIN admissions a USING (scan_id) {where} "
                "ORDER BY d.at DESC, d.rowid DESC LIMIT ?", (*args, limit)).fetchall()
        return [Entry(r[0], r[1], r[2], r[3], r[4], r[5], Verdict(r[6]), Reason(r[7]),
                      Method(r[8]), r[9], r[10], r[11], r[12],
                      None if r[13] is None else AdmissionState(r[13])) for r in rows]

    def admission_states(self) -> dict[str, AdmissionState]:
        with self._lock:
            rows = self._db.execute("SELECT scan_id, state FROM admissions").fetchall()
        return {scan_id: AdmissionState(state) for scan_id, state in rows}

    def counts(self, *, since: float | None = None) -> dict[str, int]:
        """Decisions by verdict, plus admissions by state: all of them from the counts kept
        (no query over the records), or those made since a time."""
        if since is None:
            with self._lock:
                return {**{v.value: self._counter(f"verdict:{v.value}") for v in Verdict},
                        **{f"admissions_{s.value}": self._counter(f"state:{s.value}")
                           for s in AdmissionState}}
        with self._lock:
            verdicts = dict(self._db.execute(
                "SELECT verdict, COUNT(*) FROM decisions WHERE at >= ? GROUP BY verdict",
                (since,)).fetchall())
            states = dict(self._db.execute(
                "SELECT state, COUNT(*) FROM admissions WHERE at >= ? GROUP BY state",
                (since,)).fetchall())
        return {**{v.value: int(verdicts.get(v.value, 0)) for v in Verdict},
                **{f"admissions_{s.value}": int(states.get(s.value, 0))
                   for s in AdmissionState}}

    # --- upload queue -----------------------------------------------------------------

    def pending_upload(self, limit: int) -> list[dict[str, Any]]:
        """Decisions not uploaded yet, oldest first, as the upload format's records."""
        with self._lock:
            cursor = self._db.execute(
                "SELECT d.scan_id, d.at, d.gate, d.event, d.ticket_id, d.generation, "
                "d.verdict, d.reason, d.method, d.latency_ms, d.steward, d.note, "
                "a.state AS admission_state FROM decisions d "
                "LEFT JOIN admissions a USING (scan_id) LEFT JOIN uploads u USING (scan_id) "
                f"WHERE {_PENDING} ORDER BY d.at, d.rowid LIMIT ?", (limit,))
            names = [c[0] for c in cursor.description]
            rows = cursor.fetchall()
        return [dict(zip(names, row, strict=True)) for row in rows]

    def mark_uploaded(self, records: list[dict[str, Any]], *, at: float) -> None:
        """Remember that these records (as pending_upload gave them) reached the platform."""
        with self._write("an upload receipt") as db:
            db.executemany(
                "INSERT INTO uploads (scan_id, state, uploaded_at) VALUES (?, ?, ?) "
                "ON CONFLICT (scan_id) DO UPDATE SET state = excluded.state, "
                "uploaded_at = excluded.uploaded_at",
                [(r["scan_id"], r["admission_state"], at) for r in records])

    def upload_backlog(self) -> int:
        """How many records (new decisions, changed admission states) wait for upload,
        from the count kept: one read, however long the journal."""
        with self._lock:
            return self._counter("backlog")
