"""The counts `status` shows (upload backlog, decisions by verdict, admissions by state):
kept on every write, equal to a recount of the real journal file, and read without
going over the records."""

from __future__ import annotations

import random
import sqlite3
import uuid
from pathlib import Path

import pytest

from portique.runtime.journal import AlreadyInsideError, Journal
from portique.ticket.decision import Decision
from portique.ticket.reasons import Reason, Verdict
from portique.ticket.views import Admission, TicketKey

T0 = 1722877200.0
EVENT = "PAR24-ATH05"


def recount(path: Path) -> tuple[dict[str, int], int]:
    """(counts by verdict and admission state, upload backlog), counted afresh on the file
    by another connection."""
    with sqlite3.connect(path) as db:
        verdicts = dict(db.execute("SELECT verdict, COUNT(*) FROM decisions GROUP BY verdict"))
        states = dict(db.execute("SELECT state, COUNT(*) FROM admissions GROUP BY state"))
        (backlog,) = db.execute(
            "SELECT COUNT(*) FROM decisions d LEFT JOIN admissions a USING (scan_id) "
            "LEFT JOIN uploads u USING (scan_id) WHERE u.scan_id IS NULL OR "
            "(a.state IS NOT NULL AND u.state IS NOT a.state)").fetchone()
    counts = {v: int(verdicts.get(v, 0)) for v in ("admit", "refuse", "steward")}
    counts.update({f"admissions_{s}": int(states.get(s, 0))
                   for s in ("open", "passed", "voided", "exited")})
    return counts, int(backlog)


def seen(journal: Journal) -> tuple[dict[str, int], int]:
    return journal.counts(), journal.upload_backlog()


def test_counts_equal_a_recount_after_admissions_voids_exits_uploads_and_reopening(
        tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path, gate_id="1")
    rng = random.Random(5)
    inside: dict[str, str] = {}  # ticket -> scan id of its admission in force
    for n in range(300):
        at = T0 + n
        ticket = TicketKey(EVENT, f"T{rng.randrange(60):04d}", 0)
        roll = rng.random()
        if roll < 0.15 and ticket.ticket_id in inside:  # out through an exit gate
            journal.record(Decision(Verdict.ADMIT, Reason.EXIT, at, ticket, previous=Admission(
                EVENT, ticket.ticket_id, 0, "1", at - 30, inside=True)))
            del inside[ticket.ticket_id]
        elif roll < 0.55 and ticket.ticket_id not in inside:
            scan_id = journal.admit(Decision(Verdict.ADMIT, Reason.VALID, at, ticket))
            outcome = rng.random()
            if outcome < 0.3:
                journal.passage(scan_id, passed=False, at=at + 8)  # voided
            else:
                inside[ticket.ticket_id] = scan_id
                if outcome < 0.8:
                    journal.passage(scan_id, passed=True, at=at + 2)  # else left open
        elif roll < 0.85:
            journal.record(Decision(Verdict.REFUSE, Reason.STALE_CODE, at, ticket))
        else:
            journal.record(Decision(Verdict.STEWARD, Reason.PAPER_TICKET, at, ticket))
        if n % 37 == 0:  # the uploader sends a batch...
            journal.mark_uploaded(journal.pending_upload(25), at=at)
        if n % 53 == 0 and inside:  # ...and a peer's exit record closes an admission
            ticket_id = sorted(inside)[0]
            with journal.transaction("a peer's exit") as db:  # as the mesh ends it
                journal.exit_admissions(db, EVENT, ticket_id, at=at)
            del inside[ticket_id]
        if n % 50 == 0:
            assert seen(journal) == recount(path), n
    counts, backlog = recount(path)
    assert seen(journal) == (counts, backlog)
    assert all(counts[k] > 0 for k in counts) and 0 < backlog < sum(
        counts[v] for v in ("admit", "refuse", "steward"))  # every kind of change happened
    journal.close()
    reopened = Journal(path, gate_id="1")
    assert seen(reopened) == (counts, backlog)
    reopened.mark_uploaded(reopened.pending_upload(1000), at=T0 + 999)
    assert seen(reopened) == recount(path) and reopened.upload_backlog() == 0
    reopened.close()


def test_a_failed_write_leaves_the_counts_as_they_were(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path, gate_id="1")
    ticket = TicketKey(EVENT, "T1", 0)
    journal.admit(Decision(Verdict.ADMIT, Reason.VALID, T0, ticket))
    before = seen(journal)
    with pytest.raises(AlreadyInsideError):  # rolled back by the database itself
        journal.admit(Decision(Verdict.ADMIT, Reason.VALID, T0 + 1, ticket))
    assert seen(journal) == before == recount(path)


def test_status_counts_are_read_without_going_over_the_records(tmp_path: Path) -> None:
    """On 20,000 decisions, the backlog and the counts cost a handful of SQLite steps
    (counted by its progress handler), not one per record."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path, gate_id="1")
    with journal.transaction("a day of decisions") as db:
        db.executemany(
            "INSERT INTO decisions (scan_id, at, gate, event, ticket_id, generation, verdict, "
            "reason, method) VALUES (?, ?, '1', ?, ?, 0, 'refuse', 'STALE_CODE', 'camera')",
            [(uuid.uuid4().hex, T0 + n, EVENT, f"T{n:06d}") for n in range(20_000)])
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    journal._db.set_progress_handler(step, 100)
    try:
        backlog, counts = journal.upload_backlog(), journal.counts()
    finally:
        journal._db.set_progress_handler(None, 0)
    assert (counts, backlog) == recount(path)
    assert backlog == counts["refuse"] == 20_000
    assert steps < 20, steps  # fewer than 2,000 steps for 20,000 records
    journal.close()
