"""The steward's app: routes what the link reports to the screens, and the global keys."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App
from textual.binding import BindingType
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
from portique.runtime.steward.keys import Place, bindings
from portique.runtime.steward.messages import GateEvent, LinkDown, LinkUp, Reply, StatusArrived
from portique.runtime.steward.model import (
    FeedRow,
    GateStatus,
    merge_rows,
    refusal_text,
    voided,
)
from portique.runtime.steward.screens.help import HelpScreen
from portique.runtime.steward.screens.main import MainScreen
from portique.runtime.steward.screens.ready import ReadyScreen
from portique.runtime.steward.session import CATCH_UP, Session, Settings

REFRESH_ON = (TurnstileChanged, CameraChanged, FireAlarmAcknowledged, PassageEnded)
"""Events after which the status is asked again at once (banners, counts)."""


class StewardApp(App[None]):
    """`gate steward`: the live gate, manual lookup, admit and deny, alarms."""

    CSS_PATH = "steward.tcss"
    ENABLE_COMMAND_PALETTE = False
    """Textual's palette speaks English and offers the framework's commands (themes,
    screenshots...): every command of this app has its key, listed by F1."""
    BINDINGS: ClassVar[list[BindingType]] = bindings(Place.EVERYWHERE)

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
        s = self.session
        s.link_up, s.link_error = True, None
        s.connections += 1
        self.main.show_state()
        self.catch_up(reconnected=s.connections > 1)

    def on_link_down(self, message: LinkDown) -> None:
        s = self.session
        s.link_up, s.link_error, s.link_retry = False, message.error, message.retry_in
        s.link_kind = message.kind
        self.main.show_state()

    def on_status_arrived(self, message: StatusArrived) -> None:
        s = self.session
        s.status = GateStatus.from_json(message.status)
        s.status_at = s.settings.now()
        last = message.status.get("last_decision")
        if isinstance(last, dict):
            try:
                row = FeedRow.from_event(events.from_json(last))
            except events.EventFormatError:
                row = None
            if row is not None:
                self.add_rows([row])
        self.main.show_state()
        for screen in self.screen_stack:
            if isinstance(screen, ReadyScreen):
                screen.show()

    def on_gate_event(self, message: GateEvent) -> None:
        event = message.event
        row = FeedRow.from_event(event)
        if row is not None:
            self.add_rows([row])
        if isinstance(event, PassageEnded) and event.voided and event.scan_id:
            rows, found = voided(self.session.rows, event.scan_id)
            if found:
                self.session.rows.clear()
                self.session.rows.extend(rows)
                self.main.show_feed()
        if isinstance(event, REFRESH_ON) or row is not None:
            self.refresh_status()

    def add_rows(self, rows: list[FeedRow]) -> int:
        """Decisions into the live list (each once, by scan id, in time order)."""
        merged, added = merge_rows(self.session.rows, rows)
        if added or merged != list(self.session.rows):
            self.session.rows.clear()
            self.session.rows.extend(merged)
            self.main.show_feed()
        return added

    def catch_up(self, *, reconnected: bool) -> None:
        """The journal's latest decisions (the `recent` op): those made while this screen
        was not connected join the live list."""
        s = self.session

        def arrived(reply: Reply) -> None:
            raw = reply.answer.get("entries")
            if not reply.ok or not isinstance(raw, list):
                return
            entries = [e for e in raw if isinstance(e, dict)]  # latest first
            rows = [row for i, e in enumerate(entries)
                    if (row := FeedRow.from_entry(e, entries[i + 1:], s.settings.tz)) is not None]
            added = self.add_rows(rows)
            if reconnected and added:
                self.tell(s.t(T.CAUGHT_UP, count=added))

        s.ask("recent", {"limit": CATCH_UP}, arrived)

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
        """A message on the current screen's notice line; it goes away by itself."""
        for screen in reversed(self.screen_stack):
            tell = getattr(screen, "tell", None)
            if tell is not None:
                tell(text, error=error)
                break

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
        else:
            self.push_screen(HelpScreen(self.session))

    def action_live(self) -> None:
        """Back to the main screen (closing a ticket, a dialog: nothing is sent), the
        cursor on the latest decision of the live list."""
        while len(self.screen_stack) > 1 and self.screen is not self.main:
            self.pop_screen()
        self.main.focus_feed()

    def action_help_quit(self) -> None:
        """Ctrl+C: Textual's hint in the steward's language."""
        self.tell(self.session.t(T.QUIT_HINT))

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
                self.tell(s.t(T.ACK_REFUSED, error=refusal_text(reply.answer, s.lang)),
                          error=True)
            self.refresh_status()

        s.ask("ack_fire_alarm", {"steward": s.settings.steward}, answered)
