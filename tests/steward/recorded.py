"""Recorded daemon answers (data/gate.json, as the real daemon sends them) for the
snapshot tests, which must not depend on a live clock: a link that answers each request
from the recording, and helpers that post recorded status and events to the app."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from portique.runtime import events
from portique.runtime.steward.app import StewardApp
from portique.runtime.steward.client import Target
from portique.runtime.steward.messages import GateEvent, LinkUp, Reply, StatusArrived
from portique.runtime.steward.session import Settings
from portique.ticket.reasons import Lang
from tests.steward.conftest import PARIS

DATA: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "gate.json").read_text(
    encoding="utf-8"))
SOCKET = Path("/run/portique/control.sock")


class RecordedLink:
    """Answers every request with the recorded answer named for its op."""

    def __init__(self, answers: Mapping[str, str]) -> None:
        self.answers = dict(answers)
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self._target: Target | None = None

    @property
    def path(self) -> Path:
        return SOCKET

    def start(self, target: Target) -> None:
        self._target = target

    def stop(self) -> None:
        self._target = None

    def request(self, request_id: int, op: str, fields: Mapping[str, Any], *,
                slow: bool = False) -> None:
        self.asked.append((op, dict(fields)))
        if self._target is not None and op in self.answers:
            answer = copy.deepcopy(DATA[self.answers[op]])
            self._target.post_message(Reply(request_id, op, answer, True))


NOW = datetime(2024, 8, 5, 17, 10, tzinfo=UTC)
"""The screen's wall clock in the recordings: 19:10 in Paris."""


def recorded_app(lang: Lang = Lang.EN, *, notice_s: float = 8.0, **answers: str
                 ) -> StewardApp:
    return StewardApp(Settings(socket=SOCKET, steward="s-17", lang=lang, tz=PARIS,
                               notice_s=notice_s, now=lambda: NOW),
                      RecordedLink(answers))


def status(**changes: Any) -> dict[str, Any]:
    result = copy.deepcopy(DATA["status"])
    result.update(copy.deepcopy(changes))
    return result


def replay(app: StewardApp, state: dict[str, Any] | None = None) -> None:
    """The link comes up, the gate's status arrives, then the recorded events."""
    app.post_message(LinkUp(str(SOCKET)))
    app.post_message(StatusArrived(state or status()))
    for event in DATA["events"]:
        if event.get("type") != "heartbeat":  # as the client does: a heartbeat is no event
            app.post_message(GateEvent(events.from_json(copy.deepcopy(event))))
