"""What the background link tells the app: small dataclass messages, posted thread-safely."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from portique.runtime.events import Event


@dataclass
class LinkUp(Message):
    """The watch stream to the daemon is open."""

    path: str


@dataclass
class LinkDown(Message):
    """The daemon cannot be reached; the link tries again in `retry_in` seconds."""

    path: str
    error: str
    retry_in: float
    kind: str = "other"
    """What failed (no_socket, refused, permission, timeout, ...): the screen says it in
    the steward's language; `error` is the system's own words."""


@dataclass
class StatusArrived(Message):
    """A fresh `status` of the gate."""

    status: dict[str, Any]


@dataclass
class GateEvent(Message):
    """One event of the watch stream (decision, passage, turnstile, camera ...)."""

    event: Event


@dataclass
class Reply(Message):
    """The answer to a request; `reached` is False when the daemon could not be asked."""

    request_id: int
    op: str
    answer: dict[str, Any]
    reached: bool

    @property
    def ok(self) -> bool:
        return self.reached and self.answer.get("ok") is True

    @property
    def error(self) -> str:
        return str(self.answer.get("error") or "")
