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
    MeshMessageError,
    Record,
    State,
    Summary,
    record_body,
    sign_record,
    sign_summary,
    summary_body,
    verify,
)

HERE = Path(__file__).resolve().parent
SEED = hashlib.sha256(b"portique-mesh-vector/gate-3").digest()


VENUE = "stade-de-france"
OTHER_SEED = hashlib.sha256(b"portique-mesh-vector/not-gate-3").digest()


def _fields(r: Record) -> dict[str, object]:
    return {"venue": r.venue, "gate": r.origin, "incarnation": r.incarnation.hex(),
            "seq": r.seq, "state": r.state.label, "event": r.event,
            "ticket_id": r.ticket_id, "generation": r.generation, "scan_id": r.scan_id,
            "at_ms": r.at_ms, "made_ms": r.made_ms}


def _refused(name: str, description: str, message: bytes, key: Ed25519PrivateKey
             ) -> dict[str, object]:
    """A message every gate of the venue refuses, with the refusal it must give."""
    try:
        verify(message, {"3": key.public_key()}, venue=VENUE)
    except MeshMessageError as exc:
        return {"name": name, "description": description, "message": message.hex(),
                "rejection": str(exc.reason), "error": str(exc)}
    raise AssertionError(f"vector {name} is accepted")


def lifecycle(key: Ed25519PrivateKey) -> list[dict[str, object]]:
    """One ticket's records: admitted at gate 3, voided (nobody passed), admitted again,
    then exited; what each state looks like on the wire."""
    inc = bytes.fromhex("0123456789abcdef")
    records = [
        Record(VENUE, "3", inc, 43, State.ADMITTED, "PAR24-ATH05", "PAR24-000102", 1,
               "a0000000000000000000000000000001", 1722877400000, 1722877400009),
        Record(VENUE, "3", inc, 44, State.VOIDED, "PAR24-ATH05", "PAR24-000102", 1,
               "a0000000000000000000000000000001", 1722877400000, 1722877408015),
        Record(VENUE, "3", inc, 45, State.ADMITTED, "PAR24-ATH05", "PAR24-000102", 1,
               "a0000000000000000000000000000002", 1722877460000, 1722877460011),
        Record(VENUE, "3", inc, 46, State.EXITED, "PAR24-ATH05", "PAR24-000102", 1,
               "a0000000000000000000000000000002", 1722884660000, 1722884660020),
    ]
    return [{"fields": _fields(r), "body": record_body(r).hex(),
             "message": sign_record(r, key).hex()} for r in records]


def refusals(key: Ed25519PrivateKey, good: bytes) -> list[dict[str, object]]:
    other = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
    inc = bytes.fromhex("0123456789abcdef")
    elsewhere = sign_record(Record("parc-des-princes", "3", inc, 42, State.ADMITTED,
                                   "PAR24-ATH05", "PAR24-000101", 0,
                                   "5f2b8c0d9e1a4b7c8d6e5f4a3b2c1d0e", 1722877320000,
                                   1722877320012), key)
    gate9 = sign_record(Record(VENUE, "9", inc, 1, State.ADMITTED, "PAR24-ATH05",
                               "PAR24-000101", 0, "5f2b8c0d9e1a4b7c8d6e5f4a3b2c1d0e",
                               1722877320000, 1722877320012), key)
    body = good[:-64]
    altered = bytearray(good)
    altered[-65] ^= 0x01  # the last byte of the body (made_ms)
    return [
        _refused("forged", "The record signed by another key than gate 3's.",
                 body + other.sign(RECORD_CONTEXT + body)[:64], key),
        _refused("altered", "The record with one bit of its body changed after signing.",
                 bytes(altered), key),
        _refused("wrong-context", "Signed over the summary's context instead of the "
                 "record's.", body + key.sign(SUMMARY_CONTEXT + body), key),
        _refused("unsigned", "The record's body alone.", body, key),
        _refused("trailing-byte", "The record with one byte after its signature.",
                 good + b"\x00", key),
        _refused("truncated", "The record cut after 40 bytes, inside its event.", good[:40], key),
        _refused("unknown-version", "Version byte 2.", b"\x02" + good[1:], key),
        _refused("unknown-kind", "Kind byte 9.", good[:1] + b"\x09" + good[2:], key),
        _refused("unknown-state", "State byte 7 (re-signed: the state is checked before "
                 "the signature).", _resigned(body.replace(b"\x01\x0bPAR24", b"\x07\x0bPAR24",
                                                        1), key), key),
        _refused("seq-zero", "Sequence 0 (re-signed).", _resigned(
            body[:body.index(inc) + 8] + (0).to_bytes(8, "big")
            + body[body.index(inc) + 16:], key), key),
        _refused("other-venue", "A record of another venue, signed by gate 3's key.",
                 elsewhere, key),
        _refused("unknown-gate", "A record from gate 9, which the venue does not list.",
                 gate9, key),
    ]


def _resigned(body: bytes, key: Ed25519PrivateKey, context: bytes = RECORD_CONTEXT
              ) -> bytes:
    return body + key.sign(context + body)


def summary_refusals(key: Ed25519PrivateKey, summary: Summary) -> list[dict[str, object]]:
    """Malformed summaries: the heads are where a summary is long."""
    body = summary_body(summary)
    # version, kind, venue, gate "3", incarnation, sent, stream count; then stream 0
    # (gate "3": 1 + 1 bytes, incarnation, head); stream 1 (gate "7") starts after it
    first = 2 + 1 + len(summary.venue) + 1 + 1 + 8 + 8 + 2
    second = first + 1 + 1 + 8 + 8
    assert body[second:second + 2] == b"\x017"
    return [
        _refused("summary-truncated-in-a-head", "The summary cut inside stream 1's "
                 "incarnation.", body[:second + 2 + 3], key),
        _refused("summary-bad-stream-gate", "Stream 1's gate named \"7!\" (re-signed).",
                 _resigned(body[:second] + b"\x027!" + body[second + 2:], key,
                           SUMMARY_CONTEXT), key),
        _refused("summary-head-out-of-range", "Stream 1's head 2^63 (re-signed).",
                 _resigned(body[:len(body) - 8] + (2**63).to_bytes(8, "big"), key,
                           SUMMARY_CONTEXT), key),
        _refused("summary-altered", "The summary with stream 1's head changed after "
                 "signing.", body[:len(body) - 1] + b"\x12"
                 + sign_summary(summary, key)[len(body):], key),
    ]


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
            "context_text": "portique/mesh/v1/record, then one zero byte",
            "body": record_body(record).hex(),
            "message": sign_record(record, key).hex(),
        },
        "lifecycle": lifecycle(key),
        "refused": refusals(key, sign_record(record, key)) + summary_refusals(key, summary),
        "summary": {
            "fields": {"venue": summary.venue, "gate": summary.origin,
                       "incarnation": summary.incarnation.hex(), "sent_ms": summary.sent_ms,
                       "heads": [[g, i.hex(), h] for g, i, h in summary.heads]},
            "context": SUMMARY_CONTEXT.hex(),
            "context_text": "portique/mesh/v1/summary, then one zero byte",
            "body": summary_body(summary).hex(),
            "message": sign_summary(summary, key).hex(),
        },
    }


if __name__ == "__main__":
    (HERE / "messages.json").write_text(json.dumps(vectors(), indent=2) + "\n",
                                        encoding="utf-8")
