"""Regenerate the feed test vectors (docs/feeds.md, "Test vectors") with the reference
publisher: a fixed feed key from a fixed seed, a first publication (snapshot 1) and a
second (snapshot 2 and delta 1-2), the exact files, and the store state they must give.

    .venv/bin/python tests/vectors/feeds/generate.py
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.revocation.format import INDEX_CONTEXT, ManifestEntry, canonical_json
from portique.revocation.publish import FeedState, publish
from portique.ticket.credential import Flag
from portique.ticket.views import CANCELLED

HERE = Path(__file__).resolve().parent
EVENT = "VEC-FEED-1"
KID = "feed-vec-1"
SEED = hashlib.sha256(b"portique feed test vector key 1").digest()
T1 = 1722870000  # 2024-08-05T15:00:00Z
T2 = 1722873600  # 2024-08-05T16:00:00Z
ENDS_AT = 1722891600  # 2024-08-05T21:00:00Z


def entry(ticket_id: str, generation: int, order_ref: str, holder: str, category: str,
          entrances: set[int], flags: Flag = Flag(0)) -> ManifestEntry:
    return ManifestEntry(ticket_id, generation, order_ref, holder, category,
                         frozenset(entrances), flags)


STATE_1 = FeedState(
    revocations={"0042-0001": 2, "0042-0003": CANCELLED},
    manifest={e.ticket_id: e for e in (
        entry("0042-0001", 2, "ORD-7781", "Zoë Lefèvre", "CAT A", {1, 3}, Flag.ACCESSIBLE),
        entry("0042-0002", 0, "ORD-7781", "Jean-Pierre Œuvray", "CAT A", {1, 3}),
        entry("0042-0003", 0, "ORD-7790", "Søren Müller", "CAT B", {2}),
        entry("0042-0004", 1, "ORD-7802", "Marie Dupont", "CAT B", {2}, Flag.PAPER),
    )},
)
STATE_2 = FeedState(
    revocations={"0042-0001": 3, "0042-0002": 1, "0042-0003": CANCELLED},
    manifest={e.ticket_id: e for e in (
        entry("0042-0001", 3, "ORD-9120", "Aïcha Benali", "CAT A", {1, 3}, Flag.ACCESSIBLE),
        entry("0042-0002", 1, "ORD-7781", "Jean-Pierre Œuvray", "CAT A", {1, 3}),
        entry("0042-0003", 0, "ORD-7790", "Søren Müller", "CAT B", {2}),
        entry("0042-0005", 0, "ORD-7803", "Nguyễn Văn An", "CAT C", {4},
              Flag.REENTRY),
    )},
)


def manifest_json(state: FeedState) -> list[dict[str, Any]]:
    return [{"ticket_id": e.ticket_id, "generation": e.generation, "order_ref": e.order_ref,
             "holder_name": e.holder_name, "category": e.category,
             "entrances": sorted(e.entrances), "flags": int(e.flags)}
            for _, e in sorted(state.manifest.items())]


def step(folder: Path, state: FeedState, published_at: int) -> dict[str, Any]:
    event_dir = folder / EVENT
    index_bytes = (event_dir / "index.json").read_bytes()
    body = {k: v for k, v in json.loads(index_bytes).items() if k != "signature"}
    files = {}
    for path in sorted(event_dir.glob("*.tsv.gz")):
        text = gzip.decompress(path.read_bytes())
        (folder / path.name.removesuffix(".gz")).write_bytes(text)
        files[path.name] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                            "size": path.stat().st_size, "text": path.name.removesuffix(".gz"),
                            "text_sha256": hashlib.sha256(text).hexdigest()}
    return {
        "folder": folder.name,
        "index_sha256": hashlib.sha256(index_bytes).hexdigest(),
        "signed_message_hex": (INDEX_CONTEXT + canonical_json(body)).hex(),
        "files": files,
        "expected": {"sequence": body["sequence"], "published_at": published_at,
                     "ends_at": ENDS_AT,
                     "revocations": dict(sorted(state.revocations.items())),
                     "manifest": manifest_json(state)},
    }


def main() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    steps = []
    for name, state, at in (("publication-1", STATE_1, T1), ("publication-2", STATE_2, T2)):
        folder = HERE / name
        shutil.rmtree(folder, ignore_errors=True)
        if steps:  # the second publication continues the first one's folder
            shutil.copytree(HERE / "publication-1", folder)
            for text in folder.glob("*.tsv"):
                text.unlink()
        publish(out_dir=folder, event=EVENT, state=state, key=key, kid=KID, now=at,
                ends_at=ENDS_AT)
        steps.append(step(folder, state, at))
    vectors = {
        "description": "Feed test vectors: docs/feeds.md, 'Test vectors'",
        "event": EVENT,
        "key": {"kid": KID, "role": "feed", "seed_hex": SEED.hex(),
                "public_key_hex": key.public_key().public_bytes_raw().hex()},
        "steps": steps,
        "lookups": [
            {"after": "publication-2", "query": "aicha BENALI", "ticket_ids": ["0042-0001"]},
            {"after": "publication-2", "query": "oeuvray", "ticket_ids": ["0042-0002"]},
            {"after": "publication-2", "query": "ord-7781", "ticket_ids": ["0042-0002"]},
            {"after": "publication-2", "query": "nguyen van", "ticket_ids": ["0042-0005"]},
            {"after": "publication-2", "query": "0042-0003", "ticket_ids": ["0042-0003"]},
        ],
    }
    (HERE / "vectors.json").write_text(json.dumps(vectors, indent=2, ensure_ascii=False)
                                       + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
