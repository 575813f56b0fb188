"""The steward's screen at a real queue, at 80x24 and 120x35: every key in a help screen in
the steward's language, no framework palette, the live list one key away, sentences and
history never cut, the gate's refusals and stored notes translated, voided admissions and
decisions made while the screen was away shown in the live list, notices that go away,
and stale values marked as stale. Pilot tests; they wait on conditions, never on time."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.command import CommandPalette
from textual.widgets import DataTable, Input

from portique.runtime import events
from portique.runtime.steward.app import StewardApp
from portique.runtime.steward.client import GateLink
from portique.runtime.steward.i18n import T, tr
from portique.runtime.steward.keys import KEYMAP, key_name
from portique.runtime.steward.messages import GateEvent, LinkDown, LinkUp, StatusArrived
from portique.runtime.steward.screens.dialogs import SupervisorDialog
from portique.runtime.steward.screens.help import HelpScreen
from portique.runtime.steward.screens.main import MainScreen
from portique.runtime.steward.screens.ticket import TicketScreen
from portique.runtime.steward.session import Settings
from portique.runtime.steward.widgets.bars import Notice
from portique.runtime.steward.widgets.feed import DecisionFeed
from portique.runtime.steward.widgets.history import HistoryTable
from portique.ticket.reasons import SENTENCES, Lang
from tests.steward.conftest import FAST, PARIS, LiveGate, screen_text, until
from tests.steward.recorded import DATA, SOCKET, recorded_app, replay, status

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 35), id="120x35")]


def screen_lines(app: App[Any]) -> list[str]:
    """What the terminal shows, line by line (the composed screen, as a person sees it)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def flat(text: str) -> str:
    return " ".join(text.split())


def column_text(app: App[Any], table: DataTable[Any], header: str) -> str:
    """Every line of one column of `table` as the screen shows it, joined: a sentence
    split over lines reads whole again; a cut one does not."""
    lines = screen_lines(app)
    region = table.region
    top = region.y
    start = lines[top].index(header, region.x)
    column = next(c for c in table.ordered_columns if c.label.plain == header)
    width = column.get_render_width(table)
    return flat(" ".join(line[start:start + width] for line in lines[top + 1:region.bottom]))


def longest_sentences(lang: Lang, count: int = 3) -> list[str]:
    said = [pair[1] if lang is Lang.FR else pair[0] for pair in SENTENCES.values()]
    return sorted(said, key=len, reverse=True)[:count]


def decision(scan_id: str, sentence_en: str, sentence_fr: str, *, at: str,
             verdict: str = "refuse") -> events.Event:
    wire = {"type": "decision", "scan_id": scan_id, "at": at, "gate": "1",
            "verdict": verdict, "reason": "STALE_CODE",
            "sentence": {"en": sentence_en, "fr": sentence_fr},
            "ticket": {"event": "PAR24-ATH05", "ticket_id": "PAR24-000101", "generation": 0},
            "category": "CAT-B", "entrances": [2], "method": "camera", "steward": None,
            "latency_ms": 40.0, "turnstile": "refuse"}
    return events.from_json(wire)


def run(scenario: Any) -> None:
    asyncio.run(scenario())


# --- help, palette, live list ---------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("lang", [Lang.FR, Lang.EN])
def test_help_lists_every_key_in_the_stewards_language(size: tuple[int, int],
                                                       lang: Lang) -> None:
    async def scenario() -> None:
        app = recorded_app(lang)
        async with app.run_test(size=size) as pilot:
            replay(app)
            await pilot.press("f1")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
            shown = flat(" ".join(screen_lines(app)))  # all of it on screen, even at 80x24
            for key in KEYMAP:
                assert flat(tr(key.label, lang)) in shown, key
                for name in key.keys.split(","):
                    assert key_name(name, lang) in shown, (key, name)
            other = Lang.EN if lang is Lang.FR else Lang.FR
            assert flat(tr(T.HELP_TITLE, other)) not in shown
            assert flat(tr(T.HELP_CLOSE, lang)) in shown
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, MainScreen), "help closed")
            await pilot.press("tab", "tab", "question_mark")  # ? outside a text field
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "? opens it")
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, MainScreen), "? closes it")

    run(scenario)


def test_question_mark_in_a_text_field_is_typed_not_the_help() -> None:
    async def scenario() -> None:
        app = recorded_app()
        async with app.run_test(size=(80, 24)) as pilot:
            replay(app)
            await pilot.press("f2", "a", "question_mark")
            await pilot.pause()
            assert app.screen.query_one("#lookup-input", Input).value == "a?"
            assert isinstance(app.screen, MainScreen)

    run(scenario)


