"""Snapshots of the main screens (pytest-textual-snapshot) from recorded status and
events: fixed times, no live clock. `pytest tests/steward --snapshot-update` rewrites
them; look at the SVGs before committing."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from portique.runtime.steward.messages import LinkDown
from portique.ticket.reasons import Lang
from tests.steward.recorded import DATA, SOCKET, recorded_app, replay, status

SIZE = (140, 34)


def test_main_screen(snap_compare: Any) -> None:
    app = recorded_app()

    async def before(pilot: Pilot[None]) -> None:
        replay(app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_main_screen_in_french_with_fire_alarm_and_camera_lost(snap_compare: Any) -> None:
    app = recorded_app(Lang.FR)

    async def before(pilot: Pilot[None]) -> None:
        replay(app, status(**DATA["alarm"]))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_lookup_results(snap_compare: Any) -> None:
    app = recorded_app(lookup="lookup")

    async def before(pilot: Pilot[None]) -> None:
        replay(app)
        await pilot.press("f2", *"Helene Dupnot", "enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_ticket_detail_with_history(snap_compare: Any) -> None:
    app = recorded_app(lookup="lookup", history="history")

    async def before(pilot: Pilot[None]) -> None:
        replay(app)
        await pilot.press("f2", *"Helene Dupnot", "enter")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_supervisor_override_dialog(snap_compare: Any) -> None:
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

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_gate_unreachable(snap_compare: Any) -> None:
    app = recorded_app(Lang.FR)

    async def before(pilot: Pilot[None]) -> None:
        replay(app)
        app.post_message(LinkDown(str(SOCKET), "connection refused (is the gate daemon "
                                  "running?)", 4.0))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)
