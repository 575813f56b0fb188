"""`gate ready`: the ready-for-doors checklist of a real gate replaying a recorded clip,
asked over its real control socket; the offline checks of a gate that is not running;
the metric."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from portique.commands.main import main
from portique.devtools.simulation import SimulatedRun
from portique.runtime import readiness
from portique.runtime.readiness import CHECKS
from portique.runtime.wiring import GateApp, Housekeeping

from .conftest import World, clip, feed_store
from .test_durability import _toml

DEADLINE_S = 60.0


def _wait(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {DEADLINE_S:.0f} s: {what}")


@contextlib.contextmanager
def _replaying(world: World) -> Iterator[GateApp]:
    """A gate replaying the 41-second clip at its recorded pace, frames flowing."""
    with world.running(SimulatedRun(replay=clip("second_scan"), simulate_passage_s=0.05)
                       ) as app:
        loop = threading.Thread(target=app.run, daemon=True)
        loop.start()
        try:
            _wait(lambda: app.quality.recent() is not None and app.status()["camera"]["fps"],
                  "frames measured")
            yield app
        finally:
            app.stop.set()
            loop.join(timeout=DEADLINE_S)


def _ready(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["ready", *args])
    return code, out.getvalue()


def test_a_healthy_replayed_gate_is_ready_and_says_so_line_by_line(world: World) -> None:
    world.sections["feeds"] = feed_store(world.state, {"PAR24-000106": 1})
    with _replaying(world) as app:
        socket = str(app.config.control.socket)
        code, text = _ready("--socket", socket)
        assert code == 0, text
        lines = text.splitlines()
        assert [line.split()[1] for line in lines[:-1]] == list(CHECKS)
        assert all(line.startswith("ok ") for line in lines[:-1])
        assert lines[-1] == f"READY for doors: all {len(CHECKS)} checks pass"
        assert "sequence 1" in lines[0] and "brightness" in lines[3]
        code, raw = _ready("--socket", socket, "--json")
        answer = json.loads(raw)
        assert code == 0 and answer["ok"] is True and answer["source"] == "gate"
        status = app.status()["ready"]
        assert set(status) == {"ok", "checks"} and status["ok"] is True
        assert [c["name"] for c in status["checks"]] == list(CHECKS)
        assert all(set(c) == {"name", "ok", "detail"} for c in status["checks"])


def test_a_stale_feed_fails_its_line_and_the_exit_code(world: World) -> None:
    world.sections["feeds"] = feed_store(world.state, {})
    with contextlib.closing(sqlite3.connect(world.state / "feeds.sqlite")) as db, db:
        db.execute("UPDATE feed_state SET fetched_at = ?", (time.time() - 7200,))
    with _replaying(world) as app:
        code, text = _ready("--socket", str(app.config.control.socket), "--json")
    answer = json.loads(text)
    assert code == 1 and answer["ok"] is False
    failing = [c for c in answer["checks"] if not c["ok"]]
    assert [c["name"] for c in failing] == ["feed"]
    assert "2.0 h ago" in failing[0]["detail"] and "feeds.ready_max_age_s" in \
        failing[0]["detail"]


def test_the_metric_exports_the_checklist(world: World) -> None:
    world.sections["feeds"] = feed_store(world.state, {})
    with _replaying(world) as app:
        registry = app.metrics.registry
        Housekeeping(app).tick()
        assert registry.get_sample_value("portique_ready") == 1
        for name in CHECKS:
            assert registry.get_sample_value("portique_ready_check", {"check": name}) == 1
        app.turnstile.acknowledge_fire_alarm("nobody")  # a no-op: the loop is closed
        world.factory.pin(25).drive_high()  # type: ignore[union-attr]  # the loop opens
        _wait(lambda: app.turnstile.fire_alarm_active, "the fire loop open")
        Housekeeping(app).tick()
        assert registry.get_sample_value("portique_ready") == 0
        assert registry.get_sample_value("portique_ready_check", {"check": "fire_loop"}) == 0
        assert registry.get_sample_value("portique_ready_check", {"check": "clock"}) == 1
        code, text = _ready("--socket", str(app.config.control.socket))
    assert code == 1
    assert "FAIL fire_loop" in text and text.splitlines()[-1] == \
        "NOT READY for doors: fire_loop"


def _config_file(world: World, **sections: dict[str, Any]) -> Path:
    from .conftest import gate_table

    path = world.state / "gate.toml"
    path.write_text(_toml(gate_table(world.state, **sections)), encoding="utf-8")
    return path


def test_a_gate_not_running_gets_the_offline_checks_and_is_never_ready(world: World) -> None:
    feeds = feed_store(world.state, {})
    path = _config_file(world, feeds=feeds, clock={"source": "always"})
    code, text = _ready("--config", str(path))
    assert code == 1
    lines = text.splitlines()
    assert lines[0].startswith("FAIL gate       not running (no control socket at ")
    by_name = {line.split()[1]: line for line in lines[1:-1]}
    assert list(by_name) == list(CHECKS)
    for name in ("feed", "keys", "clock", "journal", "mesh", "upload"):
        assert by_name[name].startswith("ok "), by_name[name]
    for name in ("camera", "relay", "fire_loop"):
        assert by_name[name] == f"FAIL {name:<10} not checked: the gate is not running"
    assert lines[-1] == "NOT READY for doors: gate, camera, relay, fire_loop"


def test_an_untrusted_clock_fails_its_line(world: World) -> None:
    # the clock trusts only a signed feed time: with the feed 2 h old it is not trusted
    feeds = feed_store(world.state, {})
    with contextlib.closing(sqlite3.connect(world.state / "feeds.sqlite")) as db, db:
        db.execute("UPDATE feed_state SET fetched_at = ?, published_at = ?",
                   (time.time() - 7200, int(time.time()) - 7200))
    path = _config_file(world, feeds=feeds, clock={"source": "feed",
                                                    "feed_max_age_s": 3600.0})
    code, raw = _ready("--config", str(path), "--json")
    answer = json.loads(raw)
    assert code == 1 and answer["source"] == "offline"
    by_name = {c["name"]: c for c in answer["checks"]}
    assert by_name["clock"]["ok"] is False
    assert by_name["clock"]["detail"].startswith("NOT TRUSTED: ")
    assert by_name["feed"]["ok"] is False and by_name["keys"]["ok"] is True


# --- the lines on their own ------------------------------------------------------------

def test_camera_line_judges_state_rate_and_frame_quality() -> None:
    from portique.scanner.quality import FrameQuality

    good = FrameQuality(brightness=110, sharpness=900)
    assert readiness.check_camera(state="ok", fps=9.5, quality=good).ok
    running = readiness.check_camera(state="running", fps=9.5, quality=good)  # no such state
    assert not running.ok and running.detail == "camera not delivering: state running"
    lost = readiness.check_camera(state="lost", fps=0, quality=None, device="/dev/video0")
    assert not lost.ok and lost.detail == "camera /dev/video0 not delivering: state lost"
    assert not readiness.check_camera(state="ok", fps=0.0, quality=good).ok
    dark = readiness.check_camera(state="ok", fps=9, quality=FrameQuality(4, 2))
    assert not dark.ok and dark.detail.startswith("frames too dark")
    blur = readiness.check_camera(state="ok", fps=9, quality=FrameQuality(120, 8))
    assert not blur.ok and blur.detail.startswith("frames blurred")
    glare = readiness.check_camera(state="ok", fps=9, quality=FrameQuality(250, 300))
    assert not glare.ok and glare.detail.startswith("frames blown out")


def test_frame_quality_of_real_frames_black_and_blurred() -> None:
    import cv2
    import numpy as np

    from portique.scanner.quality import measure

    frame = cv2.imread(str(clip("valid_step_change") / "000.jpg"))
    real = measure(frame)
    blurred = measure(cv2.GaussianBlur(frame, (0, 0), 12))
    black = measure(np.zeros_like(frame))
    assert readiness.DARKEST < real.brightness < readiness.BRIGHTEST
    assert real.sharpness > readiness.SHARPEST_BLUR > blurred.sharpness
    assert black.brightness < readiness.DARKEST


def test_keys_line_wants_a_key_valid_to_the_end_of_the_venues_day() -> None:
    import zoneinfo

    from portique.ticket.trust import TrustedKey, TrustStore

    tz = zoneinfo.ZoneInfo("Europe/Paris")
    now = 1722877000.0  # 2024-08-05 18:56 in Paris
    end = readiness.day_end(now, tz)
    assert end - now == pytest.approx(5 * 3600 + 4 * 60, abs=60)
    short = TrustedKey("iss-1", b"\1" * 32, valid_until=now + 3600)
    line = readiness.check_keys(TrustStore.of([short]), event="E1", now=now, day_end=end,
                                tz=tz)
    assert not line.ok and "iss-1 until 2024-08-05 19:56" in line.detail
    whole = TrustedKey("iss-2", b"\2" * 32, valid_until=end + 1)
    line = readiness.check_keys(TrustStore.of([short, whole]), event="E1", now=now,
                                day_end=end, tz=tz)
    assert line.ok and "iss-2" in line.detail and "iss-1 end(s) before" in line.detail
    gone = TrustedKey("iss-3", b"\3" * 32, withdrawn=True)
    line = readiness.check_keys(TrustStore.of([gone]), event="E1", now=now, day_end=end,
                                tz=tz)
    assert not line.ok and line.detail == "no issuer key usable for E1 now: iss-3 withdrawn"


def test_journal_line_offline_wants_a_folder_it_can_make_and_room(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("a file\n")
    under_a_file = tmp_path / "plain" / "journal.sqlite"
    assert readiness.journal_file_problem(under_a_file) == \
        f"journal {under_a_file}: {tmp_path / 'plain'} is a file, not a folder"
    to_be_made = tmp_path / "new" / "state" / "journal.sqlite"
    assert readiness.journal_file_problem(to_be_made) is None  # the gate makes the folders
    assert (readiness.free_space(to_be_made) or 0) > 0
    full = readiness.check_journal(path=to_be_made, problem=None, free_bytes=1 << 20)
    assert not full.ok and full.detail == f"{to_be_made}: only 1 MiB free, 64 MiB needed"


def test_feed_line_wants_the_feed_of_every_session_still_to_come_today() -> None:
    import zoneinfo

    from portique.ticket.rules import Session

    tz = zoneinfo.ZoneInfo("Europe/Paris")
    now = 1722877000.0  # 2024-08-05 18:56 in Paris
    sessions = (Session("MORNING", opens_at=now - 8 * 3600, closes_at=now - 5 * 3600),
                Session("AFTERNOON", opens_at=now - 3600, closes_at=now + 3600),
                Session("EVENING", opens_at=now + 2 * 3600, closes_at=now + 4 * 3600),
                Session("TOMORROW", opens_at=now + 24 * 3600, closes_at=now + 26 * 3600))
    events = readiness.events_of_the_day(sessions, current="AFTERNOON", now=now, tz=tz)
    assert events == ("AFTERNOON", "EVENING")  # closed and tomorrow's are not due
    fresh = readiness.FeedFacts(sequence=4, published_at=now - 60, fetched_at=now - 60)
    stale = readiness.FeedFacts(sequence=2, published_at=now - 9000, fetched_at=now - 9000)
    both = readiness.check_feeds([("AFTERNOON", fresh), ("EVENING", fresh)], configured=True,
                                 wall_now=now, max_age_s=3600)
    assert both.ok and "AFTERNOON" in both.detail and "EVENING" in both.detail
    late = readiness.check_feeds([("AFTERNOON", fresh), ("EVENING", stale)], configured=True,
                                 wall_now=now, max_age_s=3600)
    assert not late.ok and late.detail.startswith("event EVENING: sequence 2, last heard")
    assert "AFTERNOON" not in late.detail
    missing = readiness.check_feeds([("AFTERNOON", fresh), ("EVENING", None)],
                                    configured=True, wall_now=now, max_age_s=3600)
    assert not missing.ok and missing.detail.startswith("no feed of event EVENING yet")


def test_mesh_line_counts_a_gate_heard_by_its_heartbeat_alone() -> None:
    mesh = {"state": "connected", "peers": [
        {"gate": "2", "last_message_at": None, "last_heartbeat_at": "2024-08-05T16:56:00Z"},
        {"gate": "3", "last_message_at": None, "last_heartbeat_at": None}]}
    line = readiness.check_mesh(mesh)
    assert line.ok and line.detail == "connected, 1 gate(s) heard: 2"
    mesh["peers"][0]["last_heartbeat_at"] = None
    assert readiness.check_mesh(mesh).detail == "connected, but no other gate heard yet"
