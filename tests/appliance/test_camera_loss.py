"""No camera, still a gate: a whole gate (real control socket, real SQLite journal, real
metrics endpoint, a real sd_notify datagram socket, gpiozero's mock pins) whose camera is
missing at start, then plugged in, unplugged and plugged back; and one whose camera
delivers black, then frozen, then good frames. Meanwhile the daemon runs, manual admit
and deny work over the control socket, and `gate status`, the metrics and systemd's
status line say what the camera does, with its device.

The missing-and-back camera is a real video file read by OpenCV: absent, the device
cannot be opened; moved away and back, it is unplugged and plugged in. The black and
frozen camera is the stand-in device of tests/scanner/standins.py (a V4L2 device cannot
run here), handing out real photos, darkened or repeated.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from portique.commands.main import main
from portique.devtools.simulation import SimulatedRun
from portique.runtime.control import ControlClient
from portique.runtime.wiring import GateApp
from portique.scanner import profile as p
from portique.scanner.config import CameraConfig
from portique.scanner.images import read_image
from portique.scanner.sources import CameraSource, FrameSource
from tests.scanner.standins import ArrayCamera, ArrayDevice
from tests.scanner.test_camera_profile import PHONE, uvc_camera

from .conftest import World, clip, feed_store

GUARD = 60.0
"""Seconds after which a wait gives up (a hang guard, never a measure)."""


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


@dataclass(frozen=True)
class CameraRun(SimulatedRun):
    """A simulated run whose camera is made by `camera` instead of from V4L2."""

    camera: Callable[[CameraConfig], FrameSource] | None = None

    def make_camera(self, config: CameraConfig) -> FrameSource:
        assert self.camera is not None
        return self.camera(config)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Systemd:
    """The notify socket systemd would give the gate: every datagram kept."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[str] = []

    def saw(self, text: str) -> bool:
        with contextlib.suppress(TimeoutError):
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        return any(text in m for m in self.messages)

    def last_status(self) -> str:
        self.saw("")
        statuses = [m for m in self.messages if "STATUS=" in m]
        return statuses[-1] if statuses else ""


@dataclass
class Running:
    app: GateApp
    client: ControlClient
    systemd: Systemd
    metrics_port: int
    socket: Path

    def camera(self) -> dict[str, Any]:
        answer = self.client.request("status")
        assert answer["ok"] is True
        camera: dict[str, Any] = answer["status"]["camera"]
        return camera

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        page: bytes = urllib.request.urlopen(url, timeout=10).read()
        return page.decode()

    def says(self, state: str) -> bool:
        """The status, the metrics and systemd's status line all say `state`."""
        page = self.metrics()
        ok = "1.0" if state == "ok" else "0.0"
        return (self.camera()["state"] == state
                and f"portique_camera_ok {ok}" in page
                and f'portique_camera_state{{portique_camera_state="{state}"}} 1.0' in page
                and (f"CAMERA {state.upper()}" if state != "ok" else "camera ok")
                in self.systemd.last_status())


@pytest.fixture
def gate(world: World, tmp_path: Path) -> Iterator[Callable[..., Running]]:
    world.sections["feeds"] = feed_store(world.state, {}, [
        {"ticket_id": f"PAR24-00010{i}", "generation": "0", "order_ref": f"ORD-7{i}",
         "holder_name": f"Holder {i}", "category": "CAT-B", "entrances": "2", "flags": ""}
        for i in range(1, 6)])
    port = _free_port()
    world.sections["metrics"] = {"port": port}
    systemd = Systemd(tmp_path / "notify.sock")
    os.environ["NOTIFY_SOCKET"] = str(tmp_path / "notify.sock")
    stack = contextlib.ExitStack()

    def start(camera: Callable[[CameraConfig], FrameSource], **keys: Any) -> Running:
        world.sections["scanner"] = {"camera": {
            "reopen_backoff_seconds": 0.05, "reopen_backoff_max_seconds": 0.2,
            "health_window_frames": 5, **keys}}
        app = stack.enter_context(world.running(CameraRun(camera=camera,
                                                          simulate_passage_s=0.05)))
        runner = threading.Thread(target=app.run, name="gate-run")
        runner.start()

        def stop() -> None:
            app.stop.set()
            runner.join(timeout=GUARD)
            assert not runner.is_alive()

        stack.callback(stop)
        path = Path(world.config().control.socket)
        return Running(app, ControlClient(path), systemd, port, path)

    try:
        yield start
    finally:
        stack.close()
        os.environ.pop("NOTIFY_SOCKET", None)
        systemd.sock.close()


def write_video(path: Path, images: list[Any]) -> None:
    aside = path.with_name("incoming.avi")
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(aside), cv2.VideoWriter.fourcc(*"MJPG"), 10, (width, height))
    for image in images:
        writer.write(image)
    writer.release()
    os.replace(aside, path)


