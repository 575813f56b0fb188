"""Checkpoints over the venue mesh: each gate publishes its journal's signed checkpoints,
and the other gates, as witnesses, cosign those consistent with what they saw before.

Topics under ``<topic_prefix>/<venue>/`` (docs/journal.md, "Checkpoints over the mesh"):
``checkpoints/<gate>`` carries a gate's latest checkpoint (a C2SP signed note) with the
consistency proofs from the sizes its witnesses last cosigned; ``cosignatures/<gate>``
carries a witness's answer to that gate: its cosignature/v1 line on the checkpoint, or the
size it holds when the proof it needs was missing. A witness keeps the newest checkpoint
it cosigned of every gate and never cosigns one that is smaller, different at the same
size, or not proved to extend it: a gate cannot later show a history its peers did not see.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from portique.runtime import tlog
from portique.runtime.journal import Journal

log = logging.getLogger("portique.runtime.mesh.witness")

SCHEMA = """
CREATE TABLE IF NOT EXISTS mesh_witnessed (
    gate  TEXT PRIMARY KEY,
    size  INTEGER NOT NULL,
    note  BLOB NOT NULL,
    at    REAL NOT NULL
);
"""
MAX_PROOFS = 16
REPUBLISH_S = 30.0


def parse_line(line: str) -> tlog.Signature:
    """One signature line (``— name base64``) as a Signature."""
    signed = tlog.parse_checkpoint(b"o\n0\n" + base64.b64encode(bytes(32)) + b"\n\n"
                                   + line.encode("utf-8"))
    return signed.signatures[0]


class Witness:
    """This gate's checkpoints out, the other gates' in (called by the mesh worker)."""

    def __init__(self, journal: Journal, *, gate_id: str, key: Ed25519PrivateKey,
                 peers: dict[str, Ed25519PublicKey], base: str) -> None:
        self.journal, self.gate_id, self._key, self.peers = journal, gate_id, key, peers
        self.topics = {"checkpoints": f"{base}/checkpoints",
                       "cosignatures": f"{base}/cosignatures"}
        self.witness_sizes: dict[str, int] = {}
        """Per witness: the size of this gate's checkpoint it last cosigned (or holds)."""
        self.published_size = -1
        self.published_at = 0.0
        self.refused: dict[str, str] = {}
        """Per gate: why this gate refused to cosign its latest checkpoint."""
        self.cosigned = 0
        with journal.transaction("the mesh witness's table") as db:
            db.execute(SCHEMA)

    def subscriptions(self) -> list[str]:
        return [f"{self.topics['checkpoints']}/+",
                f"{self.topics['cosignatures']}/{self.gate_id}"]

    def owns(self, topic: str) -> bool:
        return any(topic.startswith(t + "/") for t in self.topics.values())

    # --- out ------------------------------------------------------------------------

    def due(self, now: float) -> bytes | None:
        """This gate's checkpoint message, when there is a newer checkpoint than the one
        published, or a witness needs a proof, or a while has passed; else None."""
        signed = self.journal.last_checkpoint
        if signed is None:
            return None
        size = signed.checkpoint.size
        behind = any(s != size for s in self.witness_sizes.values())
        since = now - self.published_at
        newer = size != self.published_size
        if not (newer or since >= REPUBLISH_S or (behind and since >= REPUBLISH_S / 10)):
            return None
        proofs: dict[str, list[str]] = {}
        for old in sorted(set(self.witness_sizes.values()), reverse=True)[:MAX_PROOFS]:
            if 0 < old < size:
                proofs[str(old)] = [base64.b64encode(h).decode()
                                    for h in self.journal.consistency(old, size)]
        self.published_size, self.published_at = size, now
        return json.dumps({"checkpoint": signed.encode().decode("utf-8"), "proofs": proofs},
                          separators=(",", ":")).encode()

    def topic_out(self) -> str:
        return f"{self.topics['checkpoints']}/{self.gate_id}"

    # --- in -------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes, now: float) -> tuple[str, bytes] | None:
        """A checkpoint or cosignature message; returns (topic, payload) to publish (a
        cosignature answer), or None."""
        sender = topic.rsplit("/", 1)[1]
        try:
            message = json.loads(payload)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            log.warning("mesh: checkpoint message ignored topic=%s cause=%s", topic, exc)
            return None
        if topic.startswith(self.topics["checkpoints"] + "/"):
            if sender == self.gate_id:
                return None
            return self._witness(sender, message, now)
        self._cosigned(message)
        return None

    def _witness(self, gate: str, message: dict[str, Any],
                 now: float) -> tuple[str, bytes] | None:
        key = self.peers.get(gate)
        if key is None:
            return None
        try:
            signed = tlog.parse_checkpoint(str(message.get("checkpoint", "")).encode())
            tlog.check_signature(signed, gate, key)
        except tlog.TlogError as exc:
            log.warning("mesh: checkpoint of gate %s ignored: %s", gate, exc)
            return None
        cp = signed.checkpoint
        with self.journal.reading() as db:
            row = db.execute("SELECT size, note FROM mesh_witnessed WHERE gate = ?",
                             (gate,)).fetchone()
        held = None if row is None else tlog.parse_checkpoint(bytes(row[1])).checkpoint
        if held is not None and held.origin == cp.origin:
            why = None
            if cp.size < held.size:
                why = (f"its tree of {cp.size} leaves is smaller than the {held.size} this "
                       "gate cosigned: its journal was cut back")
            elif cp.size == held.size and cp.root != held.root:
                why = f"two different trees of size {cp.size}: its history was rewritten"
            elif cp.size > held.size:
                proofs = message.get("proofs")
                proof = [] if held.size == 0 else (
                    proofs.get(str(held.size)) if isinstance(proofs, dict) else None)
                if not isinstance(proof, list):
                    return self._answer(gate, held.size, None)  # ask for the proof
                try:
                    tlog.verify_consistency(held.size, cp.size, held.root, cp.root,
                                            [base64.b64decode(h) for h in proof])
                except (tlog.TlogError, ValueError) as exc:
                    why = f"not an extension of the tree this gate cosigned ({exc})"
            if why is not None:
                if self.refused.get(gate) != why:
                    log.error("mesh: gate %s presents a journal checkpoint this gate will "
                              "not cosign: %s", gate, why)
                self.refused[gate] = why
                return self._answer(gate, held.size, None)
            if cp.size == held.size:
                return self._answer(gate, cp.size, None, cosigned=True)
        elif held is not None:
            log.warning("mesh: gate %s starts a new journal log %s (it showed %s before)",
                        gate, cp.origin, held.origin)
        self.refused.pop(gate, None)
        cosignature = tlog.cosign(cp, self.gate_id, self._key, int(now))
        kept = signed.with_signature(cosignature)
        with self.journal.transaction("a witnessed checkpoint") as db:
            db.execute("INSERT INTO mesh_witnessed (gate, size, note, at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (gate) DO UPDATE SET size = excluded.size, note = "
                       "excluded.note, at = excluded.at", (gate, cp.size, kept.encode(), now))
        self.cosigned += 1
        return self._answer(gate, cp.size, cosignature)

    def _answer(self, gate: str, size: int, cosignature: tlog.Signature | None, *,
                cosigned: bool = False) -> tuple[str, bytes] | None:
        if cosigned:
            return None  # the same checkpoint again: answered already
        body = {"witness": self.gate_id, "size": size,
                "line": None if cosignature is None else cosignature.line()}
        return (f"{self.topics['cosignatures']}/{gate}",
                json.dumps(body, separators=(",", ":")).encode())

    def _cosigned(self, message: dict[str, Any]) -> None:
        witness, size, line = message.get("witness"), message.get("size"), message.get("line")
        key = self.peers.get(str(witness))
        if key is None or not isinstance(size, int) or witness == self.gate_id:
            return
        self.witness_sizes[str(witness)] = size
        if not isinstance(line, str):
            return
        try:
            signature = parse_line(line)
            for signed in self.journal.checkpoints(since_size=size):
                if signed.checkpoint.size == size:
                    tlog.check_cosignature(signed.with_signature(signature), str(witness), key)
                    self.journal.add_cosignature(size, signature)
                    log.info("journal checkpoint cosigned gate=%s size=%d witness=%s",
                             self.gate_id, size, witness)
                    return
        except tlog.TlogError as exc:
            log.warning("mesh: cosignature of gate %s ignored: %s", witness, exc)

    def status(self) -> dict[str, Any]:
        return {"published_size": self.published_size, "witnesses": dict(self.witness_sizes),
                "refused": dict(self.refused), "cosigned": self.cosigned,
                "at": time.time()}
