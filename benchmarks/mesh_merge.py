"""Figure: what one other gate's record costs the gate that merges it.

Records of the venue's other gates (199 of a 200-gate venue by default, round robin, so
that gate 1 holds a stream per gate as it does there) verified (Ed25519, the wire checks)
and merged into gate 1's SQLite journal one at a time (one transaction each, as a live
record arrives alone), then the streams' heads read (the gap check, the summary); next to
the raw anchor of the same run, a bare Ed25519 verify of the same bytes. Then the same
records as the gate's mesh worker handles them, one per batch (into a journal of its own):
topic check, verify, merge, the gap check, the lag histogram and the counters.

    .venv/bin/python benchmarks/mesh_merge.py [--records 4000] [--gates 200]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from portique.runtime.journal import Journal
    from portique.runtime.mesh.config import MeshConfig
    from portique.runtime.mesh.node import MeshNode
    from portique.runtime.mesh.store import MeshStore
    from portique.runtime.mesh.wire import RECORD_CONTEXT, Record, State, sign_record, verify

    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--gates", type=int, default=200, help="gates of the venue (the "
                        "records come from all but gate 1)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (a new journal each); "
                        "the median round is shown")
    args = parser.parse_args()
    keys = {str(g): Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"bench-{g}".encode()).digest()) for g in range(1, args.gates + 1)}
    peers = {g: k.public_key() for g, k in keys.items()}
    n = args.records
    seqs = dict.fromkeys(keys, 0)
    messages = []
    for i in range(n):
        origin = str(2 + i % (args.gates - 1))
        seqs[origin] += 1
        incarnation = hashlib.sha256(origin.encode()).digest()[:8]
        record = Record("bench", origin, incarnation, seqs[origin], State.ADMITTED, "BENCH-1",
                        f"T{i}", 0, f"{i:032x}", 1722877200000 + i, 1722877200000 + i)
        messages.append((origin, sign_record(record, keys[origin])))
    topic = "portique/v1/bench/records/%s"
    rounds = []
    clock = time.perf_counter
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="portique-merge-bench-") as tmp:
            journal = Journal(Path(tmp) / "journal.sqlite", gate_id="1")
            store = MeshStore(journal, gate_id="1", venue="bench", key=keys["1"])
            worker_journal = Journal(Path(tmp) / "worker.sqlite", gate_id="1")
            node = MeshNode(MeshConfig(venue="bench", key_file=Path(tmp) / "unused.key"),
                            gate_id="1", journal=worker_journal, key=keys["1"], peers=peers)
            anchor = verified = merged = handled = 0.0
            for origin, m in messages:  # interleaved: the three see the same load
                public = peers[origin]
                t0 = clock()
                public.verify(m[-64:], RECORD_CONTEXT + m[:-64])  # the anchor: the signature
                t1 = clock()
                verify(m, peers, venue="bench")
                t2 = clock()
                store.merge([(cast(Record, verify(m, peers, venue="bench")), m)], now=time.time())
                store.heads()
                t3 = clock()
                node._handle([("message", topic % origin, m, time.time())])
                t4 = clock()
                anchor, verified, merged = anchor + t1 - t0, verified + t2 - t1, merged + t3 - t2
                handled += t4 - t3
            journal.close()
            worker_journal.close()
        rounds.append((merged / n, verified / n, anchor / n, handled / n))
    merged, verified, anchor, handled = sorted(rounds)[len(rounds) // 2]
    print(f"{n} records of {args.gates - 1} other gates, one at a time; median of "
          f"{args.rounds} rounds (verify + merge per round: "
          f"{', '.join(f'{r[0] * 1e3:.3f}' for r in rounds)} ms)")
    print(f"raw anchor, bare Ed25519 verify: {anchor * 1e3:.3f} ms per record")
    print(f"verify (wire checks + signature): {verified * 1e3:.3f} ms per record "
          f"({verified / anchor:.1f}x the anchor)")
    print(f"verify + merge (one SQLite transaction) + heads: {merged * 1e3:.3f} ms per record "
          f"({merged / anchor:.1f}x the anchor)")
    print(f"the mesh worker's handling of one record (verify, merge, gap check, metrics): "
          f"{handled * 1e3:.3f} ms per record ({handled / anchor:.1f}x the anchor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
