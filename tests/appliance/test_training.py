"""Steward training against a running gate on gpiozero's mock pins: a clip played in a
loop (the run does not end), the simulated fire alarm, passage, camera loss and stale feed
through the real control socket, and the refusal to train on real pins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from portique.base.errors import ConfigError
from portique.devtools.training import STALE_FEED_S, TrainingRun
from portique.runtime.control import ControlClient
from portique.runtime.statusview import render_status
from portique.runtime.wiring import GateApp

from .conftest import REPO, World, clip, feed_store, gate_table
from .test_durability import _toml


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {timeout} s: {what}")
        time.sleep(0.02)


@pytest.fixture
def training(world: World) -> Iterator[tuple[World, GateApp, ControlClient]]:
    world.sections["feeds"] = feed_store(world.state, {})
    # the simulated visitor walks through 0.1 s after the unlock; on a loaded machine that
    # can take longer than a second, and an admission nobody used is voided (the ticket
    # may then be admitted again): the lock waits long enough here
    world.sections["hardware"] = {"open_timeout_s": 10.0}
    app = world.build(TrainingRun(clip=clip("valid_step_change"), gap_s=0.2, round_s=10.0,
                                  simulate_passage_s=0.1))
    runner = threading.Thread(target=app.run)
    runner.start()
    try:
        yield world, app, ControlClient(app.config.control.socket)
    finally:
        app.close()
        runner.join(timeout=30)
    assert not runner.is_alive()


def status(client: ControlClient) -> dict[str, Any]:
    answer: dict[str, Any] = client.request("status")["status"]
    return answer


def train(client: ControlClient, action: str) -> dict[str, Any]:
    answer = client.request("train", action=action)
    assert answer["ok"], answer
    return answer


def test_training_loops_its_clip_and_does_not_end(
        training: tuple[World, GateApp, ControlClient]) -> None:
    world, app, client = training
    wait_for(lambda: status(client)["training"]["rounds"] >= 3, "three rounds of the clip")
    # the first round admits the ticket; 10 s later on the clip's clock it is already
    # admitted, 10 s after that its code is stale (a screenshot)
    decisions = world.decisions()
    assert decisions[:3] == [("admit", "VALID", "PAR24-000101"),
                             ("refuse", "ALREADY_ADMITTED", "PAR24-000101"),
                             ("refuse", "STALE_CODE", "PAR24-000101")]
    assert not app.stop.is_set()


def test_every_simulated_event_reaches_the_status_the_steward_sees(
        training: tuple[World, GateApp, ControlClient]) -> None:
    world, app, client = training
    assert status(client)["training"]["active"] is True

    # the fire alarm: the loop opens, the lock is freed and latched until acknowledged
    train(client, "fire_alarm")
    wait_for(lambda: status(client)["fire_alarm"]["active"], "the fire alarm is raised")
    assert app.turnstile.free_egress_latched
    train(client, "fire_restored")
    wait_for(lambda: not status(client)["fire_alarm"]["active"], "the loop is closed again")
    assert status(client)["fire_alarm"]["latched"]  # a steward must still acknowledge
    assert client.request("ack_fire_alarm", steward="marie")["ok"]
    wait_for(lambda: not status(client)["fire_alarm"]["latched"], "acknowledged")

    # a passage nobody was admitted for: the turnstile reports it, the journal keeps it
    train(client, "passage")
    wait_for(lambda: world.rows("SELECT COUNT(*) FROM gate_events WHERE kind = "
                                "'passage_without_admit'") == [(1,)],
             "the passage without admission is journalled")

    # the camera is lost, then back
    train(client, "camera_lost")
    wait_for(lambda: status(client)["camera"]["state"] == "lost", "the camera is lost")
    assert status(client)["training"]["camera_lost"] is True
    # named, explained and dated as a real camera's loss is, in `gate status` too
    camera = status(client)["camera"]
    assert camera["device"] == f"training clip {clip('valid_step_change')}"
    assert camera["why"] == "simulated camera loss (training)"
    assert camera["since"] is not None and camera["since"].startswith("20")
    text = render_status(status(client))
    assert f"CAMERA       LOST training clip {clip('valid_step_change')}: simulated camera " \
        "loss (training);" in text
    assert f"since {camera['since']}," in text
    assert text.splitlines()[1].startswith("TRAINING     a training gate")
    train(client, "camera-back")  # the command line's spelling works too
    wait_for(lambda: status(client)["camera"]["state"] == "ok", "the camera is back")

    # the feed goes stale, then fresh again: everywhere the gate reports its feed (the
    # status line's age, `gate ready`, the metrics), while the store itself is unchanged
    def feed_check(s: dict[str, Any]) -> dict[str, Any]:
        return next(c for c in s["ready"]["checks"] if c["name"] == "feed")

    before = status(client)
    assert feed_check(before)["ok"], feed_check(before)
    train(client, "feed_stale")
    stale = status(client)
    assert stale["feed"]["age_s"] >= STALE_FEED_S + before["feed"]["age_s"]
    assert stale["feed"]["sequence"] == before["feed"]["sequence"]
    assert not feed_check(stale)["ok"]
    assert "feeds.ready_max_age_s" in feed_check(stale)["detail"]
    wait_for(lambda: (app.metrics.registry.get_sample_value("portique_feed_age_seconds")
                      or 0.0) >= STALE_FEED_S, "the feed age metric says it is stale")
    assert app.feed_store is not None
    stored = app.feed_store.status(stale["event"])
    assert stored is not None and time.time() - stored.fetched_at < STALE_FEED_S
    train(client, "feed_fresh")
    fresh = status(client)
    assert feed_check(fresh)["ok"] and fresh["feed"]["age_s"] < STALE_FEED_S

    simulated = [s["action"] for s in status(client)["training"]["simulated"]]
    assert simulated == ["fire_alarm", "fire_restored", "passage", "camera_lost",
                         "camera_back", "feed_stale", "feed_fresh"]
    answer = client.request("train", action="flood")
    assert not answer["ok"] and "unknown action 'flood'" in answer["error"]


def test_training_refuses_real_pins(world: World) -> None:
    world.sections = {"hardware": {"pin_factory": "lgpio"}}
    with pytest.raises(ConfigError, match="training runs only on simulated pins"):
        world.build(TrainingRun())


def test_gate_train_commands_against_a_running_training_gate(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "gate.toml"
    config.write_text(_toml(gate_table(state)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    gate = [sys.executable, "-m", "portique"]
    proc = subprocess.Popen([*gate, "train", "run", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    socket = tmp_path / "control.sock"
    try:
        wait_for(socket.exists, "the training gate's control socket")
        done = subprocess.run([*gate, "train", "simulate", "fire-alarm", "--socket",
                               str(socket)], env=env, capture_output=True, text=True,
                              check=True)
        assert "fire loop OPEN" in done.stdout
        shown = json.loads(subprocess.run([*gate, "status", "--socket", str(socket),
                                           "--json"], env=env, capture_output=True,
                                          text=True, check=True).stdout)
        assert shown["fire_alarm"]["active"] and shown["training"]["active"]
        assert shown["training"]["clip"] is None  # an idle camera
        assert shown["camera"]["device"] == "training (idle camera)"
        text = subprocess.run([*gate, "status", "--socket", str(socket)], env=env,
                              capture_output=True, text=True, check=True).stdout
        assert "TRAINING     a training gate: simulated pins, no real lock" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert b"TRAINING run gate=1" in err

    # real pins: refused before anything is opened, saying why
    lgpio = tmp_path / "real.toml"
    table = gate_table(state)
    table["hardware"]["pin_factory"] = "lgpio"
    lgpio.write_text(_toml(table), encoding="utf-8")
    refused = subprocess.run([*gate, "train", "run", "--config", str(lgpio)], env=env,
                             capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and "training runs only on simulated pins" in refused.stderr
