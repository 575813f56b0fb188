"""A ticket's history at this gate: one row per journalled decision, fitted to the
terminal's width (the reason and the note wrap, never cut; a narrow terminal stacks the
gate under the time, the admission under the verdict, the steward under the method)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from portique.runtime.steward.i18n import T, tr
from portique.runtime.steward.model import (
    ADMISSION_TEXT,
    METHOD_TEXT,
    VERDICT_TEXT,
    HistoryEntry,
    clock_time,
    history_sentences,
    note_text,
)
from portique.runtime.steward.widgets.feed import PADDING, SCROLLBAR, VERDICT_STYLE, WIDE
from portique.ticket.reasons import Lang

COLUMNS = (T.COL_TIME, T.COL_GATE, T.COL_VERDICT, T.COL_REASON, T.COL_METHOD,
           T.COL_STEWARD, T.COL_NOTE, T.COL_ADMISSION)
NARROW = (T.COL_TIME, T.COL_VERDICT, T.COL_REASON, T.COL_METHOD, T.COL_NOTE)
"""Below `WIDE` columns: time over gate, verdict over admission, method over steward."""
WRAPPED = (T.COL_REASON, T.COL_NOTE)
MIN_WRAPPED = 12


class HistoryTable(DataTable[Text]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self.entries: tuple[HistoryEntry, ...] | None = None
        self._lang: Lang = Lang.EN
        self._tz: tzinfo | None = None

    def show(self, entries: Sequence[HistoryEntry] | None, lang: Lang, tz: tzinfo) -> None:
        """`entries` latest first; None while they are being loaded."""
        self.entries = None if entries is None else tuple(entries)
        self._lang, self._tz = lang, tz
        self.clear(columns=True)
        width = self.size.width or self.app.size.width  # not laid out yet: the terminal
        narrow = width < WIDE
        columns = NARROW if narrow else COLUMNS
        rows = self._cells(lang, tz, narrow=narrow)
        widths = {key: max([len(line) for row in rows for line in row[key].plain.split("\n")]
                           + [len(tr(key, lang))])
                  for key in columns if key not in WRAPPED}
        left = max(2 * MIN_WRAPPED, width - SCROLLBAR - PADDING * len(columns)
                   - sum(widths.values()))
        widths[T.COL_REASON] = max(MIN_WRAPPED, left * 3 // 5)
        widths[T.COL_NOTE] = max(MIN_WRAPPED, left - widths[T.COL_REASON])
        for key in columns:
            self.add_column(Text(tr(key, lang)), key=key.value, width=widths[key])
        if self.entries is not None and not self.entries:
            empty = {key: Text("") for key in columns}
            empty[T.COL_REASON] = Text(tr(T.HISTORY_EMPTY, lang))
            self.add_row(*(empty[key] for key in columns), height=None)
        for row in rows:
            self.add_row(*(row[key] for key in columns), height=None)

    def _cells(self, lang: Lang, tz: tzinfo, *, narrow: bool) -> list[dict[T, Text]]:
        if not self.entries:
            return []
        out = []
        sentences = history_sentences(self.entries, lang, tz)
        for e, said in zip(self.entries, sentences, strict=True):
            method = METHOD_TEXT.get(e.method)
            admission = None if e.admission is None else ADMISSION_TEXT.get(e.admission)
            admission_said = e.admission or "-" if admission is None else tr(admission, lang)
            verdict = Text("-") if e.verdict is None else Text(
                f" {tr(VERDICT_TEXT[e.verdict], lang)} ", style=VERDICT_STYLE[e.verdict])
            cells = {
                T.COL_TIME: Text(clock_time(e.at, tz)), T.COL_GATE: Text(e.gate),
                T.COL_VERDICT: verdict, T.COL_REASON: Text(said),
                T.COL_METHOD: Text(e.method if method is None else tr(method, lang)),
                T.COL_STEWARD: Text(e.steward),
                T.COL_NOTE: Text(e.note if e.note == "-" else note_text(e.note, lang)),
                T.COL_ADMISSION: Text(admission_said)}
            if narrow:
                cells[T.COL_TIME] = Text.assemble(cells[T.COL_TIME], "\n",
                                                  Text(f"{tr(T.COL_GATE, lang)} {e.gate}"))
                cells[T.COL_VERDICT] = Text.assemble(verdict, "\n", admission_said)
                cells[T.COL_METHOD] = Text.assemble(cells[T.COL_METHOD], "\n", e.steward)
            out.append(cells)
        return out

    def on_resize(self, event: events.Resize) -> None:
        if self._tz is not None:
            self.show(self.entries, self._lang, self._tz)
