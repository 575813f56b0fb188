"""The steward UI against a real gate: the ready-for-doors checklist (F6), and the banner
of a gate configured without a revocation feed, in English and in French."""

from __future__ import annotations

import asyncio
from pathlib import Path

from portique.devtools.simulation import SimulatedRun
from portique.runtime.config import load
from portique.runtime.steward.screens.ready import ReadyScreen
from tests.steward.conftest import (
    FIXTURES,
    Feed,
    screen_text,
    serving,
    short_socket_path,
    steward_app,
    until,
    write_config,
)

SIZE = (150, 40)


def _no_feed_config(feed: Feed, state: Path) -> Path:
    path = write_config(feed, state, socket=short_socket_path())
    text = path.read_text(encoding="utf-8")
    start = text.index("[feeds]")
    end = text.index("[journal]")
    path.write_text(text[:start] + "[feeds]\nrequired = false\n\n" + text[end:],
                    encoding="utf-8")
    return path


def test_ready_screen_and_the_no_feed_banner(feed: Feed, tmp_path: Path) -> None:
    config = load(_no_feed_config(feed, tmp_path / "state"))
    with serving(config, SimulatedRun(replay=FIXTURES / "clips" / "empty", fast=True)):
        async def scenario() -> None:
            ui = steward_app(config.control.socket)
            async with ui.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: ui.session.status is not None, "a status")
                await until(pilot, lambda: "NO REVOCATION FEED: resold tickets cannot be "
                            "refused." in screen_text(ui), "the no-feed banner")
                # no frame was read yet (the clip is not played): not ready, and the
                # status bar says so
                assert "NOT READY (F6)" in screen_text(ui)
                await pilot.press("f6")
                await until(pilot, lambda: isinstance(ui.screen, ReadyScreen)
                            and "NOT READY: Camera." in screen_text(ui), "the checklist")
                text = screen_text(ui)
                assert "ok    Revocation feed  no revocation feed: resold tickets cannot " \
                    "be refused" in text
                assert "FAIL  Camera" in text and "no frames yet" in text
                assert "ok    Clock" in text and "ok    Fire-alarm loop" in text
                await pilot.press("f4")
                await until(pilot, lambda: "PAS PRÊT : Caméra." in screen_text(ui),
                            "the checklist in French")
                assert "ÉCHEC Caméra" in screen_text(ui)
                await pilot.press("escape")
                await until(pilot, lambda: "PAS DE FLUX DE RÉVOCATIONS : les billets "
                            "revendus ne peuvent pas être refusés." in screen_text(ui),
                            "the banner in French")

        asyncio.run(scenario())
