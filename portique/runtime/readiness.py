"""Ready for doors: the checklist a gate must pass before the public arrives.

One verdict per line, in a fixed order (`CHECKS`); the gate is ready only when every line
passes. The running gate computes it with every status (``status["ready"]``, shape
``{"ok": bool, "checks": [{"name", "ok", "detail"}, ...]}``), ``gate ready`` prints it
and exits 0 only when it is ready, the steward UI shows it, and the metrics export it
(``portique_ready`` and ``portique_ready_check{check=...}``). When the gate is not
running, ``gate ready`` runs the checks it can from the config and the files alone
(`offline_report`), says so in a line of its own, and is never ready.

Each line passes when:

- feed: the revocation feed of every session of the venue's day that is not closed yet
  (the one in force and those to come today, `events_of_the_day`) was heard from the feed
  server within ``feeds.ready_max_age_s``; the line names the stale or missing one. A
  gate whose config says ``feeds.required = false`` passes, with the warning that resold
  tickets cannot be refused.
- keys: an issuer key usable for the event now stays valid to the end of the venue's day.
- clock: the gate's clock is trusted.
- camera: the camera delivers (state ``ok``, frames/s above 0) and the
  recent frames are neither too dark, nor blown out, nor blurred (portique.scanner.quality).
- relay: the lock relay's feedback contact agrees with the command (not wired: passes,
  saying it was not checked).
- fire_loop: the fire-alarm loop is closed and no free egress is latched.
- journal: the journal takes a write and its file system has ``MIN_FREE_BYTES`` free.
- mesh: with a mesh configured, connected to the broker and at least one other gate heard
  (a record, a summary or its heartbeat).
- upload: with an upload configured, nothing waits or the last upload attempt succeeded.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import sqlite3
import time
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portique.revocation.config import NO_FEED_WARNING
from portique.scanner.quality import FrameQuality
from portique.ticket.trust import KeyRole, KeyStatus, TrustStore

CHECKS = ("feed", "keys", "clock", "camera", "relay", "fire_loop", "journal", "mesh",
          "upload")
"""Every line of the checklist, in the order it is printed (stable: metrics and fleet
views use these names)."""


MIN_FREE_BYTES = 64 * 1024 * 1024
"""Free space the journal's file system needs for a day of doors (a day's journal of a
busy gate is a few MiB; SQLite needs room for its write-ahead log and checkpoints)."""

DARKEST, BRIGHTEST = 20.0, 235.0
"""Mean grey level of a well-exposed frame lies between these (0-255). The recorded clips
of a dim concourse and of low light sit at 31-57 and still decode; a capped lens or a
dead sensor is below 10; a frame blown out by sun or a spotlight is above 240."""

SHARPEST_BLUR = 40.0
"""Below this Laplacian variance a frame is blurred or blank (defocused lens, fogged or
covered window). The recorded clips, motion blur and the out-of-focus paper included,
measure 100 and more."""


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    """One line of the checklist: its name (one of `CHECKS`), its verdict, why."""

    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """The whole checklist; `ok` only when every line passes."""

    checks: tuple[ReadinessCheck, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failing(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.ok)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_json() for c in self.checks]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReadinessReport:
        return cls(tuple(ReadinessCheck(str(c["name"]), bool(c["ok"]), str(c["detail"]))
                         for c in data.get("checks", ())))


def render(report: ReadinessReport, *, offline_why: str | None = None) -> str:
    """The checklist as text: one line per check, then the verdict."""
    lines = []
    if offline_why is not None:
        lines.append(f"FAIL {'gate':<10} not running ({offline_why}): only the checks "
                     "that need no running gate were made")
    lines += [f"{'ok  ' if c.ok else 'FAIL'} {c.name:<10} {c.detail}" for c in report.checks]
    failing = (("gate",) if offline_why is not None else ()) + report.failing
    if failing:
        lines.append(f"NOT READY for doors: {', '.join(failing)}")
    else:
        lines.append(f"READY for doors: all {len(report.checks)} checks pass")
    return "\n".join(lines)


# --- one function per line -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FeedFacts:
    """What the feed store says of the gate's event (portique.revocation.store)."""

    sequence: int
    published_at: float
    fetched_at: float
    """When the gate last heard from the feed server (its own wall clock)."""


