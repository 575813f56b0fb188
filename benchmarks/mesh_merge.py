"""Figure: what one other gate's record costs the gate that merges it.

A record of gate 2 verified (Ed25519, the wire checks) and merged into gate 1's SQLite
journal (one transaction, as a live record arrives alone), then the streams' heads read
(the gap check), per record; next to the raw anchor of the same run, a bare Ed25519
verify of the same bytes.

    .venv/bin/python benchmarks/mesh_merge.py [--records 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from portique.runtime.journal import Journal
    from portique.runtime.mesh.store import MeshStore
    from portique.runtime.mesh.wire import RECORD_CONTEXT, Record, State, sign_record, verify

    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    k1, k2 = (Ed25519PrivateKey.from_private_bytes(hashlib.sha256(s).digest())
              for s in (b"bench-1", b"bench-2"))
    peers = {"1": k1.public_key(), "2": k2.public_key()}
    n = args.records
    records = [Record("bench", "2", b"\x01" * 8, i, State.ADMITTED, "BENCH-1", f"T{i}", 0,
                      "ab" * 16, 1722877200000 + i, 1722877200000 + i) for i in range(1, n + 1)]
    messages = [sign_record(r, k2) for r in records]
    with tempfile.TemporaryDirectory(prefix="portique-merge-bench-") as tmp:
        journal = Journal(Path(tmp) / "journal.sqlite", gate_id="1")
        store = MeshStore(journal, gate_id="1", venue="bench", key=k1)
        public = k2.public_key()
        anchor = verified = merged = 0.0
        clock = time.perf_counter
        for m in messages:  # interleaved: the three see the same load on a shared machine
            t0 = clock()
            public.verify(m[-64:], RECORD_CONTEXT + m[:-64])  # the anchor: the signature
            t1 = clock()
            verify(m, peers, venue="bench")
            t2 = clock()
            store.merge([(verify(m, peers, venue="bench"), m)], now=time.time())
            store.heads()
            t3 = clock()
            anchor, verified, merged = anchor + t1 - t0, verified + t2 - t1, merged + t3 - t2
        anchor, verified, merged = anchor / n, verified / n, merged / n
        journal.close()
    print(f"{n} records of another gate, one at a time")
    print(f"raw anchor, bare Ed25519 verify: {anchor * 1e3:.3f} ms per record")
    print(f"verify (wire checks + signature): {verified * 1e3:.3f} ms per record "
          f"({verified / anchor:.1f}x the anchor)")
    print(f"verify + merge (one SQLite transaction) + heads: {merged * 1e3:.3f} ms per record "
          f"({merged / anchor:.1f}x the anchor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
