"""The main screen: banners, the live feed of decisions, the manual lookup, the status."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from portique.revocation.lookup import MAX_QUERY, clean_query
from portique.runtime.steward.i18n import T
from portique.runtime.steward.keys import Place, bindings
from portique.runtime.steward.messages import Reply
from portique.runtime.steward.model import (
    Ticket,
    camera_state_text,
    link_error_text,
    refusal_text,
)
from portique.runtime.steward.screens.ticket import TicketScreen
from portique.runtime.steward.session import Session
from portique.runtime.steward.widgets.bars import Banner, KeyBar, Notice, StatusBar, stale_time
from portique.runtime.steward.widgets.feed import DecisionFeed, detail_text
from portique.runtime.steward.widgets.results import LookupResults

LOOKUP_LIMIT = 20


class MainScreen(Screen[None]):
    """What a steward watches all day, and where a lookup starts."""

    BINDINGS: ClassVar[list[BindingType]] = bindings(Place.MAIN)
    AUTO_FOCUS = "#lookup-input"

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.query_text = ""
        self.lookup_note: tuple[T, dict[str, object]] = (T.LOOKUP_HINT, {})
        self.ready = False
        """Composed: until then the link's news waits in the session (shown at mount)."""

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Banner(id="training-banner", classes="banner")
        yield Banner(id="link-banner", classes="banner")
        yield Banner(id="fire-banner", classes="banner")
        yield Banner(id="camera-banner", classes="banner")
        yield Banner(id="no-feed-banner", classes="banner")
        yield Notice(id="notice")
        with Vertical(id="body"):
            with Vertical(id="feed-pane"):
                yield Static(id="feed-title", classes="pane-title")
                yield DecisionFeed(id="feed")
                yield Static(id="feed-detail")
            with Vertical(id="lookup-pane"):
                yield Static(id="lookup-title", classes="pane-title")
                with Horizontal(id="lookup-row"):
                    yield Input(id="lookup-input", max_length=MAX_QUERY)
                    yield Static(id="lookup-note")
                yield LookupResults(id="results")
        yield StatusBar(id="status-bar")
        yield KeyBar(id="key-bar")

    def on_mount(self) -> None:
        self.ready = True
        self.retranslate()

    # --- showing ----------------------------------------------------------------------

    def retranslate(self) -> None:
        s = self.session
        self.query_one("#feed-title", Static).update(Text(s.t(T.FEED_TITLE)))
        self.query_one("#lookup-title", Static).update(Text(s.t(T.LOOKUP_TITLE)))
        self.query_one("#lookup-input", Input).placeholder = s.t(T.LOOKUP_PLACEHOLDER)
        self.query_one(KeyBar).show(s.lang, Place.MAIN)
        results = self.query_one(LookupResults)
        results.show(results.tickets, s.lang)
        self.show_lookup_note()
        self.show_state()
        self.show_feed()

    def shown(self) -> bool:
        """Mounted and still attached (a status that arrives before the mount, or while the
        app closes, must leave the screen alone)."""
        return self.ready and self.is_attached

    def show_state(self) -> None:
        try:
            self._show_state()
        except NoMatches:
            # Once mounted, the screen's widgets go away only when the app closes: a status
            # that was already on its way finds them half removed, and has nothing to show.
            return

    def _show_state(self) -> None:
        """Title, banners and status bar from the session's latest status and link."""
        if not self.shown():
            return
        s = self.session
        status = s.status
        stale = None if s.link_up or status is None else stale_time(s.status_at,
                                                                     s.settings.tz)
        if status is not None:
            self.query_one("#title", Static).update(Text(s.t(
                T.GATE_LINE, gate=status.gate, event=status.event, entrance=status.entrance,
                steward=s.settings.steward), style="dim" if stale else "bold"))
        link = self.query_one("#link-banner", Banner)
        if s.link_up:
            link.say(None)
        elif s.link_error is None:
            link.say(s.t(T.BANNER_LINK_CONNECTING, path=s.settings.socket))
        else:
            error = link_error_text(s.link_kind, s.link_error, s.lang)
            link.say(s.t(T.BANNER_LINK_DOWN, path=s.settings.socket, error=error,
                         seconds=f"{s.link_retry:g}"))
        fire = None
        camera = None
        if status is not None:
            if status.fire_active:
                fire = s.t(T.BANNER_FIRE_ACTIVE)
            elif status.fire_latched:
                fire = s.t(T.BANNER_FIRE_LATCHED)
            if status.camera_lost:
                camera = s.t(T.BANNER_CAMERA,
                             state=camera_state_text(status.camera_state, s.lang),
                             device=status.camera_device or "?",
                             why=status.camera_why or "-")
        if stale is not None:  # what the gate said last, not what it is now
            fire, camera = (None if text is None else s.t(T.STALE_BANNER, text=text,
                                                           time=stale)
                            for text in (fire, camera))
        self.query_one("#fire-banner", Banner).say(fire)
        self.query_one("#camera-banner", Banner).say(camera)
        self.query_one("#no-feed-banner", Banner).say(
            s.t(T.BANNER_NO_FEED) if status is not None and status.feed_waived else None)
        self.query_one("#training-banner", Banner).say(
            s.t(T.BANNER_TRAINING) if status is not None and status.training else None)
        self.query_one(StatusBar).show(status, s.lang, s.settings.steward,
                                       stale_since=stale)

    def show_feed(self) -> None:
        if not self.shown():
            return
        self.query_one(DecisionFeed).show(list(self.session.rows), self.session.lang,
                                          self.session.settings.tz)
        self.show_detail()

    def show_detail(self) -> None:
        feed = self.query_one(DecisionFeed)
        self.query_one("#feed-detail", Static).update(Text(detail_text(
            feed.highlighted(), self.session.lang, self.session.settings.tz)))

    @on(DataTable.RowHighlighted, "#feed")
    def feed_moved(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def focus_feed(self) -> None:
        """F3: the live list, its cursor on the latest decision."""
        feed = self.query_one(DecisionFeed)
        feed.focus()
        if feed.row_count:
            feed.move_cursor(row=0, animate=False)
        self.show_detail()

    def show_lookup_note(self) -> None:
        key, values = self.lookup_note
        self.query_one("#lookup-note", Static).update(Text(self.session.t(key, **values)))

    def tell(self, text: str | None, *, error: bool = False) -> None:
        if not self.shown():
            return
        self.query_one(Notice).tell(text, error=error, seconds=self.session.settings.notice_s)

    # --- lookup -----------------------------------------------------------------------

    def action_focus_lookup(self) -> None:
        """To the lookup, its text selected: what the steward types replaces it."""
        field = self.query_one("#lookup-input", Input)
        field.focus()
        field.select_all()

    @on(Input.Submitted, "#lookup-input")
    def lookup(self, event: Input.Submitted) -> None:
        self.search(event.value)

    def search(self, raw: str) -> None:
        query = clean_query(raw)
        if not query:
            return
        self.query_text = query
        self.lookup_note = (T.LOOKUP_SEARCHING, {"query": query})
        self.show_lookup_note()
        self.session.ask("lookup", {"query": query, "limit": LOOKUP_LIMIT},
                         self._looked_up)

    def _looked_up(self, reply: Reply) -> None:
        if not self.is_attached:
            return
        results = self.query_one(LookupResults)
        if not reply.ok:
            self.lookup_note = (T.LOOKUP_FAILED,
                                {"error": refusal_text(reply.answer, self.session.lang)})
            results.show((), self.session.lang)
        else:
            raw = reply.answer.get("candidates")
            found = [Ticket.from_json(c) for c in raw if isinstance(c, dict)] \
                if isinstance(raw, list) else []
            results.show(found[:LOOKUP_LIMIT], self.session.lang)
            if found:
                self.lookup_note = (T.LOOKUP_COUNT, {"count": len(found),
                                                      "query": self.query_text})
                results.focus()
            else:
                self.lookup_note = (T.LOOKUP_NONE, {"query": self.query_text})
        self.show_lookup_note()

    @on(DataTable.RowSelected, "#results")
    def open_ticket(self, event: DataTable.RowSelected) -> None:
        ticket = self.query_one(LookupResults).selected()
        if ticket is not None:
            self.app.push_screen(TicketScreen(self.session, ticket))

    @on(DataTable.RowSelected, "#feed")
    def look_up_feed_row(self, event: DataTable.RowSelected) -> None:
        row = self.query_one(DecisionFeed).highlighted()
        if row is not None and row.ticket_id != "-":
            self.query_one("#lookup-input", Input).value = row.ticket_id
            self.search(row.ticket_id)
