"""Figures: the steward's manifest lookup on a 1,000,000-entry manifest, and what it does to
the decision loop.

- steward lookups (portique.revocation.lookup.answer on a read-only store connection, as the control
  socket's `lookup` op runs them), p50 and p99 per kind of query: an exact ticket id, an
  order reference, a surname, a name with a typo, a query matching nothing; next to a raw
  sqlite3 indexed point query on the same manifest in the same run (the anchor). Goal:
  lookup p99 under 50 ms;
- the decision's revocation question (SharedFeedView.min_valid_generation, the call the
  decision loop makes) p50 and p99, with no lookup running and while two stewards look up
  back to back, as ratios. Goal: unchanged (ratio about 1).

The manifest is a real snapshot (publisher file format, FeedStore.apply), names made of
random syllables (about 60,000 distinct words), a tenth of the tickets revoked.

    .venv/bin/python benchmarks/lookup.py
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.revocation import lookup
from portique.revocation.format import FileKind, index_body, parse_index, sign_index
from portique.revocation.publish import write_file
from portique.revocation.store import FeedFile, FeedStore
from portique.runtime.feedview import SharedFeedView
from portique.ticket.trust import KeyRole, TrustedKey, TrustStore

EVENT = "PAR24-ATH05"
KID = "feed-bench"
T0 = 1722877200
SYLLABLES = ["ma", "ri", "lo", "du", "pa", "ne", "ka", "to", "mi", "se", "la", "vo", "be",
             "ni", "ro", "sa", "ti", "go", "fe", "li", "an", "el", "or", "is", "ur", "ba",
             "ce", "de", "fa", "gu", "ha", "jo", "ke", "mo", "nu", "pi", "qu", "ru", "sy",
             "ve"]


def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"bench-feed").digest())


def trust() -> TrustStore:
    return TrustStore.of([TrustedKey(KID, key().public_key().public_bytes_raw(),
                                     KeyRole.FEED)])


def ticket(n: int) -> str:
    return f"T{n:09d}"


def order(n: int) -> str:
    return f"ORD-{n // 3:08d}"


def name(n: int) -> str:
    rng = random.Random(n)

    def word() -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()

    return f"{word()} {word()}"


def lines(count: int) -> Iterator[str]:
    for n in range(count):
        if n % 10 == 3:
            yield f"R\t{ticket(n)}\t1\n"
    for n in range(count):
        yield f"M\t{ticket(n)}\t0\t{order(n)}\t{name(n)}\tCAT{n % 4}\t{1 + n % 32}\t0\n"


def build(folder: Path, count: int) -> Path:
    start = time.perf_counter()
    ref = write_file(folder, FileKind.SNAPSHOT, EVENT, 0, 1, lines(count))
    written = time.perf_counter() - start
    body = index_body(event=EVENT, kid=KID, sequence=1, published_at=T0, ends_at=None,
                      snapshot=ref, revocations=sum(1 for n in range(count) if n % 10 == 3),
                      manifest=count, deltas=[])
    index = parse_index(sign_index(body, key()), trust=trust(), event=EVENT)
    path = folder / "feeds.db"
    start = time.perf_counter()
    with FeedStore.open(path) as store:
        store.apply(index, [FeedFile(ref, folder / ref.name)], fetched_at=float(T0))
    print(f"snapshot of {count:,} entries: written in {written:.1f} s, applied (indexes and "
          f"word index built) in {time.perf_counter() - start:.1f} s; store "
          f"{path.stat().st_size / 1e6:.0f} MB")
    return path


def typo(text: str, rng: random.Random) -> str:
    """The name with two neighbouring letters of its last word swapped (after its first
    three letters, as the lookup's typo pass expects)."""
    first, last = text.split(" ")
    if len(last) < 5:
        return first + " " + last[:-1]
    i = rng.randrange(3, len(last) - 1)
    return f"{first} {last[:i]}{last[i + 1]}{last[i]}{last[i + 2:]}"


def first_is(ticket_id: str) -> Callable[[list[dict[str, object]]], bool]:
    return lambda found: bool(found) and found[0]["ticket_id"] == ticket_id


def of_order(ref: str) -> Callable[[list[dict[str, object]]], bool]:
    return lambda found: len(found) == 3 and all(c["order_ref"] == ref for c in found)


def holds(word: str) -> Callable[[list[dict[str, object]]], bool]:
    """Every candidate has a word of its name starting with `word` (its first word, or
    any word: what a name prefix and a word match mean)."""
    return lambda found: bool(found) and all(
        any(w.startswith(word.lower()) for w in str(c["holder"]).lower().split(" "))
        for c in found)


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if q != 50 else statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:7.2f} ms"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=300, help="per kind of query")
    parser.add_argument("--decisions", type=int, default=10_000, help="per condition")
    args = parser.parse_args()
    count = args.entries
    with tempfile.TemporaryDirectory(prefix="portique-bench-") as tmp:
        path = build(Path(tmp), count)
        rng = random.Random(3)
        picks = [rng.randrange(count) for _ in range(args.lookups)]
        kinds: dict[str, list[tuple[str, Callable[[list[dict[str, object]]], bool]]]] = {
            "exact ticket id": [(ticket(n), first_is(ticket(n))) for n in picks],
            "order reference": [(order(n).lower(), of_order(order(n))) for n in picks],
            "surname (a word of the name)": [(name(n).split(" ")[1], holds(
                name(n).split(" ")[1])) for n in picks],
            "name with a typo": [(typo(name(n), rng), first_is(ticket(n))) for n in picks],
            "no match": [(f"Qx{n % 97}zv Wq{n % 89}jk", lambda found: not found)
                         for n in picks],
        }
        reader = FeedStore.open_reader(path)
        raw = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        point = ("SELECT ticket_id, generation, order_ref, holder_name FROM manifest "
                 "WHERE event = ? AND ticket_id = ?")
        samples: dict[str, list[float]] = {k: [] for k in [*kinds, "raw"]}
        hits: dict[str, int] = dict.fromkeys(kinds, 0)
        truncated: dict[str, int] = dict.fromkeys(kinds, 0)
        for queries in kinds.values():  # warm the page cache alike
            for query, _ in queries[:20]:
                lookup.answer(reader, EVENT, query)
        for i in range(args.lookups):  # interleaved: machine noise hits every kind alike
            for kind, queries in kinds.items():
                query, right = queries[i]
                start = time.perf_counter()
                found = lookup.answer(reader, EVENT, query)
                samples[kind].append(time.perf_counter() - start)
                truncated[kind] += found.truncated
                hits[kind] += right(list(found.candidates))
            n = picks[i]
            samples["raw"].append(timed(lambda n=n: raw.execute(  # type: ignore[misc]
                point, (EVENT, ticket(n))).fetchone()))
        reader.close()
        raw.close()
        anchor99 = pct(samples["raw"], 99)
        print(f"\nsteward lookups on {count:,} entries ({args.lookups} of each kind, "
              "interleaved); anchor: raw sqlite3 point query by ticket id")
        print(f"  {'kind':30} {'p50':>10} {'p99':>10}   p99/anchor     right  truncated")
        for kind in kinds:
            s = samples[kind]
            print(f"  {kind:30} {ms(pct(s, 50))} {ms(pct(s, 99))}   "
                  f"{pct(s, 99) / anchor99:9.0f}x  {hits[kind]:4}/{args.lookups}  "
                  f"{truncated[kind]:4}")
        print(f"  {'raw sqlite3 point query':30} {ms(pct(samples['raw'], 50))} "
              f"{ms(anchor99)}   (goal: every lookup p99 < 50 ms)")

        # --- the decision loop while stewards look up ------------------------------------
        view = SharedFeedView(path, event=EVENT)
        keys = [ticket(rng.randrange(count * 2)) for _ in range(args.decisions)]
        queries = [q for qs in kinds.values() for q, _ in qs]

        def steward(k: int, stop: threading.Event, done: list[int]) -> None:
            mine = random.Random(k).sample(queries, len(queries))
            while not stop.is_set():
                for query in mine:
                    if stop.is_set():
                        break
                    with view.lookup_store() as store:
                        lookup.answer(store, EVENT, query)
                    done[k] += 1

        def steward_behind_the_lock(k: int, stop: threading.Event, done: list[int]) -> None:
            """The anchor: the same lookups on the decision's own connection, behind its
            lock, as the gate ran them before they had connections of their own."""
            mine = random.Random(k).sample(queries, len(queries))
            while not stop.is_set():
                for query in mine:
                    if stop.is_set():
                        break
                    with view._lock:
                        lookup.answer(view._store, EVENT, query)
                    done[k] += 1

        def decisions(part: list[str]) -> list[float]:
            """The decision's calls, a fifth of a millisecond apart (spread over the
            stewards' lookups rather than packed between two of them)."""
            out = []
            clock = time.perf_counter
            for ticket_id in part:
                start = clock()
                view.min_valid_generation(EVENT, ticket_id)
                out.append(clock() - start)
                time.sleep(0.0002)
            return out

        def beside(worker: Callable[[int, threading.Event, list[int]], None],
                   part: list[str]) -> tuple[list[float], int]:
            """The decision's calls while two threads run `worker`; and their rounds."""
            stop, done = threading.Event(), [0, 0]
            threads = [threading.Thread(target=worker, args=(k, stop, done)) for k in (0, 1)]
            for t in threads:
                t.start()
            while min(done) < 1:  # both are at work
                time.sleep(0.001)
            out = decisions(part)
            stop.set()
            for t in threads:
                t.join()
            return out, sum(done)

        rounds: dict[str, list[float]] = {"idle": [], "stewards": [], "locked": []}
        lookups = 0
        for part in range(10):  # alternate the three conditions
            chunk = keys[part::10]
            rounds["idle"] += decisions(chunk)
            busy, made = beside(steward, chunk)
            rounds["stewards"] += busy
            lookups += made
            rounds["locked"] += beside(steward_behind_the_lock, chunk)[0]
        view.close()
        i50, i99 = pct(rounds["idle"], 50), pct(rounds["idle"], 99)
        print(f"\ndecision's min_valid_generation ({len(rounds['idle']):,} calls per condition,"
              f" alternating; the two stewards made {lookups:,} lookups meanwhile)")
        for label, key_ in (("idle", "idle"),
                            ("two stewards looking up", "stewards"),
                            ("the same, behind the lock", "locked")):
            v50, v99 = pct(rounds[key_], 50), pct(rounds[key_], 99)
            print(f"  {label:27} p50 {v50 * 1e6:8.1f} us  p99 {v99 * 1e6:8.1f} us   "
                  f"ratio to idle p50 {v50 / i50:6.2f}  p99 {v99 / i99:7.2f}")
        print("  (goal: decision lag unchanged: no lock shared with a lookup; what is left is "
              "two busy threads on the same cores and interpreter)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
