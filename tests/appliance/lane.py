"""One lane without the rest of the gate: a real Daemon on a real journal, a real
turnstile on gpiozero's mock pins with simulated visitors, a clock the test sets, the
fixture keys; no camera, control socket, metrics or upload. For the tests that only need
the lane's logic (decide, hold, one person at a time, manual actions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory

from portique import keyfiles
from portique.devtools.simulation import SimulatedRun, SimulatedVisitors
from portique.hardware.turnstile import Turnstile
from portique.runtime.config import Config, from_dict
from portique.runtime.control import EventBus
from portique.runtime.daemon import Daemon
from portique.runtime.journal import Journal
from portique.scanner.debounce import Debouncer
from portique.scanner.decoders import make_decoder
from portique.ticket.decision import Now
from portique.ticket.views import NoRevocations

from .conftest import FIXTURES, gate_table


@dataclass
class LaneClock:
    """The lane's clock: the test sets `current`; `reads` counts how often it was read."""

    current: float = 0.0
    reads: int = 0

    def now(self) -> Now:
        self.reads += 1
        return Now(self.current, True)


@dataclass
class Lane:
    state: Path
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifest: Any = None
    walk_s: float = 0.05
    stay: frozenset[str] = frozenset()
    """Tickets whose simulated holder does not walk through."""
    clock: LaneClock = field(default_factory=LaneClock)
    bus: EventBus = field(default_factory=EventBus)
    factory: MockFactory = field(default_factory=MockFactory)
    _closers: list[Any] = field(default_factory=list)

    def config(self) -> Config:
        return from_dict(gate_table(self.state, **self.sections))

    def start(self) -> Daemon:
        config = self.config()
        assert config.hardware is not None
        simulation = SimulatedRun()
        simulation.prepare_pins(config, self.factory)
        turnstile: Turnstile = simulation.make_turnstile(config, self.factory)
        self._closers.append(turnstile.close)
        journal = Journal(config.journal.path, gate_id=config.gate.id)
        self._closers.append(journal.close)
        visitors = SimulatedVisitors(self.bus, pin_factory=self.factory,
                                     passage_pin=config.hardware.pins.passage,
                                     active_low=config.hardware.passage_pull_up,
                                     walk_s=self.walk_s, stay=self.stay)
        visitors.start()
        self._closers.append(visitors.close)
        self.daemon = Daemon(
            profile=config.profile(), policy=config.policy_record(),
            trust=keyfiles.load_trust_dir(FIXTURES / "keys"), revocations=NoRevocations(),
            journal=journal, turnstile=turnstile, decoder=make_decoder("pipeline"),
            debouncer=Debouncer(3.0), clock=self.clock, lane=config.lane,
            steward=config.steward, bus=self.bus, manifest=self.manifest)
        self.daemon.cycle_budget_s = config.hardware.open_timeout_s + 10.0
        return self.daemon

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()
        self._closers.clear()