def photos(name: str, count: int) -> list[Any]:
    return [read_image(p) for p in sorted(clip(name).glob("*.jpg"))[:count]]


def admit(gate: Running, ticket_id: str) -> dict[str, Any]:
    answer = gate.client.request("admit", ticket_id=ticket_id, steward="S-1",
                                 reason="camera down")
    assert answer["ok"] is True, answer
    decision: dict[str, Any] = answer["decision"]
    assert (decision["verdict"], decision["reason"]) == ("admit", "MANUAL_ADMIT")
    return decision


def test_camera_absent_at_start_then_plugged_unplugged_and_back(
        gate: Callable[..., Running], world: World, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    device = tmp_path / "video0.avi"
    g = gate(lambda cam: CameraSource.from_config(cam, api=cv2.CAP_ANY),
             device=str(device))
    # the gate started without its camera: no traceback, no exit; steward-only mode
    wait_until(lambda: g.says("lost"), "CAMERA LOST in status, metrics and systemd")
    camera = g.camera()
    assert camera["device"] == str(device) and "no such device" in camera["why"]
    assert camera["steward_only"] is True
    assert f"CAMERA LOST {device}: no such device" in g.systemd.last_status()
    assert "steward-only" in g.systemd.last_status()
    assert main(["status", "--socket", str(g.socket)]) == 0
    out = capsys.readouterr().out
    assert f"CAMERA       LOST {device}: no such device" in out
    assert "steward-only: manual admit and deny work" in out
    admit(g, "PAR24-000101")
    denied = g.client.request("deny", ticket_id="PAR24-000102", steward="S-1",
                              reason="no ticket shown")
    assert denied["ok"] is True and denied["decision"]["verdict"] == "refuse"

    write_video(device, photos("empty", 4))  # the camera is plugged in
    wait_until(lambda: g.says("ok"), "camera ok everywhere")
    frames = g.app.daemon.counters.frames
    wait_until(lambda: g.app.daemon.counters.frames > frames, "frames reach the decoder")

    away = tmp_path / "unplugged.avi"
    os.rename(device, away)  # unplugged while running
    wait_until(lambda: g.says("lost"), "CAMERA LOST again")
    admit(g, "PAR24-000103")
    os.rename(away, device)  # plugged back
    wait_until(lambda: g.says("ok"), "camera back")
    frames = g.app.daemon.counters.frames
    wait_until(lambda: g.app.daemon.counters.frames > frames, "frames resume")
    assert main(["status", "--socket", str(g.socket)]) == 0
    assert f"camera       ok {device}" in capsys.readouterr().out
    assert world.decisions() == [("admit", "MANUAL_ADMIT", "PAR24-000101"),
                                 ("refuse", "MANUAL_DENY", "PAR24-000102"),
                                 ("admit", "MANUAL_ADMIT", "PAR24-000103")]


def test_black_then_frozen_then_good_frames(gate: Callable[..., Running], world: World,
                                            capsys: pytest.CaptureFixture[str],
                                            caplog: pytest.LogCaptureFixture) -> None:
    good = photos("valid_step_change", 3)
    device = ArrayDevice([(image * 0.03).astype(np.uint8) for image in good])  # covered
    uvc = uvc_camera()
    with caplog.at_level(logging.INFO, logger="portique.scanner.sources"):
        g = gate(lambda cam: ArrayCamera(device, health_window=cam.health_window_frames,
                                         profile=cam, controls=lambda path: uvc),
                 **PHONE)
        # the phone-screen profile, applied to the camera, read back, logged and shown
        assert (p.POWER_LINE_FREQUENCY, 1) in uvc.sets()
        assert "camera profile applied device=/dev/video7 backend=v4l2" in caplog.text
    assert main(["status", "--socket", str(g.socket)]) == 0
    out = capsys.readouterr().out
    assert "camera setup v4l2: power_line_frequency=1, auto_exposure=3" in out
    assert "exposure_metering_mode=unsupported" in out
    wait_until(lambda: g.says("black"), "CAMERA BLACK everywhere")
    assert "5 frames in a row black" in g.camera()["why"]
    assert "CAMERA BLACK /dev/video7" in g.systemd.last_status()
    admit(g, "PAR24-000104")

    device.show(good[:1])  # the driver hands out one buffer again and again
    wait_until(lambda: g.says("frozen"), "CAMERA FROZEN everywhere")
    frames = g.app.daemon.counters.frames
    withheld = g.camera()["withheld"]
    wait_until(lambda: g.camera()["withheld"] > withheld + 5, "frozen frames withheld")
    assert g.app.daemon.counters.frames <= frames + 1  # at most one from before the verdict
    admit(g, "PAR24-000105")

    device.show(good)
    wait_until(lambda: g.says("ok"), "camera ok again")
    frames = g.app.daemon.counters.frames
    wait_until(lambda: g.app.daemon.counters.frames > frames, "frames resume")
    assert [d[2] for d in world.decisions()] == ["PAR24-000104", "PAR24-000105"]
