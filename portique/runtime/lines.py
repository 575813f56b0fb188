"""One readable line per decision, for a terminal or a log (`gate run --print`, the demo)."""

from __future__ import annotations

import queue
import threading
from datetime import UTC, datetime, tzinfo
from typing import TextIO

from portique.base import localtime
from portique.runtime.control import EventBus
from portique.runtime.daemon import Counters
from portique.runtime.events import (
    DecisionMade,
    Event,
    PassageEnded,
    TicketDisplayed,
    TurnstileChanged,
)
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


def render_line(event: Event, lang: Lang = Lang.EN, tz: tzinfo = UTC) -> str | None:
    """The readable line of one event; None for events that make no line."""
    ticket = getattr(event, "ticket", None)
    who = "-" if ticket is None else ticket.ticket_id
    if isinstance(event, DecisionMade):
        moment = datetime.fromisoformat(event.at).astimezone(tz)
        at = moment.strftime("%H:%M:%S") + localtime.label(moment)
        action = {"unlock": "lock opened", "refuse": "red light + buzzer",
                  "call_steward": "steward called"}[event.turnstile]
        said = event.sentence_en if lang is Lang.EN else event.sentence_fr
        return (f"{at}  {event.verdict.upper():<7} {event.reason:<20} ticket {who:<14} "
                f"{action:<19} {said}")
    if isinstance(event, PassageEnded):
        outcome = {"passed": "passed through, lock closed",
                   "timed_out": "nobody passed: admission voided, lock closed",
                   "fire_alarm": "fire alarm: free egress"}.get(event.outcome, event.outcome)
        return f"          {'':<28} ticket {who:<14} {outcome}"
    if isinstance(event, TicketDisplayed):
        return f"          {'(same ticket again)':<28} ticket {who:<14} shown, not decided again"
    if isinstance(event, TurnstileChanged) and event.kind != "passage":
        return f"          turnstile: {event.kind} {event.detail or ''}"
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


