"""The journal's Merkle tree: what it costs an admission, and how large its proofs are.

    .venv/bin/python benchmarks/journal.py [--rounds 15] [--number 100]

One admission cycle (the admission committed and fsynced, then its passage committed and
fsynced: what a person walking through costs the journal) on two journals, in the same run,
rounds interleaved: the journal as it is (each record a leaf, written in the record's
transaction, and a signed checkpoint every CHECKPOINT_EVERY cycles: far more often than
the 60 s cadence) next to the same journal writing no leaves, its statements as they were
before the tree (`_Plain`: the raw anchor). Goal: at most 1.2x. The figure is the median of
the per-round ratios (each round times both journals back to back, so a burst of load on
a shared machine hits both), with their quartiles and extremes as the spread; then the
same without fsync, timed in CPU seconds of the benchmark's thread (the tree's own work,
which the disk's waits and other programs do not blur).

Then the proof sizes for 100,000 records: an inclusion proof in the tree of 100,000
leaves, and in the tree a gate with 100,000 admitted people has (each admission is two
leaves: the admitting decision with its admission, then the passage), the consistency
proof between two uploads, and what one record's leaves and proofs add to an upload.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import median, us
from portique.runtime import journal as journal_module
from portique.runtime import ledger, tlog
from portique.runtime.journal import Journal
from portique.ticket.decision import Decision
from portique.ticket.reasons import Reason, Verdict
from portique.ticket.views import TicketKey

EVENT = "PAR24-ATH05"
CHECKPOINT_EVERY = 100
GOAL = 1.2
RECORDS = 100_000


class _Plain(Journal):
    """The same journal without its tree: no leaf written, and the admissions' state
    changed by the UPDATE alone (no RETURNING of the rows for their leaves)."""

    def _leaf(self, db: sqlite3.Connection, kind: str, ref: str,
              values: Sequence[Any]) -> None:
        pass

    def _state_leaves(self, db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> None:
        db.execute(sql.removesuffix(journal_module._STATE_RETURNING), args)


def _cycle(journal: Journal, counter: list[int], *, checkpoints: bool) -> None:
    counter[0] += 1
    n = counter[0]
    now = 1722877200.0 + n * 0.01
    scan = journal.admit(Decision(Verdict.ADMIT, Reason.VALID, now,
                                  TicketKey(EVENT, f"T-{n:07d}", 0)), latency_ms=12.5)
    journal.passage(scan, passed=True, at=now + 1.5)
    if checkpoints and n % CHECKPOINT_EVERY == 0:
        journal.checkpoint(at=now + 2)


def _interleaved(subjects: dict[str, Callable[[], object]], *, number: int, rounds: int,
                 clock: Callable[[], float]) -> dict[str, list[float]]:
    """Seconds per call of each subject (on `clock`), `rounds` times, alternating."""
    def per_call(fn: Callable[[], object], n: int) -> float:
        start = clock()
        for _ in range(n):
            fn()
        return (clock() - start) / n

    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for fn in subjects.values():  # warm-up
        per_call(fn, max(1, number // 5))
    for _ in range(rounds):
        for name, fn in subjects.items():
            samples[name].append(per_call(fn, number))
    return samples


@dataclass(frozen=True)
class Run:
    tree: float
    """Median seconds per cycle, with the tree and checkpoints."""
    plain: float
    """The same, journal without its tree."""
    ratios: list[float]
    """tree / plain of each round."""
    leaves: int
    signed: int

    @property
    def ratio(self) -> float:
        return median(self.ratios)

    def spread(self) -> str:
        q1, _, q3 = statistics.quantiles(self.ratios, n=4)
        return (f"quartiles {q1:.3f}-{q3:.3f}, extremes {min(self.ratios):.3f}-"
                f"{max(self.ratios):.3f} over {len(self.ratios)} rounds")


def admissions(rounds: int, number: int, *, fsync: bool = True) -> Run:
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as folder:
        tree = Journal(Path(folder) / "tree.sqlite", gate_id="1")
        tree.signer = ("1", Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(b"benchmark gate 1").digest()))
        plain = _Plain(Path(folder) / "plain.sqlite", gate_id="1")
        if not fsync:  # the tree's own work, without the disk's
            for journal in (tree, plain):
                with journal.reading() as db:
                    db.execute("PRAGMA synchronous=OFF")
        counters = {"tree": [0], "plain": [0]}
        samples = _interleaved({
            "tree": lambda: _cycle(tree, counters["tree"], checkpoints=True),
            "plain": lambda: _cycle(plain, counters["plain"], checkpoints=False),
        }, number=number, rounds=rounds,
            clock=time.perf_counter if fsync else time.thread_time)
        leaves = tree.tree_head().size
        with plain.reading() as db:
            plain_leaves = db.execute("SELECT COUNT(*) FROM journal_leaves").fetchone()[0]
        signed = len(tree.checkpoints())
        tree.close()
        plain.close()
    assert plain_leaves == 0, "the anchor journal wrote leaves"
    return Run(median(samples["tree"]), median(samples["plain"]),
               [t / p for t, p in zip(samples["tree"], samples["plain"], strict=True)],
               leaves, signed)


def proofs() -> list[tuple[str, int, int]]:
    """(what, hashes, bytes of base64 in JSON) for the proofs of a large journal."""
    out = []
    for label, size in ((f"{RECORDS:,} leaves", RECORDS),
                        (f"{RECORDS:,} admitted people ({2 * RECORDS:,} leaves)", 2 * RECORDS)):
        tree = tlog.Tree.of([tlog.leaf_hash(i.to_bytes(8, "big")) for i in range(size)])
        worst = max((len(tree.inclusion_proof(i)) for i in
                     (0, size // 3, size // 2, size - 2, size - 1)), default=0)
        assert worst <= math.ceil(math.log2(size))
        proof = tree.inclusion_proof(size // 2)
        tlog.verify_inclusion(tree.levels[0][size // 2], size // 2, size, proof, tree.root())
        out.append((f"inclusion proof, tree of {label}", worst,
                    len(json.dumps([base64.b64encode(h).decode() for h in proof]))))
        consistency = tree.consistency_proof(size - 600, size)  # one upload batch later
        out.append((f"consistency proof, one batch (600 leaves) later, {label}",
                    len(consistency),
                    len(json.dumps([base64.b64encode(h).decode() for h in consistency]))))
    return out


def upload_overhead() -> tuple[int, int]:
    """Bytes one admitted record adds to an upload (its two leaves with proofs, in a tree
    of 2 x RECORDS leaves), next to the record itself."""
    record = {"scan_id": "0f8e2d1c4b3a59687766554433221100", "at": 1722877205.25, "gate": "1",
              "event": EVENT, "ticket_id": "PAR24-000101", "generation": 0,
              "verdict": "admit", "reason": "VALID", "method": "camera", "latency_ms": 41.5,
              "steward": None, "note": None, "admission_state": "passed"}
    size = 2 * RECORDS
    depth = math.ceil(math.log2(size))
    fields = [record["scan_id"], record["at"], "1", EVENT, "PAR24-000101", 0, "admit",
              "VALID", "camera", 41.5, None, None, ""]
    leaves = [ledger.leaf_bytes("admit", size - 2, [*fields, "open", record["at"]]),
              ledger.leaf_bytes("state", size - 1, [record["scan_id"], "passed",
                                                    1722877207.875])]
    tree_part = {record["scan_id"]: [{"index": size - 2 + k,
                                      "leaf": base64.b64encode(leaf).decode(),
                                      "proof": [base64.b64encode(bytes(32)).decode()] * depth}
                                     for k, leaf in enumerate(leaves)]}
    return len(json.dumps(tree_part, separators=(",", ":"))), \
        len(json.dumps(record, separators=(",", ":")))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=CHECKPOINT_EVERY,
                        help=f"cycles per round, a multiple of {CHECKPOINT_EVERY} (each round "
                             "then signs as many checkpoints as the others)")
    args = parser.parse_args()
    if args.number <= 0 or args.number % CHECKPOINT_EVERY:
        parser.error(f"--number must be a multiple of {CHECKPOINT_EVERY}")
    t0 = time.perf_counter()
    run = admissions(args.rounds, args.number)
    print("journal admission cycle, admit + passage, both fsynced (benchmarks/journal.py)")
    print(f"  with tree + checkpoints  {us(run.tree)}   {1 / run.tree:8.0f} cycles/s "
          f"({run.leaves} leaves, {run.signed} checkpoints signed: one per "
          f"{CHECKPOINT_EVERY} cycles)")
    print(f"  same journal, no tree    {us(run.plain)}   {1 / run.plain:8.0f} cycles/s")
    print(f"  ratio tree/plain         {run.ratio:8.3f}   (goal <= {GOAL}; median of the "
          f"rounds' ratios; {run.spread()})")
    cpu = admissions(args.rounds, args.number * 4, fsync=False)
    print(f"  the same without fsync (synchronous=OFF on both; CPU time of the thread: the "
          f"tree's own work): tree {us(cpu.tree)}, plain {us(cpu.plain)}, ratio "
          f"{cpu.ratio:.3f} ({cpu.spread()})")
    print(f"proofs for {RECORDS:,} records")
    for what, hashes, size in proofs():
        print(f"  {what}: {hashes} hashes, {hashes * 32} bytes, {size} bytes as JSON base64")
    extra, record = upload_overhead()
    print(f"  upload: one admitted record's 2 leaves + proofs {extra} bytes of JSON, the "
          f"record itself {record} bytes ({extra / record:.1f}x)")
    ok = run.ratio <= GOAL
    print(f"  result                   {'meets the goal' if ok else 'MISSES THE GOAL'} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
