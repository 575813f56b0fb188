"""A holder name a gate's store holds with bidi or format characters (written there past
the feed's parser) reaches the steward's screen cleaned, as the parser cleans names: from
a real gate through its control socket to the UI, and in the UI model whatever the daemon
sends."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from portique.revocation.format import fold
from portique.runtime.control import ControlClient
from portique.runtime.steward.model import HistoryEntry, Ticket
from portique.runtime.steward.screens.ticket import TicketScreen
from tests.steward.conftest import EVENT, Feed, LiveGate, make_gate, screen_text, steward_app
from tests.steward.test_actions import SIZE, connected, open_ticket

HOSTILE = "Hélène \u202eDupont\u2066\u200b"
CLEAN = "Hélène \ufffdDupont\ufffd\ufffd"
UNSAFE = ("\u202e", "\u2066", "\u200b")


@pytest.fixture
def hostile_gate(feed: Feed, tmp_path: Path) -> Iterator[LiveGate]:
    """A gate whose feed store holds HOSTILE as PAR24-000101's name, written directly."""
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(feed.store, state / "feeds.sqlite")
    connection = sqlite3.connect(state / "feeds.sqlite")
    with connection:
        connection.execute("UPDATE manifest SET holder_name = ?, name_key = ? "
                           "WHERE event = ? AND ticket_id = 'PAR24-000101'",
                           (HOSTILE, fold(HOSTILE), EVENT))
    connection.close()
    live = make_gate(feed, state)
    try:
        yield live
    finally:
        live.app.close()
        live.pins.close()
        shutil.rmtree(live.socket.parent, ignore_errors=True)


def test_the_control_socket_answers_the_cleaned_name(hostile_gate: LiveGate) -> None:
    answer = ControlClient(hostile_gate.socket).request("lookup", query="hélène")
    assert [(c["ticket_id"], c["holder"]) for c in answer["candidates"]] == [
        ("PAR24-000101", CLEAN)]


def test_the_steward_screen_never_shows_the_raw_name(hostile_gate: LiveGate) -> None:
    async def scenario() -> None:
        app = steward_app(hostile_gate.socket)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, app)
            await open_ticket(pilot, app, "hélène", CLEAN)
            assert isinstance(app.screen, TicketScreen)
            shown = screen_text(app)
            assert CLEAN in shown
            assert not any(char in shown for char in UNSAFE)

    asyncio.run(scenario())


def test_the_ui_model_cleans_whatever_the_daemon_sends() -> None:
    """An older daemon, or any other, may send the raw name: the model cleans it, and the
    other texts it shows, with the same helper."""
    ticket = Ticket.from_json({"ticket_id": "T\u202e1", "holder": HOSTILE,
                               "order_ref": "ORD\u20661", "category": "CAT\x1b[31m"})
    assert ticket.holder == CLEAN
    assert (ticket.ticket_id, ticket.order_ref, ticket.category) == (
        "T\ufffd1", "ORD\ufffd1", "CAT\ufffd[31m")
    entry = HistoryEntry.from_json({"note": "ok\u202e", "steward": "s-17", "gate": "1"})
    assert entry.note == "ok\ufffd"
    assert Ticket.from_json({"holder": "Zoé Lambert"}).holder == "Zoé Lambert"
    assert Ticket.from_json({}).holder == ""
