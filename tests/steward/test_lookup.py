"""The forgiving manifest lookup (portique/revocation/lookup.py) on a real feed store, and hostile
input
through the real control socket and through the UI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual import events
from textual.widgets import Input

from portique.commands.main import main
from portique.revocation.lookup import (
    MAX_QUERY,
    answer,
    clean_query,
    damerau_levenshtein,
    lookup,
    similarity,
)
from portique.revocation.store import FeedStore
from portique.runtime.control import ControlClient
from portique.runtime.steward.widgets.results import LookupResults
from tests.steward.conftest import (
    EVENT,
    Feed,
    LiveGate,
    screen_text,
    steward_app,
    until,
    write_config,
)

HOSTILE = [
    "x" * 10_000,
    "Dupont" + "\x00\x1b[31m\x07\r\n\t" * 200,
    "\u202eDupont\u200b\ufeff",
    "' OR '1'='1",
    "\"; DROP TABLE manifest; --",
    "%_%\\%",
    "Robert'); DELETE FROM decisions; --",
    "[bold red]Dupont[/]",
    "{holder} {0} %s",
    " " * 5_000,
    "é" * 3_000 + " Dupont",
]


@pytest.fixture
def store(feed: Feed, tmp_path: Path) -> Iterator[FeedStore]:
    path = tmp_path / "feeds.sqlite"
    path.write_bytes(feed.store.read_bytes())
    with FeedStore.open(path) as opened:
        yield opened


def ids(found: list[dict[str, object]]) -> list[object]:
    return [c["ticket_id"] for c in found]


def test_exact_matches_come_from_the_store_in_its_order(store: FeedStore) -> None:
    assert ids(lookup(store, EVENT, "PAR24-000108")) == ["PAR24-000108"]
    assert ids(lookup(store, EVENT, "par24-000108")) == ["PAR24-000108"]  # case of an id
    assert ids(lookup(store, EVENT, "ord-5505")) == ["PAR24-000105"]
    assert ids(lookup(store, EVENT, "EMMA NGUYEN")) == ["PAR24-000105"]  # case, accents
    assert ids(lookup(store, EVENT, "dupon")) == ["PAR24-000101", "PAR24-000109"]


def test_small_typos_find_the_name_closest_first(store: FeedStore) -> None:
    found = lookup(store, EVENT, "Helene Dupnot")
    assert ids(found)[0] == "PAR24-000101"
    assert found[0]["match"] == "near" and found[0]["holder"] == "Hélène Dupont"
    assert ids(lookup(store, EVENT, "Chloe Martn")) == ["PAR24-000103"]
    assert ids(lookup(store, EVENT, "Farid Bnali"))[0] == "PAR24-000106"
    assert lookup(store, EVENT, "Zébulon Quartz") == []  # far from everyone


def test_a_cancelled_ticket_says_so(store: FeedStore) -> None:
    (zoe,) = lookup(store, EVENT, "Zoe Lambert")
    assert zoe["cancelled"] is True
    assert lookup(store, EVENT, "Hana Sato")[0]["cancelled"] is False


def test_edit_distance() -> None:
    assert damerau_levenshtein("dupnot", "dupont") == 1  # two letters swapped
    assert damerau_levenshtein("helene", "helene") == 0
    assert damerau_levenshtein("", "abc") == 3
    assert similarity("martn", "martin") == pytest.approx(5 / 6)


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_are_cut_cleaned_and_bounded(store: FeedStore, query: str) -> None:
    cleaned = clean_query(query)
    assert len(cleaned) <= MAX_QUERY
    assert not any(ord(c) < 32 or c in "\u202e\u200b\ufeff" for c in cleaned)
    found = lookup(store, EVENT, query, limit=5)
    assert len(found) <= 5
    assert ids(lookup(store, EVENT, "Hélène Dupont")) == ["PAR24-000101"]  # store intact


def test_hostile_queries_through_the_control_socket(gate: LiveGate) -> None:
    client = ControlClient(gate.socket)
    for query in HOSTILE:
        answer = client.request("lookup", query=query, limit=20)
        assert answer["ok"] is True, answer
        assert len(answer["candidates"]) <= 20
    assert client.request("lookup", query="Dupont" + "\x00" * 50)["candidates"][0][
        "ticket_id"] == "PAR24-000101"
    # nothing was written, nothing was dropped
    assert gate.rows("SELECT count(*) FROM decisions") == [(0,)]
    answer = client.request("lookup", query="dupont")
    assert [c["ticket_id"] for c in answer["candidates"]] == ["PAR24-000101"]
    assert answer["truncated"] is False  # answered whole, within its time budget


def test_hostile_input_in_the_ui_is_handled(gate: LiveGate) -> None:
    async def scenario() -> None:
        app = steward_app(gate.socket)
        async with app.run_test(size=(150, 40)) as pilot:
            await until(pilot, lambda: app.session.link_up, "the link")
            field = app.screen.query_one("#lookup-input", Input)
            for query in HOSTILE:
                field.value = ""
                field.post_message(events.Paste(query))  # as a terminal pastes it
                await pilot.pause()
                assert len(field.value) <= MAX_QUERY
                await pilot.press("f2", "enter")
                await until(pilot, lambda: app.session.waiting == 0, "the answer")
                await pilot.pause()
                assert app.screen.query_one(LookupResults).row_count <= 20
                assert "Lookup failed" not in screen_text(app)
            # still answering, and markup in a query is shown as typed, not interpreted
            field.value = "[bold red]Dupont[/]"
            await pilot.press("f2", "enter")
            await until(pilot, lambda: app.session.waiting == 0, "the answer")
            assert "“[bold red]Dupont[/]”" in screen_text(app)

    asyncio.run(scenario())


def test_gate_feed_lookup_is_the_screens_lookup(feed: Feed, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`gate feed lookup` answers what the steward's screen answers: the typo found, the
    same ranking, cancelled tickets marked."""
    config = write_config(feed, tmp_path / "state", socket=tmp_path / "control.sock")
    for query, expected in (("Helene Dupnot", [("PAR24-000101", "near")]),
                            ("dupon", [("PAR24-000101", "name_words"),
                                       ("PAR24-000109", "name_words")])):
        assert main(["feed", "lookup", query, "--config", str(config), "--json"]) == 0
        matches = json.loads(capsys.readouterr().out)["matches"]
        assert [(m["ticket_id"], m["match"]) for m in matches] == expected, query
        with FeedStore.open(tmp_path / "state" / "feeds.sqlite") as store:
            screen = answer(store, EVENT, query, limit=10).candidates
        assert [(c["ticket_id"], c["match"], round(c["score"], 3)) for c in screen] == [
            (m["ticket_id"], m["match"], m["score"]) for m in matches]
    assert main(["feed", "lookup", "Helene Dupnot", "--config", str(config)]) == 0
    assert "Hélène Dupont" in capsys.readouterr().out
    assert main(["feed", "lookup", "zoe lambert", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "PAR24-000199" in out and "CANCELLED" in out
