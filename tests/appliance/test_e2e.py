"""Recorded clips through the real gate: which relay pulses happened, which journal rows exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from portique.devtools.simulation import SimulatedRun
from portique.runtime.control import ControlClient
from portique.ticket import credential

from .conftest import EVENT, FIXTURES, PINS, World, clip, feed_store, fixture_key, sidecar
from .lane import Lane


@pytest.mark.parametrize(
    ("name", "verdict", "reason"),
    [
        ("screenshot_replay", "refuse", "STALE_CODE"),
        ("tampered", "refuse", "BAD_SIGNATURE"),
        ("wrong_entrance", "refuse", "WRONG_ENTRANCE"),
        ("paper", "steward", "PAPER_TICKET"),
    ],
)
def test_refused_codes_never_pulse_the_lock(world: World, name: str, verdict: str,
                                            reason: str) -> None:
    world.play(name)
    expected = sidecar(name)["expected"][0]
    assert world.decisions() == [(verdict, reason, expected["ticket_id"])]
    assert world.unlocks() == 0
    assert world.admissions() == []


def test_valid_phone_code_across_a_step_change_admits_once(world: World) -> None:
    app = world.play("valid_step_change")
    assert world.decisions() == [("admit", "VALID", "PAR24-000101")]
    assert world.admissions() == [("PAR24-000101", "passed")]
    assert world.unlocks() == 1
    # the code after the step change is the same ticket at the gate: shown, not decided
    assert app.daemon.counters.displayed >= 1
    # the lock closed again after the passage
    assert world.lock_levels() == [True, False]


def test_revoked_resold_ticket_is_refused_as_superseded(world: World) -> None:
    revocation = sidecar("revoked")["revocations"][0]
    world.sections["feeds"] = feed_store(world.state, {revocation["ticket_id"]:
                                                       revocation["min_generation"]})
    world.play("revoked")
    assert world.decisions() == [("refuse", "SUPERSEDED", "PAR24-000106")]
    assert world.unlocks() == 0


def test_second_scan_of_an_admitted_ticket_is_refused(world: World) -> None:
    world.play("second_scan")
    assert world.decisions() == [("admit", "VALID", "PAR24-000108"),
                                 ("refuse", "ALREADY_ADMITTED", "PAR24-000108")]
    assert world.unlocks() == 1
    assert world.admissions() == [("PAR24-000108", "passed")]


def test_passage_timeout_voids_the_admission_and_frees_the_ticket(world: World) -> None:
    world.play("no_passage", stays=frozenset({"PAR24-000109"}))
    assert world.decisions() == [("admit", "VALID", "PAR24-000109")]
    assert world.admissions() == [("PAR24-000109", "voided")]
    assert world.unlocks() == 1
    # the same ticket, a minute later at the same gate, is admitted again
    ticket = FIXTURES / "tickets" / "ines.json"
    from portique.commands.main import load_ticket

    level1 = load_ticket(ticket)
    device = fixture_key("dev-ines")
    frames = sidecar("no_passage")["frames"]
    later = frames[-1]["captured_at"] + 60
    code = credential.dynamic_code(level1, device, credential.step_at(later))
    again = Lane(world.state)  # the same journal, the lane alone
    try:
        again.clock.current = later
        event = again.start().handle_code(code)
    finally:
        again.close()
    assert (event["verdict"], event["reason"]) == ("admit", "VALID")
    assert world.admissions() == [("PAR24-000109", "voided"), ("PAR24-000109", "passed")]


def test_two_phones_in_one_frame_admit_one_person_at_a_time(world: World) -> None:
    world.play("two_phones")
    assert sorted(world.decisions()) == [("admit", "VALID", "PAR24-000104"),
                                         ("admit", "VALID", "PAR24-000105")]
    assert world.unlocks() == 2
    # unlock, lock, unlock, lock: the second person's unlock comes after the first relock
    assert world.lock_levels() == [True, False, True, False]
    states = world.admissions()
    assert [s for _, s in states] == ["passed", "passed"]


def test_empty_frames_decide_nothing(world: World) -> None:
    app = world.play("empty")
    assert world.decisions() == []
    assert world.unlocks() == 0
    assert app.daemon.counters.frames == len(sidecar("empty")["frames"])


def test_control_socket_status_admit_deny_and_history(world: World) -> None:
    world.sections["feeds"] = feed_store(world.state, {}, [
        {"ticket_id": "PAR24-000103", "generation": "0", "order_ref": "ORD-77",
         "holder_name": "Hélène Dupont", "category": "CAT-B", "entrances": "2",
         "flags": "paper"}])
    with world.running(SimulatedRun(replay=clip("paper"), fast=True,
                                  simulate_passage_s=0.1)) as app:
        app.run()
        client = ControlClient(Path(world.config().control.socket))
        status = client.request("status")["status"]
        assert status["gate"] == "1" and status["decisions"]["steward"] == 1
        assert status["feed"]["manifest"] == 1
        found = client.request("lookup", query="helene dupont")["candidates"]
        assert [c["ticket_id"] for c in found] == ["PAR24-000103"]
        answer = client.request("admit", ticket_id="PAR24-000103", steward="S-12",
                                reason="paper checked against ID", paper=True)
        assert answer["ok"], answer
        assert answer["decision"]["outcome"] == "passed"
        denied = client.request("deny", ticket_id="PAR24-000999", steward="S-12",
                                reason="no ticket")
        assert denied["ok"] and denied["decision"]["reason"] == "MANUAL_DENY"
        again = client.request("admit", ticket_id="PAR24-000103", steward="S-12",
                               reason="second try")
        assert not again["ok"] and "already admitted" in again["error"]
        unknown = client.request("admit", ticket_id="NOPE", steward="S-12", reason="x")
        assert not unknown["ok"] and "not in this event's manifest" in unknown["error"]
        history = client.request("history", ticket_id="PAR24-000103")["entries"]
        assert [(h["reason"], h["method"]) for h in history] == [
            ("MANUAL_ADMIT", "paper"), ("PAPER_TICKET", "camera")]
        assert history[0]["steward"] == "S-12" and history[0]["admission"] == "passed"
    rows = world.rows("SELECT reason, method, steward, note FROM decisions ORDER BY rowid")
    assert rows == [("PAPER_TICKET", "camera", None, None),
                    ("MANUAL_ADMIT", "paper", "S-12", "paper checked against ID"),
                    ("MANUAL_DENY", "steward", "S-12", "no ticket")]
    assert world.unlocks() == 1


def test_manual_admits_are_rate_limited_unless_a_supervisor_overrides(world: World) -> None:
    from portique.runtime import supervisors

    supervisors.set_pin(world.state / "supervisors.toml", "SUP-1", "482913")
    world.sections["steward"] = {"manual_admit_limit": 1,
                                 "supervisors": str(world.state / "supervisors.toml")}
    world.sections["feeds"] = feed_store(world.state, {}, [
        {"ticket_id": f"PAR24-00020{i}", "generation": "0", "order_ref": f"O{i}",
         "holder_name": f"Holder {i}", "category": "C", "entrances": "2", "flags": ""}
        for i in range(3)])
    app = world.build(SimulatedRun(replay=clip("empty"), fast=True, simulate_passage_s=0.1))
    try:
        first = app.handle({"op": "admit", "ticket_id": "PAR24-000200", "steward": "S1",
                            "reason": "dead phone"})
        assert first["ok"]
        from portique.runtime.daemon import ManualRefusedError

        with pytest.raises(ManualRefusedError, match="supervisor must override"):
            app.handle({"op": "admit", "ticket_id": "PAR24-000201", "steward": "S1",
                        "reason": "dead phone"})
        override = app.handle({"op": "admit", "ticket_id": "PAR24-000201", "steward": "S1",
                               "reason": "dead phone", "supervisor": "SUP-1",
                               "pin": "482913"})
        assert override["ok"]
    finally:
        app.close()
    notes = world.rows("SELECT note FROM decisions WHERE reason = 'MANUAL_ADMIT' "
                       "ORDER BY rowid")
    assert notes == [("dead phone",), ("dead phone (override by SUP-1)",)]


def test_fire_alarm_frees_the_gate_and_needs_an_acknowledge(world: World) -> None:
    with world.running(SimulatedRun(replay=clip("empty"), fast=True)) as app:
        assert world.factory is not None
        loop = world.factory.pin(PINS["fire_loop"])
        loop.drive_high()  # the normally-closed loop opens
        assert app.turnstile.free_egress_latched
        status = app.status()
        assert status["fire_alarm"] == {"active": True, "latched": True}
        from portique.runtime.daemon import ManualRefusedError

        with pytest.raises(ManualRefusedError, match="still open"):
            app.handle({"op": "ack_fire_alarm", "steward": "S-3"})
        loop.drive_low()
        assert app.turnstile.free_egress_latched  # restored, not yet acknowledged
        assert app.handle({"op": "ack_fire_alarm", "steward": "S-3"})["accepted"]
        assert not app.turnstile.free_egress_latched
    # the venue's record: the alarm, the loop closed again, and who ended free egress
    kinds = world.rows("SELECT kind, steward FROM gate_events ORDER BY rowid")
    assert kinds == [("fire_alarm_raised", None), ("fire_loop_closed", None),
                     ("free_egress_ended", "S-3")]


def test_many_control_connections_leak_nothing(world: World) -> None:
    """A steward screen asks for the status every two seconds all day long."""
    import os

    world.sections["feeds"] = feed_store(world.state, {"PAR24-000106": 1})
    with world.running(SimulatedRun(replay=clip("empty"), fast=True)) as app:
        app.run()
        client = ControlClient(Path(world.config().control.socket))
        client.request("status")
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(300):
            assert client.request("status")["status"]["feed"]["revocations"] == 1
            client.request("lookup", query="x")
        after = len(os.listdir("/proc/self/fd"))
    assert after - before < 10


def test_two_stewards_at_once_cannot_pass_the_limit_together(lane: Lane) -> None:
    import threading

    from portique.runtime.daemon import ManualRefusedError
    from portique.runtime.feedview import SharedFeedView

    lane.sections["steward"] = {"manual_admit_limit": 1}
    feeds = feed_store(lane.state, {}, [
        {"ticket_id": f"PAR24-00030{i}", "generation": "0", "order_ref": f"O{i}",
         "holder_name": f"Holder {i}", "category": "C", "entrances": "2", "flags": ""}
        for i in range(2)])
    lane.manifest = SharedFeedView(Path(feeds["store"]), event=EVENT)
    daemon = lane.start()
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def admit(i: int) -> None:
        start.wait()
        try:
            daemon.manual_admit(f"PAR24-00030{i}", steward=f"S{i}", reason="dead phone")
            outcomes.append("admitted")
        except ManualRefusedError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=admit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    lane.manifest.close()
    assert sorted(outcomes) == ["admitted", "limit"]
    assert len(World(lane.state).admissions()) == 1


def test_now_is_read_once_for_the_hold_check_and_the_decision(lane: Lane) -> None:
    """One code, one instant: the same-ticket hold and the decision see the same now."""
    daemon = lane.start()
    lane.clock.current = T_ALICE
    reads = lane.clock.reads
    assert daemon.handle_code("not a ticket")["reason"] == "NOT_A_TICKET"
    assert lane.clock.reads - reads == 1
    first = daemon.handle_code(_alice_code(T_ALICE))  # admitted; her walk-through ends it
    assert first["verdict"] == "admit"
    lane.clock.current = T_ALICE + 1
    reads = lane.clock.reads
    shown = daemon.handle_code(_alice_code(T_ALICE + 1))  # she shows it again at once
    assert shown["type"] == "displayed"
    assert lane.clock.reads - reads == 1


def test_free_egress_stays_latched_across_a_restart_until_acknowledged(world: World) -> None:
    with world.running(SimulatedRun(replay=clip("empty"), fast=True)) as app:
        assert world.factory is not None
        world.factory.pin(PINS["fire_loop"]).drive_high()  # the alarm
        assert app.turnstile.free_egress_latched
    # the gate restarts (an upgrade, a crash) with the alarm never acknowledged
    with world.running(SimulatedRun(replay=clip("empty"), fast=True)) as app:
        assert app.turnstile.free_egress_latched
        assert not app.turnstile.is_locked
        assert app.handle({"op": "ack_fire_alarm", "steward": "S-3"})["accepted"]
        assert app.turnstile.is_locked
    with world.running(SimulatedRun(replay=clip("empty"), fast=True)) as app:
        assert not app.turnstile.free_egress_latched and app.turnstile.is_locked


def test_fire_alarm_during_an_open_admission_frees_the_gate_at_once(world: World) -> None:
    import threading
    import time

    world.sections["hardware"] = {"open_timeout_s": 5.0}
    events: list[dict[str, object]] = []
    with world.running(SimulatedRun(replay=clip("no_passage"), fast=True,
                                  stays=frozenset({"PAR24-000109"}))) as app:
        with app.bus.subscription() as queue:
            runner = threading.Thread(target=app.run)
            runner.start()
            deadline = time.monotonic() + 30
            while not app.daemon.busy_until and time.monotonic() < deadline:
                time.sleep(0.01)  # wait for the lane to be inside the turnstile cycle
            assert app.daemon.busy_until, "the admission never opened the lock"
            assert world.factory is not None
            world.factory.pin(PINS["fire_loop"]).drive_high()
            runner.join(timeout=30)
            assert not runner.is_alive()
            while not queue.empty():
                events.append(queue.get_nowait().to_json())
        assert app.turnstile.free_egress_latched and not app.turnstile.is_locked
    passage = [e for e in events if e.get("type") == "passage"]
    assert [p["outcome"] for p in passage] == ["fire_alarm"]
    assert any(e.get("kind") == "fire_alarm_raised" for e in events)
    # the lock opened once for the admission and never closed again during the alarm
    assert world.lock_levels() == [True]


def test_a_damaged_feed_store_sends_every_ticket_to_the_steward(world: World) -> None:
    """Revocations that cannot be read must not be taken for "nothing revoked"."""
    world.sections["feeds"] = feed_store(world.state, {"PAR24-000106": 1})
    with world.running(SimulatedRun(replay=clip("valid_step_change"), fast=True,
                                  simulate_passage_s=0.05)) as app:
        store = Path(world.sections["feeds"]["store"])
        with store.open("r+b") as handle:  # the card's sectors go bad under the store
            handle.write(b"\0" * 16384)
        app.run()
        from portique.runtime.statusview import render_status

        assert "FEED         UNREADABLE" in render_status(app.status())
    assert world.decisions() == [("steward", "FEED_UNAVAILABLE", "PAR24-000101")]
    assert world.unlocks() == 0


T_ALICE = 1722879000.0  # inside alice's ticket's validity (tests/fixtures/tickets)


def _alice_code(at: float) -> str:
    from portique.commands.main import load_ticket

    level1 = load_ticket(FIXTURES / "tickets" / "alice.json")
    return credential.dynamic_code(level1, fixture_key("dev-alice"), credential.step_at(at))
