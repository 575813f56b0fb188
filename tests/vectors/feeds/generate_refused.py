"""Regenerate the feed vectors a gate must refuse (docs/feeds.md, "Test vectors"): each an
index.json (and its files) built from publication-2 of vectors.json with one fault, the
store it meets, and the error it must give. The errors are the reference gate's
(portique/revocation: `parse_index`, then `FeedStore.apply`).

    .venv/bin/python tests/vectors/feeds/generate_refused.py
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.revocation.errors import FeedError, FeedHashError
from portique.revocation.format import INDEX_NAME, parse_index, sign_index
from portique.revocation.store import FeedFile, FeedStore
from portique.ticket.trust import KeyRole, TrustedKey, TrustStore

HERE = Path(__file__).resolve().parent
OUT = HERE / "refused.json"
EVENT = "VEC-FEED-1"
KID = "feed-vec-1"
SEED = hashlib.sha256(b"portique feed test vector key 1").digest()
PUBLICATION_1 = HERE / "publication-1" / EVENT
PUBLICATION_2 = HERE / "publication-2" / EVENT


def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SEED)


def trust() -> TrustStore:
    return TrustStore.of([TrustedKey(KID, key().public_key().public_bytes_raw(),
                                     KeyRole.FEED)])


def body_of(folder: Path) -> dict[str, Any]:
    raw = json.loads((folder / INDEX_NAME).read_bytes())
    return {k: v for k, v in raw.items() if k != "signature"}


def gz(text: bytes) -> bytes:
    return gzip.compress(text, compresslevel=9, mtime=0)


def with_snapshot(body: dict[str, Any], data: bytes, **changes: Any) -> dict[str, Any]:
    """`body` (a snapshot alone) naming `data` as its snapshot, with its hash and size."""
    snapshot = {**body["snapshot"], "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data), **changes}
    return {**body, "snapshot": snapshot, "deltas": []}


def cases() -> list[dict[str, Any]]:
    """(name, description, index bytes, files, store before) for every fault."""
    body = body_of(PUBLICATION_2)
    snapshot_name = body["snapshot"]["file"]
    snapshot = (PUBLICATION_2 / snapshot_name).read_bytes()
    text = gzip.decompress(snapshot)
    lines = text.split(b"\n")
    other = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"not the feed key").digest())
    signed = sign_index(body, key())
    out: list[dict[str, Any]] = []

    def case(name: str, description: str, index: bytes, files: dict[str, bytes] | None = None,
             before: str = "empty") -> None:
        out.append({"name": name, "description": description, "index": index,
                    "files": files or {}, "before": before})

    case("index-byte-changed", "publication-2's index with its sequence changed after "
         "signing.", signed.replace(b'"sequence":2', b'"sequence":3', 1))
    case("index-not-canonical", "publication-2's index with a space after a comma.",
         signed.replace(b'","', b'", "', 1))
    case("index-other-key", "publication-2's index signed by a key that is not feed-vec-1.",
         sign_index(body, other))
    case("index-unknown-kid", "An index naming key feed-vec-9, which the gate does not "
         "hold.", sign_index({**body, "kid": "feed-vec-9"}, key()))
    case("index-other-event", "A correctly signed index of event VEC-FEED-2.",
         sign_index({**body, "event": "VEC-FEED-2"}, key()))
    case("index-other-event-unknown-kid", "Another event AND an unknown key: the event is "
         "checked first.", sign_index({**body, "event": "VEC-FEED-2", "kid": "feed-vec-9"},
                                      key()))
    case("index-integer-too-long", "A sequence of 17 digits (above 2^53 - 1).",
         signed.replace(b'"sequence":2', b'"sequence":12345678901234567', 1))
    case("index-unknown-member", "A correctly signed index with a member the format does "
         "not have.", sign_index({**body, "comment": "x"}, key()))
    case("file-hash-mismatch", "The snapshot with its last byte changed: size right, hash "
         "wrong.", signed, {snapshot_name: snapshot[:-1] + bytes([snapshot[-1] ^ 1])})
    two = snapshot + gz(b"")
    case("file-two-gzip-members", "A snapshot of two gzip members (the second empty), "
         "its hash and size in a correctly signed index.",
         sign_index(with_snapshot(body, two), key()), {snapshot_name: two})
    swapped = b"\n".join([lines[0], lines[2], lines[1], *lines[3:]])
    case("file-records-out-of-order", "A snapshot whose first two records are swapped, "
         "correctly signed.", sign_index(with_snapshot(body, gz(swapped)), key()),
         {snapshot_name: gz(swapped)})
    case("file-header-other-event", "A snapshot whose header names event VEC-FEED-2, "
         "correctly signed.", sign_index(with_snapshot(body, gz(text.replace(
             b"VEC-FEED-1", b"VEC-FEED-2", 1))), key()),
         {snapshot_name: gz(text.replace(b"VEC-FEED-1", b"VEC-FEED-2", 1))})
    case("file-counts-wrong", "A correctly signed index whose snapshot.revocations says one "
         "more than the file holds.", sign_index(with_snapshot(
             body, snapshot, revocations=body["snapshot"]["revocations"] + 1), key()),
         {snapshot_name: snapshot})
    first = body_of(PUBLICATION_1)
    first_snapshot = (PUBLICATION_1 / first["snapshot"]["file"]).read_bytes()
    case("replay-older-sequence", "publication-1's index and snapshot, offered to a store "
         "at publication-2.", (PUBLICATION_1 / INDEX_NAME).read_bytes(),
         {first["snapshot"]["file"]: first_snapshot}, before="publication-2")
    return out


def store_at(folder: Path, before: str) -> Path:
    path = folder / "feeds.sqlite"
    with FeedStore.open(path) as store:
        if before == "publication-2":
            index = parse_index((PUBLICATION_2 / INDEX_NAME).read_bytes(), trust=trust(),
                                event=EVENT)
            store.apply(index, [FeedFile(index.snapshot,
                                         PUBLICATION_2 / index.snapshot.name)],
                        fetched_at=0.0)
    return path


def downloaded(ref: Any, data: bytes) -> None:
    """The sync client's check of each file as it downloads it (sync.py), before the
    store sees a byte: its size and SHA-256 are the signed index's."""
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != ref.size or digest != ref.sha256:
        raise FeedHashError(f"{ref.name}: {len(data)} bytes with SHA-256 {digest[:16]}..., "
                            f"the signed index says {ref.size} bytes and "
                            f"{ref.sha256[:16]}...")


