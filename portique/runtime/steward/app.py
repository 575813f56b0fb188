"""The steward's app: routes what the link reports to the screens, and the global keys."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from portique.runtime import events
from portique.runtime.events import (
    CameraChanged,
    FireAlarmAcknowledged,
    PassageEnded,
    TurnstileChanged,
)
from portique.runtime.steward.client import Link
from portique.runtime.steward.i18n import T, other
from portique.runtime.steward.messages import GateEvent, LinkDown, LinkUp, Reply, StatusArrived
from portique.runtime.steward.model import FeedRow, GateStatus
from portique.runtime.steward.screens.main import MainScreen
from portique.runtime.steward.screens.ready import ReadyScreen
from portique.runtime.steward.session import Session, Settings

REFRESH_ON = (TurnstileChanged, CameraChanged, FireAlarmAcknowledged, PassageEnded)
"""Events after which the status is asked again at once (banners, counts)."""


class StewardApp(App[None]):
    """`gate steward`: the live gate, manual lookup, admit and deny, alarms."""

    CSS_PATH = "steward.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f4", "switch_language", "language", show=False, priority=True),
        Binding("f6", "show_ready", "ready for doors", show=False, priority=True),
        Binding("f8", "acknowledge_fire_alarm", "acknowledge", show=False, priority=True),
        Binding("ctrl+q", "quit", "quit", show=False, priority=True),
    ]

    def __init__(self, settings: Settings, link: Link | None) -> None:
        super().__init__()
        self.session = Session(settings, link)
        self.main = MainScreen(self.session)

    def get_default_screen(self) -> Screen[None]:
        return self.main

    def on_mount(self) -> None:
        self.title = self.session.t(T.APP_TITLE)
        if self.session.link is not None:
            self.session.link.start(self)

    def on_unmount(self) -> None:
        if self.session.link is not None:
            self.session.link.stop()

    # --- what the link reports --------------------------------------------------------

    def on_link_up(self, message: LinkUp) -> None:
        self.session.link_up, self.session.link_error = True, None
        self.main.show_state()

    def on_link_down(self, message: LinkDown) -> None:
        s = self.session
        s.link_up, s.link_error, s.link_retry = False, message.error, message.retry_in
        self.main.show_state()

    def on_status_arrived(self, message: StatusArrived) -> None:
        s = self.session
        s.status = GateStatus.from_json(message.status)
        last = message.status.get("last_decision")
        if not s.rows and isinstance(last, dict):  # the protocol has no "recent decisions"
            try:
                row = FeedRow.from_event(events.from_json(last))
            except events.EventFormatError:
                row = None
            if row is not None:
                s.rows.append(row)
                self.main.show_feed()
        self.main.show_state()
        for screen in self.screen_stack:
            if isinstance(screen, ReadyScreen):
                screen.show()

    def on_gate_event(self, message: GateEvent) -> None:
        row = FeedRow.from_event(message.event)
        if row is not None and not any(r.scan_id == row.scan_id and row.scan_id
                                       for r in self.session.rows):
            self.session.rows.append(row)
            self.main.show_feed()
        if isinstance(message.event, REFRESH_ON) or row is not None:
            self.refresh_status()

    def on_reply(self, message: Reply) -> None:
        self.session.answered(message)

    def refresh_status(self) -> None:
        def arrived(reply: Reply) -> None:
            status = reply.answer.get("status")
            if reply.ok and isinstance(status, dict):
                self.post_message(StatusArrived(status))

        self.session.ask("status", {}, arrived)

    # --- global keys ------------------------------------------------------------------

    def tell(self, text: str, *, error: bool = False) -> None:
        """A message on the current screen's notice line (errors also as a notification)."""
        for screen in reversed(self.screen_stack):
            tell = getattr(screen, "tell", None)
            if tell is not None:
                tell(text, error=error)
                break
        if error:
            self.notify(text, severity="error")

    def action_switch_language(self) -> None:
        s = self.session
        s.lang = other(s.lang)
        self.title = s.t(T.APP_TITLE)
        for screen in self.screen_stack:
            retranslate = getattr(screen, "retranslate", None)
            if retranslate is not None:
                retranslate()
        self.tell(s.t(T.LANGUAGE_SET))

    def action_show_ready(self) -> None:
        """The ready-for-doors checklist (Esc goes back)."""
        if not isinstance(self.screen, ReadyScreen):
            self.push_screen(ReadyScreen(self.session))
            self.refresh_status()

    def action_acknowledge_fire_alarm(self) -> None:
        s = self.session
        if s.status is not None and not (s.status.fire_active or s.status.fire_latched):
            self.tell(s.t(T.ACK_NOTHING))
            return

        def answered(reply: Reply) -> None:
            if reply.ok:
                self.tell(s.t(T.ACK_DONE))
            else:
                self.tell(s.t(T.ACK_REFUSED, error=reply.error), error=True)
            self.refresh_status()

        s.ask("ack_fire_alarm", {"steward": s.settings.steward}, answered)
