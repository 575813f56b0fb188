"""Figures: applying feeds to the local store, and the revocation lookup the decision makes.

- a snapshot of 1,000,000 manifest entries and 100,000 revocations (1,100,000 records)
  applied to an empty store, in a child process whose peak RSS is measured: goal <= 10 s
  and <= 200 MB;
- the same snapshot applied over a store already holding the previous one;
- a delta of 10,000 records (5,000 revocations, 5,000 manifest changes): goal <= 0.5 s;
- `FeedStore.min_valid_generation` per call, median and p99, next to a raw sqlite3 point
  query on the same table of the same file in the same run: goal ratio <= 2.

    .venv/bin/python benchmarks/revocation.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.revocation.format import (
    FileKind,
    FileRef,
    index_body,
    parse_index,
    sign_index,
    snapshot_name,
)
from portique.revocation.publish import write_file
from portique.revocation.store import FeedFile, FeedStore
from portique.ticket.trust import KeyRole, TrustedKey, TrustStore
from portique.ticket.views import CANCELLED

EVENT = "PAR24-ATH05"
KID = "feed-bench"
MANIFEST = 1_000_000
REVOCATIONS = 100_000
DELTA = 10_000
LOOKUPS = 100_000
T0 = 1722877200
FIRST = ["Zoë", "Jean-Pierre", "Amélie", "Søren", "Łukasz", "Marie", "Noé", "Inès",
         "François", "Chloé", "Björn", "Ana", "Mohammed", "Aïcha", "Yūki", "Léa"]
LAST = ["Lefèvre", "Dupont", "Œuvray", "Müller", "García", "O'Brien", "Nguyễn", "Kowalski",
        "Martin", "Da Silva", "Bernard", "Petit", "Rousseau", "Fontaine", "Żak", "Girard"]


def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"bench-feed").digest())


def trust() -> TrustStore:
    return TrustStore.of([TrustedKey(KID, key().public_key().public_bytes_raw(),
                                     KeyRole.FEED)])


def ticket(n: int) -> str:
    return f"T{n:09d}"


def manifest_line(n: int, generation: int = 0) -> str:
    rng = random.Random(n)
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return (f"M\t{ticket(n)}\t{generation}\tORD-{n // 3:08d}\t{name}\tCAT{n % 4}\t"
            f"{1 + n % 32}\t{n % 3 * 2}\n")


def revoked(n: int) -> bool:
    return n % 10 == 3


def snapshot_lines(generation: int) -> Iterator[str]:
    for n in range(MANIFEST):
        if revoked(n):
            yield f"R\t{ticket(n)}\t{CANCELLED if n % 20 == 3 else generation + 1}\n"
    for n in range(MANIFEST):
        yield manifest_line(n, generation)


def delta_lines() -> Iterator[str]:
    for n in range(0, DELTA, 2):  # 5,000 newly revoked tickets (none revoked before)
        yield f"R\t{ticket(n * 97)}\t2\n"
    for n in range(0, DELTA, 2):  # 5,000 holders changed
        yield manifest_line(n * 97 + 1, 1)


def write_index(folder: Path, sequence: int, snapshot: FileRef, deltas: list[FileRef],
                revocations: int) -> Path:
    body = index_body(event=EVENT, kid=KID, sequence=sequence, published_at=T0 + sequence,
                      ends_at=None, snapshot=snapshot, revocations=revocations,
                      manifest=MANIFEST, deltas=deltas)
    path = folder / f"index-{sequence}.json"
    path.write_bytes(sign_index(body, key()))
    return path


def child(store_path: Path, index_path: Path, files: list[str]) -> None:
    """Apply the given files and print seconds and peak RSS as JSON."""
    index = parse_index(index_path.read_bytes(), trust=trust(), event=EVENT)
    refs = {r.name: r for r in (index.snapshot, *index.deltas)}
    with FeedStore.open(store_path) as store:
        start = time.perf_counter()
        store.apply(index, [FeedFile(refs[Path(f).name], Path(f)) for f in files],
                    fetched_at=time.time())
        seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024}))


def run_child(store: Path, index: Path, *files: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", str(store), str(index),
                          *map(str, files)], check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"apply failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def timings(fn: object, keys: list[tuple[str, str]]) -> list[float]:
    call = fn  # bound method or function taking (event, ticket_id)
    samples = []
    clock = time.perf_counter_ns
    for event, ticket_id in keys:
        start = clock()
        call(event, ticket_id)  # type: ignore[operator]
        samples.append(clock() - start)
    return samples


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="portique-bench-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        revocations = sum(1 for n in range(MANIFEST) if revoked(n))
        snap1 = write_file(folder, FileKind.SNAPSHOT, EVENT, 0, 1, snapshot_lines(0))
        index1 = write_index(folder, 1, snap1, [], revocations)
        snap2 = write_file(folder, FileKind.SNAPSHOT, EVENT, 0, 2, snapshot_lines(1))
        index2 = write_index(folder, 2, snap2, [], revocations)
        delta = write_file(folder, FileKind.DELTA, EVENT, 2, 3, delta_lines())
        # The delta's index names a snapshot-3 that is never fetched: only the delta applies.
        unused = FileRef(FileKind.SNAPSHOT, snapshot_name(3), 0, 3, snap2.sha256, snap2.size)
        index3 = write_index(folder, 3, unused, [delta], revocations + DELTA // 2)
        print(f"feed files written in {time.perf_counter() - start:.1f} s: snapshot "
              f"{snap1.size / 1e6:.1f} MB gzip ({REVOCATIONS + MANIFEST:,} records), delta "
              f"{delta.size / 1e3:.0f} kB ({DELTA:,} records)")
        store = folder / "feeds.db"
        first = run_child(store, index1, folder / snap1.name)
        print(f"snapshot, empty store:    {first['seconds']:6.2f} s  peak RSS "
              f"{first['peak_mb']:5.0f} MB   (goal <= 10 s, <= 200 MB)")
        second = run_child(store, index2, folder / snap2.name)
        print(f"snapshot over previous:   {second['seconds']:6.2f} s  peak RSS "
              f"{second['peak_mb']:5.0f} MB   (goal <= 10 s, <= 200 MB)")
        third = run_child(store, index3, folder / delta.name)
        print(f"delta of {DELTA:,} records: {third['seconds']:6.3f} s                "
              f"   (goal <= 0.5 s)")

        rng = random.Random(7)
        keys = [(EVENT, ticket(rng.randrange(MANIFEST * 2))) for _ in range(LOOKUPS)]
        import sqlite3

        with FeedStore.open(store) as ours:
            raw = sqlite3.connect(store)
            sql = "SELECT min_generation FROM revocation WHERE event = ? AND ticket_id = ?"

            def raw_query(event: str, ticket_id: str) -> object:
                return raw.execute(sql, (event, ticket_id)).fetchone()

            hits = sum(ours.min_valid_generation(*k) is not None for k in keys)
            assert hits == sum(raw_query(*k) is not None for k in keys)
            ours_samples: list[float] = []
            raw_samples: list[float] = []
            for part in range(10):  # interleaved, so machine noise hits both alike
                chunk = keys[part::10]
                ours_samples += timings(ours.min_valid_generation, chunk)
                raw_samples += timings(raw_query, chunk)
            raw.close()
        om, rm = statistics.median(ours_samples), statistics.median(raw_samples)
        o99, r99 = p99(ours_samples), p99(raw_samples)
        print(f"lookup min_valid_generation ({LOOKUPS:,} calls, {hits:,} hits, "
              f"{len(keys[0][1])}-char ids):")
        print(f"  median {om / 1e3:6.2f} us   raw sqlite3 {rm / 1e3:6.2f} us   ratio "
              f"{om / rm:4.2f}  (goal <= 2)")
        print(f"  p99    {o99 / 1e3:6.2f} us   raw sqlite3 {r99 / 1e3:6.2f} us   ratio "
              f"{o99 / r99:4.2f}  (goal <= 2)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs="+")
    arguments = parser.parse_args()
    if arguments.child:
        store_arg, index_arg, *file_args = arguments.child
        child(Path(store_arg), Path(index_arg), file_args)
        raise SystemExit(0)
    raise SystemExit(main())
