"""Write the heartbeat test vector (deterministic: Ed25519 signatures are).

    .venv/bin/python tests/vectors/mesh/generate_heartbeat.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.runtime.mesh.heartbeat import HEARTBEAT_CONTEXT, sign_heartbeat

HERE = Path(__file__).resolve().parent
SEED = hashlib.sha256(b"portique-mesh-vector/gate-3").digest()
BODY = {
    "v": 1, "venue": "stade-de-france", "gate": "3", "seq": 7, "sent_ms": 1722877330000,
    "interval_s": 10.0, "version": "0.1.0",
    "ready": {"ok": False, "failing": ["camera"]},
    "camera": {"state": "lost", "fps": 0.0, "device": "/dev/video0",
               "why": "no such device"},
    "feeds": [{"event": "PAR24-ATH05", "sequence": 118, "age_s": 95.0, "error": None}],
    "feed_waived": False,
    "clock": {"trusted": True, "why": "os synchronised", "unix_ms": 1722877330000},
    "decisions_per_min": 11.0, "refusals": {"ALREADY_ADMITTED": 1, "STALE_CODE": 3},
    "fire_alarm": {"active": False, "latched": False}, "zones": None,
    "mesh": {"state": "connected", "broker": "core.venue.lan:8883"}, "training": False,
}


def vector() -> dict[str, object]:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    message = sign_heartbeat(BODY, key)
    return {
        "description": "A heartbeat of gate 3 (docs/mesh.md, Heartbeats and the fleet view). "
                       "The private key is the 32-byte seed below: for tests only.",
        "seed_hex": SEED.hex(),
        "public_key_hex": key.public_key().public_bytes_raw().hex(),
        "context_hex": HEARTBEAT_CONTEXT.hex(),
        "body": BODY,
        "body_utf8": message[65:].decode("utf-8"),
        "message_hex": message.hex(),
    }


if __name__ == "__main__":
    (HERE / "heartbeat.json").write_text(json.dumps(vector(), indent=2) + "\n",
                                         encoding="utf-8")
