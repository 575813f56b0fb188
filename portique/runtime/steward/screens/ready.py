"""Ready for doors? The gate's checklist, one verdict per line, as `gate ready` prints it.

Opened from any screen with F6; Esc goes back. It shows the checklist of the latest
status and follows it as new statuses arrive (the app calls `show`). The check names are
in the steward's language; each line's detail is the gate's own sentence.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Static

from portique.runtime.steward.i18n import T
from portique.runtime.steward.keys import Place, bindings
from portique.runtime.steward.session import Session
from portique.runtime.steward.widgets.bars import KeyBar

CHECK_TEXT = {"feed": T.CHECK_FEED, "keys": T.CHECK_KEYS, "clock": T.CHECK_CLOCK,
              "camera": T.CHECK_CAMERA, "relay": T.CHECK_RELAY,
              "fire_loop": T.CHECK_FIRE_LOOP, "journal": T.CHECK_JOURNAL,
              "mesh": T.CHECK_MESH, "upload": T.CHECK_UPLOAD}
"""The checklist's lines (portique.runtime.readiness.CHECKS) in the steward's words."""


class ReadyScreen(Screen[None]):
    """The ready-for-doors checklist of the gate."""

    BINDINGS: ClassVar[list[BindingType]] = bindings(Place.READY)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        yield Static(id="ready-title", classes="pane-title")
        yield Static(id="ready-verdict")
        yield Static(id="ready-lines")
        yield KeyBar(id="key-bar")

    def on_mount(self) -> None:
        self.retranslate()

    def retranslate(self) -> None:
        self.query_one("#ready-title", Static).update(
            Text(self.session.t(T.READY_TITLE), style="bold"))
        self.query_one(KeyBar).show(self.session.lang, Place.READY)
        self.show()

    def show(self) -> None:
        """The checklist of the session's latest status."""
        if not self.is_attached:
            return
        s = self.session
        lines = None if s.status is None else s.status.ready
        verdict = self.query_one("#ready-verdict", Static)
        body = Text()
        if lines is None:
            verdict.update(Text(s.t(T.READY_UNKNOWN)))
        else:
            failing = [self._label(line.name) for line in lines if not line.ok]
            verdict.update(Text(s.t(T.READY_NO, failing=", ".join(failing)), style="bold red")
                           if failing or not lines else
                           Text(s.t(T.READY_YES), style="bold green"))
            width = max((len(self._label(line.name)) for line in lines), default=0)
            for line in lines:
                mark = s.t(T.READY_PASS) if line.ok else s.t(T.READY_FAIL)
                body.append(f"{mark:<5} ", style="green" if line.ok else "bold red")
                body.append(f"{self._label(line.name):<{width}}  ", style="bold")
                body.append(f"{line.detail}\n")
        self.query_one("#ready-lines", Static).update(body)

    def _label(self, name: str) -> str:
        key = CHECK_TEXT.get(name)
        return name if key is None else self.session.t(key)

    def action_back(self) -> None:
        self.app.pop_screen()
