"""The steward UI against a real training gate (`gate train run`, mock pins, an idle
camera): the TRAINING banner says so, in English and in French, and the simulated camera
loss is named and explained as a real one is."""

from __future__ import annotations

import asyncio
from pathlib import Path

from portique.devtools.simulation import SimulatedRun
from portique.devtools.training import TrainingRun
from portique.runtime.config import load
from portique.runtime.control import ControlClient
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


def test_a_training_gate_shows_the_training_banner(feed: Feed, tmp_path: Path) -> None:
    config = load(write_config(feed, tmp_path / "state", socket=short_socket_path()))
    with serving(config, TrainingRun(), loop=True):
        async def scenario() -> None:
            ui = steward_app(config.control.socket)
            async with ui.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: ui.session.status is not None, "a status")
                await until(pilot, lambda: "TRAINING: a training gate, simulated pins, no "
                            "real lock." in screen_text(ui), "the training banner")
                answer = ControlClient(config.control.socket).request(
                    "train", action="camera_lost")
                assert answer["ok"], answer
                await until(pilot, lambda: "training (idle camera): the gate cannot read "
                            "tickets (simulated camera loss (training))" in screen_text(ui),
                            "the simulated camera loss, named and explained")
                await pilot.press("f4")
                await until(pilot, lambda: "FORMATION : portique d'entraînement, broches "
                            "simulées, aucune vraie serrure." in screen_text(ui),
                            "the banner in French")

        asyncio.run(scenario())


def test_a_gate_that_is_not_training_shows_no_training_banner(feed: Feed,
                                                             tmp_path: Path) -> None:
    config = load(write_config(feed, tmp_path / "state", socket=short_socket_path()))
    with serving(config, SimulatedRun(replay=FIXTURES / "clips" / "empty", fast=True)):
        async def scenario() -> None:
            ui = steward_app(config.control.socket)
            async with ui.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: ui.session.status is not None, "a status")
                await until(pilot, lambda: str(config.gate.id) in screen_text(ui), "title")
                assert "TRAINING" not in screen_text(ui)

        asyncio.run(scenario())
