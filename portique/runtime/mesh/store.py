"""The mesh's tables in the gate's journal: what to publish, what was merged, conflicts.

* ``mesh_records``: every signed record this gate holds, its own (``published`` 0 until
  the broker acknowledged it: the outbox) and other gates', verbatim, so that any gate can
  re-send any record to a gate that lacks it.
* ``mesh_streams``: per (gate, incarnation), ``head`` (every record up to it is held) and
  ``top`` (the highest held): the summary a gate sends for anti-entropy.
* ``peer_admissions`` (created by the journal): the admissions the records describe, one
  row per (gate, scan id), read by anti-passback beside the gate's own ``admissions``.
* ``mesh_conflicts``: a ticket found in force at two gates from two different scans.
* ``mesh_quarantine``: this gate's journal rows that cannot be made into a record (a
  ticket id outside the tickets' rule, say): set aside with the cause, once, so that they
  never hold up the records after them. The other gates do not learn of them: an alarm.

The gate's own records are derived from its journal (``collect_own``), not from events:
an admission journalled just before a crash is still published after the restart.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.base.timeparse import format_time
from portique.runtime.journal import Journal
from portique.runtime.mesh.wire import (
    INCARNATION_BYTES,
    MeshMessageError,
    Record,
    State,
    Summary,
    sign_record,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS mesh_meta (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mesh_records (
    origin      TEXT NOT NULL,
    incarnation BLOB NOT NULL,
    seq         INTEGER NOT NULL,
    state       TEXT NOT NULL,
    scan_id     TEXT NOT NULL,
    event       TEXT NOT NULL,
    ticket_id   TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    at          REAL NOT NULL,
    made_at     REAL NOT NULL,
    received_at REAL NOT NULL,
    published   INTEGER NOT NULL DEFAULT 1,
    message     BLOB NOT NULL,
    PRIMARY KEY (origin, incarnation, seq)
);
CREATE INDEX IF NOT EXISTS mesh_records_scan ON mesh_records (scan_id, state);
CREATE INDEX IF NOT EXISTS mesh_records_outbox ON mesh_records (published) WHERE published = 0;
CREATE TABLE IF NOT EXISTS mesh_streams (
    origin      TEXT NOT NULL,
    incarnation BLOB NOT NULL,
    head        INTEGER NOT NULL,
    top         INTEGER NOT NULL,
    PRIMARY KEY (origin, incarnation)
);
CREATE TABLE IF NOT EXISTS mesh_quarantine (
    scan_id     TEXT NOT NULL,
    state       TEXT NOT NULL,
    event       TEXT,
    ticket_id   TEXT,
    at          REAL,
    reason      TEXT NOT NULL,
    found_at    REAL NOT NULL,
    PRIMARY KEY (scan_id, state)
);
CREATE TABLE IF NOT EXISTS mesh_conflicts (
    event        TEXT NOT NULL,
    ticket_id    TEXT NOT NULL,
    first_gate   TEXT NOT NULL,
    first_scan   TEXT NOT NULL,
    first_at     REAL NOT NULL,
    second_gate  TEXT NOT NULL,
    second_scan  TEXT NOT NULL,
    second_at    REAL NOT NULL,
    found_at     REAL NOT NULL,
    PRIMARY KEY (event, ticket_id, first_scan, second_scan)
);
"""


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Conflict:
    """One ticket admitted, and in force, at two gates from two different scans."""

    event: str
    ticket_id: str
    first_gate: str
    first_scan: str
    first_at: float
    second_gate: str
    second_scan: str
    second_at: float
    found_at: float

    def as_json(self) -> dict[str, object]:
        return {"event": self.event, "ticket_id": self.ticket_id,
                "first": {"gate": self.first_gate, "scan_id": self.first_scan,
                          "at": format_time(self.first_at)},
                "second": {"gate": self.second_gate, "scan_id": self.second_scan,
                           "at": format_time(self.second_at)},
                "found_at": format_time(self.found_at)}


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A journal row of this gate that no record can carry, and why."""

    scan_id: str
    state: State
    event: str | None
    ticket_id: str | None
    at: float | None
    reason: str
    found_at: float

    def as_json(self) -> dict[str, object]:
        return {"scan_id": self.scan_id, "state": self.state.label, "event": self.event,
                "ticket_id": self.ticket_id,
                "at": None if self.at is None else format_time(self.at),
                "reason": self.reason, "found_at": format_time(self.found_at)}


@dataclass(frozen=True, slots=True)
class Collected:
    """What one `collect_own` made: records to publish, rows set aside."""

    records: list[Outgoing]
    quarantined: list[Quarantined]


@dataclass
class MergeResult:
    new: list[Record]
    duplicates: int
    conflicts: list[Conflict]
    lacking: dict[tuple[str, bytes], int] = field(default_factory=dict)
    """Per stream with a new record beyond its head (a record before it is missing here):
    the highest such record."""

    @property
    def gap(self) -> bool:
        """Some new record lies beyond its stream's head."""
        return bool(self.lacking)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One of this gate's records waiting for the broker's acknowledgement."""

    seq: int
    message: bytes



_OWN_RECORD_SOURCES: tuple[tuple[State, str, str], ...] = (
    (State.ADMITTED, "admissions", "1"),
    (State.VOIDED, "admissions", "x.state = 'voided'"),
    (State.EXITED, "decisions", "x.reason = 'EXIT' AND x.verdict = 'admit'"),
)
"""Where this gate's own records come from: each state, its table and its condition."""


