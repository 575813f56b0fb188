"""The merge of other gates' records: a batch in one transaction, the streams' heads kept
in memory exactly as ``mesh_streams`` holds them, a bad record in a batch refused alone."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from portique.runtime.journal import Journal
from portique.runtime.mesh.config import MeshConfig
from portique.runtime.mesh.node import MeshNode
from portique.runtime.mesh.store import MeshStore
from portique.runtime.mesh.wire import Record, State, Summary, sign_record, sign_summary
from tests.mesh.conftest import VENUE, gate_key

EVENT = "PAR24-ATH05"
T0 = 1722877200.0
INCARNATION = b"\x02" * 8


def record(seq: int, *, origin: str = "2", state: State = State.ADMITTED,
           ticket: str | None = None) -> Record:
    at = round((T0 + seq) * 1000)
    return Record(VENUE, origin, INCARNATION, seq, state, EVENT, ticket or f"PAR24-{seq:06d}",
                  0, f"{seq:032x}", at, at)


def signed(r: Record, *, by: str | None = None) -> tuple[Record, bytes]:
    return r, sign_record(r, gate_key(by or r.origin))


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the mesh's tables and of peer_admissions, in a fixed order."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall()
                for t in ("mesh_records", "mesh_streams", "peer_admissions", "mesh_conflicts")}


def test_a_batch_in_any_order_ends_where_one_by_one_does(tmp_path: Path) -> None:
    batched = Journal(tmp_path / "batched.sqlite", gate_id="1")
    single = Journal(tmp_path / "single.sqlite", gate_id="1")
    a = MeshStore(batched, gate_id="1", venue=VENUE, key=gate_key("1"))
    b = MeshStore(single, gate_id="1", venue=VENUE, key=gate_key("1"))

    first = a.merge([signed(record(s)) for s in (3, 1, 5, 2)], now=T0 + 10)
    assert [r.seq for r in first.new] == [3, 1, 5, 2] and first.duplicates == 0
    assert first.gap, "5 is beyond the head (3): 4 is missing"
    assert a.heads() == (("2", INCARNATION, 3),)
    second = a.merge([signed(record(4))], now=T0 + 11)
    assert not second.gap and a.heads() == (("2", INCARNATION, 5),)
    for s in range(1, 6):
        result = b.merge([signed(record(s))], now=T0 + 10 if s != 4 else T0 + 11)
        assert not result.gap
    assert a.heads() == b.heads()

    # what is in memory is what the journal holds, and what a restart reads back
    with contextlib.closing(sqlite3.connect(tmp_path / "batched.sqlite")) as db:
        assert db.execute("SELECT origin, incarnation, head, top FROM mesh_streams"
                          ).fetchall() == [("2", INCARNATION, 5, 5)]
    assert MeshStore(batched, gate_id="1", venue=VENUE, key=gate_key("1")).heads() == a.heads()
    assert tables(tmp_path / "batched.sqlite")["peer_admissions"] == \
        tables(tmp_path / "single.sqlite")["peer_admissions"]

    # records held already, below the head or not, change nothing
    before = tables(tmp_path / "batched.sqlite")
    again = a.merge([signed(record(s)) for s in (2, 5, 4)], now=T0 + 20)
    assert again.new == [] and again.duplicates == 3 and not again.gap
    assert tables(tmp_path / "batched.sqlite") == before
    batched.close()
    single.close()


def test_a_record_beyond_a_gap_is_held_and_the_head_runs_on_once_it_closes(
        tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    store = MeshStore(journal, gate_id="1", venue=VENUE, key=gate_key("1"))
    assert store.merge([signed(record(s)) for s in (1, 4, 6)], now=T0).gap
    assert store.heads() == (("2", INCARNATION, 1),)
    store = MeshStore(journal, gate_id="1", venue=VENUE, key=gate_key("1"))  # a restart
    closed = store.merge([signed(record(s)) for s in (3, 2)], now=T0 + 1)
    assert not closed.gap, "3 and 2 are within the head now (6 was beyond it already)"
    assert store.heads() == (("2", INCARNATION, 4),)
    assert not store.merge([signed(record(5))], now=T0 + 2).gap
    assert store.heads() == (("2", INCARNATION, 6),)
    journal.close()


def test_a_bad_record_in_a_batch_is_refused_and_logged_the_others_merge(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One batch as the worker drains it: good records of gates 2 and 3, one forged
    (gate 2's name, gate 3's key) and one altered after signing. The good ones merge in one
    transaction, the two bad ones are refused with their reason and logged, and nothing
    stored before the batch changes."""
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    peers = {g: gate_key(g).public_key() for g in ("1", "2", "3")}
    node = MeshNode(MeshConfig(venue=VENUE, key_file=tmp_path / "unused.key"), gate_id="1",
                    journal=journal, key=gate_key("1"), peers=peers)
    topic = f"{node.topics['records']}/%s"
    now = time.time()
    node._handle([("message", topic % "2", signed(record(1))[1], now)])
    stored = tables(tmp_path / "j.sqlite")

    forged = sign_record(record(3, ticket="PAR24-FORGED"), gate_key("3"))
    r4 = sign_record(record(4, ticket="PAR24-ALTERED"), gate_key("2"))
    altered = r4.replace(b"PAR24-ALTERED", b"PAR24-ALTERES")
    batch = [signed(record(2)), signed(record(1, origin="3")), (record(3), forged),
             (record(4), altered), signed(record(5))]
    caplog.set_level(logging.WARNING, logger="portique.runtime.mesh")
    node._handle([("message", topic % r.origin, m, now) for r, m in batch])

    assert node.merged == 4  # gate 2's 1 (before), 2 and 5; gate 3's 1
    assert node.rejected_by == {"bad_signature": 2}
    assert "reason=bad_signature" in caplog.text
    after = tables(tmp_path / "j.sqlite")
    for table in ("mesh_records", "peer_admissions"):  # the streams' heads move on
        assert set(stored[table]) <= set(after[table]), f"{table}: a row stored before changed"
    tickets = {row[3] for row in after["peer_admissions"]}
    assert "PAR24-FORGED" not in tickets and "PAR24-ALTERED" not in tickets
    assert "PAR24-ALTERES" not in tickets
    # anti-passback: what was merged is refused here, what was refused is unknown here
    for ticket, known in (("PAR24-000002", True), ("PAR24-000005", True),
                          ("PAR24-FORGED", False), ("PAR24-ALTERED", False)):
        last = journal.last_admission(EVENT, ticket)
        assert (last is not None and last.inside) is known, ticket
    assert node.store.heads() == (("2", INCARNATION, 2), ("3", INCARNATION, 1))
    assert not node._summary_wanted, "3 and 4 may still be on their way"
    node._check_lacking(time.monotonic() + node.config.lacking_grace_s)
    assert node._summary_wanted, "gate 2's 5 is beyond its head: a summary asks for 3 and 4"
    journal.close()