def check_feed(feed: FeedFacts | None, *, configured: bool, event: str, wall_now: float,
               max_age_s: float, error: str | None = None) -> ReadinessCheck:
    if not configured:
        return ReadinessCheck("feed", True, f"{NO_FEED_WARNING} (feeds.required = false)")
    if error is not None:
        return ReadinessCheck("feed", False, f"feed store unreadable: {error}")
    if feed is None:
        return ReadinessCheck("feed", False, f"no feed of event {event} yet: run "
                              "`gate sync` (or check the gate-sync timer and the feed URL)")
    age = wall_now - feed.fetched_at
    if age > max_age_s:
        return ReadinessCheck("feed", False, f"event {event}: sequence {feed.sequence}, "
                              f"last heard from the feed server {_ago(age)}, more than "
                              f"{_ago(max_age_s, ago=False)} (feeds.ready_max_age_s): "
                              "revocations may be missing")
    return ReadinessCheck("feed", True, f"event {event}: sequence {feed.sequence}, heard "
                          f"from the feed server {_ago(age)}")


def check_feeds(feeds: Sequence[tuple[str, FeedFacts | None]], *, configured: bool,
                wall_now: float, max_age_s: float, error: str | None = None
                ) -> ReadinessCheck:
    """The feed line over several sessions' feeds, (event, facts) each: it passes when
    every one passes `check_feed`, and then names them all; else it names the failing."""
    if not configured:
        return check_feed(None, configured=False, event="", wall_now=wall_now,
                          max_age_s=max_age_s)
    lines = [check_feed(facts, configured=True, event=event, wall_now=wall_now,
                        max_age_s=max_age_s, error=error) for event, facts in feeds]
    failing = [c for c in lines if not c.ok]
    return ReadinessCheck("feed", not failing,
                          "; ".join(c.detail for c in (failing or lines)))


def events_of_the_day(sessions: Iterable[Any], *, current: str, now: float,
                      tz: datetime.tzinfo) -> tuple[str, ...]:
    """The events whose feed must be fresh now: the session in force (`current`) first,
    then every session not closed yet that is open now or opens on the venue's day of
    `now` (portique.ticket.rules.Session: ``event``, ``opens_at``, ``closes_at``)."""
    today = datetime.datetime.fromtimestamp(now, tz).date()
    events = [current]
    for session in sessions:
        opens, closes = session.opens_at, session.closes_at
        if closes is not None and closes <= now:
            continue
        if opens is not None and opens > now and \
                datetime.datetime.fromtimestamp(opens, tz).date() != today:
            continue
        if session.event not in events:
            events.append(session.event)
    return tuple(events)


def check_keys(trust: TrustStore, *, event: str, now: float, day_end: float,
               tz: datetime.tzinfo) -> ReadinessCheck:
    issuers = [k for k in trust.keys.values() if k.role is KeyRole.ISSUER]
    if not issuers:
        return ReadinessCheck("keys", False, "no issuer key in keys.trust_dir")
    usable = [k for k in issuers
              if k.status(event=event, now=now, role=KeyRole.ISSUER) is KeyStatus.USABLE]
    whole_day = [k for k in usable if k.valid_until is None or k.valid_until >= day_end]
    if whole_day:
        ends = [k.kid for k in usable if k not in whole_day]
        more = f"; {', '.join(ends)} end(s) before" if ends else ""
        return ReadinessCheck("keys", True, f"{len(whole_day)} issuer key(s) for {event} "
                              f"valid to the end of the day ({', '.join(k.kid for k in whole_day)})"
                              f"{more}")
    if usable:
        until = ", ".join(f"{k.kid} until {_local(k.valid_until or 0, tz)}" for k in usable)
        return ReadinessCheck("keys", False, f"no issuer key for {event} valid all day: "
                              f"{until}; the day ends at {_local(day_end, tz)}")
    why = ", ".join(f"{k.kid} {k.status(event=event, now=now, role=KeyRole.ISSUER).value}"
                    for k in issuers)
    return ReadinessCheck("keys", False, f"no issuer key usable for {event} now: {why}")


def check_clock(*, trusted: bool, why: str) -> ReadinessCheck:
    return ReadinessCheck("clock", trusted, why if trusted else f"NOT TRUSTED: {why}")


