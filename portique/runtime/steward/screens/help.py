"""The help (F1 or ?): every key of every screen, in the steward's language, from the one
key table (steward/keys.py)."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from portique.runtime.steward.i18n import T
from portique.runtime.steward.keys import help_rows
from portique.runtime.steward.session import Session


class HelpScreen(ModalScreen[None]):
    """Every key, by where it works; Esc (or F1, ?) closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,question_mark", "close", show=False, priority=True)]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            yield Static(id="help-title", classes="dialog-title")
            yield Static(id="help-keys")
            yield Static(id="help-close", classes="dialog-keys")

    def on_mount(self) -> None:
        self.retranslate()
        self.query_one("#help").focus()  # arrows and Page Down scroll a short terminal

    def retranslate(self) -> None:
        s = self.session
        self.query_one("#help-title", Static).update(Text(s.t(T.HELP_TITLE)))
        rows = help_rows(s.lang)
        width = max(len(keys) for _, entries in rows for keys, _ in entries)
        parts: list[RenderableType] = []
        for title, entries in rows:
            parts.append(Text(title, style="bold underline"))
            grid = Table.grid(padding=(0, 2))
            grid.add_column(width=width + 2, no_wrap=True, style="bold")
            grid.add_column(ratio=1)
            for keys, what in entries:
                grid.add_row(Text(f"  {keys}"), Text(what))
            parts.append(grid)
        self.query_one("#help-keys", Static).update(Group(*parts))
        self.query_one("#help-close", Static).update(Text(s.t(T.HELP_CLOSE)))

    def action_close(self) -> None:
        self.dismiss()