def test_no_framework_palette_and_ctrl_c_hint_in_the_stewards_language() -> None:
    async def scenario() -> None:
        app = recorded_app(Lang.FR)
        async with app.run_test(size=(80, 24)) as pilot:
            replay(app)
            await pilot.press("ctrl+p")
            await pilot.pause()
            assert not any(isinstance(s, CommandPalette) for s in app.screen_stack)
            assert not app.use_command_palette
            await pilot.press("ctrl+c")
            await until(pilot, lambda: tr(T.QUIT_HINT, Lang.FR) in screen_text(app),
                        "the hint in French")
            assert "Press" not in screen_text(app)
            assert not app._notifications  # no English toast either

    run(scenario)


def test_f3_brings_the_live_list_from_anywhere() -> None:
    async def scenario() -> None:
        app = recorded_app(lookup="lookup", history="history")
        async with app.run_test(size=(80, 24)) as pilot:
            replay(app)
            await until(pilot, lambda: app.screen.query_one(DecisionFeed).row_count == 6,
                        "the feed")
            await pilot.press("f2", *"Helene", "enter")
            await until(pilot, lambda: "Hélène Dupont" in screen_text(app), "results")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TicketScreen), "the ticket")
            await pilot.press("a")  # a dialog open on top of the ticket
            await pilot.press("f3")
            await until(pilot, lambda: isinstance(app.screen, MainScreen), "main again")
            feed = app.screen.query_one(DecisionFeed)
            assert app.focused is feed and feed.cursor_row == 0
            highlighted = feed.highlighted()
            assert highlighted is not None and highlighted.ticket_id == "PAR24-000108"
            assert [op for op, _ in app.session.link.asked].count("admit") == 0  # type: ignore[attr-defined]
            assert "F3" in screen_text(app) and "Live" in screen_text(app)

    run(scenario)


# --- nothing cut ----------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("lang", [Lang.FR, Lang.EN])
def test_the_longest_reason_sentences_are_never_cut(size: tuple[int, int],
                                                    lang: Lang) -> None:
    async def scenario() -> None:
        app = recorded_app(lang)
        en, fr = longest_sentences(Lang.EN, 2), longest_sentences(Lang.FR, 2)
        async with app.run_test(size=size) as pilot:
            app.post_message(LinkUp(str(SOCKET)))
            app.post_message(StatusArrived(status()))
            for n, (sentence_en, sentence_fr) in enumerate(zip(en, fr, strict=True)):
                app.post_message(GateEvent(decision(f"x{n}", sentence_en, sentence_fr,
                                                    at=f"2024-08-05T17:0{n}:00Z")))
            feed = app.screen.query_one(DecisionFeed)
            await until(pilot, lambda: feed.row_count == 2, "two rows")
            await pilot.pause()
            shown = column_text(app, feed, tr(T.COL_REASON, lang))
            for said in (fr if lang is Lang.FR else en):
                assert flat(said) in shown, said
            assert feed.virtual_size.width <= feed.size.width  # no sideways scrolling
            detail = flat(str(app.screen.query_one("#feed-detail").render()))
            assert flat((fr if lang is Lang.FR else en)[1]) in detail  # the newest, whole

    run(scenario)


@pytest.mark.parametrize("size", SIZES)
def test_history_fits_the_terminal_with_notes_whole(size: tuple[int, int]) -> None:
    async def scenario() -> None:
        app = recorded_app(Lang.FR, lookup="lookup", history="history_notes")
        async with app.run_test(size=size) as pilot:
            replay(app)
            await pilot.press("f2", *"Helene", "enter")
            await until(pilot, lambda: "Hélène Dupont" in screen_text(app), "results")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TicketScreen)
                        and app.screen.history is not None, "the history")
            await pilot.pause()
            table = app.screen.query_one(HistoryTable)
            assert table.virtual_size.width <= table.size.width
            reasons = column_text(app, table, tr(T.COL_REASON, Lang.FR))
            assert flat(SENTENCES[next(r for r in SENTENCES if r == "STALE_CODE")][1]) \
                in reasons
            notes = column_text(app, table, tr(T.COL_NOTE, Lang.FR))
            assert "Téléphone déchargé, identité vérifiée (accord du superviseur sup-9)" \
                in notes
            assert "Pas le titulaire du billet" in notes
            assert "override by" not in flat(" ".join(screen_lines(app)))
            assert "annulée" in flat(" ".join(screen_lines(app)))  # the admission's state

    run(scenario)


