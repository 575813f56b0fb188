"""The turnstile's behaviour, read from the simulated pins' histories (states and times)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockConnectedPin, MockFactory

from portique.hardware.errors import (
    HardwareError,
    PinOpenError,
    TurnstileBusyError,
    TurnstileClosedError,
)
from portique.hardware.turnstile import EventKind, Fault, FaultKind, PassageOutcome, Turnstile
from tests.hardware.conftest import (
    BUZZER,
    FEEDBACK,
    FIRE,
    GREEN,
    LOCK,
    PASSAGE,
    RED,
    Recorder,
    assert_history,
    clear_all,
    hardware_config,
    open_turnstile,
)

# With the test config (fail_secure, active high) the lock pin is high while unlocked.
LOCKED, UNLOCKED = False, True


def in_thread(call: Callable[[], PassageOutcome]) -> tuple[threading.Thread, list[PassageOutcome]]:
    result: list[PassageOutcome] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    return thread, result


def person_passes(factory: MockFactory, in_beam_s: float = 0.1) -> None:
    """The passage sensor (pulled up, active low) sees one person."""
    pin = factory.pin(PASSAGE)
    pin.drive_low()
    time.sleep(in_beam_s)
    pin.drive_high()


def test_admit_with_passage_unlocks_until_the_person_is_through(
        mock_factory: MockFactory, recorder: Recorder) -> None:
    turnstile = open_turnstile(mock_factory, recorder)
    clear_all(mock_factory)
    thread, result = in_thread(lambda: turnstile.admit(timeout=2.0))
    time.sleep(0.3)
    person_passes(mock_factory)
    thread.join(3)
    assert result == [PassageOutcome.PASSED]
    # unlocked at once, locked again once the sensor held active for the 20 ms bounce time
    assert_history(mock_factory.pin(LOCK), [(0, LOCKED), (0, UNLOCKED), (0.32, LOCKED)])
    assert_history(mock_factory.pin(GREEN), [(0, False), (0, True), (0.32, False)])
    assert_history(mock_factory.pin(RED), [(0, False)])
    assert turnstile.passages == 1
    assert recorder.kinds() == ["passage"]
    assert recorder.events[0].detail == "admitted"
    assert turnstile.is_locked
    turnstile.close()


def test_admit_with_timeout_locks_again_and_says_so(
        mock_factory: MockFactory, recorder: Recorder) -> None:
    turnstile = open_turnstile(mock_factory, recorder)
    clear_all(mock_factory)
    assert turnstile.admit(timeout=0.4) is PassageOutcome.TIMED_OUT
    assert_history(mock_factory.pin(LOCK), [(0, LOCKED), (0, UNLOCKED), (0.4, LOCKED)])
    assert_history(mock_factory.pin(GREEN), [(0, False), (0, True), (0.4, False)])
    assert turnstile.passages == 0
    # someone pushing through after the timeout is not an admitted passage
    person_passes(mock_factory, 0.05)
    time.sleep(0.05)
    assert recorder.kinds() == ["passage_without_admit"]
    turnstile.close()


def test_admit_timeout_defaults_to_the_config(mock_factory: MockFactory) -> None:
    turnstile = open_turnstile(mock_factory, open_timeout_s=1)
    clear_all(mock_factory)
    assert turnstile.admit() is PassageOutcome.TIMED_OUT
    assert_history(mock_factory.pin(LOCK), [(0, LOCKED), (0, UNLOCKED), (1.0, LOCKED)])
    turnstile.close()


def test_refuse_shows_red_and_beeps_with_the_lock_closed(mock_factory: MockFactory) -> None:
    turnstile = open_turnstile(mock_factory)
    clear_all(mock_factory)
    assert turnstile.refuse() == pytest.approx(0.4)
    time.sleep(0.5)
    assert_history(mock_factory.pin(RED), [(0, False), (0, True), (0.4, False)])
    assert_history(mock_factory.pin(BUZZER),
                   [(0, False), (0, True), (0.1, False), (0.1, True), (0.1, False)])
    assert_history(mock_factory.pin(LOCK), [(0, LOCKED)])
    assert_history(mock_factory.pin(GREEN), [(0, False)])
    turnstile.close()


def test_steward_call_has_its_own_pattern(mock_factory: MockFactory) -> None:
    turnstile = open_turnstile(mock_factory)
    clear_all(mock_factory)
    assert turnstile.call_steward() == pytest.approx(0.36)
    time.sleep(0.45)
    blink = [(0, False)] + [(0.06 if i else 0, i % 2 == 0) for i in range(6)]
    assert_history(mock_factory.pin(RED), blink)
    assert_history(mock_factory.pin(BUZZER), blink)
    assert_history(mock_factory.pin(LOCK), [(0, LOCKED)])
    turnstile.close()


@pytest.mark.parametrize(("on_stop", "locked_level"), [("fail_secure", False),
                                                       ("fail_safe", True)])
def test_fire_alarm_unlocks_within_100_ms_and_latches(
        mock_factory: MockFactory, recorder: Recorder, on_stop: str,
        locked_level: bool) -> None:
    turnstile = open_turnstile(mock_factory, recorder, on_stop=on_stop)
    assert mock_factory.pin(LOCK).state == locked_level
    clear_all(mock_factory)
    time.sleep(0.2)
    mock_factory.pin(FIRE).drive_high()  # the loop opens
    time.sleep(0.1)
    # the lock pin changed at 0.2 s, within gpiozero's 50 ms tolerance of the loop opening
    assert_history(mock_factory.pin(LOCK), [(0, locked_level), (0.2, not locked_level)])
    assert_history(mock_factory.pin(GREEN), [(0, False), (0.2, True)])
    assert turnstile.fire_alarm_active
    assert turnstile.free_egress_latched
    assert not turnstile.is_locked
    assert recorder.kinds() == ["fire_alarm_raised"]
    turnstile.close()


def test_fire_alarm_during_a_refuse_pattern_stops_it_and_frees_the_lock(
        mock_factory: MockFactory) -> None:
    turnstile = open_turnstile(mock_factory)
    clear_all(mock_factory)
    turnstile.refuse()
    time.sleep(0.15)  # red on, second beep not yet begun
    mock_factory.pin(FIRE).drive_high()
    time.sleep(0.4)
    assert_history(mock_factory.pin(LOCK), [(0, LOCKED), (0.15, UNLOCKED)])
    assert_history(mock_factory.pin(RED), [(0, False), (0, True), (0.15, False)])
    assert_history(mock_factory.pin(BUZZER), [(0, False), (0, True), (0.1, False)])
    assert_history(mock_factory.pin(GREEN), [(0, False), (0.15, True)])
    turnstile.close()


def test_fire_alarm_during_an_open_cycle_keeps_the_lock_free(
        mock_factory: MockFactory, recorder: Recorder) -> None:
    turnstile = open_turnstile(mock_factory, recorder)
    clear_all(mock_factory)
    thread, result = in_thread(lambda: turnstile.admit(timeout=0.5))
    time.sleep(0.2)
    mock_factory.pin(FIRE).drive_high()
    thread.join(2)
    assert result == [PassageOutcome.FIRE_ALARM]
    time.sleep(0.4)  # past the admission's timeout
    person_passes(mock_factory, 0.05)  # people leave through the free turnstile
    time.sleep(0.05)
    # opened by the admission, never locked again: not at the timeout, not at the passage
    assert_history(mock_factory.pin(LOCK), [(0, LOCKED), (0, UNLOCKED)])
    assert_history(mock_factory.pin(GREEN), [(0, False), (0, True)])
    assert recorder.kinds() == ["fire_alarm_raised", "passage"]
    assert recorder.events[1].detail == "free egress"
    turnstile.close()


def test_fire_loop_restored_without_acknowledge_stays_free(
        mock_factory: MockFactory, recorder: Recorder) -> None:
    turnstile = open_turnstile(mock_factory, recorder)
    clear_all(mock_factory)
    loop = mock_factory.pin(FIRE)
    loop.drive_high()
    time.sleep(0.2)
    loop.drive_low()  # the panel is reset: the loop is closed again
    time.sleep(0.3)
    assert not turnstile.fire_alarm_active
    assert turnstile.free_egress_latched
    assert turnstile.admit(timeout=0.2) is PassageOutcome.FIRE_ALARM
    assert turnstile.refuse() == 0.0
    assert_history(mock_factory.pin(LOCK), [(0, LOCKED), (0, UNLOCKED)])
    assert_history(mock_factory.pin(RED), [(0, False)])
    assert recorder.kinds() == ["fire_alarm_raised", "fire_loop_closed"]

    clear_all(mock_factory)
    assert turnstile.acknowledge_fire_alarm("steward-7")
    assert (turnstile.free_egress_latched, turnstile.is_locked) == (False, True)
    assert_history(mock_factory.pin(LOCK), [(0, UNLOCKED), (0, LOCKED)])
    assert_history(mock_factory.pin(GREEN), [(0, True), (0, False)])
    assert recorder.events[-1].kind is EventKind.FREE_EGRESS_ENDED
    assert recorder.events[-1].steward_id == "steward-7"
    turnstile.close()


def test_acknowledge_is_refused_while_the_loop_is_open(mock_factory: MockFactory) -> None:
    turnstile = open_turnstile(mock_factory)
    mock_factory.pin(FIRE).drive_high()
    clear_all(mock_factory)
    assert not turnstile.acknowledge_fire_alarm("steward-7")
    assert turnstile.free_egress_latched
    assert_history(mock_factory.pin(LOCK), [(0, UNLOCKED)])
    with pytest.raises(ValueError, match="steward_id"):
        turnstile.acknowledge_fire_alarm("")
    turnstile.close()


def test_a_loop_open_at_start_latches_free_egress(mock_factory: MockFactory) -> None:
    # the simulated loop input rests at its pull-up: open, as a missing or cut loop reads
    turnstile = Turnstile(hardware_config(), pin_factory=mock_factory)
    assert turnstile.free_egress_latched
    assert not turnstile.is_locked
    assert mock_factory.pin(LOCK).state == UNLOCKED
    assert mock_factory.pin(LOCK).states[-1].state == UNLOCKED
    assert all(s.state == UNLOCKED for s in mock_factory.pin(LOCK).states[1:])
    turnstile.close()


def chatter(factory: MockFactory, levels: list[bool]) -> None:
    pin = factory.pin(PASSAGE)
    for high in levels:
        (pin.drive_high if high else pin.drive_low)()
        time.sleep(0.002)


def test_a_bouncing_passage_sensor_counts_one_person(
        mock_factory: MockFactory, recorder: Recorder) -> None:
    turnstile = open_turnstile(mock_factory, recorder)
    clear_all(mock_factory)
    thread, result = in_thread(lambda: turnstile.admit(timeout=2.0))
    time.sleep(0.2)
    chatter(mock_factory, [False, True, False, True, False])  # contact bounces, ends active
    time.sleep(0.2)
    chatter(mock_factory, [True, False, True, False, True])  # bounces again on release
    time.sleep(0.1)
    thread.join(3)
    assert result == [PassageOutcome.PASSED]
    assert turnstile.passages == 1
    assert recorder.kinds() == ["passage"]
    # locked again 20 ms after the contact settled (0.2 s + 8 ms of chatter)
    assert_history(mock_factory.pin(LOCK), [(0, LOCKED), (0, UNLOCKED), (0.23, LOCKED)])
    turnstile.close()


def test_without_a_bounce_time_the_same_chatter_counts_several(
        mock_factory: MockFactory, recorder: Recorder) -> None:
    turnstile = open_turnstile(mock_factory, recorder, passage_bounce_ms=0)
    chatter(mock_factory, [False, True, False, True, False])
    time.sleep(0.05)
    assert turnstile.passages == 3
    assert recorder.kinds() == ["passage_without_admit"] * 3
    turnstile.close()


def test_relay_feedback_disagreeing_with_the_command_is_a_fault(
        mock_factory: MockFactory, recorder: Recorder) -> None:
    # the feedback contact is wired (pull-down, high while energised) but never moves
    pins = {"lock": LOCK, "green": GREEN, "red": RED, "buzzer": BUZZER, "passage": PASSAGE,
            "fire_loop": FIRE, "relay_feedback": FEEDBACK}
    turnstile = open_turnstile(mock_factory, recorder, pins=pins,
                               relay_feedback_pull_up=False)
    time.sleep(0.1)
    assert len(turnstile.faults) == 0  # at rest both say de-energised
    assert turnstile.admit(timeout=0.3) is PassageOutcome.TIMED_OUT
    time.sleep(0.1)
    faults: tuple[Fault, ...] = turnstile.faults
    (fault,) = faults
    assert fault.kind is FaultKind.RELAY_FEEDBACK_MISMATCH
    assert "commanded energised (unlocked)" in fault.message
    assert "reports de-energised" in fault.message
    assert recorder.kinds() == ["fault"]
    assert recorder.events[0].fault == fault
    turnstile.close()


def test_relay_feedback_that_follows_the_relay_is_no_fault(
        mock_factory: MockFactory, recorder: Recorder) -> None:
    # the feedback input is wired to the relay output: it follows every command
    feedback = mock_factory.pin(FEEDBACK)
    mock_factory.pin(LOCK, pin_class=MockConnectedPin, input_pin=feedback)
    pins = {"lock": LOCK, "green": GREEN, "red": RED, "buzzer": BUZZER, "passage": PASSAGE,
            "fire_loop": FIRE, "relay_feedback": FEEDBACK}
    turnstile = open_turnstile(mock_factory, recorder, pins=pins,
                               relay_feedback_pull_up=False)
    assert turnstile.admit(timeout=0.3) is PassageOutcome.TIMED_OUT
    time.sleep(0.1)
    assert feedback.states[-1].state == LOCKED
    assert len(feedback.states) >= 3  # it did follow the relay open and shut
    assert turnstile.faults == ()
    assert recorder.kinds() == []
    turnstile.close()


@pytest.mark.parametrize(("on_stop", "lock_active_high", "level_after_close"), [
    ("fail_safe", True, False),     # de-energised: free
    ("fail_secure", True, False),   # de-energised: locked
    ("fail_safe", False, True),     # active-low board: de-energised is a high pin
])
def test_close_de_energises_the_relay_into_the_on_stop_state(
        mock_factory: MockFactory, on_stop: str, lock_active_high: bool,
        level_after_close: bool) -> None:
    turnstile = open_turnstile(mock_factory, on_stop=on_stop,
                               lock_active_high=lock_active_high)
    energised_level = lock_active_high
    if on_stop == "fail_safe":  # energised while locked: at rest it is energised
        assert mock_factory.pin(LOCK).state == energised_level
    turnstile.close()
    assert mock_factory.pin(LOCK).state == level_after_close
    turnstile.close()  # a second close is harmless
    with pytest.raises(TurnstileClosedError, match="admit: the turnstile is closed"):
        turnstile.admit()


def test_close_during_an_admission_ends_it(mock_factory: MockFactory) -> None:
    turnstile = open_turnstile(mock_factory)
    errors: list[BaseException] = []

    def admit() -> None:
        try:
            turnstile.admit(timeout=2.0)
        except HardwareError as exc:
            errors.append(exc)

    thread = threading.Thread(target=admit)
    thread.start()
    time.sleep(0.1)
    turnstile.close()
    thread.join(2)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], TurnstileClosedError)
    assert mock_factory.pin(LOCK).state == LOCKED  # fail_secure, de-energised


def test_one_admission_at_a_time(mock_factory: MockFactory) -> None:
    turnstile = open_turnstile(mock_factory)
    thread, result = in_thread(lambda: turnstile.admit(timeout=0.3))
    time.sleep(0.05)
    with pytest.raises(TurnstileBusyError, match="already open"):
        turnstile.admit()
    with pytest.raises(TurnstileBusyError, match="refuse"):
        turnstile.refuse()
    thread.join(2)
    assert result == [PassageOutcome.TIMED_OUT]
    turnstile.close()


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_a_bad_timeout_is_named(mock_factory: MockFactory, timeout: float) -> None:
    turnstile = open_turnstile(mock_factory)
    clear_all(mock_factory)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        turnstile.admit(timeout=timeout)
    assert_history(mock_factory.pin(LOCK), [(0, LOCKED)])
    turnstile.close()


def test_a_pin_in_use_is_named_and_nothing_stays_open(mock_factory: MockFactory) -> None:
    close_loop_user = DigitalOutputDevice(LOCK, pin_factory=mock_factory)
    with pytest.raises(PinOpenError, match=r"hardware\.pins\.lock \(GPIO17\): cannot open"):
        open_turnstile(mock_factory)
    close_loop_user.close()
    # the inputs opened before the failure were closed again: the pins can be reused
    open_turnstile(mock_factory).close()


def test_a_failing_listener_does_not_stop_the_fire_release(
        mock_factory: MockFactory, recorder: Recorder) -> None:
    turnstile = open_turnstile(mock_factory)

    def broken(_event: object) -> None:
        raise RuntimeError("listener bug")

    turnstile.subscribe(broken)
    unsubscribe = turnstile.subscribe(recorder)
    mock_factory.pin(FIRE).drive_high()
    assert not turnstile.is_locked
    assert recorder.kinds() == ["fire_alarm_raised"]
    unsubscribe()
    mock_factory.pin(FIRE).drive_low()
    assert recorder.kinds() == ["fire_alarm_raised"]
    turnstile.close()
