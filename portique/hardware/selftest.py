"""The technician's walk through a turnstile's wiring: each output in turn, each input live.

Outputs are switched and the technician says whether the relay clicked, the light lit, the
buzzer sounded; inputs are read as they are, then watched while the technician works the
passage sensor and opens the fire loop. The relay feedback, when wired, is checked by the
walk itself. With ``assume_yes`` every question is answered yes and no pause waits for
Enter, but every step still runs: outputs are driven and inputs watched for ``watch_s``.
The lock is left in its rest (locked) state at the end, whatever happened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from portique.hardware.config import HardwareConfig
from portique.hardware.devices import TurnstileDevices, open_devices

_YES = {"y", "yes", "o", "oui"}
_NO = {"n", "no", "non"}


@dataclass(frozen=True, slots=True)
class StepResult:
    step: str
    ok: bool
    detail: str


class Console:
    """Prompts on `stdout`, answers read line by line from `stdin`."""

    def __init__(self, *, stdin: TextIO, stdout: TextIO, assume_yes: bool) -> None:
        self._stdin, self._stdout, self._assume_yes = stdin, stdout, assume_yes

    def say(self, text: str) -> None:
        self._stdout.write(text + "\n")
        self._stdout.flush()

    def pause(self, text: str) -> None:
        """Say `text` and wait for Enter (not with assume_yes, nor at the end of input)."""
        if self._assume_yes:
            self.say(text)
            return
        self._stdout.write(f"{text} Press Enter to go on. ")
        self._stdout.flush()
        self._stdin.readline()

    def confirm(self, question: str) -> bool:
        """Ask a yes/no question; no answer at all (end of input) counts as no."""
        if self._assume_yes:
            self.say(f"{question} [y/n] y (--yes)")
            return True
        for _ in range(3):
            self._stdout.write(f"{question} [y/n] ")
            self._stdout.flush()
            line = self._stdin.readline()
            if not line:
                self.say("(no answer: counted as no)")
                return False
            answer = line.strip().lower()
            if answer in _YES:
                return True
            if answer in _NO:
                return False
            self.say("Please answer y or n.")
        return False


class Technician(Protocol):
    """Whoever works the inputs when the walk asks; None in `run_walk` is a person at the
    turnstile, reading the prompts (portique.devtools.simulation has simulated pins')."""

    def pins_opened(self) -> None: ...
    def walk_through(self) -> None: ...
    def open_fire_loop(self) -> None: ...


def run_walk(config: HardwareConfig, pin_factory: Any, console: Console, *,
             hold_s: float = 1.0, watch_s: float = 15.0,
             technician: Technician | None = None) -> list[StepResult]:
    """Walk every device of `config`; one StepResult per device, in wiring order."""
    locked = config.relay_energised_when_locked
    devices = open_devices(config, pin_factory, lock_energised=lambda _loop_closed: locked)
    pins = config.pins
    if technician is not None:
        technician.pins_opened()
    try:
        console.say(f"Turnstile hardware test: pin factory {config.pin_factory.value}, "
                    f"on_stop {config.on_stop.value}; the lock rests "
                    f"{'energised' if locked else 'de-energised'} (locked).")
        results = [_relay_step(config, devices, console, hold_s)]
        for step, device, number, question in (
            ("green light", devices.green, pins.green, "Did the green light come on?"),
            ("red light", devices.red, pins.red, "Did the red light come on?"),
            ("buzzer", devices.buzzer, pins.buzzer, "Did the buzzer sound?"),
        ):
            console.pause(f"{step} (GPIO{number}): on for {hold_s:g} s.")
            device.on()
            time.sleep(hold_s)
            device.off()
            seen = console.confirm(question)
            results.append(StepResult(step, seen, "seen" if seen else
                                      f"not seen: check GPIO{number}, the wiring and "
                                      "signals_active_high"))
        results.append(_passage_step(devices, pins.passage, console, watch_s, technician))
        results.append(_fire_loop_step(devices, pins.fire_loop, console, watch_s,
                                       technician))
    finally:
        devices.lock.value = locked
        for output in (devices.green, devices.red, devices.buzzer):
            output.off()
        devices.close()
    for result in results:
        console.say(f"{'ok  ' if result.ok else 'FAIL'} {result.step}: {result.detail}")
    return results


def _energised(value: bool) -> str:
    return "energised" if value else "de-energised"


def _relay_step(config: HardwareConfig, devices: TurnstileDevices, console: Console,
                hold_s: float) -> StepResult:
    locked = config.relay_energised_when_locked
    settle = config.relay_settle_ms / 1000
    feedback = devices.relay_feedback
    console.pause(f"lock relay (GPIO{config.pins.lock}): the lock is released for {hold_s:g} s, "
                  "then held again.")
    problems: list[str] = []

    def read_feedback(commanded: bool) -> None:
        if feedback is None:
            return
        reported = bool(feedback.is_active)
        console.say(f"  relay feedback (GPIO{config.pins.relay_feedback}) reads "
                    f"{_energised(reported)}")
        if reported != commanded:
            problems.append(f"relay commanded {_energised(commanded)} but its feedback "
                            f"reports {_energised(reported)}")

    devices.lock.value = not locked
    time.sleep(settle)
    read_feedback(not locked)
    time.sleep(max(0.0, hold_s - settle))
    devices.lock.value = locked
    time.sleep(settle)
    read_feedback(locked)
    clicked = console.confirm("Did the relay click twice, and the lock release for a moment?")
    if not clicked:
        problems.append(f"not heard: check GPIO{config.pins.lock}, the relay board's supply "
                        "and lock_active_high")
    detail = "; ".join(problems) or ("clicked, feedback agreed" if feedback is not None
                                     else "clicked (no feedback contact configured)")
    return StepResult("lock relay", not problems, detail)


def _passage_step(devices: TurnstileDevices, number: int, console: Console,
                  watch_s: float, technician: Technician | None) -> StepResult:
    sensor = devices.passage
    console.say(f"passage sensor (GPIO{number}) reads {_passage_state(sensor.is_active)} now.")
    if sensor.is_active:
        return StepResult("passage sensor", False, "reads ACTIVE with the lane empty: check "
                          "the sensor, its wiring and passage_pull_up")
    console.pause(f"Walk through the lane or turn the arm once within {watch_s:g} s.")
    if technician is not None:
        technician.walk_through()
    if not sensor.wait_for_active(timeout=watch_s):
        return StepResult("passage sensor", False, f"no activation seen in {watch_s:g} s")
    console.say("  passage sensor: ACTIVE")
    if not sensor.wait_for_inactive(timeout=watch_s):
        return StepResult("passage sensor", False, f"stayed ACTIVE for {watch_s:g} s")
    console.say("  passage sensor: clear")
    return StepResult("passage sensor", True, "went active, then clear")


def _passage_state(active: bool) -> str:
    return "ACTIVE" if active else "clear"


def _fire_loop_step(devices: TurnstileDevices, number: int, console: Console,
                    watch_s: float, technician: Technician | None) -> StepResult:
    loop = devices.fire_loop  # active = closed
    console.say(f"fire-alarm loop (GPIO{number}) reads {_loop_state(loop.is_active)} now.")
    if not loop.is_active:
        return StepResult("fire-alarm loop", False, "reads OPEN at rest: an alarm, a missing "
                          "loop or a cut wire; check the loop and its contact to ground")
    console.pause(f"Open the fire-alarm loop (panel test, or unplug it), then close it again, "
                  f"within {watch_s:g} s.")
    if technician is not None:
        technician.open_fire_loop()
    if not loop.wait_for_inactive(timeout=watch_s):
        return StepResult("fire-alarm loop", False, f"not seen open in {watch_s:g} s")
    console.say("  fire-alarm loop: OPEN")
    if not loop.wait_for_active(timeout=watch_s):
        return StepResult("fire-alarm loop", False, f"stayed OPEN for {watch_s:g} s")
    console.say("  fire-alarm loop: closed")
    return StepResult("fire-alarm loop", True, "opened, then closed")


def _loop_state(closed: bool) -> str:
    return "closed (normal)" if closed else "OPEN (alarm)"
