"""What the steward's screens share: settings, the language, the gate's latest state, and
requests to the daemon with their answers routed back to whoever asked."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from portique.runtime.steward.client import Link
from portique.runtime.steward.i18n import T, tr
from portique.runtime.steward.messages import Reply
from portique.runtime.steward.model import FeedRow, GateStatus
from portique.ticket.reasons import Lang

FEED_ROWS = 200
"""Decisions kept in the live feed."""


@dataclass(frozen=True)
class Settings:
    socket: Path
    steward: str
    """The steward's id, sent with every admit, deny and acknowledge."""
    lang: Lang
    tz: tzinfo
    """The venue's time zone: every time is shown in it."""
    notice_s: float = 8.0
    """How long a notice stays on screen (an error: three times as long)."""
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The wall clock, for "last known at" while the gate is unreachable."""


CATCH_UP = 100
"""Journal entries asked for (the `recent` op) each time the link comes up."""


class Session:
    """The UI's state; lives on the UI thread (the link reaches it only through messages)."""

    def __init__(self, settings: Settings, link: Link | None) -> None:
        self.settings = settings
        self.link = link
        self.lang = settings.lang
        self.status: GateStatus | None = None
        self.rows: collections.deque[FeedRow] = collections.deque(maxlen=FEED_ROWS)
        self.link_up = False
        self.link_error: str | None = None
        self.link_retry = 0.0
        self.link_kind = "other"
        self.status_at: datetime | None = None
        """When the latest status arrived: while the link is down, what is shown is of
        that time."""
        self.connections = 0
        """How many times the link came up (after the first: a reconnection)."""
        self._pending: dict[int, Callable[[Reply], None]] = {}
        self._ids = itertools.count(1)

    def t(self, key: T, **values: object) -> str:
        return tr(key, self.lang, **values)

    def ask(self, op: str, fields: Mapping[str, Any], on_reply: Callable[[Reply], None], *,
            slow: bool = False) -> int:
        """Send a request in the background; `on_reply` runs on the UI thread."""
        request_id = next(self._ids)
        self._pending[request_id] = on_reply
        if self.link is not None:
            self.link.request(request_id, op, fields, slow=slow)
        return request_id

    def answered(self, reply: Reply) -> None:
        on_reply = self._pending.pop(reply.request_id, None)
        if on_reply is not None:
            on_reply(reply)

    @property
    def waiting(self) -> int:
        """Requests sent and not answered yet."""
        return len(self._pending)
