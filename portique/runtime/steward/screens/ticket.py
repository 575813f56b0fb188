"""A ticket found by a lookup: its manifest entry, its state, its history; admit or deny."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Static

from portique.runtime.steward.i18n import T
from portique.runtime.steward.keys import Place, bindings
from portique.runtime.steward.messages import Reply
from portique.runtime.steward.model import (
    OVERRIDABLE,
    HistoryEntry,
    Ticket,
    refusal_text,
    ticket_state,
)
from portique.runtime.steward.screens.dialogs import (
    Action,
    Override,
    ReasonChoice,
    ReasonDialog,
    SupervisorDialog,
)
from portique.runtime.steward.session import Session
from portique.runtime.steward.widgets.bars import KeyBar, Notice
from portique.runtime.steward.widgets.history import HistoryTable


class TicketScreen(Screen[None]):
    """The detail of one ticket; A admits, D denies, Esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = bindings(Place.TICKET)

    def __init__(self, session: Session, ticket: Ticket) -> None:
        super().__init__()
        self.session, self.ticket = session, ticket
        self.history: tuple[HistoryEntry, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="ticket-title", classes="pane-title")
        yield Static(id="ticket-fields")
        yield Static(id="ticket-state")
        yield Notice(id="notice")
        yield Static(id="history-title", classes="pane-title")
        yield HistoryTable(id="history")
        yield KeyBar(id="key-bar")

    def on_mount(self) -> None:
        self.retranslate()
        self.query_one(HistoryTable).focus()
        self.load_history()

    # --- showing ----------------------------------------------------------------------

    def retranslate(self) -> None:
        s, t = self.session, self.ticket
        self.query_one("#ticket-title", Static).update(
            Text(s.t(T.TICKET_TITLE, ticket_id=t.ticket_id), style="bold"))
        fields = Text()
        for key, value in ((T.FIELD_HOLDER, t.holder or "-"), (T.FIELD_ORDER, t.order_ref),
                           (T.FIELD_CATEGORY, t.category),
                           (T.FIELD_ENTRANCES, t.entrances_text),
                           (T.FIELD_GENERATION, str(t.generation)),
                           (T.FIELD_FLAGS, t.flags_text(s.lang))):
            if fields:  # one paragraph, wrapped: room for the history on a small terminal
                fields.append("  ·  ")
            fields.append(f"{s.t(key)}: ", style="bold")
            fields.append(value)
        self.query_one("#ticket-fields", Static).update(fields)
        self.query_one("#history-title", Static).update(Text(s.t(T.HISTORY_TITLE)))
        self.query_one(KeyBar).show(s.lang, Place.TICKET)
        self.show_history()

    def show_history(self) -> None:
        s = self.session
        state = self.query_one("#ticket-state", Static)
        if self.history is None:
            state.update(Text(s.t(T.STATE_LOADING)))
        else:
            sentence, bars = ticket_state(self.ticket, self.history, s.lang, s.settings.tz)
            state.update(Text(f"{s.t(T.FIELD_STATE)}: {sentence}",
                              style="bold red" if bars else "bold green"))
        self.query_one(HistoryTable).show(self.history, s.lang, s.settings.tz)

    def tell(self, text: str | None, *, error: bool = False) -> None:
        self.query_one(Notice).tell(text, error=error, seconds=self.session.settings.notice_s)

    def refused(self, reply: Reply) -> str:
        """The gate's refusal in the steward's language, its code kept."""
        return self.session.t(T.DONE_REFUSED, error=refusal_text(
            reply.answer, self.session.lang, ticket_id=self.ticket.ticket_id,
            entrances=self.ticket.entrances_text))

    # --- history ----------------------------------------------------------------------

    def load_history(self) -> None:
        self.session.ask("history", {"ticket_id": self.ticket.ticket_id}, self._history)

    def _history(self, reply: Reply) -> None:
        if not self.is_attached:
            return
        if not reply.ok:
            self.tell(self.refused(reply), error=True)
            return
        raw = reply.answer.get("entries")
        entries = raw if isinstance(raw, list) else []
        self.history = tuple(HistoryEntry.from_json(e) for e in entries if isinstance(e, dict))
        self.show_history()

    # --- admit and deny ---------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss()

    def action_admit(self) -> None:
        self.app.push_screen(ReasonDialog(self.session, Action.ADMIT, self.ticket.ticket_id),
                             self._admit_because)

    def action_deny(self) -> None:
        self.app.push_screen(ReasonDialog(self.session, Action.DENY, self.ticket.ticket_id),
                             self._deny_because)

    def _admit_because(self, choice: ReasonChoice | None, supervisor: Override | None = None
                       ) -> None:
        if choice is None:
            return
        fields: dict[str, object] = {"ticket_id": self.ticket.ticket_id,
                                     "steward": self.session.settings.steward,
                                     "reason": choice.text, "paper": choice.paper}
        if supervisor is not None:
            fields["supervisor"] = supervisor.supervisor
            fields["pin"] = supervisor.pin
        self.tell(self.session.t(T.DONE_SENDING))

        def answered(reply: Reply) -> None:
            if not self.is_attached:
                return
            if reply.ok:
                self.tell(self.session.t(T.DONE_ADMITTED, ticket_id=self.ticket.ticket_id,
                                         reason=choice.shown))
                self.load_history()
            elif reply.reached and supervisor is None and reply.answer.get("code") in OVERRIDABLE:
                self.tell(self.refused(reply), error=True)
                self.app.push_screen(
                    SupervisorDialog(self.session, reply.answer, self.ticket),
                    lambda who: self._admit_because(choice, who) if who else None)
            else:
                self.tell(self.refused(reply), error=True)

        self.session.ask("admit", fields, answered, slow=True)

    def _deny_because(self, choice: ReasonChoice | None) -> None:
        if choice is None:
            return
        self.tell(self.session.t(T.DONE_SENDING))

        def answered(reply: Reply) -> None:
            if not self.is_attached:
                return
            if reply.ok:
                self.tell(self.session.t(T.DONE_DENIED, ticket_id=self.ticket.ticket_id,
                                         reason=choice.shown))
                self.load_history()
            else:
                self.tell(self.refused(reply), error=True)

        self.session.ask("deny", {"ticket_id": self.ticket.ticket_id,
                                  "steward": self.session.settings.steward,
                                  "reason": choice.text}, answered, slow=True)
