"""The lookup's results: tickets of the manifest, best match first."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from portique.runtime.steward.i18n import T, tr
from portique.runtime.steward.model import Ticket
from portique.ticket.reasons import Lang

COLUMNS = (T.COL_TICKET, T.COL_HOLDER, T.COL_ORDER, T.COL_CATEGORY, T.COL_ENTRANCE,
           T.COL_MATCH)


class LookupResults(DataTable[Text]):
    """One row per ticket found; Enter on a row opens the ticket."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self.tickets: tuple[Ticket, ...] = ()

    def show(self, tickets: Sequence[Ticket], lang: Lang) -> None:
        self.tickets = tuple(tickets)
        self.clear(columns=True)
        for key in COLUMNS:
            self.add_column(Text(tr(key, lang)), key=key.value)
        for ticket in self.tickets:
            style = "strike red" if ticket.cancelled else ""
            self.add_row(Text(ticket.ticket_id, style=style), Text(ticket.holder),
                         Text(ticket.order_ref), Text(ticket.category),
                         Text(ticket.entrances_text), Text(ticket.match_text(lang)),
                         key=ticket.ticket_id)

    def selected(self) -> Ticket | None:
        if not self.tickets or not 0 <= self.cursor_row < len(self.tickets):
            return None
        return self.tickets[self.cursor_row]
