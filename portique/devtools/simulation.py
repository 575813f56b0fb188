"""Simulated pins and visitors: a gate on gpiozero's mock pins, as tests and the demo run it.

`SimulatedRun` is the production build's options with its hook points filled in: it
closes the simulated fire-alarm loop, makes the relay's feedback contact follow the
relay, records the pins in a log file if asked, and lets simulated visitors walk
through. Only for the mock pin factory: after each admission the visitor
walks through the passage sensor `walk_s` later, by driving gpiozero's mock pin the way
a real sensor would, unless their ticket is one of those told to stay (a person who turns
back: the gate must void the admission at the timeout).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockConnectedPin, MockPin

from portique.base.errors import ConfigError
from portique.hardware.config import HardwareConfig
from portique.hardware.turnstile import Turnstile
from portique.runtime.config import Config
from portique.runtime.control import EventBus
from portique.runtime.events import DecisionMade
from portique.runtime.wiring import GateApp, RunOptions

log = logging.getLogger(__name__)


class SimulatedVisitors:
    """Drives the passage sensor's mock pin after each unlock announced on the bus."""

    def __init__(self, bus: EventBus, *, pin_factory: Any, passage_pin: int,
                 active_low: bool, walk_s: float = 0.3, stay: Collection[str] = ()) -> None:
        if type(pin_factory).__name__ != "MockFactory":
            raise ConfigError("simulated visitors need the mock pin factory: they never "
                              "drive real pins")
        self._bus, self._pin = bus, pin_factory.pin(passage_pin)
        self._active_low, self._walk_s = active_low, walk_s
        self._stay = frozenset(stay)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.walked = 0
        self._thread = threading.Thread(target=self._run, name="simulated-visitors",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        with self._bus.subscription() as events:
            self._ready.set()
            while not self._stop.is_set():
                try:
                    event = events.get(timeout=0.2)
                except queue.Empty:
                    continue
                if not isinstance(event, DecisionMade) or event.turnstile != "unlock":
                    continue
                ticket = None if event.ticket is None else event.ticket.ticket_id
                if ticket in self._stay:
                    log.info("simulated visitor stays back ticket=%s", ticket)
                    continue
                time.sleep(self._walk_s)
                self._walk_through()

    def _walk_through(self) -> None:
        present, clear = (self._pin.drive_low, self._pin.drive_high) if self._active_low \
            else (self._pin.drive_high, self._pin.drive_low)
        with contextlib.suppress(Exception):
            present()
            time.sleep(0.15)
            clear()
            self.walked += 1


def _record(pin: Any, value: bool, log_path: Path | None) -> None:
    if pin._function == "output" and log_path is not None:
        with log_path.open("a", encoding="ascii") as handle:
            handle.write(f"{pin.info.name} {int(value)} {time.time():.6f}\n")
            handle.flush()
            os.fsync(handle.fileno())


class RecordingMockPin(MockPin):  # type: ignore[misc]
    """gpiozero's mock pin, appending every output change to a log file (fsynced).

    Crash tests kill the gate with SIGKILL; the pins' own history dies with it, so the
    pins write it down as it happens: ``<pin> <state 0|1> <unix time>`` per line.
    """

    log_path: Path | None = None

    def _change_state(self, value: bool) -> bool:
        changed = bool(super()._change_state(value))
        if changed:
            _record(self, value, RecordingMockPin.log_path)
        return changed


class RecordingConnectedPin(MockConnectedPin):  # type: ignore[misc]
    """The lock pin when the relay's feedback contact is simulated (it drives the contact's
    input pin): recorded like every other output pin."""

    def _change_state(self, value: bool) -> bool:
        changed = bool(super()._change_state(value))
        if changed:
            _record(self, value, RecordingMockPin.log_path)
        return changed


def record_pins(pin_factory: Any, log_path: Path) -> None:
    """Make a fresh mock factory's pins record their output changes in `log_path`."""
    if type(pin_factory).__name__ != "MockFactory":
        raise ConfigError("only simulated pins can be recorded")
    RecordingMockPin.log_path = log_path
    pin_factory.pin_class = RecordingMockPin
    pin_log_mark(log_path, "start")


def pin_log_mark(log_path: Path, what: str) -> None:
    """A line in the pin log between pin changes: start, ready, stop."""
    with log_path.open("a", encoding="ascii") as handle:
        handle.write(f"# {what} {os.getpid()} {time.time():.6f}\n")
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class SimulatedRun(RunOptions):
    """`RunOptions` for a gate on simulated pins (``hardware.pin_factory = "mock"``)."""

    simulate_passage_s: float | None = None
    """A simulated visitor walks through this long after unlock."""
    stays: frozenset[str] = frozenset()
    """Tickets whose simulated holder does not walk through (their admission is voided)."""
    pin_log: Path | None = None
    """Append every output pin change to this file (fsynced: it survives SIGKILL)."""

    def prepare_pins(self, config: Config, pin_factory: Any) -> None:
        if type(pin_factory).__name__ != "MockFactory":
            raise ConfigError("a simulated run needs hardware.pin_factory = \"mock\": it "
                              "never drives real pins")
        if self.pin_log is not None:
            record_pins(pin_factory, self.pin_log)
        _wire_simulated_feedback(config, pin_factory)

    def make_turnstile(self, config: Config, pin_factory: Any) -> Turnstile:
        # Simulated pins rest at their pull, which reads as an open fire loop: close the
        # simulated loop and end the start-up latch, as an installer does once. The
        # turnstile's alarm about it is about simulated pins only, so it is not logged.
        assert config.hardware is not None
        quiet = logging.getLogger("portique.hardware.turnstile")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL + 1)
        try:
            turnstile = Turnstile(config.hardware, pin_factory=pin_factory)
            pin_factory.pin(config.hardware.pins.fire_loop).drive_low()
            turnstile.acknowledge_fire_alarm("simulation")
        finally:
            quiet.setLevel(level)
        return turnstile

    def built(self, app: GateApp, pin_factory: Any) -> list[Callable[[], None]]:
        if self.pin_log is not None:
            log_path = self.pin_log
            app.daemon.before_unlock = lambda scan_id: pin_log_mark(log_path,
                                                                    f"unlock {scan_id}")
        if self.simulate_passage_s is None and not self.stays:
            return []
        hw = app.config.hardware
        assert hw is not None
        visitors = SimulatedVisitors(app.bus, pin_factory=pin_factory,
                                     passage_pin=hw.pins.passage,
                                     active_low=hw.passage_pull_up,
                                     walk_s=self.simulate_passage_s or 0.3, stay=self.stays)
        visitors.start()
        return [visitors.close]

    def started(self) -> None:
        if self.pin_log is not None:
            pin_log_mark(self.pin_log, "ready")

    def stopping(self) -> None:
        if self.pin_log is not None:
            pin_log_mark(self.pin_log, "stop")


