"""One readable line per decision, for a terminal or a log (`gate run --print`, the demo)."""

from __future__ import annotations

import queue
import threading
from datetime import UTC, datetime, tzinfo
from typing import Any, TextIO

from portique.runtime.control import EventBus
from portique.runtime.daemon import Counters
from portique.runtime.journal import Journal
from portique.ticket.reasons import Lang


class LinePrinter:
    """One readable line per decision and per passage, on a terminal or a log."""

    def __init__(self, bus: EventBus, out: TextIO, *, lang: Lang = Lang.EN,
                 tz: tzinfo = UTC) -> None:
        self.bus, self.out, self.lang, self.tz = bus, out, lang, tz
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.lines = 0
        self._thread = threading.Thread(target=self._run, name="printer", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with self.bus.subscription() as events:
            self._ready.set()
            while True:
                try:
                    event = events.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    continue
                line = render_line(event, self.lang, self.tz)
                if line:
                    print(line, file=self.out, flush=True)
                    self.lines += 1


def render_line(event: dict[str, Any], lang: Lang = Lang.EN, tz: tzinfo = UTC) -> str | None:
    kind = event.get("type")
    ticket = event.get("ticket") or {}
    who = ticket.get("ticket_id", "-")
    if kind == "decision":
        at = datetime.fromisoformat(str(event["at"])).astimezone(tz).strftime("%H:%M:%S")
        action = {"unlock": "lock opened", "refuse": "red light + buzzer",
                  "call_steward": "steward called"}[event["turnstile"]]
        return (f"{at}  {event['verdict'].upper():<7} {event['reason']:<20} ticket {who:<14} "
                f"{action:<19} {event['sentence'][lang.value]}")
    if kind == "passage":
        outcome = {"passed": "passed through, lock closed",
                   "timed_out": "nobody passed: admission voided, lock closed",
                   "fire_alarm": "fire alarm: free egress"}.get(event["outcome"],
                                                               event["outcome"])
        return f"          {'':<28} ticket {who:<14} {outcome}"
    if kind == "displayed":
        return f"          {'(same ticket again)':<28} ticket {who:<14} shown, not decided again"
    if kind == "turnstile" and event.get("kind") != "passage":
        return f"          turnstile: {event['kind']} {event.get('detail', '')}"
    return None


def summary_lines(c: Counters, journal: Journal) -> list[str]:
    """What a run did, in three lines (`gate run --print`, the demo)."""
    states = journal.admission_states()
    passed = sum(1 for s in states.values() if s.value == "passed")
    voided = sum(1 for s in states.values() if s.value == "voided")
    return [
        f"frames {c.frames}, decisions {c.decided} (admit {c.by_verdict.get('admit', 0)}, "
        f"refuse {c.by_verdict.get('refuse', 0)}, steward {c.by_verdict.get('steward', 0)}), "
        f"same ticket shown again {c.displayed}",
        f"admissions: {passed} passed through, {voided} voided (nobody passed)",
        f"journal: {journal.path}",
    ]


