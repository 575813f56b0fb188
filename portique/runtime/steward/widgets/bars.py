"""One-line bars: the banners (fire alarm, camera, daemon link), the notice line, the
status and the keys."""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

from portique.runtime.steward.i18n import T, tr
from portique.runtime.steward.keys import Place, bar_text
from portique.runtime.steward.model import GateStatus, age_text
from portique.ticket.reasons import Lang


class Banner(Static):
    """A banner across the screen, shown only while it has something to say."""

    def say(self, text: str | None) -> None:
        self.update(Text(text or ""))
        self.set_class(bool(text), "-shown")


class Notice(Banner):
    """What the steward's last action gave (sent, admitted, refused...): it goes away by
    itself after `seconds` (an error stays three times as long), or when the next notice
    replaces it."""

    _timer: Timer | None = None

    def tell(self, text: str | None, *, error: bool, seconds: float) -> None:
        self.say(text)
        self.set_class(error, "-error")
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if text:
            self._timer = self.set_timer(seconds * (3 if error else 1), self._expire)

    def _expire(self) -> None:
        self._timer = None
        self.say(None)
        self.remove_class("-error")

    @property
    def shown(self) -> bool:
        return self.has_class("-shown")


def stale_time(at: datetime | None, tz: tzinfo) -> str:
    return "--:--:--" if at is None else at.astimezone(tz).strftime("%H:%M:%S")


class StatusBar(Static):
    """Feed sequence and age, clock trust, camera frames per second, counts; while the
    gate cannot be reached, the same values marked as the last known, dimmed."""

    def show(self, status: GateStatus | None, lang: Lang, steward: str, *,
             stale_since: str | None = None) -> None:
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
        for zone, session, inside in status.zones:
            parts.append(Text(tr(T.STATUS_ZONE, lang, zone=zone, session=session,
                                 inside=inside)))
        if status.ready_ok is not None:
            parts.append(Text(tr(T.STATUS_READY, lang)) if status.ready_ok
                         else Text(tr(T.STATUS_NOT_READY, lang), style="bold yellow"))
        parts.append(Text(tr(T.STATUS_STEWARD, lang, steward=steward)))
        line = Text(" │ ").join(parts)
        if stale_since is not None:
            line = Text.assemble(Text(tr(T.STALE_STATUS, lang, time=stale_since),
                                      style="bold reverse"), " ", line)
            line.stylize("dim", len(line.plain) - len(Text(" │ ").join(parts).plain))
        self.set_class(stale_since is not None, "-stale")
        self.update(line)


class KeyBar(Static):
    """The keys of the screen, in the steward's language (from steward/keys.py)."""

    def show(self, lang: Lang, *places: Place) -> None:
        self.update(Text(bar_text(lang, *places)))