def summary_of(origin: str, heads: dict[str, int], at: float) -> bytes:
    return sign_summary(Summary(VENUE, origin, b"\x03" * 8, round(at * 1000),
                                tuple((g, INCARNATION, h) for g, h in sorted(heads.items()))),
                        gate_key(origin))


def test_a_record_still_on_its_way_sets_off_no_summary_one_lacking_after_the_grace_does(
        tmp_path: Path) -> None:
    """Gate 3's summary says it holds gate 2's records up to 2, gate 1 holds 1: while
    records flow that is mostly one on its way, and if every gate answered such a summary
    with its own at once, each summary would set off those of the others (a storm of 200
    gates' summaries a second at a busy venue). Gate 1 asks only for what is still lacking
    after the grace; what arrived meanwhile is forgotten."""
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    peers = {g: gate_key(g).public_key() for g in ("1", "2", "3")}
    node = MeshNode(MeshConfig(venue=VENUE, key_file=tmp_path / "unused.key"), gate_id="1",
                    journal=journal, key=gate_key("1"), peers=peers)
    records, summaries = (f"{node.topics[t]}/%s" for t in ("records", "summary"))
    now = time.time()
    node._handle([("message", records % "2", signed(record(1))[1], now)])
    node._handle([("message", summaries % "3", summary_of("3", {"2": 2}, now), now)])
    assert not node._summary_wanted, "gate 2's record 2 may still be on its way"
    node._handle([("message", records % "2", signed(record(2))[1], now)])  # it arrives
    node._check_lacking(time.monotonic() + node.config.lacking_grace_s)
    assert not node._summary_wanted and node._lacking == {}, "nothing is lacking any more"

    node._handle([("message", summaries % "3", summary_of("3", {"2": 4}, now + 1), now + 1)])
    node._check_lacking(time.monotonic() + node.config.lacking_grace_s / 2)
    assert not node._summary_wanted, "within the grace"
    node._check_lacking(time.monotonic() + node.config.lacking_grace_s)
    assert node._summary_wanted, "3 and 4 are still lacking after the grace: ask for them"
    journal.close()


