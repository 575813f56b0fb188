"""The feed vectors a gate must refuse (tests/vectors/feeds/refused.json): each is refused
by the reference gate with its error, from the committed bytes, and the store keeps what
it had."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portique.revocation.store import FeedStore
from tests.vectors.feeds import generate_refused

COMMITTED = json.loads(generate_refused.OUT.read_text(encoding="utf-8"))


def test_the_committed_vectors_are_the_generators() -> None:
    assert generate_refused.vectors() == COMMITTED
    assert len(COMMITTED["refused"]) >= 12
    assert len({v["error"] for v in COMMITTED["refused"]}) >= 7  # distinct refusals


@pytest.mark.parametrize("vector", COMMITTED["refused"], ids=lambda v: v["name"])
def test_each_is_refused_with_its_error_and_nothing_changes(vector: dict[str, object],
                                                            tmp_path: Path) -> None:
    case = {"name": vector["name"], "before": vector["store_before"],
            "index": bytes.fromhex(str(vector["index_hex"])),
            "files": {n: bytes.fromhex(h) for n, h in vector["files"].items()}}  # type: ignore[attr-defined]
    error = generate_refused.refusal(case, tmp_path)
    assert (type(error).__name__, str(error)) == (vector["error"], vector["message"])
    with FeedStore.open(tmp_path / "feeds.sqlite") as store:
        status = store.status(generate_refused.EVENT)
    if vector["store_before"] == "empty":
        assert status is None
    else:
        assert status is not None and status.sequence == 2
