"""A real gate for the steward UI's tests: the recorded clips' gate, built in-process with
portique.runtime.wiring (real decoder, real SQLite journal, real control socket, gpiozero mock
pins),
and a real signed manifest feed published with `gate feed publish` and applied to a real
feed store."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import tempfile
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from rich.text import Text
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from portique import keyfiles
from portique.commands.main import EXIT_OK, main
from portique.devtools.simulation import SimulatedRun
from portique.revocation.format import parse_index
from portique.revocation.store import FeedFile, FeedStore
from portique.runtime import supervisors
from portique.runtime.config import Config, load
from portique.runtime.steward.app import StewardApp
from portique.runtime.steward.client import GateLink, LinkTimings
from portique.runtime.steward.session import Settings
from portique.runtime.wiring import GateApp, RunOptions, build
from portique.ticket.reasons import Lang

FIXTURES = Path(__file__).parents[1] / "fixtures"
EVENT = "PAR24-ATH05"
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
FEED_AT = 1722870000  # 2024-08-05 17:00 Paris, before the clips
FIRE_LOOP_PIN = 25
SUPERVISOR, SUPERVISOR_PIN = "sup-9", "470213"
"""The supervisor in every test gate's supervisors file, and their PIN."""

MANIFEST_CSV = """ticket_id,generation,order_ref,holder_name,category,entrances,flags
PAR24-000101,0,ORD-5501,Hélène Dupont,CAT-B,2,
PAR24-000102,0,ORD-5502,Bruno Lefèvre,CAT-B,2,
PAR24-000103,0,ORD-5503,Chloé Martin,CAT-C,2,paper
PAR24-000104,0,ORD-5504,Dev Patel,CAT-B,2,
PAR24-000105,0,ORD-5505,Emma Nguyễn,CAT-B,2,accessible
PAR24-000106,1,ORD-5506,Farid Benali,CAT-B,2,
PAR24-000107,0,ORD-5507,Gaël Le Goff,CAT-B,5,
PAR24-000108,0,ORD-5508,Hana Sato,CAT-B,2,
PAR24-000109,0,ORD-5509,Inès Dupond,CAT-B,2,
PAR24-000199,0,ORD-5599,Zoé Lambert,CAT-A,2,
"""
REVOCATIONS_CSV = """ticket_id,min_generation
PAR24-000106,1
PAR24-000199,cancelled
"""

GATE_TOML = """
[gate]
id = "1"
event = "PAR24-ATH05"
entrance = 2
timezone = "Europe/Paris"

[keys]
trust_dir = "{keys}"

[feeds]
store = "{store}"
base_url = "http://127.0.0.1:9/"

[journal]
path = "{journal}"

[control]
socket = "{socket}"

[clock]
source = "always"

[steward]
manual_admit_limit = {limit}
manual_admit_window_s = 600
language = "{language}"
supervisors = "{supervisors}"

[hardware]
pin_factory = "mock"
on_stop = "fail_safe"
lock_active_high = false
open_timeout_s = 8.0

[hardware.pins]
lock = 17
green = 27
red = 22
buzzer = 23
passage = 24
fire_loop = 25
"""


@dataclass(frozen=True)
class Feed:
    keys: Path
    """The clips' trust folder plus the feed key's public half."""
    store: Path
    """A feed store holding the published manifest (copy it before use)."""


@pytest.fixture(scope="session")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Feed:
    base = tmp_path_factory.mktemp("feed")
    keys = base / "keys"
    shutil.copytree(FIXTURES / "keys", keys, ignore=shutil.ignore_patterns("*.key"))
    assert main(["keys", "new", "--kid", "feed-steward", "--role", "feed", "--out",
                 str(base / "feed-key")]) == EXIT_OK
    shutil.copy(base / "feed-key" / "feed-steward.pub", keys)
    (base / "manifest.csv").write_text(MANIFEST_CSV, encoding="utf-8")
    (base / "revocations.csv").write_text(REVOCATIONS_CSV, encoding="utf-8")
    assert main(["feed", "publish", "--event", EVENT, "--revocations",
                 str(base / "revocations.csv"), "--manifest", str(base / "manifest.csv"),
                 "--key", str(base / "feed-key" / "feed-steward.key"), "--out",
                 str(base / "www"), "--at", str(FEED_AT)]) == EXIT_OK
    folder = base / "www" / EVENT
    index = parse_index((folder / "index.json").read_bytes(),
                        trust=keyfiles.load_trust_dir(keys, role=None), event=EVENT)
    store = base / "feeds.sqlite"
    with FeedStore.open(store) as opened:
        opened.apply(index, [FeedFile(index.snapshot, folder / index.snapshot.name)],
                     fetched_at=FEED_AT + 60)
    return Feed(keys, store)


