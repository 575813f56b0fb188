"""Regenerate the manifest lookup vectors (docs/feeds.md, "The manifest lookup"): a
manifest built to hit every rule (folding, each exact kind, near names, ties), the search
keys of some texts, and queries with every result they must give, in order, with its
kind and score. The results are the reference lookup's (portique/revocation/lookup.py,
the steward screen's and `gate feed lookup`'s) on a store holding that manifest.

    .venv/bin/python tests/vectors/feeds/generate_lookup.py
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.revocation import lookup
from portique.revocation.format import ManifestEntry, fold, parse_index
from portique.revocation.publish import FeedState, publish
from portique.revocation.store import FeedFile, FeedStore
from portique.ticket.credential import Flag
from portique.ticket.trust import KeyRole, TrustedKey, TrustStore
from portique.ticket.views import CANCELLED

HERE = Path(__file__).resolve().parent
OUT = HERE / "lookup.json"
EVENT = "VEC-LOOKUP-1"
KID = "feed-vec-lookup"
SEED = hashlib.sha256(b"portique feed test vector key lookup").digest()
AT = 1722870000

MANIFEST = [
    # ticket id, generation, order reference, holder name, category, entrances
    ("L-0001", 0, "ORD-5501", "Hélène Dupont", "CAT B", [2]),
    ("L-0002", 0, "ORD-5501", "Hélène Dupont", "CAT B", [2]),
    ("L-0003", 0, "ORD-5502", "Hélène Martin", "CAT B", [2]),
    ("L-0004", 0, "ORD-5503", "Inès Dupond", "CAT B", [2]),
    ("L-0005", 0, "ORD-5504", "Marc Dupontel", "CAT A", [1]),
    ("L-0006", 0, "ORD-5505", "Jean-Pierre Œuvray", "CAT A", [1]),
    ("L-0007", 0, "ORD-5506", "Jeanne d'Arc", "CAT C", [3]),
    ("L-0008", 0, "ORD-5507", "Æsa Grønlund", "CAT C", [3]),
    ("L-0009", 0, "ORD-5508", "Nguyễn Văn An", "CAT C", [3]),
    ("L-0010", 0, "ORD-5509", "Zoé Lambert", "CAT A", [1]),
    ("L-0011", 0, "ORD-5510", "Hélène Dupond", "CAT B", [2]),
    ("l-0012", 0, "ORD-5511", "Dupont Hélène", "CAT B", [2]),
]
CANCELLED_IDS = {"L-0010": CANCELLED}

QUERIES = [
    ("L-0003", "a ticket id"),
    ("l-0003", "a ticket id in another case"),
    ("ord-5501", "an order reference: both of its tickets, by name then ticket id"),
    ("HELENE DUPONT", "a whole name, case and accents ignored: the two holders, then the "
     "name written surname first is not the same name"),
    ("helene", "a name's start: every name starting so, by folded name then ticket id"),
    ("dupont", "a word start in the name: names holding a word starting with it"),
    ("oeuvray", "a ligature folded (Œ = oe)"),
    ("jean pierre", "a hyphen folded to a space: the name's start"),
    ("d arc", "an apostrophe folded to a space"),
    ("aesa gronlund", "Æ and ø folded"),
    ("nguyen van an", "Vietnamese diacritics folded"),
    ("Helene Dupnot", "a typo (two letters swapped): near names, closest first, ties by "
     "folded name then ticket id"),
    ("ines dupont", "a typo in a surname: near"),
    ("zoe lambert", "a cancelled ticket: found, and marked cancelled"),
    ("xyzzy", "nothing close"),
    ("  \u202eHélène\u200b  Dupont\t", "control and format characters removed, white space "
     "collapsed before the lookup"),
]
FOLDING = ["Hélène Dupont", "Jean-Pierre Œuvray", "Jeanne d'Arc", "Æsa Grønlund",
           "Nguyễn Văn An", "  Zoë  d'Arc-Lefèvre ", "O’Brien", "STRAßE", "ORD-5501"]


def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SEED)


def manifest_entries() -> list[ManifestEntry]:
    return [ManifestEntry(t, g, o, h, c, frozenset(e), Flag(0))
            for t, g, o, h, c, e in MANIFEST]


def build_store(folder: Path) -> Path:
    """A feed store holding the vectors' manifest, through the real publisher and apply."""
    state = FeedState(revocations=dict(CANCELLED_IDS),
                      manifest={e.ticket_id: e for e in manifest_entries()})
    publish(out_dir=folder / "www", event=EVENT, state=state, key=key(), kid=KID, now=AT)
    trust = TrustStore.of([TrustedKey(KID, key().public_key().public_bytes_raw(),
                                      KeyRole.FEED)])
    feed = folder / "www" / EVENT
    index = parse_index((feed / "index.json").read_bytes(), trust=trust, event=EVENT)
    path = folder / "feeds.sqlite"
    with FeedStore.open(path) as store:
        store.apply(index, [FeedFile(index.snapshot, feed / index.snapshot.name)],
                    fetched_at=AT)
    return path


def results(store: FeedStore, query: str) -> list[dict[str, Any]]:
    found = lookup.answer(store, EVENT, query, limit=20, budget_s=60.0)
    return [{"ticket_id": c["ticket_id"], "match": c["match"], "score": c["score"],
             "cancelled": c["cancelled"]} for c in found.candidates]


def vectors() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, \
            FeedStore.open(build_store(Path(tmp))) as store:
        queries = [{"query": q, "description": d, "cleaned": lookup.clean_query(q),
                    "results": results(store, q)} for q, d in QUERIES]
    return {
        "description": "Manifest lookup vectors: docs/feeds.md, 'The manifest lookup'",
        "event": EVENT,
        "manifest": [{"ticket_id": t, "generation": g, "order_ref": o, "holder_name": h,
                      "category": c, "entrances": e} for t, g, o, h, c, e in MANIFEST],
        "cancelled": sorted(CANCELLED_IDS),
        "folding": [{"text": text, "key": fold(text)} for text in FOLDING],
        "limit": 20,
        "queries": queries,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(vectors(), indent=2, ensure_ascii=False) + "\n",
                   encoding="utf-8")
