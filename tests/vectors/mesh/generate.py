"""Write the mesh test vectors (deterministic: Ed25519 signatures are).

    .venv/bin/python tests/vectors/mesh/generate.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.runtime.mesh.wire import (
    RECORD_CONTEXT,
    SUMMARY_CONTEXT,
    Record,
    State,
    Summary,
    record_body,
    sign_record,
    sign_summary,
    summary_body,
)

HERE = Path(__file__).resolve().parent
SEED = hashlib.sha256(b"portique-mesh-vector/gate-3").digest()


def vectors() -> dict[str, object]:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    record = Record("stade-de-france", "3", bytes.fromhex("0123456789abcdef"), 42,
                    State.ADMITTED, "PAR24-ATH05", "PAR24-000101", 0,
                    "5f2b8c0d9e1a4b7c8d6e5f4a3b2c1d0e", 1722877320000, 1722877320012)
    summary = Summary("stade-de-france", "3", bytes.fromhex("0123456789abcdef"),
                      1722877330000, (("3", bytes.fromhex("0123456789abcdef"), 42),
                                      ("7", bytes.fromhex("fedcba9876543210"), 17)))
    return {
        "description": "Mesh messages of gate 3 (docs/mesh.md). The private key is the "
                       "32-byte seed below: for tests only.",
        "private_key_seed": SEED.hex(),
        "public_key": key.public_key().public_bytes_raw().hex(),
        "record": {
            "fields": {"venue": record.venue, "gate": record.origin,
                       "incarnation": record.incarnation.hex(), "seq": record.seq,
                       "state": record.state.label, "event": record.event,
                       "ticket_id": record.ticket_id, "generation": record.generation,
                       "scan_id": record.scan_id, "at_ms": record.at_ms,
                       "made_ms": record.made_ms},
            "context": RECORD_CONTEXT.hex(),
            "body": record_body(record).hex(),
            "message": sign_record(record, key).hex(),
        },
        "summary": {
            "fields": {"venue": summary.venue, "gate": summary.origin,
                       "incarnation": summary.incarnation.hex(), "sent_ms": summary.sent_ms,
                       "heads": [[g, i.hex(), h] for g, i, h in summary.heads]},
            "context": SUMMARY_CONTEXT.hex(),
            "body": summary_body(summary).hex(),
            "message": sign_summary(summary, key).hex(),
        },
    }


if __name__ == "__main__":
    (HERE / "messages.json").write_text(json.dumps(vectors(), indent=2) + "\n",
                                        encoding="utf-8")
