"""The live feed: the gate's decisions, newest first, coloured by verdict; each reason
sentence wraps in its column (never cut), whatever the terminal's width."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from portique.runtime.steward.i18n import T, tr
from portique.runtime.steward.model import VERDICT_TEXT, FeedRow, clock_time
from portique.ticket.reasons import Lang, Verdict

VERDICT_STYLE = {Verdict.ADMIT: "bold black on green", Verdict.REFUSE: "bold white on red",
                 Verdict.STEWARD: "bold black on yellow"}
VOIDED_STYLE = "bold white on grey37"
SENTENCE_STYLE = {Verdict.ADMIT: "green", Verdict.REFUSE: "bold red",
                  Verdict.STEWARD: "yellow"}
COLUMNS = (T.COL_TIME, T.COL_VERDICT, T.COL_TICKET, T.COL_CATEGORY, T.COL_ENTRANCE,
           T.COL_REASON)
NARROW = (T.COL_TIME, T.COL_VERDICT, T.COL_TICKET, T.COL_REASON)
"""Below `WIDE` columns the category and entrances leave the table for the detail line."""
WIDE = 110
PADDING = 2
"""A DataTable cell's padding, left and right together."""
SCROLLBAR = 2
MIN_REASON = 20


def row_sentence(row: FeedRow, lang: Lang) -> str:
    """The sentence of a row as the feed says it: who decided, and a voided admission."""
    said = row.sentence(lang)
    if row.steward:
        said = f"{said} {tr(T.BY_STEWARD, lang, steward=row.steward)}"
    if row.voided:
        said = f"{said} ({tr(T.PASSAGE_VOIDED, lang)})"
    return said


def verdict_cell(row: FeedRow, lang: Lang) -> Text:
    if row.voided:
        return Text(f" {tr(T.VERDICT_VOIDED, lang):<7} ", style=VOIDED_STYLE)
    return Text(f" {tr(VERDICT_TEXT[row.verdict], lang):<7} ", style=VERDICT_STYLE[row.verdict])


def ticket_cell(row: FeedRow, lang: Lang) -> Text:
    """The ticket id, and the ACCESSIBLE mark when its ticket has the flag (the ticket
    column is in the table at every width, the category column is not)."""
    if not row.accessible:
        return Text(row.ticket_id)
    return Text.assemble(row.ticket_id, " ", (f"♿ {tr(T.ACCESSIBLE_MARK, lang)}", "bold cyan"))


def fixed_widths(rows: Sequence[FeedRow], lang: Lang, columns: Sequence[T]) -> dict[T, int]:
    """The widths of every column but the reason: the longest of header and cells."""
    cells: dict[T, list[str]] = {
        T.COL_TIME: ["00:00:00"], T.COL_VERDICT: [verdict_cell(r, lang).plain for r in rows],
        T.COL_TICKET: [ticket_cell(r, lang).plain for r in rows],
        T.COL_CATEGORY: [r.category for r in rows],
        T.COL_ENTRANCE: [r.entrances for r in rows]}
    return {key: max([len(tr(key, lang)), *(len(c) for c in cells[key])])
            for key in columns if key is not T.COL_REASON}


class DecisionFeed(DataTable[Text]):
    """One row per decision: time, verdict, ticket, category, entrances, the sentence."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.rows_shown: tuple[FeedRow, ...] = ()
        self._lang: Lang = Lang.EN
        self._tz: tzinfo | None = None

    def show(self, rows: Sequence[FeedRow], lang: Lang, tz: tzinfo) -> None:
        self._lang, self._tz = lang, tz
        self.rows_shown = tuple(reversed(rows))
        cursor = self.cursor_row
        self.clear(columns=True)
        width = self.size.width or self.app.size.width  # not laid out yet: the terminal
        columns = COLUMNS if width >= WIDE else NARROW
        widths = fixed_widths(self.rows_shown, lang, columns)
        reason = max(MIN_REASON, width - SCROLLBAR
                     - sum(w + PADDING for w in widths.values()) - PADDING)
        for key in columns:
            self.add_column(Text(tr(key, lang)), key=key.value,
                            width=reason if key is T.COL_REASON else widths[key])
        for row in self.rows_shown:
            cells = {T.COL_TIME: Text(clock_time(row.at, tz)),
                     T.COL_VERDICT: verdict_cell(row, lang), T.COL_TICKET: ticket_cell(row, lang),
                     T.COL_CATEGORY: Text(row.category), T.COL_ENTRANCE: Text(row.entrances),
                     T.COL_REASON: Text(row_sentence(row, lang),
                                        style=SENTENCE_STYLE[row.verdict])}
            self.add_row(*(cells[key] for key in columns), height=None)
        if self.rows_shown:
            self.move_cursor(row=min(max(cursor, 0), len(self.rows_shown) - 1),
                             animate=False)

    def highlighted(self) -> FeedRow | None:
        if not self.rows_shown or not 0 <= self.cursor_row < len(self.rows_shown):
            return None
        return self.rows_shown[self.cursor_row]

    def on_resize(self, event: events.Resize) -> None:
        if self._tz is not None:
            self.show(tuple(reversed(self.rows_shown)), self._lang, self._tz)


def detail_text(row: FeedRow | None, lang: Lang, tz: tzinfo) -> str:
    """The highlighted decision in full, under the feed: what a narrow table leaves out."""
    if row is None:
        return tr(T.FEED_EMPTY, lang)
    return tr(T.DETAIL_LINE, lang, time=clock_time(row.at, tz), ticket=row.ticket_id,
              category=row.category, entrances=row.entrances,
              sentence=row_sentence(row, lang))