def test_an_answer_re_sends_what_this_gate_held_when_the_summary_came_not_what_came_after(
        tmp_path: Path) -> None:
    """Gate 1 received gate 2's records 1 and 2 at T0 + 10, 3 and 4 at T0 + 20; gate 3's
    summary, which says it holds none, arrived at T0 + 15. The answer (for a gate not heard
    from, as gate 1 answers for gate 2 here) re-sends 1 and 2: 3 and 4 reached gate 1
    after the summary did, so they are most likely on their way to gate 3 too (and its
    next summary asks if they are lost). Re-sending them too was what made the answers
    after a broker's failover pile up behind a backlog: the later the answer, the more it
    re-sent. Gate 1's own clock decides: records made an hour ahead by gate 2's clock are
    re-sent all the same."""
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    store = MeshStore(journal, gate_id="1", venue=VENUE, key=gate_key("1"))
    ahead = [record(s) for s in (1, 2, 3, 4)]
    ahead = [dataclasses.replace(r, at_ms=r.at_ms + 3_600_000, made_ms=r.made_ms + 3_600_000)
             for r in ahead]
    store.merge([signed(r) for r in ahead[:2]], now=T0 + 10)
    store.merge([signed(r) for r in ahead[2:]], now=T0 + 20)
    summary = Summary(VENUE, "3", b"\x03" * 8, round((T0 + 14) * 1000), ())
    sent = store.missing_for(summary, answers_for=lambda origin: origin == "2",
                             held_at=T0 + 15)
    assert sent == [signed(r)[1] for r in ahead[:2]]
    later = Summary(VENUE, "3", b"\x03" * 8, round((T0 + 24) * 1000), (("2", INCARNATION, 1),))
    assert store.missing_for(later, answers_for=lambda origin: origin == "2",
                             held_at=T0 + 25) == [signed(r)[1] for r in ahead[1:]]
    assert store.missing_for(later, answers_for=lambda origin: False, held_at=T0 + 25) == []
    journal.close()


def make_node(tmp_path: Path, **settings: Any) -> MeshNode:
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    peers = {g: gate_key(g).public_key() for g in ("1", "2", "3")}
    return MeshNode(MeshConfig(venue=VENUE, key_file=tmp_path / "unused.key", **settings),
                    gate_id="1", journal=journal, key=gate_key("1"), peers=peers)


def test_a_stream_steadily_a_little_behind_is_never_asked_for(tmp_path: Path) -> None:
    """Gate 3's summaries keep showing gate 2's latest record a moment before it reaches
    gate 1 (a steady lag shorter than the grace, as through a bridge under load): each
    record wanted has its own grace, so gate 1 never asks."""
    node = make_node(tmp_path, lacking_grace_s=0.5)
    records, summaries = (f"{node.topics[t]}/%s" for t in ("records", "summary"))
    clock = [1000.0]
    node.monotonic = lambda: clock[0]
    now = time.time()
    for seq in range(1, 30):  # a record every 0.1 s, each shown 0.14 s before it comes
        clock[0] += 0.06
        node._handle([("message", summaries % "3", summary_of("3", {"2": seq + 1}, now + seq),
                       now + seq)])
        clock[0] += 0.04
        node._handle([("message", records % "2", signed(record(seq))[1], now + seq)])
        assert not node._summary_wanted, f"asked at record {seq}"
    node._handle([("message", records % "2", signed(record(30))[1], now + 30)])
    assert node._lacking == {}
    node.journal.close()


def test_a_record_that_never_comes_is_asked_for_less_and_less_often(tmp_path: Path) -> None:
    """Gate 3's summary shows gate 2's record 5, which never reaches gate 1: asked for
    after the grace, then after twice the wait each time, up to the summary interval.
    Gate 1's own current stream and a gate not listed are never asked for."""
    node = make_node(tmp_path, lacking_grace_s=2.0, summary_interval_s=30.0)
    summaries = f"{node.topics['summary']}/%s"
    node._handle([("message", summaries % "3", summary_of("3", {"2": 5}, time.time()),
                   time.time())])
    node._lack(("1", node.store.incarnation), 9)  # this gate's own: nobody else can fill it
    node._lack(("7", INCARNATION), 9)  # not listed: its records are refused
    assert list(node._lacking) == [("2", INCARNATION)]
    start = node._lacking[("2", INCARNATION)].since
    asked = []
    for tenth in range(1, 1500):  # 150 s, looked at every 0.1 s
        node._summary_wanted = False
        node._check_lacking(start + tenth / 10)
        if node._summary_wanted:
            asked.append(tenth / 10)
    gaps = [round(b - a, 1) for a, b in zip([0.0, *asked], asked, strict=False)]
    assert gaps[:4] == [2.0, 4.0, 8.0, 16.0] and set(gaps[4:]) == {30.0}, gaps
    node.journal.close()
