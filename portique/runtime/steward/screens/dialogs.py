"""Dialogs: the reason of an admit or a deny, and a supervisor's override (id and PIN)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from portique.revocation.lookup import clean_query
from portique.runtime.steward.i18n import T, tr
from portique.runtime.steward.keys import Place, bar_text, bindings
from portique.runtime.steward.model import Ticket, refusal_text
from portique.runtime.steward.session import Session
from portique.ticket.reasons import Lang

MAX_REASON = 200
"""The daemon takes at most 200 printable characters for a reason or an id."""
MAX_ID = 32
"""A supervisor id: 1-32 of A-Z a-z 0-9 . _ - (portique/runtime/supervisors.py)."""
MAX_PIN = 12


class Action(enum.StrEnum):
    ADMIT = "admit"
    DENY = "deny"


PRESETS: dict[Action, tuple[T, ...]] = {
    Action.ADMIT: (T.ADMIT_PAPER, T.ADMIT_PHONE, T.ADMIT_APP, T.ADMIT_ASSISTED),
    Action.DENY: (T.DENY_NOT_HOLDER, T.DENY_NOT_HERE, T.DENY_CONDUCT),
}


@dataclass(frozen=True)
class ReasonChoice:
    """What the steward chose: the reason as journalled, and as shown to them."""

    text: str
    """Sent to the daemon: a preset in English (one spelling in every journal), or the
    steward's own words."""
    shown: str
    paper: bool = False
    """A printed confirmation: the admission is journalled with the paper method."""


def preset_choice(key: T, lang: Lang) -> ReasonChoice:
    return ReasonChoice(tr(key, Lang.EN), tr(key, lang), paper=key is T.ADMIT_PAPER)


class ReasonDialog(ModalScreen[ReasonChoice | None]):
    """Why this admit or deny: a preset (arrows and Enter) or the steward's own words."""

    BINDINGS: ClassVar[list[BindingType]] = bindings(Place.DIALOG)

    def __init__(self, session: Session, action: Action, ticket_id: str) -> None:
        super().__init__()
        self.session, self.action, self.ticket_id = session, action, ticket_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(id="dialog-title", classes="dialog-title")
            yield OptionList(id="presets")
            yield Input(id="other-reason", max_length=MAX_REASON)
            yield Static(id="dialog-keys", classes="dialog-keys")

    def on_mount(self) -> None:
        self.retranslate()
        self.query_one(OptionList).focus()

    def retranslate(self) -> None:
        s = self.session
        title = T.DIALOG_ADMIT_TITLE if self.action is Action.ADMIT else T.DIALOG_DENY_TITLE
        self.query_one("#dialog-title", Static).update(
            Text(s.t(title, ticket_id=self.ticket_id)))
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        options.add_options([Option(Text(s.t(key)), id=key.value)
                             for key in PRESETS[self.action]])
        options.highlighted = 0 if highlighted is None else highlighted
        self.query_one(Input).placeholder = s.t(T.DIALOG_OTHER_PLACEHOLDER)
        self.query_one("#dialog-keys", Static).update(Text(bar_text(s.lang, Place.DIALOG)))

    @on(OptionList.OptionSelected, "#presets")
    def chose_preset(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(preset_choice(T(str(event.option.id)), self.session.lang))

    @on(Input.Submitted, "#other-reason")
    def wrote_reason(self, event: Input.Submitted) -> None:
        text = clean_query(event.value, limit=MAX_REASON)
        if text:
            self.dismiss(ReasonChoice(text, text))

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class Override:
    """A supervisor's id and PIN, as typed into the override dialog."""

    supervisor: str
    pin: str = field(repr=False)


class SupervisorDialog(ModalScreen[Override | None]):
    """The daemon refused a manual admit (the limit, most often): a supervisor's id and
    PIN override it, and the journal records who did. The PIN is masked as it is typed."""

    BINDINGS: ClassVar[list[BindingType]] = bindings(Place.DIALOG)

    def __init__(self, session: Session, refusal: dict[str, object], ticket: Ticket) -> None:
        super().__init__()
        self.session, self.refusal, self.ticket = session, refusal, ticket

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(id="dialog-title", classes="dialog-title")
            yield Static(id="dialog-body")
            yield Input(id="supervisor-id", max_length=MAX_ID)
            yield Input(id="supervisor-pin", max_length=MAX_PIN, password=True)
            yield Static(id="dialog-keys", classes="dialog-keys")

    def on_mount(self) -> None:
        self.retranslate()
        self.query_one("#supervisor-id", Input).focus()

    def retranslate(self) -> None:
        s = self.session
        self.query_one("#dialog-title", Static).update(Text(s.t(T.DIALOG_SUPERVISOR_TITLE)))
        self.query_one("#dialog-body", Static).update(
            Text(s.t(T.DIALOG_SUPERVISOR_BODY, error=refusal_text(
                self.refusal, s.lang, ticket_id=self.ticket.ticket_id,
                entrances=self.ticket.entrances_text))))
        self.query_one("#supervisor-id", Input).placeholder = \
            s.t(T.DIALOG_SUPERVISOR_PLACEHOLDER)
        self.query_one("#supervisor-pin", Input).placeholder = \
            s.t(T.DIALOG_SUPERVISOR_PIN_PLACEHOLDER)
        self.query_one("#dialog-keys", Static).update(Text(bar_text(s.lang, Place.DIALOG)))

    @on(Input.Submitted, "#supervisor-id")
    def entered_id(self, event: Input.Submitted) -> None:
        if clean_query(event.value, limit=MAX_ID):
            self.query_one("#supervisor-pin", Input).focus()

    @on(Input.Submitted, "#supervisor-pin")
    def entered_pin(self, event: Input.Submitted) -> None:
        supervisor = clean_query(self.query_one("#supervisor-id", Input).value, limit=MAX_ID)
        pin = event.value.strip()
        if not supervisor:
            self.query_one("#supervisor-id", Input).focus()
        elif pin:
            self.dismiss(Override(supervisor, pin))

    def action_cancel(self) -> None:
        self.dismiss(None)
