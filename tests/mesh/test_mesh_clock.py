"""Summaries rejected as stale (a clock off by more than summary_max_age_s, here or at the
sender) stop anti-entropy with that gate: an alarm in `gate mesh status`, `gate status`
and a gauge, not only counted log lines. On a real broker, with summaries genuinely
signed by gate 2's key at an old (and at a future) time."""

from __future__ import annotations

import json
import logging
import time

import pytest

from portique.commands.main import main
from portique.runtime.control import ControlClient
from portique.runtime.mesh import wire
from portique.runtime.mesh.wire import Summary
from portique.runtime.statusview import render_status
from tests.mesh.conftest import VENUE, Venue, gate_key, wait_for
from tests.mesh.test_mesh_robustness import TOPICS, _intruder, _send

TEN_MINUTES_MS = 600_000


def summary_of_gate_2(sent_ms: int) -> bytes:
    return wire.sign_summary(Summary(VENUE, "2", b"\x02" * 8, sent_ms, ()), gate_key("2"))


def test_stale_summaries_raise_a_clock_alarm_until_one_is_believed(
        venue: Venue, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="portique.runtime.mesh")
    one = venue.gate("1")
    one.start()
    assert one.app is not None
    registry = one.app.metrics.registry
    socket = one.folder / "control.sock"
    assert one.mesh.status()["clock_alarm"] is False
    assert registry.get_sample_value("portique_mesh_clock_alarm") == 0.0

    with _intruder(venue.broker.port) as (client, _):
        _send(client, f"{TOPICS}/summary/2",
              summary_of_gate_2(round(time.time() * 1000) - TEN_MINUTES_MS))
        status = wait_for(lambda: (s := one.mesh.status())["clock_alarm"] and s,
                          "the stale summary raises the clock alarm")
        (why,) = status["clock_alarm_why"]
        assert why.startswith("summaries of gate(s) 2 rejected as stale, signed more than "
                              "60 s from this gate's clock (gate 2: 6")
        assert "s behind): this gate's clock (or theirs) may be wrong; anti-entropy with " \
            "them has stopped" in why
        (stale,) = status["stale_summaries"]
        assert stale["gate"] == "2" and stale["skew_s"] >= 600
        wait_for(lambda: registry.get_sample_value("portique_mesh_clock_alarm") == 1.0,
                 "the clock gauge is raised")

        # gate status, gate mesh status (text and JSON)
        gate_status = ControlClient(socket).request("status")["status"]
        assert f"MESH CLOCK   CHECK THE CLOCK: {why}" in render_status(gate_status)
        assert main(["mesh", "status", "--socket", str(socket)]) == 0
        out = capsys.readouterr().out
        assert f"CLOCK ALARM  {why}" in out.splitlines()
        assert main(["mesh", "status", "--json", "--socket", str(socket)]) == 0
        assert json.loads(capsys.readouterr().out)["clock_alarm_why"] == [why]

        # a summary from the future says so
        _send(client, f"{TOPICS}/summary/2",
              summary_of_gate_2(round(time.time() * 1000) + TEN_MINUTES_MS))
        wait_for(lambda: one.mesh.status()["rejected_by"].get("stale") == 2,
                 "the second stale summary")
        assert "s ahead): this gate's clock" in one.mesh.status()["clock_alarm_why"][0]

        # a summary believed from gate 2 ends the alarm
        _send(client, f"{TOPICS}/summary/2", summary_of_gate_2(round(time.time() * 1000)))
        wait_for(lambda: not one.mesh.status()["clock_alarm"], "the alarm ends")
        wait_for(lambda: registry.get_sample_value("portique_mesh_clock_alarm") == 0.0,
                 "the clock gauge is lowered")
    assert one.mesh.status()["stale_summaries"] == []
    gate_status = ControlClient(socket).request("status")["status"]
    assert "MESH CLOCK" not in render_status(gate_status)
    started = [r.getMessage() for r in caplog.records
               if r.getMessage().startswith("mesh: summaries of gate(s) 2 rejected as stale")]
    assert len(started) == 1  # logged once when it starts, not per summary
    assert any(r.getMessage() == "mesh: no summary rejected as stale any more, clock alarm "
               "over" for r in caplog.records)