# --- the chosen language --------------------------------------------------------------


def test_the_gates_refusal_is_said_in_french_with_its_code() -> None:
    async def scenario() -> None:
        app = recorded_app(Lang.FR, lookup="lookup", history="empty_history",
                           admit="admit_limit")
        async with app.run_test(size=(80, 24)) as pilot:
            replay(app)
            await pilot.press("f2", *"Helene", "enter")
            await until(pilot, lambda: "Hélène Dupont" in screen_text(app), "results")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TicketScreen), "the ticket")
            await pilot.press("a", "enter")
            await until(pilot, lambda: isinstance(app.screen, SupervisorDialog),
                        "the supervisor dialog, from the refusal's code")
            text = screen_text(app)
            assert "limite d'admissions manuelles atteinte : un superviseur doit valider " \
                "[limit]" in text
            assert "manual admit limit reached" not in text
            await pilot.press("f4")  # and in English from the same code
            await until(pilot, lambda: "manual admit limit reached: a supervisor must "
                        "override [limit]" in screen_text(app), "English")

    run(scenario)


def test_a_refusal_that_no_supervisor_can_override_offers_no_dialog() -> None:
    async def scenario() -> None:
        app = recorded_app(Lang.FR, lookup="lookup", history="empty_history",
                           admit="admit_exit_gate")
        async with app.run_test(size=(80, 24)) as pilot:
            replay(app)
            await pilot.press("f2", *"Helene", "enter")
            await until(pilot, lambda: "Hélène Dupont" in screen_text(app), "results")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TicketScreen), "the ticket")
            await pilot.press("a", "enter")
            await until(pilot, lambda: "[exit_gate]" in screen_text(app), "the refusal")
            assert "ce portique enregistre les sorties" in screen_text(app)
            assert isinstance(app.screen, TicketScreen)

    run(scenario)


def test_link_errors_in_french() -> None:
    async def scenario() -> None:
        missing = Path(f"/tmp/stw-missing-{uuid.uuid4().hex[:8]}.sock")
        app = StewardApp(Settings(socket=missing, steward="s-1", lang=Lang.FR, tz=PARIS),
                         GateLink(missing, FAST))
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "PORTIQUE INJOIGNABLE" in screen_text(app), "banner")
            assert "pas de socket (le programme du portique tourne-t-il ?)" in \
                screen_text(app)
            await pilot.press(*"Dupont", "enter")
            await until(pilot, lambda: "Recherche impossible : portique injoignable : pas "
                        "de socket" in screen_text(app), "the failed lookup, in French")
            assert "no socket" not in screen_text(app)

    run(scenario)


# --- the live list follows the gate ---------------------------------------------------


@pytest.mark.parametrize("lang", [Lang.FR, Lang.EN])
def test_a_voided_admission_updates_its_line(lang: Lang) -> None:
    async def scenario() -> None:
        app = recorded_app(lang)
        async with app.run_test(size=(120, 35)) as pilot:
            replay(app)
            feed = app.screen.query_one(DecisionFeed)
            await until(pilot, lambda: feed.row_count == 6, "the feed")
            ticket = {"event": "PAR24-ATH05", "ticket_id": "PAR24-000108", "generation": 0}
            app.post_message(GateEvent(events.from_json(
                {"type": "passage", "scan_id": "e6", "outcome": "timed_out", "voided": True,
                 "ticket": ticket})))
            voided = tr(T.VERDICT_VOIDED, lang)
            await until(pilot, lambda: voided in feed.get_row_at(0)[1].plain, "voided")
            assert tr(T.PASSAGE_VOIDED, lang) in feed.get_row_at(0)[-1].plain
            assert feed.get_row_at(0)[2].plain == "PAR24-000108"
            assert feed.row_count == 6  # the same line, not a new one
            assert all(voided not in feed.get_row_at(i)[1].plain for i in range(1, 6))

    run(scenario)


