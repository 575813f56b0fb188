"""The feed test vectors (tests/vectors/feeds/, docs/feeds.md): exact bytes, signatures,
hashes, and the store state they give, checked with the gate's own code."""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.revocation.errors import FeedFormatError, FeedSignatureError, FeedTooLargeError
from portique.revocation.format import (
    INDEX_CONTEXT,
    INDEX_NAME,
    MAX_INDEX_BYTES,
    FeedIndex,
    parse_index,
    sign_index,
)
from portique.revocation.publish import FeedState, read_state, snapshot_lines
from portique.revocation.store import FeedFile, FeedStore
from portique.ticket.trust import KeyRole, TrustedKey, TrustStore

HERE = Path(__file__).resolve().parents[1] / "vectors" / "feeds"
VECTORS: dict[str, Any] = json.loads((HERE / "vectors.json").read_text(encoding="utf-8"))
EVENT: str = VECTORS["event"]
KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(VECTORS["key"]["seed_hex"]))
STEPS = {step["folder"]: step for step in VECTORS["steps"]}


def trust() -> TrustStore:
    public = bytes.fromhex(VECTORS["key"]["public_key_hex"])
    return TrustStore.of([TrustedKey(VECTORS["key"]["kid"], public, KeyRole.FEED)])


def index_of(folder: str) -> tuple[bytes, FeedIndex]:
    data = (HERE / folder / EVENT / INDEX_NAME).read_bytes()
    return data, parse_index(data, trust=trust(), event=EVENT)


def test_the_seed_gives_the_public_key() -> None:
    assert VECTORS["key"]["seed_hex"] == hashlib.sha256(
        b"portique feed test vector key 1").hexdigest()
    assert KEY.public_key().public_bytes_raw().hex() == VECTORS["key"]["public_key_hex"]


@pytest.mark.parametrize("folder", sorted(STEPS))
def test_index_bytes_signature_and_files(folder: str) -> None:
    step = STEPS[folder]
    data, index = index_of(folder)
    assert hashlib.sha256(data).hexdigest() == step["index_sha256"] == index.sha256
    message = bytes.fromhex(step["signed_message_hex"])
    assert message.startswith(INDEX_CONTEXT)
    # Ed25519 is deterministic: signing the message again gives the very same index bytes
    body = json.loads(message[len(INDEX_CONTEXT):])
    assert sign_index(body, KEY) == data
    assert (index.sequence, index.published_at, index.ends_at) == (
        step["expected"]["sequence"], step["expected"]["published_at"],
        step["expected"]["ends_at"])
    for ref in (index.snapshot, *index.deltas):
        raw = (HERE / folder / EVENT / ref.name).read_bytes()
        spec = step["files"][ref.name]
        assert (len(raw), hashlib.sha256(raw).hexdigest()) == (ref.size, ref.sha256) == (
            spec["size"], spec["sha256"])
        text = gzip.decompress(raw)
        assert text == (HERE / folder / spec["text"]).read_bytes()
        assert hashlib.sha256(text).hexdigest() == spec["text_sha256"]


@pytest.mark.parametrize("folder", sorted(STEPS))
def test_snapshot_text_is_the_encoding_of_the_expected_state(folder: str) -> None:
    _, index = index_of(folder)
    path = HERE / folder / EVENT / index.snapshot.name
    state = read_state(path, index.snapshot, EVENT)
    expected = STEPS[folder]["expected"]
    assert dict(state.revocations) == expected["revocations"]
    assert [e.ticket_id for e in state.manifest.values()] == [
        m["ticket_id"] for m in expected["manifest"]]
    text = "".join(snapshot_lines(FeedState(state.revocations, state.manifest)))
    assert gzip.decompress(path.read_bytes()).decode().split("\n", 1)[1] == text


def store_state(path: Path) -> tuple[dict[str, int], list[dict[str, Any]]]:
    connection = sqlite3.connect(path)
    try:
        revocations = dict(connection.execute(
            "SELECT ticket_id, min_generation FROM revocation WHERE event = ?", (EVENT,)))
        manifest = [
            {"ticket_id": r[0], "generation": r[1], "order_ref": r[2], "holder_name": r[3],
             "category": r[4], "entrances": [int(e) for e in r[5].split(",")],
             "flags": r[6]}
            for r in connection.execute(
                "SELECT ticket_id, generation, order_ref, holder_name, category, entrances, "
                "flags FROM manifest WHERE event = ? ORDER BY ticket_id", (EVENT,))]
    finally:
        connection.close()
    return revocations, manifest


def test_snapshot_then_delta_and_snapshot_alone_give_the_expected_state(tmp_path: Path) -> None:
    _, first = index_of("publication-1")
    _, second = index_of("publication-2")
    expected_1 = STEPS["publication-1"]["expected"]
    expected_2 = STEPS["publication-2"]["expected"]
    folder_2 = HERE / "publication-2" / EVENT
    with FeedStore.open(tmp_path / "chain.db") as store:
        store.apply(first, [FeedFile(first.snapshot, HERE / "publication-1" / EVENT /
                                     first.snapshot.name)], fetched_at=0.0)
        assert store_state(tmp_path / "chain.db") == (expected_1["revocations"],
                                                      expected_1["manifest"])
        store.apply(second, [FeedFile(d, folder_2 / d.name) for d in second.deltas],
                    fetched_at=0.0)
        status = store.status(EVENT)
        assert status is not None
        assert (status.sequence, status.published_at) == (2, expected_2["published_at"])
        for lookup in VECTORS["lookups"]:
            found = store.lookup(EVENT, lookup["query"])
            assert [c.entry.ticket_id for c in found] == lookup["ticket_ids"], lookup
    with FeedStore.open(tmp_path / "alone.db") as store:
        store.apply(second, [FeedFile(second.snapshot, folder_2 / second.snapshot.name)],
                    fetched_at=0.0)
    assert store_state(tmp_path / "chain.db") == store_state(tmp_path / "alone.db") == (
        expected_2["revocations"], expected_2["manifest"])


def test_one_changed_byte_of_the_index_is_refused() -> None:
    data, _ = index_of("publication-2")
    forged = data.replace(b'"sequence":2', b'"sequence":3')
    with pytest.raises(FeedSignatureError):
        parse_index(forged, trust=trust(), event=EVENT)
    spaced = data.replace(b'","', b'", "', 1)
    with pytest.raises(FeedFormatError, match="canonical"):
        parse_index(spaced, trust=trust(), event=EVENT)


@pytest.mark.parametrize(("old", "new"), [
    (b'"format":"portique-feed/1"', b'"format":"portique-feed\\/1"'),
    (b'"event":"VEC-FEED-1"', b'"event":"VEC-FEED-\\u0031"'),
])
def test_canonical_json_has_no_escape_sequence(old: bytes, new: bytes) -> None:
    data, _ = index_of("publication-2")
    assert old in data
    assert json.loads(data.replace(old, new)) == json.loads(data)  # the same object
    with pytest.raises(FeedFormatError, match="escape sequence"):
        parse_index(data.replace(old, new), trust=trust(), event=EVENT)


def test_an_index_over_1_mib_is_too_large() -> None:
    data, _ = index_of("publication-2")
    padded = data[:-2] + b" " * (MAX_INDEX_BYTES + 1 - len(data)) + data[-2:]
    with pytest.raises(FeedTooLargeError, match=f"more than {MAX_INDEX_BYTES}"):
        parse_index(padded, trust=trust(), event=EVENT)