def check_camera(*, state: str, fps: float, quality: FrameQuality | None,
                 device: str = "") -> ReadinessCheck:
    where = f" {device}" if device else ""
    if state != "ok":
        return ReadinessCheck("camera", False, f"camera{where} not delivering: state {state}")
    if fps <= 0:
        return ReadinessCheck("camera", False, f"camera{where}: no frames yet (0 frames/s)")
    if quality is None:
        return ReadinessCheck("camera", False, f"camera{where}: no frame measured yet")
    seen = f"brightness {quality.brightness:g}, sharpness {quality.sharpness:g}"
    if quality.brightness < DARKEST:
        return ReadinessCheck("camera", False, f"frames too dark ({seen}): light, lens cap, "
                              "exposure")
    if quality.brightness > BRIGHTEST:
        return ReadinessCheck("camera", False, f"frames blown out ({seen}): glare, exposure")
    if quality.sharpness < SHARPEST_BLUR:
        return ReadinessCheck("camera", False, f"frames blurred or blank ({seen}): focus, "
                              "dirty or covered window")
    return ReadinessCheck("camera", True, f"{fps:g} frames/s, {seen}")


def check_relay(*, agrees: bool | None, faults: Sequence[Mapping[str, Any]] = ()
                ) -> ReadinessCheck:
    if agrees is None:
        return ReadinessCheck("relay", True, "no feedback contact wired "
                              "(hardware.pins.relay_feedback): not checked")
    if not agrees:
        last = [f["message"] for f in faults if f.get("kind") == "relay_feedback_mismatch"]
        return ReadinessCheck("relay", False, last[-1] if last else
                              "relay feedback disagrees with the command")
    return ReadinessCheck("relay", True, "feedback agrees with the command")


def check_fire_loop(*, active: bool, latched: bool) -> ReadinessCheck:
    if active:
        return ReadinessCheck("fire_loop", False, "fire-alarm loop OPEN: free egress")
    if latched:
        return ReadinessCheck("fire_loop", False, "loop closed, free egress still latched: "
                              "a steward must acknowledge")
    return ReadinessCheck("fire_loop", True, "closed")


def check_journal(*, path: Path, problem: str | None, free_bytes: int | None
                  ) -> ReadinessCheck:
    if problem is not None:
        return ReadinessCheck("journal", False, problem)
    if free_bytes is None:
        return ReadinessCheck("journal", False, f"{path}: free space unknown")
    free = f"{free_bytes / (1 << 20):.0f} MiB free"
    if free_bytes < MIN_FREE_BYTES:
        return ReadinessCheck("journal", False, f"{path}: only {free}, "
                              f"{MIN_FREE_BYTES >> 20} MiB needed")
    return ReadinessCheck("journal", True, f"{path} writable, {free}")


def check_mesh(mesh: Mapping[str, Any] | None) -> ReadinessCheck:
    if mesh is None:
        return ReadinessCheck("mesh", True, "no mesh configured (a gate on its own)")
    if mesh.get("state") != "connected":
        return ReadinessCheck("mesh", False, f"not connected to the venue broker "
                              f"{mesh.get('broker', '')}: {mesh.get('why', '')}".rstrip(": "))
    seen = [p for p in mesh.get("peers", ())
            if p.get("last_message_at") or p.get("last_heartbeat_at")]
    if not seen:
        return ReadinessCheck("mesh", False, "connected, but no other gate heard yet")
    return ReadinessCheck("mesh", True, f"connected, {len(seen)} gate(s) heard: "
                          f"{', '.join(str(p['gate']) for p in seen)}")


def check_upload(*, configured: bool, backlog: int, error: str | None) -> ReadinessCheck:
    if not configured:
        return ReadinessCheck("upload", True, f"no upload configured ({backlog} records "
                              "kept on this gate)")
    if backlog and error:
        return ReadinessCheck("upload", False, f"{backlog} records waiting, last upload "
                              f"failed: {error}")
    return ReadinessCheck("upload", True, f"{backlog} records waiting" if backlog
                          else "nothing waiting")


def report(checks: Iterable[ReadinessCheck]) -> ReadinessReport:
    """The checks in `CHECKS` order (each name once)."""
    by_name = {c.name: c for c in checks}
    return ReadinessReport(tuple(by_name[n] for n in CHECKS if n in by_name))


# --- helpers used by the live and the offline report -----------------------------------

def day_end(now: float, tz: datetime.tzinfo) -> float:
    """The next local midnight after `now`: the end of the venue's day."""
    local = datetime.datetime.fromtimestamp(now, tz)
    tomorrow = (local + datetime.timedelta(days=1)).date()
    return datetime.datetime.combine(tomorrow, datetime.time(), tz).timestamp()


