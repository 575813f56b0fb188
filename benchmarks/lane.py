"""People per minute through one simulated lane, and the software's share of each cycle.

The whole gate (real decoder, journal on disk with synchronous FULL, turnstile on
gpiozero's mock pins) plays a crowd clip at its recorded pace: each person shows a real
phone ticket for ``--present`` seconds, one after another (a queue that is always
there). A simulated visitor walks through at human pace: they reach the passage beam
``--walk`` seconds after the lock opens for them, and hold it 0.15 s (the body passing).

From the pins' own history (gpiozero's MockPin states, with their times):

* **physical cycle** of each person: unlock -> the visitor in the beam (the walk, as
  simulated) + the beam's configured debounce (passage_bounce_ms);
* **software** of each cycle: the rest of the time from one unlock to the next: from the
  debounced beam to the relock (the turnstile) and from the relock to the next unlock
  (the passage journalled, the next decided visitor released). The decision itself
  happened while the person before was walking (the loop never stops reading), so it is
  not on the cycle's path; its frame-to-decision time is printed beside.

People per minute = people released after the first / time between first and last
unlock. Anchors: the UK Green Guide plans about 11 people per minute per turnstile lane,
vendors quote 20 to 40.

    .venv/bin/python benchmarks/lane.py            # --people 20 --walk 1.2 --present 1.0
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpiozero.pins.mock import MockFactory

from portique.devtools.simulation import BEAM_S, SimulatedRun
from portique.runtime.config import from_dict
from portique.runtime.wiring import build
from tests.appliance.conftest import PINS, UNLOCKED_LEVEL, gate_table
from tests.appliance.crowd import make_crowd_clip


def timeline(states: list[Any]) -> list[tuple[float, bool]]:
    """A mock pin's history as (seconds since its first state, level): gpiozero keeps
    each state's time relative to the state before it."""
    out, at = [], 0.0
    for s in states:
        at += s.timestamp
        out.append((at, bool(s.state)))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--walk", type=float, default=1.2,
                        help="seconds from unlock to the visitor in the passage beam")
    parser.add_argument("--present", type=float, default=1.0,
                        help="seconds each person shows their phone")
    args = parser.parse_args()
    fps = 10.0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = root / "crowd"
        make_crowd_clip(clip, people=args.people, frames_each=max(1, round(args.present * fps)),
                        fps=fps)
        state = root / "state"
        state.mkdir()
        table = gate_table(state)
        table["hardware"]["open_timeout_s"] = 30.0
        config = from_dict(table)
        assert config.hardware is not None
        bounce = config.hardware.passage_bounce_ms / 1000
        factory = MockFactory()
        app = build(config, SimulatedRun(replay=clip, fast=False,
                                         simulate_passage_s=args.walk), pin_factory=factory)
        try:
            start = len(factory.pin(PINS["lock"]).states)
            app.run()
            lock = timeline(factory.pin(PINS["lock"]).states)[start:]
            passage = timeline(factory.pin(PINS["passage"]).states)
        finally:
            app.close()
        with sqlite3.connect(state / "journal.sqlite") as db:
            latencies = [r[0] for r in db.execute(
                "SELECT latency_ms FROM decisions WHERE latency_ms IS NOT NULL")]
            states = [r[0] for r in db.execute("SELECT state FROM admissions")]
    unlocks = [t for t, level in lock if level == UNLOCKED_LEVEL]
    relocks = [t for t, level in lock if level != UNLOCKED_LEVEL]
    active = not config.hardware.passage_pull_up  # the level of a person in the beam
    present = [t for t, level in passage[2:] if level == active]  # after the pull's set-up
    n = min(len(unlocks), len(relocks), len(present))
    physical, software, cycles = [], [], []
    for k in range(n - 1):
        cycle = unlocks[k + 1] - unlocks[k]
        walk = present[k] - unlocks[k]
        phys = walk + bounce
        cycles.append(cycle)
        physical.append(phys)
        software.append(cycle - phys)
    people_per_min = 60 * (n - 1) / (unlocks[n - 1] - unlocks[0]) if n > 1 else 0.0
    ideal = 60 / statistics.median(physical) if physical else 0.0
    print(f"lane: {args.people} people, each showing a phone {args.present:.1f} s, walk "
          f"{args.walk:.2f} s to the beam, beam held {BEAM_S:.2f} s, debounce "
          f"{bounce * 1000:.0f} ms")
    print(f"admissions: {states.count('passed')} passed of {len(states)}; "
          f"released {len(unlocks)}")
    print(f"people per minute: {people_per_min:.1f} (the physical cycle alone would allow "
          f"{ideal:.1f}; anchors: Green Guide ~11, vendors 20-40)")
    print(f"cycle unlock->unlock ms: median {statistics.median(cycles) * 1000:.1f}, "
          f"p95 {pct(cycles, 0.95) * 1000:.1f}")
    print(f"physical per cycle ms (walk + debounce): median "
          f"{statistics.median(physical) * 1000:.1f}")
    print(f"software per cycle ms: median {statistics.median(software) * 1000:.1f}, "
          f"p95 {pct(software, 0.95) * 1000:.1f}, max {max(software) * 1000:.1f} "
          f"(goal: at most 50)")
    print(f"frame-to-decision ms (off the cycle's path): median "
          f"{statistics.median(latencies):.1f}, p95 {pct(latencies, 0.95):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
