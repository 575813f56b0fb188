"""The fire latch outlives a power cut, and so does its end (tests/powercut/fs.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from portique.devtools.simulation import SimulatedRun
from portique.runtime.config import from_dict
from portique.runtime.wiring import LATCH_FILE, GateApp, build
from tests.appliance.conftest import PINS, clip, gate_table
from tests.mesh.conftest import wait_for

from .harness import PowerCutMount


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[PowerCutMount]:
    mount = PowerCutMount(tmp_path / "disk")
    try:
        yield mount
    finally:
        mount.unmount()


def _gate(disk: PowerCutMount, tmp_path: Path) -> tuple[GateApp, MockFactory]:
    disk.mount()
    table = gate_table(disk.mountpoint)
    table["control"]["socket"] = str(tmp_path / "control.sock")
    factory = MockFactory()
    app = build(from_dict(table), SimulatedRun(replay=clip("empty"), fast=True),
                pin_factory=factory)
    return app, factory


def _cut(disk: PowerCutMount, app: GateApp) -> None:
    disk.cut()
    with contextlib.suppress(Exception):  # its state folder is gone with the power
        app.close()


def test_fire_latch_survives_a_cut_and_so_does_its_acknowledgement(
        disk: PowerCutMount, tmp_path: Path) -> None:
    app, factory = _gate(disk, tmp_path)
    latch = disk.mountpoint / LATCH_FILE
    factory.pin(PINS["fire_loop"]).drive_high()  # the fire panel opens the loop
    wait_for(lambda: app.turnstile.free_egress_latched and latch.exists(),
             "the latch recorded")
    _cut(disk, app)

    app, factory = _gate(disk, tmp_path)  # the reboot: free egress must still be latched
    try:
        assert app.turnstile.free_egress_latched
        assert latch.exists()
        assert app.turnstile.acknowledge_fire_alarm("steward-7")
        wait_for(lambda: not latch.exists(), "the latch removed")
    finally:
        _cut(disk, app)

    app, _ = _gate(disk, tmp_path)  # acknowledged before the cut: stays acknowledged
    try:
        assert not app.turnstile.free_egress_latched
        assert not latch.exists()
    finally:
        app.close()