def free_space(path: Path) -> int | None:
    """Free bytes (for an unprivileged writer) of the file system holding `path`, or
    where it would be made."""
    folder = _existing(path if path.is_dir() else path.parent)
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def journal_file_problem(path: Path) -> str | None:
    """Why the journal at `path` could not be written by this user, or None (no write)."""
    folder = _existing(path.parent)
    if path.exists():
        if not path.is_file():
            return f"journal {path}: not a file"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"journal {path}: not writable by this user"
    if not folder.is_dir():
        return f"journal {path}: {folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"journal {path}: {folder} is not writable (SQLite needs it)"
    return None


def _existing(folder: Path) -> Path:
    """`folder`, or its nearest ancestor that exists (where the gate would make it)."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def _ago(seconds: float, *, ago: bool = True) -> str:
    seconds = max(0.0, seconds)
    text = (f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
            if seconds < 7200 else f"{seconds / 3600:.1f} h")
    return f"{text} ago" if ago else text


def _local(at: float, tz: datetime.tzinfo) -> str:
    return datetime.datetime.fromtimestamp(at, tz).strftime("%Y-%m-%d %H:%M")


# --- the offline report: a gate that is not running -----------------------------------

def offline_report(config: Any, *, wall_now: float | None = None) -> ReadinessReport:
    """The checks that need no running gate, from `config` (portique.runtime.config.Config)
    and the files it names; the others fail with "not running"."""
    from portique import keyfiles
    from portique.base.errors import GateError
    from portique.runtime.clock import GateClock

    now = time.time() if wall_now is None else wall_now
    g = config.gate
    tz = zoneinfo.ZoneInfo(g.timezone)
    event = config.profile().current_event(now)  # the session in force (or gate.event)
    checks: list[ReadinessCheck] = []
    clock = GateClock(config.clock, wall=lambda: now)
    feed_facts: FeedFacts | None = None
    feed_error: str | None = None
    feeds: list[tuple[str, FeedFacts | None]] = []
    if config.feeds is not None:
        store = config.feeds.store
        for each in events_of_the_day(config.profile().sessions, current=event, now=now,
                                      tz=tz):
            facts = None
            if store.is_file() and feed_error is None:
                try:
                    facts = _stored_feed(store, each)
                except (sqlite3.Error, OSError) as exc:
                    feed_error = f"{store}: {exc}"
            feeds.append((each, facts))
        feed_facts = feeds[0][1]
        if feed_facts is not None and \
                now - feed_facts.fetched_at <= config.clock.feed_max_age_s:
            clock.feed_time(feed_facts.published_at, received_wall=feed_facts.fetched_at)
    checks.append(check_feeds(feeds, configured=config.feeds is not None,
                              wall_now=now, error=feed_error,
                              max_age_s=0 if config.feeds is None
                              else config.feeds.ready_max_age_s))
    try:
        trust = keyfiles.load_trust_dir(config.keys.trust_dir)
        checks.append(check_keys(trust, event=event, now=now, day_end=day_end(now, tz),
                                 tz=tz))
    except GateError as exc:
        checks.append(ReadinessCheck("keys", False, str(exc)))
    state = clock.state()
    checks.append(check_clock(trusted=state.trusted, why=state.why))
    not_running = "not checked: the gate is not running"
    device = "" if config.scanner is None else f" ({config.scanner.camera.device})"
    checks.append(ReadinessCheck("camera", False, f"{not_running}{device}"))
    checks.append(ReadinessCheck("relay", False, not_running))
    checks.append(ReadinessCheck("fire_loop", False, not_running))
    path = config.journal.path
    checks.append(check_journal(path=path, problem=journal_file_problem(path),
                                free_bytes=free_space(path)))
    checks.append(ReadinessCheck("mesh", False, not_running) if config.mesh is not None
                  else check_mesh(None))
    checks.append(check_upload(configured=config.upload is not None,
                               backlog=_stored_backlog(path), error=None))
    return report(checks)


def _stored_feed(path: Path, event: str) -> FeedFacts | None:
    """The feed state of `event` in a store file, read only (nothing is created)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT sequence, published_at, fetched_at FROM feed_state "
                         "WHERE event = ?", (event,)).fetchone()
    return None if row is None else FeedFacts(int(row[0]), float(row[1]), float(row[2]))


def _stored_backlog(path: Path) -> int:
    """Records waiting for upload in a journal file, read only; 0 without a journal."""
    if not path.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT n FROM journal_counts WHERE name = 'backlog'").fetchone()
    except sqlite3.Error:
        return 0
    return 0 if row is None else int(row[0])
