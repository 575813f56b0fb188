"""The gate as a service: systemd notifications and watchdog from the main loop, metrics,
`gate status`, SIGTERM, and the example config."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from portique.commands.main import main
from portique.devtools.simulation import SimulatedRun
from tests.core.test_config_example import synced_store

from .conftest import REPO, World, clip, gate_table
from .test_durability import _toml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_endpoint_on_loopback(world: World) -> None:
    port = _free_port()
    world.sections["metrics"] = {"port": port}
    with world.running(SimulatedRun(replay=clip("second_scan"), fast=True,
                                  simulate_passage_s=0.05)) as app:
        app.run()
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    page = text.decode()
    assert 'portique_decisions_total{reason="VALID",verdict="admit"} 1.0' in page
    assert 'portique_decisions_total{reason="ALREADY_ADMITTED",verdict="refuse"} 1.0' in page
    assert 'portique_turnstile_outcomes_total{outcome="passed"} 1.0' in page
    assert "portique_frame_to_decision_seconds_bucket" in page
    assert "portique_decode_seconds_count" in page
    for gauge in ("portique_clock_trusted", "portique_fire_alarm", "portique_camera_up",
                  "portique_feed_sequence", "portique_frames_dropped_total"):
        assert gauge in page


def test_ready_watchdog_and_stopping_reach_systemd(world: World, tmp_path: Path,
                                                   monkeypatch: object) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    listener.bind(str(path))
    listener.settimeout(5)
    os.environ["NOTIFY_SOCKET"] = str(path)
    os.environ["WATCHDOG_USEC"] = "400000"  # 0.4 s: pings every 0.1 s while the loop lives
    os.environ["WATCHDOG_PID"] = str(os.getpid())
    try:
        with world.running(SimulatedRun(replay=clip("empty"), fast=True)) as app:
            app.run()
    finally:
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(name, None)
    messages = []
    listener.settimeout(0.5)
    try:
        while True:
            messages.append(listener.recv(4096).decode())
    except TimeoutError:
        pass
    listener.close()
    assert "READY=1" in messages[0]
    assert sum("WATCHDOG=1" in m for m in messages) >= 1
    assert "STOPPING=1" in messages[-1]


def test_gate_status_prints_the_health_in_one_screen(world: World, capsys: object) -> None:
    with world.running(SimulatedRun(replay=clip("tampered"), fast=True)) as app:
        app.run()
        socket_path = str(world.config().control.socket)
        assert main(["status", "--socket", socket_path]) == 0
        out = capsys.readouterr().out  # type: ignore[attr-defined]
        assert main(["status", "--socket", socket_path, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert out.splitlines()[0].startswith("gate 1  event PAR24-ATH05  entrance 2")
    assert "clock        trusted" in out and "fire alarm   no" in out
    assert "refuse BAD_SIGNATURE" in out
    assert len(out.splitlines()) <= 24
    assert data["decisions"]["refuse"] == 1


def test_gate_status_without_a_daemon_says_so(tmp_path: Path, capsys: object) -> None:
    assert main(["status", "--socket", str(tmp_path / "none.sock")]) == 2
    assert "no gate daemon" in capsys.readouterr().err  # type: ignore[attr-defined]


def test_sigterm_stops_the_gate_cleanly_into_its_stop_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "gate.toml"
    config.write_text(_toml(gate_table(state)))
    log = tmp_path / "pins.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "portique", "run", "--config", str(config), "--replay",
         str(clip("second_scan")), "--pin-log", str(log), "--log-level", "INFO"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.exists() and "# ready" in log.read_text()):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()[-2000:]
    assert "stopping on signal SIGTERM" in err.decode()
    lines = log.read_text().splitlines()
    after_stop = lines[lines.index(next(x for x in lines if x.startswith("# stop"))):]
    # fail-safe: on stop the lock relay is de-energised, which frees the turnstile
    assert any(x.startswith("GPIO17 1 ") for x in after_stop)


def test_example_config_documents_every_key_and_checks(capsys: object,
                                                      tmp_path: Path) -> None:
    example = REPO / "config" / "gate.toml"
    text = example.read_text()
    # as installed on a gate, with this checkout's keys in place of /etc/portique/keys
    copy = tmp_path / "gate.toml"
    copy.write_text(text.replace("/etc/portique/keys", str(REPO / "tests/fixtures/keys")))
    assert main(["config", "check", str(copy)]) == 2  # no feed synced yet: run would refuse
    assert "feeds.sqlite: no feed store yet (run `gate sync` first)" in \
        capsys.readouterr().err  # type: ignore[attr-defined]
    copy.write_text(text.replace("/etc/portique/keys", str(REPO / "tests/fixtures/keys"))
                    .replace("/var/lib/portique/feeds.sqlite", str(synced_store(tmp_path))))
    assert main(["config", "check", str(copy)]) == 0
    capsys.readouterr()  # type: ignore[attr-defined]
    assert main(["config", "keys", "--json"]) == 0
    keys = [k["key"] for k in json.loads(capsys.readouterr().out)["keys"]]  # type: ignore[attr-defined]
    missing = [k for k in keys if k.rsplit(".", 1)[-1] not in text]
    assert missing == []


def test_a_silent_camera_keeps_the_loop_alive_and_stoppable(world: World,
                                                             tmp_path: Path) -> None:
    """While no frame comes (a camera being reopened), the loop still pings the watchdog
    and obeys a stop request: systemd must not kill a gate that is only waiting."""
    import shutil
    import threading

    stalled = tmp_path / "stalled"
    stalled.mkdir()
    shutil.copy(clip("empty") / "000.jpg", stalled / "000.jpg")
    shutil.copy(clip("empty") / "001.jpg", stalled / "001.jpg")
    (stalled / "clip.json").write_text(json.dumps({
        "format": "portique-clip/1", "frames": [
            {"file": "000.jpg", "captured_at": 1722877200.0, "codes": []},
            {"file": "001.jpg", "captured_at": 1722877200.0 + 3600, "codes": []}]}))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify.sock"))
    listener.settimeout(30)
    os.environ.update({"NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
                       "WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(os.getpid())})
    try:
        with world.running(SimulatedRun(replay=stalled)) as app:  # recorded pace: 1 h gap
            runner = threading.Thread(target=app.run)
            runner.start()
            seen: list[str] = []
            while sum("WATCHDOG=1" in m for m in seen) < 4:  # pings go on while idle
                seen.append(listener.recv(4096).decode())
            app.stop.set()
            runner.join(timeout=30)
            assert not runner.is_alive()
            assert app.daemon.counters.frames == 1
    finally:
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(name, None)
        listener.close()


def test_watchdog_keeps_pinging_while_an_admission_waits_for_its_visitor(
        world: World, tmp_path: Path) -> None:
    """The loop blocks inside a turnstile cycle for up to open_timeout_s: that is the gate
    working, not hung, so systemd must keep getting pings (and the visitor who stays back
    must not cost a restart)."""
    import threading

    world.sections["hardware"] = {"open_timeout_s": 2.0}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify.sock"))
    listener.settimeout(0.05)
    os.environ.update({"NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
                       "WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(os.getpid())})
    pings_in_cycle = 0
    try:
        with world.running(SimulatedRun(replay=clip("no_passage"), fast=True,
                                      stays=frozenset({"PAR24-000109"}))) as app:
            runner = threading.Thread(target=app.run)
            runner.start()
            while runner.is_alive():
                try:
                    message = listener.recv(4096).decode()
                except TimeoutError:
                    continue
                if "WATCHDOG=1" in message and app.daemon.busy_until:
                    pings_in_cycle += 1
            runner.join()
    finally:
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(name, None)
        listener.close()
    assert world.admissions() == [("PAR24-000109", "voided")]
    # a 2 s cycle against a 0.4 s watchdog: many pings while the loop was inside it
    assert pings_in_cycle >= 3