@dataclass
class LiveGate:
    """A running gate: its app, its pins, where its socket and journal are."""

    app: GateApp
    pins: MockFactory
    config: Path
    socket: Path
    journal: Path

    def run_clip(self) -> None:
        """Play the clip to its end (decisions, passages, on the real bus)."""
        self.app.run()

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of the gate's journal, read through a separate SQLite connection."""
        db = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def fire_loop(self, *, open_: bool) -> None:
        pin = self.pins.pin(FIRE_LOOP_PIN)
        pin.drive_high() if open_ else pin.drive_low()


def short_socket_path() -> Path:
    """A control socket path short enough for AF_UNIX (108 bytes), in a fresh folder."""
    return Path(tempfile.mkdtemp(prefix="stw", dir="/tmp")) / "control.sock"


def write_config(feed: Feed, state: Path, *, socket: Path, limit: int = 10,
                 language: str = "en") -> Path:
    state.mkdir(parents=True, exist_ok=True)
    store = state / "feeds.sqlite"
    if not store.exists():
        shutil.copy(feed.store, store)
    config = state / "gate.toml"
    supervisors_file = state / "supervisors.toml"
    if not supervisors_file.exists():
        supervisors.set_pin(supervisors_file, SUPERVISOR, SUPERVISOR_PIN)
    config.write_text(GATE_TOML.format(keys=feed.keys, store=store,
                                       journal=state / "journal.sqlite", socket=socket,
                                       limit=limit, language=language,
                                       supervisors=supervisors_file), encoding="utf-8")
    return config


def make_gate(feed: Feed, state: Path, *, clip: str = "second_scan", limit: int = 10,
              language: str = "en", socket: Path | None = None) -> LiveGate:
    config = write_config(feed, state, socket=socket or short_socket_path(), limit=limit,
                          language=language)
    loaded = load(config)
    pins = MockFactory()
    app = build(loaded, SimulatedRun(replay=FIXTURES / "clips" / clip, fast=True,
                                   simulate_passage_s=0.2), pin_factory=pins)
    return LiveGate(app, pins, config, loaded.control.socket, loaded.journal.path)


@contextlib.contextmanager
def serving(config: Config, run: RunOptions, *, loop: bool = False) -> Iterator[GateApp]:
    """A gate built on mock pins from `config`, its control socket serving; with `loop`
    its own run loop too, in a thread (a training gate, which never ends by itself).
    Closed, its pins and its socket's folder gone, on the way out."""
    pins = MockFactory()
    app = build(config, run, pin_factory=pins)
    runner = threading.Thread(target=app.run) if loop else None
    if runner is not None:
        runner.start()
    try:
        yield app
    finally:
        app.close()
        if runner is not None:
            runner.join(timeout=30)
        pins.close()
        shutil.rmtree(config.control.socket.parent, ignore_errors=True)
    assert runner is None or not runner.is_alive()


@contextlib.contextmanager
def _closing(live: LiveGate) -> Iterator[LiveGate]:
    try:
        yield live
    finally:
        live.app.close()
        live.pins.close()
        shutil.rmtree(live.socket.parent, ignore_errors=True)


@pytest.fixture
def gate(feed: Feed, tmp_path: Path) -> Iterator[LiveGate]:
    with _closing(make_gate(feed, tmp_path / "state")) as live:
        yield live


@pytest.fixture
def limited_gate(feed: Feed, tmp_path: Path) -> Iterator[LiveGate]:
    """A gate whose stewards may admit one ticket by hand per window."""
    with _closing(make_gate(feed, tmp_path / "state", limit=1)) as live:
        yield live


FAST = LinkTimings(connect_s=3.0, slow_s=30.0, idle_s=5.0, status_every=0.3,
                   backoff_first=0.2, backoff_max=1.0)


def steward_app(socket: Path, *, steward: str = "s-17", lang: Lang = Lang.EN) -> StewardApp:
    return StewardApp(Settings(socket=socket, steward=steward, lang=lang, tz=PARIS),
                      GateLink(socket, FAST))


async def until(pilot: Pilot[Any], ready: Callable[[], bool], what: str,
                limit_s: float = 20.0) -> None:
    """Let the app run until `ready()`; fail naming `what` if it never comes."""
    deadline = time.monotonic() + limit_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}\n--- screen ---\n"
                                 f"{screen_text(pilot.app)}")
        await pilot.pause(0.05)


def in_thread(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


async def join(thread: threading.Thread) -> None:
    await asyncio.get_running_loop().run_in_executor(None, thread.join, 30)


def widget_text(widget: object) -> str:
    if isinstance(widget, DataTable):
        lines = []
        for index in range(widget.row_count):
            cells = widget.get_row_at(index)
            lines.append("  ".join(c.plain if isinstance(c, Text) else str(c)
                                   for c in cells))
        return "\n".join(lines)
    if isinstance(widget, Input):
        return widget.value
    if isinstance(widget, Static):
        return str(widget.render())
    return ""


def screen_text(app: App[Any]) -> str:
    """Every text the current screen shows (displayed widgets only), top to bottom."""
    parts = []
    for widget in app.screen.walk_children():
        if getattr(widget, "display", True) and widget_text(widget):
            parts.append(widget_text(widget))
    return "\n".join(parts)
