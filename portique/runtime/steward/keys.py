"""Every key of the steward UI, in one table: the screens' bindings, the key bars and the
help screen (F1 or ?) are all made from it, so a new key is one line here (and its
``action_*`` method on the screen that owns it).

A key belongs to a place: everywhere (the app), the main screen, a ticket's screen, a
dialog or the help itself. Keys without an action are the widgets' own (Enter opens the
highlighted row, Tab moves between panes): they are listed so the help tells every key.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from textual.binding import Binding, BindingType

from portique.runtime.steward.i18n import T, tr
from portique.ticket.reasons import Lang


class Place(enum.StrEnum):
    """Where a key works; the help lists them in this order."""

    EVERYWHERE = "everywhere"
    MAIN = "main"
    TICKET = "ticket"
    DIALOG = "dialog"
    READY = "ready"
    """F6's checklist: its one key, Esc, is the ticket screen's, and the help says so
    under the ticket's title instead of a section of its own (it fits at 80x24)."""


PLACE_TITLE = {Place.EVERYWHERE: T.HELP_EVERYWHERE, Place.MAIN: T.HELP_MAIN,
               Place.TICKET: T.HELP_TICKET, Place.DIALOG: T.HELP_DIALOG}


@dataclass(frozen=True)
class Key:
    place: Place
    keys: str
    """Textual's key names, comma-separated (several keys for one action)."""
    action: str | None
    """The ``action_*`` name without the prefix; None: the widget's own key."""
    label: T
    """What it does, in the help."""
    bar: T | None = None
    """Its short word in the screen's key bar; None: only in the help."""
    priority: bool = False
    """Works even while a text field has the focus (function keys and Ctrl only: a
    printable key must still reach the field)."""


KEYMAP: tuple[Key, ...] = (
    Key(Place.EVERYWHERE, "f1,question_mark", "help", T.HELP_KEY_HELP, T.BAR_HELP),
    Key(Place.EVERYWHERE, "f3", "live", T.HELP_KEY_LIVE, T.BAR_LIVE, priority=True),
    Key(Place.EVERYWHERE, "f4", "switch_language", T.HELP_KEY_LANGUAGE, T.BAR_LANGUAGE,
        priority=True),
    Key(Place.EVERYWHERE, "f6", "show_ready", T.HELP_KEY_READY, T.BAR_READY, priority=True),
    Key(Place.EVERYWHERE, "f8", "acknowledge_fire_alarm", T.HELP_KEY_ACK, T.BAR_ACK,
        priority=True),
    Key(Place.EVERYWHERE, "ctrl+q", "quit", T.HELP_KEY_QUIT, T.BAR_QUIT, priority=True),
    Key(Place.MAIN, "f2", "focus_lookup", T.HELP_KEY_LOOKUP, T.BAR_LOOKUP, priority=True),
    Key(Place.MAIN, "enter", None, T.HELP_KEY_OPEN, T.BAR_OPEN),
    Key(Place.MAIN, "up,down", None, T.HELP_KEY_ROWS),
    Key(Place.MAIN, "tab", None, T.HELP_KEY_TAB),
    Key(Place.TICKET, "a", "admit", T.HELP_KEY_ADMIT, T.BAR_ADMIT),
    Key(Place.TICKET, "d", "deny", T.HELP_KEY_DENY, T.BAR_DENY),
    Key(Place.TICKET, "escape", "back", T.HELP_KEY_BACK, T.BAR_BACK),
    Key(Place.DIALOG, "up,down", None, T.HELP_KEY_PRESET),
    Key(Place.DIALOG, "enter", None, T.HELP_KEY_CONFIRM, T.BAR_CONFIRM),
    Key(Place.DIALOG, "escape", "cancel", T.HELP_KEY_CANCEL, T.BAR_CANCEL),
    Key(Place.READY, "escape", "back", T.HELP_KEY_BACK, T.BAR_BACK),
)
"""Every key, in the order the help and the key bars show them."""

KEY_NAMES: dict[str, tuple[str, str]] = {
    # Textual's name: (French, English) as printed on the keyboard
    "enter": ("Entrée", "Enter"), "escape": ("Échap", "Esc"), "tab": ("Tab", "Tab"),
    "question_mark": ("?", "?"), "ctrl+q": ("Ctrl+Q", "Ctrl+Q"), "up": ("↑", "↑"),
    "down": ("↓", "↓"),
}


def key_name(key: str, lang: Lang) -> str:
    """A key as the steward finds it on the keyboard: F1, Entrée/Enter, A, ?."""
    names = KEY_NAMES.get(key)
    if names is not None:
        return names[0] if lang is Lang.FR else names[1]
    return key.upper()


def keys_text(entry: Key, lang: Lang) -> str:
    return " ".join(key_name(k, lang) for k in entry.keys.split(","))


def bindings(*places: Place) -> list[BindingType]:
    """The Textual bindings of the keys of `places` that have an action."""
    return [Binding(k.keys, k.action, tr(k.label, Lang.EN), show=False, priority=k.priority)
            for k in KEYMAP if k.place in places and k.action is not None]


def bar_text(lang: Lang, *places: Place) -> str:
    """The key bar of a screen: its own keys first, then the ones that work everywhere."""
    shown = [k for place in (*places, Place.EVERYWHERE) for k in KEYMAP
             if k.place is place and k.bar is not None]
    return " · ".join(f"{keys_text(k, lang)} {tr(k.bar, lang)}" for k in shown
                      if k.bar is not None)


def help_rows(lang: Lang) -> list[tuple[str, list[tuple[str, str]]]]:
    """The help screen's content: per place, its title and (keys, what they do)."""
    return [(tr(PLACE_TITLE[place], lang),
             [(keys_text(k, lang), tr(k.label, lang)) for k in KEYMAP if k.place is place])
            for place in Place if place in PLACE_TITLE]
