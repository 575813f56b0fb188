"""Accessible and standard lanes on gpiozero's mock pins: an ACCESSIBLE ticket opens an
accessible lane longer and with its own buzzer pattern; a standard lane opens normally
or calls the steward with a sentence that points to the accessible lane. Asserted on
the pins' recorded histories (the lock, the buzzer, the red light)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from portique.ticket import credential
from portique.ticket.credential import Flag, TicketFields

from .conftest import PINS, UNLOCKED_LEVEL, fixture_key
from .lane import Lane

T = 1722877200.0  # 19:00 Paris, the fixture tickets' evening
OPEN_S, ACCESSIBLE_OPEN_S = 1.0, 3.0  # hardware.open_timeout_s in gate_table; the lane's


def code(ticket_id: str, flags: Flag) -> str:
    device = fixture_key("dev-alice")
    fields = TicketFields(kid="fixture-issuer", event="PAR24-ATH05", ticket_id=ticket_id,
                          generation=0, valid_from=int(T) - 3600, valid_until=int(T) + 3600,
                          entrances=frozenset({2}), category="CAT-B", flags=flags,
                          device_key=device.public_key().public_bytes_raw())
    level1 = credential.issue(fields, fixture_key("fixture-issuer"))
    return credential.dynamic_code(level1, device, credential.step_at(T))


def openings(lane: Lane, start: int) -> list[float]:
    """How long the lock stayed unlocked, each time, after the first `start` states (a mock
    pin's state records the time since the previous change: the state that locks again
    carries how long the lock was open)."""
    states = lane.factory.pin(PINS["lock"]).states[start:]
    return [after.timestamp for before, after in itertools.pairwise(states)
            if before.state == UNLOCKED_LEVEL and after.state != UNLOCKED_LEVEL]


def beeps(lane: Lane, pin: str, start: int) -> int:
    return sum(1 for s in lane.factory.pin(PINS[pin]).states[start:] if s.state)


def wait_for(predicate: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def start(lane: Lane, **lane_keys: Any) -> tuple[Any, dict[str, int]]:
    lane.sections["lane"] = {"same_ticket_hold_s": 0.0, "accessible_open_s": ACCESSIBLE_OPEN_S,
                             "accessible_lane": "lane 1, on the left", **lane_keys}
    lane.clock.current = T
    daemon = lane.start()
    marks = {name: len(lane.factory.pin(PINS[name]).states) for name in ("lock", "buzzer", "red")}
    return daemon, marks


def test_an_accessible_ticket_opens_the_accessible_lane_longer_with_its_pattern(
        lane: Lane) -> None:
    lane.stay = frozenset({"ACC-1", "STD-1"})  # nobody walks: the lock stays open its time
    daemon, marks = start(lane, kind="accessible")
    shown = daemon.handle_code(code("ACC-1", Flag.ACCESSIBLE))
    assert (shown["verdict"], shown["reason"], shown["accessible"]) == ("admit", "VALID", True)
    accessible = openings(lane, marks["lock"])
    assert len(accessible) == 1 and accessible[0] >= ACCESSIBLE_OPEN_S
    assert beeps(lane, "buzzer", marks["buzzer"]) == 2  # hardware.accessible: two beeps
    assert beeps(lane, "red", marks["red"]) == 0

    marks = {name: len(lane.factory.pin(PINS[name]).states) for name in marks}
    plain = daemon.handle_code(code("STD-1", Flag(0)))  # the same lane, another ticket
    assert (plain["verdict"], plain["accessible"]) == ("admit", False)
    standard = openings(lane, marks["lock"])
    assert len(standard) == 1 and OPEN_S <= standard[0] < ACCESSIBLE_OPEN_S
    assert beeps(lane, "buzzer", marks["buzzer"]) == 0


def test_a_standard_lane_opens_normally_for_an_accessible_ticket(lane: Lane) -> None:
    lane.stay = frozenset({"ACC-2"})
    daemon, marks = start(lane, kind="standard", accessible_at_standard="admit")
    shown = daemon.handle_code(code("ACC-2", Flag.ACCESSIBLE))
    assert (shown["verdict"], shown["reason"], shown["accessible"]) == ("admit", "VALID", True)
    opened = openings(lane, marks["lock"])
    assert len(opened) == 1 and OPEN_S <= opened[0] < ACCESSIBLE_OPEN_S
    assert beeps(lane, "buzzer", marks["buzzer"]) == 0


def test_a_standard_lane_calls_the_steward_and_points_to_the_accessible_lane(
        lane: Lane) -> None:
    daemon, marks = start(lane, kind="standard", accessible_at_standard="steward")
    shown = daemon.handle_code(code("ACC-3", Flag.ACCESSIBLE))
    assert (shown["verdict"], shown["reason"], shown["turnstile"]) == \
        ("steward", "ACCESSIBLE_LANE", "call_steward")
    assert shown["sentence"]["en"] == ("Your ticket is for the accessible lane (lane 1, on "
                                       "the left): a steward will help you.")
    assert "file accessible (lane 1, on the left)" in shown["sentence"]["fr"]
    wait_for(lambda: beeps(lane, "buzzer", marks["buzzer"]) == 3)  # the steward pattern
    assert openings(lane, marks["lock"]) == []
    assert lane.factory.pin(PINS["lock"]).states[marks["lock"]:] == []


def test_the_steward_ui_shows_the_flag_on_every_decision(lane: Lane) -> None:
    from portique.runtime.events import from_json
    from portique.runtime.steward.model import FeedRow

    lane.stay = frozenset({"ACC-4"})
    daemon, _ = start(lane, kind="accessible")
    rows = [FeedRow.from_event(from_json(daemon.handle_code(code(t, flags))))
            for t, flags in (("ACC-4", Flag.ACCESSIBLE), ("STD-4", Flag(0)))]
    assert [(r.ticket_id, r.accessible) for r in rows if r is not None] == \
        [("ACC-4", True), ("STD-4", False)]


def test_a_manual_admit_is_for_the_session_whose_gates_are_open(lane: Lane) -> None:
    from portique.runtime.steward.model import GateStatus
    from portique.ticket.decision import Decision, ManualRequest, Now, decide_manual
    from portique.ticket.views import Admission, MemoryAdmissions, NoRevocations

    lane.sections["gate"] = {"event": ""}  # the sessions list replaces the one-event form
    lane.sections["sessions"] = [  # type: ignore[assignment]
        {"event": "PAR24-DAY-AM", "opens": "2024-08-05T08:00:00+02:00",
         "closes": "2024-08-05T13:30:00+02:00"},
        {"event": "PAR24-DAY-PM", "opens": "2024-08-05T15:00:00+02:00",
         "closes": "2024-08-05T23:30:00+02:00"}]
    profile = lane.config().profile()
    evening, before, morning = 1722862800.0 + 600, 1722862800.0 - 3600, 1722834000.0 + 3600
    assert profile.current_event(evening) == "PAR24-DAY-PM"  # 15:10: its gates are open
    assert profile.current_event(before) == "PAR24-DAY-PM"  # 14:00: none open, it is next
    assert profile.current_event(morning) == "PAR24-DAY-AM"  # 08:00
    inside_am = MemoryAdmissions.of([Admission("PAR24-DAY-AM", "T-PAPER-1", 0, "1", morning)])
    for at, expected in ((evening, "PAR24-DAY-PM"), (morning, None)):
        request = ManualRequest("T-PAPER-1", "printed", in_manifest=True,
                                entrances=frozenset({2}), event=profile.current_event(at))
        decided = decide_manual(request, Now(at), revocations=NoRevocations(),
                                admissions=inside_am, profile=profile)
        if expected is None:  # inside the morning session already: anti-passback holds
            assert not isinstance(decided, Decision) and decided.check.value == "already_inside"
        else:  # the same ticket id is not inside the evening session
            assert isinstance(decided, Decision) and decided.ticket is not None
            assert decided.ticket.event == expected
    # the steward's status bar takes the counts of the session in force
    status = GateStatus.from_json({"event": "PAR24-DAY-AM", "zones": [
        {"zone": "north stand", "session": "PAR24-DAY-AM", "inside": 1},
        {"zone": "north stand", "session": "PAR24-DAY-PM", "inside": 7}]})
    assert status.zones == (("north stand", "PAR24-DAY-AM", 1),)