def _wire_simulated_feedback(config: Config, pin_factory: Any) -> None:
    """With simulated pins, the relay's feedback contact follows the relay, as wired."""
    if config.hardware is not None:
        wire_simulated_feedback(config.hardware, pin_factory)


def wire_simulated_feedback(hw: HardwareConfig, pin_factory: Any) -> None:
    """The relay's feedback contact follows the relay, as wired (before any device is
    made on `pin_factory`'s lock pin)."""
    if hw.pins.relay_feedback is None:
        return
    # energised: the lock pin at its active level; the contact then reads "closed"
    if hw.lock_active_high == hw.relay_feedback_pull_up:
        log.warning("simulated relay feedback not wired: lock_active_high and "
                    "relay_feedback_pull_up make the contact read the opposite level")
        return
    feedback = pin_factory.pin(hw.pins.relay_feedback)
    connected = RecordingConnectedPin if pin_factory.pin_class is RecordingMockPin \
        else MockConnectedPin
    pin_factory.pin(hw.pins.lock, pin_class=connected, input_pin=feedback)


class SimulatedTechnician:
    """The technician of `gate hw test` on simulated pins: a turnstile as wired in
    docs/wiring.md (relay feedback following the relay, the fire loop closed at rest),
    and someone who walks through and opens the loop when the walk asks.

    It drives gpiozero's mock pins only, the way the real inputs would move: the walk's
    own code (outputs, reads, waits, verdicts) runs unchanged. Make it before the walk
    opens its devices (`prepare`), then hand it to `run_walk`."""

    def __init__(self, hw: HardwareConfig, pin_factory: Any, *, hold_s: float = 0.15) -> None:
        if type(pin_factory).__name__ != "MockFactory":
            raise ConfigError("a simulated technician needs hardware.pin_factory = \"mock\": "
                              "it never drives real pins")
        self._hw, self._factory, self._hold = hw, pin_factory, hold_s
        self._threads: list[threading.Thread] = []

    def prepare(self) -> None:
        wire_simulated_feedback(self._hw, self._factory)

    def pins_opened(self) -> None:
        self._factory.pin(self._hw.pins.fire_loop).drive_low()  # the loop, closed to ground

    def walk_through(self) -> None:
        pin = self._factory.pin(self._hw.pins.passage)
        active_low = self._hw.passage_pull_up
        self._later(pin.drive_low if active_low else pin.drive_high,
                    pin.drive_high if active_low else pin.drive_low)

    def open_fire_loop(self) -> None:
        pin = self._factory.pin(self._hw.pins.fire_loop)
        self._later(pin.drive_high, pin.drive_low)  # open, then closed again

    def _later(self, first: Callable[[], None], then: Callable[[], None]) -> None:
        """`first` now (the walk's wait sees it however late it starts waiting), `then`
        a moment later (a wait started after it sees the input back at rest)."""
        first()

        def work() -> None:
            time.sleep(self._hold)
            then()

        thread = threading.Thread(target=work, name="simulated-technician", daemon=True)
        self._threads.append(thread)
        thread.start()

    def close(self) -> None:
        for thread in self._threads:
            thread.join(timeout=5.0)
