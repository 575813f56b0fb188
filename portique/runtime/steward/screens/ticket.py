"""A ticket found by a lookup: its manifest entry, its state, its history; admit or deny."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from portique.runtime.steward.i18n import T
from portique.runtime.steward.messages import Reply
from portique.runtime.steward.model import (
    ADMISSION_TEXT,
    METHOD_TEXT,
    VERDICT_TEXT,
    HistoryEntry,
    Ticket,
    clock_time,
    history_sentences,
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
from portique.runtime.steward.widgets.bars import Banner, KeyBar
from portique.runtime.steward.widgets.feed import VERDICT_STYLE

OVERRIDE_HINT = "supervisor"
"""The daemon's refusals that a supervisor may override say so in their sentence (the
protocol has no refusal codes): "... a supervisor must override"."""

HISTORY_COLUMNS = (T.COL_TIME, T.COL_GATE, T.COL_VERDICT, T.COL_REASON, T.COL_METHOD,
                   T.COL_STEWARD, T.COL_NOTE, T.COL_ADMISSION)


class TicketScreen(Screen[None]):
    """The detail of one ticket; A admits, D denies, Esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("a", "admit", "admit", show=False),
                Binding("d", "deny", "deny", show=False),
                Binding("escape", "back", "back", show=False)]

    def __init__(self, session: Session, ticket: Ticket) -> None:
        super().__init__()
        self.session, self.ticket = session, ticket
        self.history: tuple[HistoryEntry, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="ticket-title", classes="pane-title")
        yield Static(id="ticket-fields")
        yield Static(id="ticket-state")
        yield Banner(id="notice")
        yield Static(id="history-title", classes="pane-title")
        yield DataTable[Text](id="history", cursor_type="row")
        yield KeyBar(id="key-bar")

    def on_mount(self) -> None:
        self.retranslate()
        self.query_one("#history", DataTable).focus()
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
            fields.append(f"{s.t(key)}: ", style="bold")
            fields.append(f"{value}\n")
        self.query_one("#ticket-fields", Static).update(fields)
        self.query_one("#history-title", Static).update(Text(s.t(T.HISTORY_TITLE)))
        self.query_one(KeyBar).show(T.KEYS_TICKET, s.lang)
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
        table: DataTable[Text] = self.query_one("#history", DataTable)
        table.clear(columns=True)
        for key in HISTORY_COLUMNS:
            table.add_column(Text(s.t(key)), key=key.value)
        if not self.history:
            if self.history is not None:
                table.add_row(Text(s.t(T.HISTORY_EMPTY)), *[Text("")] * 7)
            return
        sentences = history_sentences(self.history, s.lang, s.settings.tz)
        for e, said in zip(self.history, sentences, strict=True):
            method = METHOD_TEXT.get(e.method)
            admission = None if e.admission is None else ADMISSION_TEXT.get(e.admission)
            table.add_row(
                Text(clock_time(e.at, s.settings.tz)), Text(e.gate),
                Text("-") if e.verdict is None else Text(
                    f" {s.t(VERDICT_TEXT[e.verdict])} ", style=VERDICT_STYLE[e.verdict]),
                Text(said),
                Text(e.method if method is None else s.t(method)), Text(e.steward),
                Text(e.note),
                Text(e.admission or "-" if admission is None else s.t(admission)))

    def tell(self, text: str | None, *, error: bool = False) -> None:
        notice = self.query_one("#notice", Banner)
        notice.say(text)
        notice.set_class(error, "-error")

    # --- history ----------------------------------------------------------------------

    def load_history(self) -> None:
        self.session.ask("history", {"ticket_id": self.ticket.ticket_id}, self._history)

    def _history(self, reply: Reply) -> None:
        if not self.is_attached:
            return
        if not reply.ok:
            self.tell(self.session.t(T.DONE_REFUSED, error=reply.error), error=True)
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
            elif reply.reached and supervisor is None and OVERRIDE_HINT in reply.error:
                self.tell(self.session.t(T.DONE_REFUSED, error=reply.error), error=True)
                self.app.push_screen(
                    SupervisorDialog(self.session, reply.error),
                    lambda who: self._admit_because(choice, who) if who else None)
            else:
                self.tell(self.session.t(T.DONE_REFUSED, error=reply.error), error=True)

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
                self.tell(self.session.t(T.DONE_REFUSED, error=reply.error), error=True)

        self.session.ask("deny", {"ticket_id": self.ticket.ticket_id,
                                  "steward": self.session.settings.steward,
                                  "reason": choice.text}, answered, slow=True)
