"""Snapshots of the main screens (pytest-textual-snapshot) from recorded status and
events, at the two terminal sizes a steward meets (80x24, a laptop's SSH window; 120x35,
the gate's own screen): fixed times, no live clock. `pytest tests/steward --snapshot-update`
rewrites them; look at the SVGs before committing."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from portique.runtime.steward.messages import LinkDown
from portique.ticket.reasons import Lang
from tests.steward.recorded import DATA, SOCKET, recorded_app, replay, status

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 35), id="120x35")]


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    app = recorded_app()

    async def before(pilot: Pilot[None]) -> None:
        replay(app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_in_french_with_fire_alarm_and_camera_lost(snap_compare: Any,
                                                               size: tuple[int, int]) -> None:
    app = recorded_app(Lang.FR)

    async def before(pilot: Pilot[None]) -> None:
        replay(app, status(**DATA["alarm"]))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_lookup_results(snap_compare: Any, size: tuple[int, int]) -> None:
    app = recorded_app(lookup="lookup")

    async def before(pilot: Pilot[None]) -> None:
        replay(app)
        await pilot.press("f2", *"Helene Dupnot", "enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_ticket_detail_with_history(snap_compare: Any, size: tuple[int, int]) -> None:
    app = recorded_app(lookup="lookup", history="history")

    async def before(pilot: Pilot[None]) -> None:
        replay(app)
        await pilot.press("f2", *"Helene Dupnot", "enter")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_supervisor_override_dialog(snap_compare: Any, size: tuple[int, int]) -> None:
    app = recorded_app(lookup="lookup", history="empty_history", admit="admit_limit")

    async def before(pilot: Pilot[None]) -> None:
        replay(app)
        await pilot.press("f2", *"Helene Dupnot", "enter")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("a", "enter")
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_gate_unreachable(snap_compare: Any, size: tuple[int, int]) -> None:
    app = recorded_app(Lang.FR)

    async def before(pilot: Pilot[None]) -> None:
        replay(app)
        app.post_message(LinkDown(str(SOCKET), "connection refused (is the gate daemon "
                                  "running?)", 4.0, "refused"))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_help_in_french(snap_compare: Any, size: tuple[int, int]) -> None:
    app = recorded_app(Lang.FR)

    async def before(pilot: Pilot[None]) -> None:
        replay(app)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_history_with_notes_in_french(snap_compare: Any, size: tuple[int, int]) -> None:
    app = recorded_app(Lang.FR, lookup="lookup", history="history_notes")

    async def before(pilot: Pilot[None]) -> None:
        replay(app)
        await pilot.press("f2", *"Helene Dupnot", "enter")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=before)
