"""Every steward action through the UI (Textual's Pilot) against a real gate: a recorded
clip played by the real daemon, its real control socket, its SQLite journal and mock pins.
Assertions read the journal and what the screen shows."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input

from portique.commands.steward import settings_from
from portique.runtime.steward.app import StewardApp
from portique.runtime.steward.client import GateLink
from portique.runtime.steward.screens.dialogs import ReasonDialog, SupervisorDialog
from portique.runtime.steward.screens.ticket import TicketScreen
from portique.runtime.steward.widgets.feed import DecisionFeed
from portique.ticket.reasons import Lang
from tests.steward.conftest import (
    FAST,
    SUPERVISOR_PIN,
    Feed,
    LiveGate,
    in_thread,
    join,
    make_gate,
    screen_text,
    short_socket_path,
    steward_app,
    until,
    write_config,
)

SIZE = (150, 40)


async def connected(pilot: Pilot[None], app: StewardApp) -> None:
    await until(pilot, lambda: app.session.link_up and app.session.status is not None,
                "the link to the daemon")


async def open_ticket(pilot: Pilot[None], app: StewardApp, query: str, holder: str) -> None:
    """Look `query` up as a steward types it and open the first ticket found."""
    await pilot.press("f2")
    await pilot.press(*query)
    await pilot.press("enter")
    await until(pilot, lambda: holder in screen_text(app), f"{holder} in the results")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, TicketScreen)
                and app.screen.history is not None, "the ticket's history")


def test_live_feed_shows_each_decision_coloured_with_its_sentence(gate: LiveGate) -> None:
    async def scenario() -> None:
        app = steward_app(gate.socket)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, app)
            await join(in_thread(gate.run_clip))
            await until(pilot, lambda: len(app.session.rows) == 2, "two decisions")
            await until(pilot, lambda: app.session.status is not None
                        and app.session.status.admitted == 1
                        and app.session.status.refused == 1, "the counts")
            feed = app.screen.query_one(DecisionFeed)
            newest, oldest = feed.get_row_at(0), feed.get_row_at(1)
            # newest first: hana's second showing refused, her first admitted
            assert "REFUSED" in newest[1].plain and "red" in str(newest[1].style)
            assert newest[2].plain == "PAR24-000108"
            assert newest[5].plain.startswith("This ticket was already admitted at gate 1 at")
            assert "ADMIT" in oldest[1].plain and "green" in str(oldest[1].style)
            assert (oldest[3].plain, oldest[4].plain) == ("CAT-B", "2")
            assert oldest[5].plain == "Welcome, please go through."
            assert oldest[0].plain == "19:08:00"  # the venue's time (Paris), not UTC
            text = screen_text(app)
            assert "Admitted 1 · Refused 1" in text
            assert "Feed #1" in text and "Clock trusted" in text
            # the clip has ended: the gate has no camera any more, and says so
            await until(pilot, lambda: "CAMERA: no more frames" in screen_text(app),
                        "the camera banner")

    asyncio.run(scenario())


def test_lookup_forgives_case_accents_and_typos_and_shows_state_and_history(
        gate: LiveGate) -> None:
    async def scenario() -> None:
        gate.run_clip()  # hana admitted, then refused as already admitted
        app = steward_app(gate.socket)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, app)
            await pilot.press(*"Helene Dupnot", "enter")  # no accent, two letters swapped
            await until(pilot, lambda: "Hélène Dupont" in screen_text(app), "the typo found")
            results = screen_text(app)
            assert "PAR24-000101" in results and "similar name" in results
            assert "Dupond" not in results.split("Hélène Dupont")[0]  # the closest first

            await open_ticket(pilot, app, "par24-000108", "Hana Sato")  # lower case id
            text = screen_text(app)
            assert "State: ALREADY INSIDE: admitted at gate 1 at 19:08:00." in text
            history = text.split("History at this gate")[1]
            assert "REFUSED" in history and "ADMIT" in history and "passed" in history
            assert history.index("REFUSED") < history.index("ADMIT")  # latest first
            await pilot.press("escape")
            await open_ticket(pilot, app, "ORD-5599", "Zoé Lambert")
            assert "State: CANCELLED: this ticket is void." in screen_text(app)

    asyncio.run(scenario())


def test_admit_with_a_preset_reason_is_journalled_with_the_steward(gate: LiveGate) -> None:
    async def scenario() -> None:
        app = steward_app(gate.socket, steward="s-17")
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, app)
            await open_ticket(pilot, app, "hélène", "Hélène Dupont")
            assert "State: Not admitted yet." in screen_text(app)
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, ReasonDialog), "the reason")
            await pilot.press("enter")  # the first preset: printed confirmation checked
            await until(pilot, lambda: "PAR24-000101 admitted: Printed confirmation checked"
                        in screen_text(app), "the admission")
            await until(pilot, lambda: "State: ALREADY INSIDE" in screen_text(app),
                        "the new state")
        rows = gate.rows("SELECT d.verdict, d.reason, d.method, d.steward, d.note, a.state "
                         "FROM decisions d JOIN admissions a USING (scan_id) "
                         "WHERE d.ticket_id = 'PAR24-000101'")
        assert rows == [("admit", "MANUAL_ADMIT", "paper", "s-17",
                         "Printed confirmation checked", "passed")]

    asyncio.run(scenario())


def test_deny_in_the_stewards_own_words_is_journalled(gate: LiveGate) -> None:
    async def scenario() -> None:
        app = steward_app(gate.socket, steward="s-22")
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, app)
            await open_ticket(pilot, app, "Bruno", "Bruno Lefèvre")
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, ReasonDialog), "the reason")
            await pilot.press("tab", *"Photo ID does not match", "enter")
            await until(pilot, lambda: "PAR24-000102 denied: Photo ID does not match"
                        in screen_text(app), "the refusal")
            await until(pilot, lambda: "Refused by a steward." in screen_text(app),
                        "the history")
            assert "State: Not inside: refused at" in screen_text(app)
        rows = gate.rows("SELECT verdict, reason, method, steward, note FROM decisions "
                         "WHERE ticket_id = 'PAR24-000102'")
        assert rows == [("refuse", "MANUAL_DENY", "steward", "s-22",
                         "Photo ID does not match")]
        assert gate.rows("SELECT * FROM admissions") == []

    asyncio.run(scenario())


def test_over_the_limit_a_supervisor_overrides_and_is_journalled(
        limited_gate: LiveGate) -> None:
    gate = limited_gate  # one manual admit per window

    async def scenario() -> None:
        app = steward_app(gate.socket, steward="s-17")
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, app)
            await open_ticket(pilot, app, "Dev Patel", "Dev Patel")
            await pilot.press("a", "enter")
            await until(pilot, lambda: "PAR24-000104 admitted" in screen_text(app), "first")
            await pilot.press("escape")

            await open_ticket(pilot, app, "Emma", "Emma Nguyễn")
            await pilot.press("a", "down", "enter")  # phone out of battery
            await until(pilot, lambda: isinstance(app.screen, SupervisorDialog),
                        "the supervisor dialog")
            assert "manual admit limit reached" in screen_text(app)
            await pilot.press("escape")  # no supervisor at hand: nothing happens
            await until(pilot, lambda: isinstance(app.screen, TicketScreen), "back")
            assert gate.rows("SELECT * FROM decisions WHERE ticket_id = 'PAR24-000105'") == []

            await pilot.press("a", "down", "enter")
            await until(pilot, lambda: isinstance(app.screen, SupervisorDialog), "again")
            await pilot.press(*"sup-9", "enter", *"000000", "enter")  # a wrong PIN
            await until(pilot, lambda: "unknown supervisor or wrong PIN [supervisor_refused]"
                        in screen_text(app), "the wrong PIN refused")
            assert gate.rows("SELECT * FROM decisions WHERE ticket_id = 'PAR24-000105'") == []

            await pilot.press("a", "down", "enter")
            await until(pilot, lambda: isinstance(app.screen, SupervisorDialog), "once more")
            await pilot.press(*"sup-9", "enter", *SUPERVISOR_PIN)
            pin = app.screen.query_one("#supervisor-pin", Input)
            assert pin.value == SUPERVISOR_PIN and pin.password
            assert SUPERVISOR_PIN not in app.export_screenshot()  # masked on screen
            await pilot.press("enter")
            await until(pilot, lambda: "PAR24-000105 admitted" in screen_text(app),
                        "the override")
        rows = gate.rows("SELECT ticket_id, steward, note FROM decisions "
                         "WHERE reason = 'MANUAL_ADMIT' ORDER BY at, rowid")
        assert rows == [
            ("PAR24-000104", "s-17", "Printed confirmation checked"),
            ("PAR24-000105", "s-17",
             "Phone out of battery, identity checked (override by sup-9)"),
        ]
        refused = gate.rows("SELECT kind, steward, detail FROM gate_events")
        assert [(k, who) for k, who, _ in refused] == [("supervisor_override_refused",
                                                         "s-17")]
        assert "supervisor=sup-9 ticket=PAR24-000105" in refused[0][2]

    asyncio.run(scenario())


def test_fire_alarm_banner_and_acknowledge(gate: LiveGate) -> None:
    async def scenario() -> None:
        app = steward_app(gate.socket, steward="s-5")
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, app)
            assert "FIRE ALARM" not in screen_text(app)
            gate.fire_loop(open_=True)
            await until(pilot, lambda: "FIRE ALARM: turnstile released" in screen_text(app),
                        "the alarm banner")
            await pilot.press("f8")  # the loop is still open: the gate refuses
            await until(pilot, lambda: "Acknowledge refused: the fire-alarm loop is still "
                        "open" in screen_text(app), "the refusal")
            assert gate.app.turnstile.free_egress_latched

            gate.fire_loop(open_=False)
            await until(pilot, lambda: "Fire alarm over (loop closed again)"
                        in screen_text(app), "the latched banner")
            await pilot.press("f8")
            await until(pilot, lambda: "Fire alarm acknowledged" in screen_text(app), "ack")
            await until(pilot, lambda: "Fire alarm over" not in screen_text(app)
                        and "FIRE ALARM" not in screen_text(app), "the banner gone")
            assert not gate.app.turnstile.free_egress_latched

    asyncio.run(scenario())


def test_language_from_the_config_and_switched_by_a_key(feed: Feed, tmp_path: Path) -> None:
    socket = short_socket_path()
    config = write_config(feed, tmp_path / "state", socket=socket, language="fr")
    settings = settings_from(argparse.Namespace(config=config, socket=None, steward="s-3",
                                                lang=None))
    assert (settings.lang, settings.socket, str(settings.tz)) == (Lang.FR, socket,
                                                                  "Europe/Paris")
    live = make_gate(feed, tmp_path / "state", socket=socket, language="fr")
    try:
        async def scenario() -> None:
            app = StewardApp(settings, GateLink(settings.socket, FAST))
            async with app.run_test(size=SIZE) as pilot:
                await connected(pilot, app)
                await join(in_thread(live.run_clip))
                await until(pilot, lambda: len(app.session.rows) == 2, "decisions")
                await until(pilot, lambda: "Admis 1 · Refusés 1" in screen_text(app),
                            "the counts")
                text = screen_text(app)
                assert "Décisions en direct" in text and "Recherche manuelle" in text
                assert "Bienvenue, vous pouvez passer." in text
                assert "F4 English" in text
                await pilot.press("f4")
                text = screen_text(app)
                assert "Live decisions" in text and "Manual lookup" in text
                assert "Welcome, please go through." in text
                assert "Admitted 1 · Refused 1" in text and "F4 Français" in text
                assert "Bienvenue" not in text and "Décisions" not in text
                await open_ticket(pilot, app, "Hana", "Hana Sato")
                await pilot.press("f4")
                text = screen_text(app)
                assert "Titulaire: Hana Sato" in text and "Historique à ce portique" in text
                assert "Déjà admis" not in text and "DÉJÀ ENTRÉ" in text

        asyncio.run(scenario())
    finally:
        live.app.close()
        live.pins.close()


def test_unreachable_daemon_is_shown_retried_and_the_ui_stays_usable(
        feed: Feed, tmp_path: Path) -> None:
    socket = short_socket_path()

    async def scenario() -> None:
        app = steward_app(socket)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "GATE UNREACHABLE" in screen_text(app), "the banner")
            assert "no socket (is the gate daemon running?)" in screen_text(app)
            await pilot.press("f4", "f4")  # keys still work while the link is down
            await pilot.press(*"Dupont", "enter")
            await until(pilot, lambda: "Lookup failed: gate unreachable: no socket" in
                        screen_text(app), "the failed lookup")
            live = make_gate(feed, tmp_path / "state", socket=socket)
            try:
                await until(pilot, lambda: app.session.link_up, "the link back")
                await until(pilot, lambda: "GATE UNREACHABLE" not in screen_text(app)
                            and "Feed #1" in screen_text(app), "the gate's status")
                await pilot.press("f2", *"Dupont", "enter")
                await until(pilot, lambda: "Hélène Dupont" in screen_text(app), "a lookup")
                live.app.close()  # the daemon goes away again
                await until(pilot, lambda: "GATE UNREACHABLE" in screen_text(app),
                            "the banner again")
            finally:
                live.app.close()
                live.pins.close()

    asyncio.run(scenario())
