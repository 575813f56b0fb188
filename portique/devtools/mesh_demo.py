"""Two gates on one broker: a ticket admitted at gate 1 is refused at gate 2.

`two_gates(clip_a, clip_b)` starts a Mosquitto on loopback, two whole gates (recorded
clips, real journal, simulated pins) sharing admissions through it, plays clip_a at gate 1
then clip_b at gate 2, and returns what happened as printable lines.
"""

from __future__ import annotations

import contextlib
import queue
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from portique import keyfiles
from portique.devtools.broker import LoopbackBroker
from portique.devtools.simulation import SimulatedRun
from portique.runtime.config import from_dict
from portique.runtime.control import EventBus
from portique.runtime.lines import render_line
from portique.runtime.wiring import GateApp, build
from portique.ticket.reasons import Lang
from portique.ticket.trust import KeyRole

_PINS = {"lock": 17, "green": 27, "red": 22, "buzzer": 23, "passage": 24, "fire_loop": 25}


def _table(folder: Path, gate_id: str, *, event: str, entrance: int, trust_dir: Path,
           port: int, keys: Path) -> dict[str, Any]:
    return {
        "gate": {"id": gate_id, "event": event, "entrance": entrance},
        "keys": {"trust_dir": str(trust_dir)},
        "journal": {"path": str(folder / "journal.sqlite")},
        "control": {"socket": str(folder / "control.sock")},
        "clock": {"source": "always"},
        "feeds": {"required": False},  # the mesh demo shows admissions, not revocations
        "hardware": {"pin_factory": "mock", "on_stop": "fail_safe", "lock_active_high": False,
                     "open_timeout_s": 1.0, "pins": _PINS},
        "mesh": {"venue": "demo-venue", "port": port, "key_file": str(keys / f"{gate_id}.key"),
                 "gates_dir": str(keys), "reconnect_min_s": 0.1, "reconnect_max_s": 1.0},
    }


@contextlib.contextmanager
def _lines_of(app: GateApp, gate_id: str, out: list[str]) -> Iterator[None]:
    bus: EventBus = app.bus
    with bus.subscription() as events:
        yield
        while True:
            try:
                event = events.get_nowait()
            except queue.Empty:
                break
            line = render_line(event, Lang.EN, app.daemon.profile.timezone)
            if line:
                out.append(f"gate {gate_id} | {line.strip()}")


def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def two_gates(clip_a: Path, clip_b: Path, *, event: str = "PAR24-ATH05", entrance: int = 2,
              trust_dir: Path | None = None) -> list[str]:
    """Gate 1 plays clip_a, then gate 2 plays clip_b; both share one loopback broker.

    trust_dir defaults to the ``keys`` folder beside the clips' folder (the fixtures'
    layout: tests/fixtures/clips/<name> and tests/fixtures/keys).
    """
    from gpiozero.pins.mock import MockFactory

    trust = trust_dir or clip_a.resolve().parent.parent / "keys"
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="portique-mesh-demo-") as tmp:
        root = Path(tmp)
        keys = root / "gate-keys"
        for gate_id in ("1", "2"):
            keyfiles.new_key_pair(keys, gate_id, role=KeyRole.GATE)
        with LoopbackBroker(root / "broker") as broker:
            lines.append(f"broker: Mosquitto on 127.0.0.1:{broker.port}; gates 1 and 2 "
                         "share admissions through it (signed, QoS 1)")
            apps: dict[str, GateApp] = {}
            try:
                for gate_id, clip in (("1", clip_a), ("2", clip_b)):
                    folder = root / f"gate{gate_id}"
                    folder.mkdir()
                    config = from_dict(_table(folder, gate_id, event=event, entrance=entrance,
                                              trust_dir=trust, port=broker.port, keys=keys))
                    apps[gate_id] = build(config, SimulatedRun(replay=clip, fast=True,
                                                             simulate_passage_s=0.1),
                                          pin_factory=MockFactory())
                for app in apps.values():
                    if not app.mesh.wait_connected(10):
                        lines.append("the gates could not reach the broker")
                        return lines
                one, two = apps["1"], apps["2"]
                lines.append(f"gate 1 plays {clip_a.name}")
                with _lines_of(one, "1", lines):
                    one.run()
                    one.mesh.wake()
                admitted = one.journal.counts()["admissions_passed"] + \
                    one.journal.counts()["admissions_open"]
                started = time.monotonic()
                learnt = _wait(lambda: two.mesh.store.peer_counts().get("1", (0, 0.0))[0]
                               >= admitted, 10.0)
                took = (time.monotonic() - started) * 1e3
                lines.append(f"gate 2 {'learnt' if learnt else 'did NOT learn'} gate 1's "
                             f"{admitted} admission(s) through the broker"
                             f"{f' ({took:.0f} ms after the clip ended)' if learnt else ''}")
                lines.append(f"gate 2 plays {clip_b.name}")
                with _lines_of(two, "2", lines):
                    two.run()
            finally:
                for app in apps.values():
                    app.close()
    return lines


if __name__ == "__main__":
    import sys

    fixtures = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "clips"
    names = sys.argv[1:3] or ["valid_step_change", "valid_step_change"]
    print("\n".join(two_gates(fixtures / names[0], fixtures / names[-1])))