def test_decisions_made_while_disconnected_appear_after_reconnecting(
        gate: LiveGate, tmp_path: Path) -> None:
    """The screen's way to the socket is cut (its link name removed, its stream broken),
    the gate decides meanwhile, the way comes back: the journal's decisions join the live
    list, marked as caught up."""
    door = Path(f"/tmp/stw-door-{uuid.uuid4().hex[:8]}.sock")
    os.symlink(gate.socket, door)

    async def scenario() -> None:
        settings = Settings(socket=door, steward="s-4", lang=Lang.EN, tz=PARIS,
                            notice_s=60.0)
        link = GateLink(door, FAST)
        app = StewardApp(settings, link)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.session.link_up and app.session.status is not None,
                        "connected")
            assert not app.session.rows
            door.unlink()
            with link._sock_lock:  # the screen's stream breaks (a cable, an SSH drop)
                assert link._sock is not None
                link._sock.shutdown(socket.SHUT_RDWR)
            await until(pilot, lambda: not app.session.link_up, "disconnected")
            await asyncio.get_running_loop().run_in_executor(None, gate.run_clip)
            assert len(gate.rows("SELECT * FROM decisions")) == 2
            assert not app.session.rows
            os.symlink(gate.socket, door)
            await until(pilot, lambda: len(app.session.rows) == 2, "the caught-up decisions")
            feed = app.screen.query_one(DecisionFeed)
            await until(pilot, lambda: feed.row_count == 2, "on screen")
            assert "ALREADY" not in feed.get_row_at(1)[1].plain
            assert feed.get_row_at(0)[-1].plain.startswith(
                "This ticket was already admitted at gate 1 at")
            assert feed.get_row_at(1)[-1].plain == "Welcome, please go through."
            await until(pilot, lambda: re.search(r"\d decision\(s\) made while disconnected",
                                                 screen_text(app)) is not None, "the notice")

    try:
        run(scenario)
    finally:
        door.unlink(missing_ok=True)


def test_catch_up_merges_with_what_the_list_had_and_takes_voided_states() -> None:
    async def scenario() -> None:
        app = recorded_app(recent="recent")
        async with app.run_test(size=(120, 35)) as pilot:
            replay(app)
            feed = app.screen.query_one(DecisionFeed)
            await until(pilot, lambda: feed.row_count == 8, "6 live and 2 caught up")
            scan_ids = [r.scan_id for r in app.session.rows]
            assert scan_ids == ["e1", "e2", "e3", "e4", "e5", "e6", "r1", "r2"]
            assert [r.voided for r in app.session.rows] == [False] * 5 + [True, False, False]
            newest = feed.get_row_at(0)[-1].plain
            assert newest == "This ticket was already admitted at gate 1 at 19:11."

    run(scenario)


# --- notices and stale values ---------------------------------------------------------


def test_notices_go_away_by_themselves() -> None:
    async def scenario() -> None:
        app = recorded_app(notice_s=0.3)
        async with app.run_test(size=(80, 24)) as pilot:
            replay(app)
            await pilot.press("f4")
            notice = app.screen.query_one(Notice)
            await until(pilot, lambda: notice.shown, "the notice")
            assert "Langue : français" in screen_text(app)
            await until(pilot, lambda: not notice.shown, "the notice gone")
            assert "Langue : français" not in screen_text(app)

    run(scenario)


@pytest.mark.parametrize("lang", [Lang.FR, Lang.EN])
def test_while_unreachable_the_last_values_are_shown_as_stale(lang: Lang) -> None:
    async def scenario() -> None:
        app = recorded_app(lang)
        async with app.run_test(size=(80, 24)) as pilot:
            replay(app, status(**DATA["alarm"]))
            await until(pilot, lambda: app.session.status is not None, "the status")
            stale = tr(T.STALE_STATUS, lang, time="19:10:00")
            assert stale not in screen_text(app)
            app.post_message(LinkDown(str(SOCKET), "connection refused", 2.0, "refused"))
            await until(pilot, lambda: stale in screen_text(app), "stale status")
            bar = app.screen.query_one("#status-bar")
            assert bar.has_class("-stale")
            fire = str(app.screen.query_one("#fire-banner").render())
            assert fire == tr(T.STALE_BANNER, lang, text=tr(T.BANNER_FIRE_ACTIVE, lang),
                              time="19:10:00")
            camera = str(app.screen.query_one("#camera-banner").render())
            assert camera.endswith(tr(T.STALE_BANNER, lang, text="", time="19:10:00").strip())
            app.post_message(LinkUp(str(SOCKET)))
            app.post_message(StatusArrived(status()))
            await until(pilot, lambda: stale not in screen_text(app), "current again")
            assert not bar.has_class("-stale")

    run(scenario)
