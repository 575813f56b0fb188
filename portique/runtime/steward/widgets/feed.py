"""The live feed: the gate's decisions, newest first, coloured by verdict."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from rich.text import Text
from textual.widgets import DataTable

from portique.runtime.steward.i18n import T, tr
from portique.runtime.steward.model import VERDICT_TEXT, FeedRow, clock_time
from portique.ticket.reasons import Lang, Verdict

VERDICT_STYLE = {Verdict.ADMIT: "bold black on green", Verdict.REFUSE: "bold white on red",
                 Verdict.STEWARD: "bold black on yellow"}
SENTENCE_STYLE = {Verdict.ADMIT: "green", Verdict.REFUSE: "bold red",
                  Verdict.STEWARD: "yellow"}
COLUMNS = (T.COL_TIME, T.COL_VERDICT, T.COL_TICKET, T.COL_CATEGORY, T.COL_ENTRANCE,
           T.COL_REASON)


class DecisionFeed(DataTable[Text]):
    """One row per decision: time, verdict, ticket, category, entrances, the sentence."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)

    def show(self, rows: Sequence[FeedRow], lang: Lang, tz: tzinfo) -> None:
        self.clear(columns=True)
        for key in COLUMNS:
            self.add_column(Text(tr(key, lang)), key=key.value)
        for row in reversed(rows):
            said = row.sentence(lang)
            if row.steward:
                said = f"{said} {tr(T.BY_STEWARD, lang, steward=row.steward)}"
            self.add_row(
                Text(clock_time(row.at, tz)),
                Text(f" {tr(VERDICT_TEXT[row.verdict], lang):<7} ",
                     style=VERDICT_STYLE[row.verdict]),
                Text(row.ticket_id),
                Text(row.category) if not row.accessible else Text.assemble(
                    row.category, " ", (f"♿ {tr(T.ACCESSIBLE_MARK, lang)}", "bold cyan")),
                Text(row.entrances),
                Text(said, style=SENTENCE_STYLE[row.verdict]),
            )