def _pending_query(table: str, state: State, condition: str) -> str:
    """This gate's rows of one state that are neither a mesh record yet nor quarantined
    (the table and condition are the constants above, never input)."""
    return (f"SELECT x.scan_id, x.event, x.ticket_id, x.generation, x.at FROM {table} x "
            f"WHERE x.gate = ? AND {condition} AND NOT EXISTS (SELECT 1 FROM mesh_records m "
            f"WHERE m.scan_id = x.scan_id AND m.state = '{state.name.lower()}' AND m.origin = ?) "
            f"AND NOT EXISTS (SELECT 1 FROM mesh_quarantine q WHERE q.scan_id = x.scan_id "
            f"AND q.state = '{state.name.lower()}') ORDER BY x.rowid")


class MeshStore:
    """The mesh's view of the journal. Every write is one journal transaction.

    The streams' heads and tops are also kept in memory (read at start, updated only once
    a transaction that changed them has committed): a merge and a summary read them there,
    not from ``mesh_streams``, which every transaction still keeps exactly."""

    def __init__(self, journal: Journal, *, gate_id: str, venue: str,
                 key: Ed25519PrivateKey) -> None:
        self.journal, self.gate_id, self.venue, self._key = journal, gate_id, venue, key
        with journal.transaction("the mesh tables") as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT value FROM mesh_meta WHERE key = 'incarnation'").fetchone()
            if row is None:
                incarnation = os.urandom(INCARNATION_BYTES)
                db.execute("INSERT INTO mesh_meta (key, value) VALUES ('incarnation', ?)",
                           (incarnation.hex(),))
            else:
                incarnation = bytes.fromhex(row[0])
            top = db.execute("SELECT MAX(seq) FROM mesh_records WHERE origin = ? AND "
                             "incarnation = ?", (gate_id, incarnation)).fetchone()[0]
            streams = {(str(o), bytes(i)): (int(h), int(t)) for o, i, h, t in db.execute(
                "SELECT origin, incarnation, head, top FROM mesh_streams")}
        self.incarnation = incarnation
        self._seq = int(top or 0)
        self._streams: dict[tuple[str, bytes], tuple[int, int]] = streams
        """Per (gate, incarnation): (head, top), as committed in ``mesh_streams``."""
        self._heads: tuple[tuple[str, bytes, int], ...] | None = None
        """`heads()` as last computed (None: a stream changed since)."""

    # --- this gate's own records ------------------------------------------------------

    def collect_own(self, *, now: float) -> Collected:
        """Make (and sign) a record for every journalled change not yet in the mesh.

        A row that no record can carry (`record_body` refuses it) is quarantined with the
        cause instead, and takes no sequence number: the records after it flow on, and
        the stream has no gap that would hold up every peer's head."""
        me = self.gate_id
        with self.journal.reading() as db:
            todo = [(state, row)
                    for state, table, condition in _OWN_RECORD_SOURCES
                    for row in db.execute(_pending_query(table, state, condition), (me, me))]
        if not todo:
            return Collected([], [])
        out: list[Outgoing] = []
        set_aside: list[Quarantined] = []
        with self.journal.transaction("mesh records") as db:
            seq = self._seq
            for state, (scan_id, event, ticket_id, generation, at) in todo:
                try:
                    record = Record(self.venue, me, self.incarnation, seq + 1, state,
                                    str(event), str(ticket_id), int(generation), str(scan_id),
                                    round(float(at) * 1000), round(now * 1000))
                    message = sign_record(record, self._key)
                except (MeshMessageError, TypeError, ValueError) as exc:
                    q = Quarantined(str(scan_id), state, _text(event), _text(ticket_id),
                                    None if at is None else float(at), str(exc), now)
                    db.execute("INSERT OR IGNORE INTO mesh_quarantine (scan_id, state, event, "
                               "ticket_id, at, reason, found_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (q.scan_id, state.label, q.event, q.ticket_id, q.at, q.reason,
                                now))
                    set_aside.append(q)
                    continue
                seq += 1
                self._insert(db, record, message, received_at=now, published=False)
                if state is State.EXITED:  # seen by this exit gate's own anti-passback too
                    self._apply(db, record, now)
                out.append(Outgoing(seq, message))
            if out:
                db.execute("INSERT INTO mesh_streams (origin, incarnation, head, top) "
                           "VALUES (?, ?, ?, ?) ON CONFLICT (origin, incarnation) DO UPDATE "
                           "SET head = excluded.head, top = excluded.top",
                           (me, self.incarnation, seq, seq))
        self._seq = seq  # once committed
        if out:
            with self.journal.reading():
                self._streams[(me, self.incarnation)] = (seq, seq)
                self._heads = None
        return Collected(out, set_aside)

    def outbox(self, *, limit: int = 10_000) -> list[Outgoing]:
        """This gate's records the broker has not acknowledged yet, oldest first."""
        with self.journal.reading() as db:
            rows = db.execute("SELECT seq, message FROM mesh_records WHERE published = 0 AND "
                              "origin = ? AND incarnation = ? ORDER BY seq LIMIT ?",
                              (self.gate_id, self.incarnation, limit)).fetchall()
        return [Outgoing(int(seq), bytes(message)) for seq, message in rows]

    def mark_published(self, seqs: Iterable[int]) -> None:
        with self.journal.transaction("mesh acknowledgements") as db:
            db.executemany("UPDATE mesh_records SET published = 1 WHERE origin = ? AND "
                           "incarnation = ? AND seq = ?",
                           [(self.gate_id, self.incarnation, s) for s in seqs])

    def outbox_size(self) -> int:
        with self.journal.reading() as db:
            (n,) = db.execute("SELECT COUNT(*) FROM mesh_records WHERE published = 0"
                              ).fetchone()
        return int(n)

    def outbox_oldest(self) -> float | None:
        """When the oldest record still waiting for the broker's acknowledgement was made."""
        with self.journal.reading() as db:
            (at,) = db.execute("SELECT MIN(made_at) FROM mesh_records WHERE published = 0"
                               ).fetchone()
        return None if at is None else float(at)

    def quarantine_count(self) -> int:
        with self.journal.reading() as db:
            (n,) = db.execute("SELECT COUNT(*) FROM mesh_quarantine").fetchone()
        return int(n)

    def quarantined(self, *, limit: int = 20) -> list[Quarantined]:
        """The rows set aside, newest first."""
        with self.journal.reading() as db:
            rows = db.execute("SELECT scan_id, state, event, ticket_id, at, reason, found_at "
                              "FROM mesh_quarantine ORDER BY found_at DESC, rowid DESC "
                              "LIMIT ?", (limit,)).fetchall()
        return [Quarantined(str(scan), State[state.upper()], event, ticket, at, str(reason),
                            float(found)) for scan, state, event, ticket, at, reason, found
                in rows]

    # --- other gates' records ---------------------------------------------------------

    def merge(self, records: list[tuple[Record, bytes]], *, now: float) -> MergeResult:
        """Add verified records (with their signed bytes) in one transaction: one commit
        for all the records that arrived together."""
        result = MergeResult([], 0, [])
        with self.journal.reading() as conn:  # the journal's lock, held throughout
            # Other gates' records can be learnt again from the venue (anti-entropy), so
            # their commit skips the fsync; nothing of this gate's own waits behind them
            # meanwhile, and FULL is back before the lock is released.
            conn.execute("PRAGMA synchronous=NORMAL")
            try:
                streams = self._merge(records, now, result)
                if streams:  # committed: the heads in memory follow at once
                    self._streams.update(streams)
                    self._heads = None
            finally:
                conn.execute("PRAGMA synchronous=FULL")
            for r in result.new:
                if self._streams[r.stream][0] < r.seq:
                    result.lacking[r.stream] = max(r.seq, result.lacking.get(r.stream, 0))
        return result

    def _merge(self, records: list[tuple[Record, bytes]], now: float,
               result: MergeResult) -> dict[tuple[str, bytes], tuple[int, int]]:
        """The streams' new (head, top), once the transaction has committed."""
        streams: dict[tuple[str, bytes], tuple[int, int]] = {}
        with self.journal.transaction("merged mesh records") as db:
            for record, message in records:
                if record.origin == self.gate_id and record.incarnation == self.incarnation:
                    result.duplicates += 1  # our own, already in `admissions`
                    continue
                stream = record.stream
                head, top = streams.get(stream) or self._streams.get(stream, (0, 0))
                if record.seq <= head:  # every record up to the head is held
                    result.duplicates += 1
                    continue
                if not self._insert(db, record, message, received_at=now, published=True):
                    result.duplicates += 1
                    continue
                streams[stream] = self._advance(db, record, head, max(top, record.seq))
                state = self._apply(db, record, now)
                result.new.append(record)
                if record.state is State.ADMITTED:
                    result.conflicts += self._find_conflicts(db, record, now, state)
            db.executemany("INSERT INTO mesh_streams (origin, incarnation, head, top) VALUES "
                           "(?, ?, ?, ?) ON CONFLICT (origin, incarnation) DO UPDATE SET "
                           "head = excluded.head, top = excluded.top",
                           [(o, i, h, t) for (o, i), (h, t) in streams.items()])
        return streams

    def _insert(self, db: sqlite3.Connection, r: Record, message: bytes, *, received_at: float,
                published: bool) -> bool:
        cursor = db.execute(
            "INSERT OR IGNORE INTO mesh_records (origin, incarnation, seq, state, scan_id, "
            "event, ticket_id, generation, at, made_at, received_at, published, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (r.origin, r.incarnation, r.seq, r.state.label, r.scan_id, r.event, r.ticket_id,
             r.generation, r.at_ms / 1000, r.made_ms / 1000, received_at, int(published),
             message))
        return cursor.rowcount == 1

    @staticmethod
    def _advance(db: sqlite3.Connection, r: Record, head: int, top: int) -> tuple[int, int]:
        """The stream's (head, top) once `r` (just inserted, beyond `head`) is held."""
        if r.seq != head + 1:
            return head, top  # a gap before it: the head stays
        head = r.seq
        if top > head:  # records beyond it are held: the head runs on over them
            following = db.execute("SELECT seq FROM mesh_records WHERE origin = ? AND "
                                   "incarnation = ? AND seq > ? ORDER BY seq",
                                   (r.origin, r.incarnation, head))
            for (seq,) in following:
                if seq != head + 1:
                    break
                head = seq
        return head, top

    def _apply(self, db: sqlite3.Connection, r: Record, now: float) -> str | None:
        """The admission the record describes, into ``peer_admissions`` (voided wins).
        Its state now if the row was written (inserted or changed), else None."""
        written = db.execute(
            "INSERT INTO peer_admissions (gate, scan_id, event, ticket_id, generation, at, "
            "state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (gate, scan_id) DO UPDATE SET state = excluded.state, "
            "updated_at = excluded.updated_at "
            "WHERE peer_admissions.state = 'admitted' AND excluded.state != 'admitted' "
            "RETURNING state",
            (r.origin, r.scan_id, r.event, r.ticket_id, r.generation, r.at_ms / 1000,
             r.state.label, now)).fetchall()
        if r.state is State.EXITED:
            # The holder went out through another gate: this gate's own admission of the
            # ticket is over too, so that re-entry here is possible (the partial unique
            # index counts only admissions in force).
            self.journal.exit_admissions(db, r.event, r.ticket_id, at=now,
                                         before=r.at_ms / 1000)
        return str(written[0][0]) if written else None

    @staticmethod
    def _find_conflicts(db: sqlite3.Connection, r: Record, now: float,
                        state: str | None) -> list[Conflict]:
        """`state`: the admission's state as `_apply` wrote it (None: it wrote nothing,
        the row was there already: read it)."""
        if state is None:
            (state,) = db.execute("SELECT state FROM peer_admissions WHERE gate = ? AND "
                                  "scan_id = ?", (r.origin, r.scan_id)).fetchone()
        if state != "admitted":
            return []  # voided (or exited) before we heard of the admission
        at = r.at_ms / 1000
        others = db.execute(
            "SELECT gate, scan_id, at FROM admissions WHERE event = ? AND ticket_id = ? "
            "AND state IN ('open', 'passed') AND scan_id != ? UNION ALL "
            "SELECT gate, scan_id, at FROM peer_admissions WHERE event = ? AND ticket_id = ? "
            "AND state = 'admitted' AND scan_id != ?",
            (r.event, r.ticket_id, r.scan_id, r.event, r.ticket_id, r.scan_id)).fetchall()
        found = []
        for gate, scan_id, other_at in others:
            low, high = min(at, other_at), max(at, other_at)
            (exits,) = db.execute(
                "SELECT COUNT(*) FROM peer_admissions WHERE event = ? AND ticket_id = ? AND "
                "state = 'exited' AND at > ? AND at < ?",
                (r.event, r.ticket_id, low, high)).fetchone()
            if exits:
                continue  # the holder went out in between: a re-entry, not a conflict
            # The same order at every gate: earlier first, then by gate id (never by the
            # random scan id), so all gates report one conflict the same way round.
            first, second = sorted([(other_at, gate, scan_id), (at, r.origin, r.scan_id)])
            conflict = Conflict(r.event, r.ticket_id, first[1], first[2], first[0],
                                second[1], second[2], second[0], now)
            cursor = db.execute(
                "INSERT OR IGNORE INTO mesh_conflicts (event, ticket_id, first_gate, "
                "first_scan, first_at, second_gate, second_scan, second_at, found_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conflict.event, conflict.ticket_id, conflict.first_gate, conflict.first_scan,
                 conflict.first_at, conflict.second_gate, conflict.second_scan,
                 conflict.second_at, conflict.found_at))
            if cursor.rowcount == 1:
                found.append(conflict)
        return found

    # --- anti-entropy -----------------------------------------------------------------

    def heads(self) -> tuple[tuple[str, bytes, int], ...]:
        """Per (gate, incarnation), in order: every record up to `head` is held here."""
        with self.journal.reading():
            if self._heads is None:
                self._heads = tuple((o, i, h) for (o, i), (h, _) in sorted(
                    self._streams.items()))
            return self._heads

    def head(self, stream: tuple[str, bytes]) -> int:
        """Every record of `stream` up to this one is held here (0: none)."""
        with self.journal.reading():
            return self._streams.get(stream, (0, 0))[0]

    def missing_for(self, summary: Summary, *, answers_for: Callable[[str], bool],
                    held_at: float | None = None, limit: int = 5000) -> list[bytes]:
        """Records this gate holds beyond what `summary` says its sender holds, in the
        streams of the gates `answers_for` accepts, and held here by `held_at` (when the
        summary arrived, on this gate's clock; None: every one): the re-send that fills
        its gaps. A record that reached this gate after the summary did is most likely on
        its way to the sender too (and if it is lost, the sender's next summary asks for
        it); this gate's own clock decides, so no gate's skew holds a record back."""
        held = float("inf") if held_at is None else held_at
        theirs = {(g, i): h for g, i, h in summary.heads}
        out: list[bytes] = []
        with self.journal.reading() as db:
            for (origin, incarnation), (_head, top) in sorted(self._streams.items()):
                have = theirs.get((origin, incarnation), 0)
                if top <= have or not answers_for(origin):
                    continue
                rows = db.execute("SELECT message FROM mesh_records WHERE origin = ? AND "
                                  "incarnation = ? AND seq > ? AND received_at <= ? ORDER BY "
                                  "seq LIMIT ?", (origin, incarnation, have, held,
                                                  limit - len(out))).fetchall()
                out += [bytes(m) for (m,) in rows]
                if len(out) >= limit:
                    break
        return out

    # --- reading ----------------------------------------------------------------------

    def conflicts(self, *, limit: int = 100) -> list[Conflict]:
        with self.journal.reading() as db:
            rows = db.execute("SELECT event, ticket_id, first_gate, first_scan, first_at, "
                              "second_gate, second_scan, second_at, found_at FROM "
                              "mesh_conflicts ORDER BY found_at DESC, rowid DESC LIMIT ?",
                              (limit,)).fetchall()
        return [Conflict(*row) for row in rows]

    def conflict_count(self) -> int:
        with self.journal.reading() as db:
            (n,) = db.execute("SELECT COUNT(*) FROM mesh_conflicts").fetchone()
        return int(n)

    def peer_counts(self) -> dict[str, tuple[int, float]]:
        """Per other gate: records held from it and when the last one arrived."""
        with self.journal.reading() as db:
            rows = db.execute("SELECT origin, COUNT(*), MAX(received_at) FROM mesh_records "
                              "WHERE origin != ? GROUP BY origin", (self.gate_id,)).fetchall()
        return {str(o): (int(n), float(t)) for o, n, t in rows}
