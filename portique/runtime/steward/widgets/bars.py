"""One-line bars: the banners (fire alarm, camera, daemon link), the status and the keys."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from portique.runtime.steward.i18n import T, tr
from portique.runtime.steward.model import GateStatus, age_text
from portique.ticket.reasons import Lang


class Banner(Static):
    """A banner across the screen, shown only while it has something to say."""

    def say(self, text: str | None) -> None:
        self.update(Text(text or ""))
        self.set_class(bool(text), "-shown")


class StatusBar(Static):
    """Feed sequence and age, clock trust, camera frames per second, counts."""

    def show(self, status: GateStatus | None, lang: Lang, steward: str) -> None:
        if status is None:
            self.update(Text(tr(T.STATUS_WAITING, lang)))
            return
        parts: list[Text] = []
        if status.feed_sequence is None:
            parts.append(Text(tr(T.STATUS_NO_FEED, lang), style="bold yellow"))
        else:
            parts.append(Text(tr(T.STATUS_FEED, lang, sequence=status.feed_sequence,
                                 age=age_text(status.feed_age_s or 0.0, lang))))
        parts.append(Text(tr(T.STATUS_CLOCK_OK, lang)) if status.clock_trusted
                     else Text(tr(T.STATUS_CLOCK_BAD, lang), style="bold red"))
        parts.append(Text(tr(T.STATUS_CAMERA, lang, fps=f"{status.camera_fps:.1f}"),
                          style="bold red" if status.camera_lost else ""))
        parts.append(Text(tr(T.STATUS_COUNTS, lang, admitted=status.admitted,
                             refused=status.refused, steward=status.steward_calls)))
        if status.ready_ok is not None:
            parts.append(Text(tr(T.STATUS_READY, lang)) if status.ready_ok
                         else Text(tr(T.STATUS_NOT_READY, lang), style="bold yellow"))
        parts.append(Text(tr(T.STATUS_STEWARD, lang, steward=steward)))
        self.update(Text(" │ ").join(parts))


class KeyBar(Static):
    """The keys of the screen, in the steward's language."""

    def show(self, key: T, lang: Lang) -> None:
        self.update(Text(tr(key, lang)))