def refusal(case: dict[str, Any], folder: Path) -> FeedError:
    """What the reference gate says: parse the index, check each file as downloaded,
    then apply them."""
    path = store_at(folder, case["before"])
    for name, data in case["files"].items():
        (folder / name).write_bytes(data)
    try:
        index = parse_index(case["index"], trust=trust(), event=EVENT)
        downloaded(index.snapshot, case["files"][index.snapshot.name])
        with FeedStore.open(path) as store:
            store.apply(index, [FeedFile(index.snapshot, folder / index.snapshot.name)],
                        fetched_at=0.0)
    except FeedError as exc:
        return exc
    raise AssertionError(f"vector {case['name']} is accepted")


def vectors() -> dict[str, Any]:
    refused = []
    for case in cases():
        with tempfile.TemporaryDirectory() as tmp:
            error = refusal(case, Path(tmp))
        refused.append({
            "name": case["name"], "description": case["description"],
            "store_before": case["before"], "index_hex": case["index"].hex(),
            "files": {name: data.hex() for name, data in case["files"].items()},
            "error": type(error).__name__,
            "error_family": [c.__name__ for c in type(error).__mro__
                             if issubclass(c, FeedError)],
            "message": str(error)})
    return {"description": "Feeds a gate must refuse: docs/feeds.md, 'Test vectors'. "
                           "Key, event and publications as in vectors.json.",
            "event": EVENT, "refused": refused}


if __name__ == "__main__":
    OUT.write_text(json.dumps(vectors(), indent=2, ensure_ascii=False) + "\n",
                   encoding="utf-8")
