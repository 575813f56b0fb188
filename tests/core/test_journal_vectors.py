"""The journal tree's committed vectors (tests/vectors/journal/), checked from the JSON with
the RFC 6962 definitions written out again here, and with the gate's own code."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from portique.runtime import ledger, tlog

VECTORS_FILE = Path(__file__).parents[1] / "vectors" / "journal" / "vectors.json"
DOC: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(h: list[bytes]) -> bytes:
    """RFC 6962 2.1, as written there."""
    if not h:
        return hashlib.sha256(b"").digest()
    if len(h) == 1:
        return h[0]
    k = _k(len(h))
    return _node(mth(h[:k]), mth(h[k:]))


def path(m: int, h: list[bytes]) -> list[bytes]:
    """RFC 6962 2.1.1 PATH."""
    if len(h) == 1:
        return []
    k = _k(len(h))
    return [*path(m, h[:k]), mth(h[k:])] if m < k else [*path(m - k, h[k:]), mth(h[:k])]


def subproof(m: int, h: list[bytes], b: bool) -> list[bytes]:
    """RFC 6962 2.1.2 SUBPROOF."""
    n = len(h)
    if m == n:
        return [] if b else [mth(h)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, h[:k], b), mth(h[k:])]
    return [*subproof(m - k, h[k:], False), mth(h[:k])]


def test_committed_file_matches_its_generator() -> None:
    from tests.vectors.journal.generate import render

    assert VECTORS_FILE.read_text(encoding="utf-8") == render()


def test_rfc6962_roots() -> None:
    rfc = DOC["rfc6962"]
    hashes = [_leaf(bytes.fromhex(x)) for x in rfc["leaves_hex"]]
    assert [h.hex() for h in hashes] == rfc["leaf_hashes_hex"]
    for size, root in rfc["roots_hex"].items():
        assert mth(hashes[:int(size)]).hex() == root
        assert tlog.root(hashes[:int(size)]).hex() == root


def test_journal_leaves_roots_and_proofs() -> None:
    j = DOC["journal"]
    hashes = [_leaf(leaf["utf8"].encode("utf-8")) for leaf in j["leaves"]]
    assert [h.hex() for h in hashes] == [leaf["leaf_hash_hex"] for leaf in j["leaves"]]
    for leaf in j["leaves"] + j["legacy_leaves"]:  # its record's JSON, with its own index
        body = json.loads(leaf["utf8"])
        assert (body["v"], body["i"], body["leaf"]) == (1, leaf["index"], leaf["kind"])
        assert list(body)[3:] == list(ledger.FIELDS[leaf["kind"]])
        assert _leaf(leaf["utf8"].encode("utf-8")).hex() == leaf["leaf_hash_hex"]
    assert [leaf["kind"] for leaf in j["leaves"]] == [
        "admit", "state", "decision", "gate_event", "admit", "state", "decision", "state"]
    # an admit leaf is its decision's leaf with the admission's state and time after it
    admit, legacy = (json.loads(x["utf8"]) for x in (j["leaves"][0], j["legacy_leaves"][0]))
    assert {**legacy, "leaf": "admit", "state": "open", "updated_at": legacy["at"]} == admit
    for size, root in j["roots_hex"].items():
        assert mth(hashes[:int(size)]).hex() == root
    for case in j["inclusion"]:
        i, n = case["index"], case["size"]
        proof = [bytes.fromhex(p) for p in case["proof_hex"]]
        assert proof == path(i, hashes[:n])
        tlog.verify_inclusion(hashes[i], i, n, proof, mth(hashes[:n]))
    for case in j["consistency"]:
        m, n = case["old"], case["new"]
        proof = [bytes.fromhex(p) for p in case["proof_hex"]]
        assert proof == ([] if m in (0, n) else subproof(m, hashes[:n], True))
        tlog.verify_consistency(m, n, mth(hashes[:m]), mth(hashes[:n]), proof)


def test_checkpoint_signature_and_cosignature() -> None:
    c, keys = DOC["checkpoint"], DOC["keys"]
    gate = Ed25519PublicKey.from_public_bytes(bytes.fromhex(keys["1"]["public_hex"]))
    witness = Ed25519PublicKey.from_public_bytes(bytes.fromhex(keys["2"]["public_hex"]))
    body = c["body_utf8"].encode()
    assert body == f"{c['origin']}\n{c['size']}\n{c['root_b64']}\n".encode()
    assert hashlib.sha256(b"1\n\x01" + gate.public_bytes_raw()).digest()[:4].hex() == \
        keys["1"]["note_key_id_hex"]
    assert hashlib.sha256(b"2\n\x04" + witness.public_bytes_raw()).digest()[:4].hex() == \
        keys["2"]["cosignature_key_id_hex"]
    note = c["signed_note_utf8"].encode()
    assert note.startswith(body + b"\n\xe2\x80\x94 1 ")
    blob = base64.b64decode(note[len(body) + 1:].split(b" ")[2])
    assert blob[:4].hex() == keys["1"]["note_key_id_hex"]
    gate.verify(blob[4:], body)
    message = c["cosigned_message_utf8"].encode()
    assert message == b"cosignature/v1\ntime %d\n" % c["cosignature_timestamp"] + body
    line = c["cosigned_note_utf8"].encode().split(b"\n")[-2]
    blob = base64.b64decode(line.split(b" ")[2])
    assert struct.unpack(">Q", blob[4:12])[0] == c["cosignature_timestamp"]
    witness.verify(blob[12:], message)
    signed = tlog.parse_checkpoint(c["cosigned_note_utf8"].encode())
    tlog.check_signature(signed, "1", gate)
    assert tlog.check_cosignature(signed, "2", witness) == c["cosignature_timestamp"]
    assert signed.encode() == c["cosigned_note_utf8"].encode()


def test_upload_tree_verifies_against_the_previous_checkpoint() -> None:
    u = DOC["upload_tree"]
    gate = Ed25519PublicKey.from_public_bytes(bytes.fromhex(DOC["keys"]["1"]["public_hex"]))
    body = {"gate": "1", "event": "PAR24-ATH05", "records": [u["record"]],
            "tree": {k: u[k] for k in ("checkpoint", "leaves", "consistency")}}
    previous = tlog.parse_checkpoint(u["previous_checkpoint"].encode())
    signed = ledger.verify_upload(body, gate_keys={"1": gate}, previous=previous)
    assert signed.checkpoint.size == DOC["checkpoint"]["size"]
    changed = json.loads(json.dumps(body))
    changed["records"][0]["verdict"] = "refuse"
    with pytest.raises(tlog.TlogError, match="verdict"):
        ledger.verify_upload(changed, gate_keys={"1": gate}, previous=previous)


def test_invalid_cases_are_refused() -> None:
    bad = DOC["invalid"]
    gate = Ed25519PublicKey.from_public_bytes(bytes.fromhex(DOC["keys"]["1"]["public_hex"]))
    with pytest.raises(tlog.TlogError, match="does not verify"):
        tlog.check_signature(tlog.parse_checkpoint(
            bad["note_with_a_flipped_root_bit_utf8"].encode()), "1", gate)
    case = bad["inclusion_wrong_index"]
    root = bytes.fromhex(DOC["journal"]["roots_hex"][str(case["size"])])
    with pytest.raises(tlog.TlogError):
        tlog.verify_inclusion(bytes.fromhex(case["leaf_hash_hex"]), case["index"],
                              case["size"], [bytes.fromhex(p) for p in case["proof_hex"]],
                              root)
    case = bad["consistency_of_another_history"]
    with pytest.raises(tlog.TlogError, match="different history"):
        tlog.verify_consistency(case["old"], case["new"], bytes.fromhex(case["old_root_hex"]),
                                bytes.fromhex(DOC["journal"]["roots_hex"][str(case["new"])]),
                                [bytes.fromhex(p) for p in case["proof_hex"]])


TRICKY: list[Any] = ['say "hi"\\ ok', "\x00\x1f\x7f tab\t", "Élodie \u2028 ✓ 𝄞", "", None,
                     0, -7, 2**63 - 1, 1722877205.25, 0.1, 1e-300, 1.5e300, -0.0, 41.0]


@pytest.mark.parametrize("kind", sorted(ledger.FIELDS))
def test_leaf_writer_gives_the_general_json_encoders_bytes(kind: str) -> None:
    """The gate builds leaf bytes without the general JSON encoder (it runs inside every
    admission's transaction); the bytes must stay exactly the documented compact JSON."""
    names = ledger.FIELDS[kind]
    for shift in range(len(TRICKY)):
        values = [TRICKY[(shift + k) % len(TRICKY)] for k in range(len(names))]
        index = 12345 * shift
        body = {"v": 1, "i": index, "leaf": kind, **dict(zip(names, values, strict=True))}
        expected = json.dumps(body, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)
        assert ledger.leaf_bytes(kind, index, values) == expected.encode("utf-8")


def test_leaf_writer_refuses_what_json_cannot_hold() -> None:
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="not finite"):
            ledger.leaf_bytes("state", 0, ["a", "passed", bad])
    with pytest.raises(ValueError, match="3 fields"):
        ledger.leaf_bytes("state", 0, ["a", "passed"])
    with pytest.raises(TypeError):
        ledger.leaf_bytes("state", 0, ["a", "passed", b"\x00"])


def test_tree_extended_in_batches_is_the_tree_appended_leaf_by_leaf() -> None:
    """A checkpoint brings the gate's tree up to date many leaves at once (`extend`): the
    same levels, roots and proofs as leaves appended one by one, and RFC 6962's root."""
    hashes = [_leaf(i.to_bytes(4, "big")) for i in range(300)]
    one_by_one, batched = tlog.Tree(), tlog.Tree()
    start = 0
    for size in (0, 1, 2, 3, 5, 8, 17, 64, 100, 100):  # batches ending on odd and even sizes
        batched.extend(hashes[start:start + size])
        for h in hashes[start:start + size]:
            one_by_one.append(h)
        start += size
        assert batched.levels == one_by_one.levels
        assert batched.root() == mth(hashes[:start])
    assert start == 300
    assert batched.inclusion_proof(7) == path(7, hashes)
