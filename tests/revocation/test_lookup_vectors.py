"""The manifest lookup's vectors (tests/vectors/feeds/lookup.json): the committed file is
what the reference lookup answers on a real store holding the vectors' manifest, and
every answer keeps the documented order (docs/feeds.md, "The manifest lookup")."""

from __future__ import annotations

import json
from pathlib import Path

from portique.revocation.format import fold
from portique.revocation.store import FeedStore
from tests.vectors.feeds import generate_lookup

STAGES = ["ticket_id", "order_ref", "name", "name_prefix", "name_words"]


def test_the_committed_vectors_are_the_lookups_answers() -> None:
    committed = json.loads(generate_lookup.OUT.read_text(encoding="utf-8"))
    assert committed == generate_lookup.vectors()


def test_every_answer_keeps_the_documented_order(tmp_path: Path) -> None:
    committed = json.loads(generate_lookup.OUT.read_text(encoding="utf-8"))
    names = {m["ticket_id"]: fold(m["holder_name"]) for m in committed["manifest"]}
    several = 0
    with FeedStore.open(generate_lookup.build_store(tmp_path)) as store:
        for q in committed["queries"]:
            got = generate_lookup.results(store, q["query"])
            assert got == q["results"], q["query"]
            kinds = [r["match"] for r in got]
            if "near" in kinds:  # near names only when nothing matched exactly
                assert set(kinds) == {"near"}
                keys = [(-r["score"], names[r["ticket_id"]], r["ticket_id"]) for r in got]
                assert keys == sorted(keys)
                assert all(0.75 <= r["score"] < 1 for r in got)
            else:
                ranks = [STAGES.index(k) for k in kinds]
                assert ranks == sorted(ranks)
                for stage in set(kinds):  # within a kind: folded name, then ticket id
                    keys = [(names[r["ticket_id"]], r["ticket_id"]) for r in got
                            if r["match"] == stage]
                    assert keys == sorted(keys)
            several += len(got) >= 3
    assert several >= 4  # vectors that expect several ranked results
    for case in committed["folding"]:
        assert fold(case["text"]) == case["key"]
