"""The wiring: build a whole gate from its config, start it, stop it.

Everything the daemon's loop needs is made here and passed in: the trust store, the
feed store (revocations and manifest), the journal, the turnstile on its pin factory, the
frame source and decoder, the clock, the control socket, metrics, upload and the
systemd watchdog. ``gate run`` is `GateApp.run`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portique import __version__, keyfiles
from portique.base.errors import ConfigError, GateError, KeyFileError
from portique.base.timeparse import format_time
from portique.hardware.pins import open_pin_factory
from portique.hardware.turnstile import EventKind, Turnstile, TurnstileEvent
from portique.revocation.config import NO_FEED_WARNING
from portique.revocation.store import StoreStatus
from portique.runtime import notify, readiness
from portique.runtime.clock import FrameClock, GateClock, journal_clock_events
from portique.runtime.config import Config, run_problems
from portique.runtime.control import ControlServer, EventBus
from portique.runtime.credentials import read_credential
from portique.runtime.daemon import Daemon, ManualRefusedError
from portique.runtime.events import CameraChanged, FeedApplied, TurnstileChanged
from portique.runtime.journal import Journal
from portique.runtime.lines import LinePrinter
from portique.runtime.mesh.heartbeat import DecisionRate, heartbeat_body
from portique.runtime.metrics import GateMetrics
from portique.runtime.upload import Uploader
from portique.scanner.config import CameraConfig, ScannerConfig
from portique.scanner.debounce import Debouncer
from portique.scanner.decoders import make_decoder
from portique.scanner.health import TROUBLE, CameraHealth
from portique.scanner.quality import QualityMeter
from portique.scanner.sources import CameraSource, ClipSource, FrameSource
from portique.ticket.reasons import Lang
from portique.ticket.rules import Session, last_exit_all
from portique.ticket.views import NoRevocations, RevocationView

log = logging.getLogger("portique.runtime.wiring")


@dataclass(frozen=True)
class RunOptions:
    """How `gate run` was asked to run (beyond the config file).

    The methods are the build's hook points, which do nothing here: development tools
    (``portique.devtools.simulation.SimulatedRun``) override them to drive simulated
    pins and visitors, so that nothing simulated lives in the production build.
    """

    replay: Path | None = None
    """Play a recorded clip at its recorded clock instead of the camera; exit at its end."""
    fast: bool = False
    """With replay: as fast as frames can be read (every frame, each once the lane is idle:
    the clip's clock never runs ahead of its simulated visitors), not at recorded pace."""
    print_lines: bool = False
    """Print one readable line per decision and a summary on stdout."""

    def prepare_pins(self, config: Config, pin_factory: Any) -> None:
        """Called once the pin factory is open, before any device is made on it."""

    def make_turnstile(self, config: Config, pin_factory: Any) -> Turnstile:
        assert config.hardware is not None
        return Turnstile(config.hardware, pin_factory=pin_factory)

    def make_camera(self, camera: CameraConfig) -> FrameSource:
        """The camera of a gate that is not replaying a clip."""
        return CameraSource.from_config(camera)

    def built(self, app: GateApp, pin_factory: Any) -> list[Callable[[], None]]:
        """Called when the gate is built, before its frame source opens; returns closers."""
        return []

    def make_source(self, config: Config) -> tuple[FrameSource, GateClock | FrameClock] | None:
        """The frame source and clock instead of the camera's or the replay's (None)."""
        return None

    def started(self) -> None:
        """Called when the gate's loop starts."""

    def stopping(self) -> None:
        """Called when the gate starts to stop."""


@dataclass
class GateApp:
    config: Config
    options: RunOptions
    bus: EventBus
    daemon: Daemon
    source: FrameSource
    turnstile: Turnstile
    journal: Journal
    metrics: GateMetrics
    clock: GateClock | FrameClock
    control: ControlServer | None = None
    uploader: Uploader | None = None
    feed_store: Any = None
    mesh: Any = None
    """The venue mesh node (portique.runtime.mesh.node.MeshNode) when [mesh] is configured."""
    started_at: float = field(default_factory=time.time)
    extra_ops: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = field(
        default_factory=dict)
    """Control-socket ops a development build adds (training simulations)."""
    status_overlays: list[Callable[[dict[str, Any]], dict[str, Any]]] = field(
        default_factory=list)
    """Applied to the status in order (a training run says so in every status)."""
    feed_overlays: list[Callable[[StoreStatus], StoreStatus]] = field(default_factory=list)
    """Applied in order to what the feed store says of a session, wherever the gate
    reports it (status, `gate ready`, heartbeat, metrics); never to what it decides with.
    A training run makes the feed look stale this way."""
    quality: QualityMeter = field(default_factory=QualityMeter)
    """Brightness and sharpness of about one frame a second, for `gate ready`."""
    stop: threading.Event = field(default_factory=threading.Event)
    _closers: list[Any] = field(default_factory=list)

    # --- status -----------------------------------------------------------------------

    def feed_status(self, event: str) -> StoreStatus | None:
        """What the feed store holds for `event`, as the gate reports it."""
        s: StoreStatus | None = None if self.feed_store is None \
            else self.feed_store.status(event)
        for overlay in self.feed_overlays:
            if s is not None:
                s = overlay(s)
        return s

    def status(self) -> dict[str, Any]:
        status = self._status()
        status["ready"] = self.readiness(status).to_json()
        return status

    def _status(self) -> dict[str, Any]:
        g = self.config.gate
        t = self.turnstile
        clock = self.clock.state()
        now = self.clock.now().unix
        current = self.daemon.profile.current_event(now)
        feeds: dict[str, dict[str, Any] | None] = {}
        for event in self.config.events:
            feeds[event] = None
            if self.feed_store is None:
                continue
            try:
                s = self.feed_status(event)
            except GateError as exc:  # a damaged store: say so, keep the rest of the status
                s, feeds[event] = None, {"error": str(exc)}
            if s is not None:
                feeds[event] = {"sequence": s.sequence,
                                "published_at": format_time(s.published_at),
                                "age_s": round(s.age(now), 1), "revocations": s.revocations,
                                "manifest": s.manifest}
        feed = feeds.get(current)
        counters = self.daemon.counters
        if counters.feed_error is not None:
            feed = {**(feed or {}), "error": counters.feed_error}
        uptime = max(time.time() - self.started_at, 1e-9)
        status: dict[str, Any] = {
            "gate": g.id, "event": current, "entrance": g.entrance, "timezone": g.timezone,
            "direction": g.direction.value, "lane": self.config.lane.kind.value,
            "zone": self.config.venue.zone,
            "now": format_time(now),
            "sessions": [_session_status(s, now, feeds.get(s.event))
                         for s in self.daemon.profile.sessions],
            "uptime_s": round(uptime, 1),
            "clock": {"trusted": clock.trusted, "why": clock.why, "jumps": clock.jumps},
            "camera": self._camera_status(uptime),
            "feed": feed,
            "feed_waived": self.config.feeds_waived,
            "fire_alarm": {"active": t.fire_alarm_active, "latched": t.free_egress_latched},
            "faults": [{"kind": str(f.kind), "message": f.message, "at": format_time(f.at)}
                       for f in t.faults],
            "decisions": {"total": counters.decided, "displayed": counters.displayed,
                          "frame_errors": counters.frame_errors,
                          **dict(counters.by_verdict)},
            "journal": {"path": str(self.journal.path),
                        "failures": counters.journal_failures,
                        "last_error": counters.journal_error,
                        "upload_backlog": self.journal.upload_backlog(),
                        "upload_configured": self.uploader is not None,
                        "upload_error": None if self.uploader is None
                        else self.uploader.last_error},
            "zones": self.zones(now),
            "last_decision": self.daemon.last_decision,
            "mesh": None if self.mesh is None else self.mesh.status(),
            "control": None if self.control is None else self.control.stats(),
        }
        for overlay in self.status_overlays:
            status = overlay(status)
        return status

    def readiness(self, status: dict[str, Any] | None = None) -> readiness.ReadinessReport:
        """Ready for doors (portique/runtime/readiness.py), from `status` and the parts."""
        s = self._status() if status is None else status
        r = readiness
        now = self.clock.now().unix
        event = self.daemon.profile.current_event(now)  # the session in force
        checks = []
        tz = self.daemon.profile.timezone
        feed_error = None
        day_feeds: list[tuple[str, readiness.FeedFacts | None]] = []
        if self.feed_store is not None:
            for each in r.events_of_the_day(self.daemon.profile.sessions, current=event,
                                            now=now, tz=tz):
                fs = None
                try:
                    fs = self.feed_status(each)
                except GateError as exc:
                    feed_error = str(exc)
                day_feeds.append((each, None if fs is None else
                                  r.FeedFacts(fs.sequence, fs.published_at, fs.fetched_at)))
        feeds = self.config.feeds
        checks.append(r.check_feeds(day_feeds, configured=feeds is not None,
                                    wall_now=time.time(), error=feed_error,
                                    max_age_s=0 if feeds is None else feeds.ready_max_age_s))
        checks.append(r.check_keys(self.daemon.trust, event=event, now=now,
                                   day_end=r.day_end(now, tz), tz=tz))
        checks.append(r.check_clock(trusted=s["clock"]["trusted"], why=s["clock"]["why"]))
        camera = s["camera"]
        device = "" if self.options.replay is not None or self.config.scanner is None \
            else self.config.scanner.camera.device
        checks.append(r.check_camera(state=str(camera["state"]), fps=float(camera["fps"]),
                                     quality=self.quality.recent(), device=device))
        checks.append(r.check_relay(agrees=self.turnstile.relay_feedback_agrees,
                                    faults=s["faults"]))
        checks.append(r.check_fire_loop(active=s["fire_alarm"]["active"],
                                        latched=s["fire_alarm"]["latched"]))
        journal = self.journal
        problem = journal.unwritable or self.daemon.counters.journal_error
        if problem is None:
            try:
                with journal.transaction("readiness probe"):
                    pass
            except GateError as exc:
                problem = str(exc)
        checks.append(r.check_journal(path=journal.path, problem=problem,
                                      free_bytes=r.free_space(journal.path)))
        checks.append(r.check_mesh(s["mesh"]))
        checks.append(r.check_upload(configured=self.uploader is not None,
                                     backlog=int(s["journal"]["upload_backlog"]),
                                     error=s["journal"]["upload_error"]))
        return r.report(checks)

    def _camera_status(self, uptime: float) -> dict[str, Any]:
        """`state` (ok, starting, lost, black, frozen, ended, closed), `device`, `why`."""
        health, stats = self.source.health, self.source.stats
        report = getattr(self.source, "profile_report", None)
        retry_at = getattr(self.source, "retry_at", None)
        return {"state": health.state.value, "device": health.device, "why": health.why,
                "since": format_time(health.since) if health.since else None,
                "steward_only": health.state in TROUBLE,
                "frames": stats.read, "dropped": stats.dropped, "withheld": stats.withheld,
                "disconnects": stats.disconnects,
                "retry_in_s": None if retry_at is None or health.state not in TROUBLE
                else round(max(0.0, retry_at - time.time()), 1),
                "fps": round(self.daemon.counters.frames / uptime, 1),
                "profile": None if report is None else report.to_json()}

    def zones(self, now: float) -> list[dict[str, Any]]:
        """Occupancy per zone and per session, from the journal (this gate's admissions and,
        with the mesh, the venue's other gates'): [{zone, session, inside, entries, exits}]."""
        profile = self.daemon.profile
        sessions = profile.sessions or (Session(profile.event),)
        cutoffs = {s.event: last_exit_all(s.exit_all_at, now, profile.timezone)
                   for s in sessions}
        venue = self.config.venue
        totals: dict[tuple[str, str], list[int]] = {
            (venue.zone, s.event): [0, 0, 0] for s in sessions}
        for (event, gate), counts in self.journal.occupancy(cutoffs).items():
            row = totals.setdefault((venue.zone_of(gate, profile.gate_id), event), [0, 0, 0])
            for i in range(3):
                row[i] += counts[i]
        return [{"zone": zone, "session": event, "inside": v[0], "entries": v[1],
                 "exits": v[2]} for (zone, event), v in sorted(totals.items())]

    # --- control requests -------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        d = self.daemon
        if op == "status":
            return {"ok": True, "status": self.status()}
        if op == "lookup":
            query = str(request.get("query", ""))[:200]
            limit = _limit(request.get("limit", 20))
            if self.feed_store is None:
                raise ManualRefusedError("no manifest on this gate (no feeds configured)",
                                         "no_manifest")
            from portique.revocation import lookup  # forgiving: case, accents, small typos

            with self.feed_store.lookup_store() as store:  # never the decision's connection
                found = lookup.answer(store, self._current_event(), query, limit=limit)
            return {"ok": True, "candidates": list(found.candidates),
                    "truncated": found.truncated}
        if op == "history":
            ticket_id = str(request.get("ticket_id", ""))
            entries = self.journal.entries(event=self._current_event(), ticket_id=ticket_id,
                                           limit=50)
            return {"ok": True, "entries": [_entry(e) for e in entries]}
        if op == "recent":
            recent = self.journal.entries(limit=_limit(request.get("limit", 20)))
            return {"ok": True, "entries": [_entry(e) for e in recent]}
        if op == "admit":
            event = d.manual_admit(str(request.get("ticket_id", "")),
                                   steward=str(request.get("steward", "")),
                                   reason=str(request.get("reason", "")),
                                   supervisor=request.get("supervisor") or None,
                                   pin=request.get("pin"),
                                   paper=bool(request.get("paper", False)))
            return {"ok": True, "decision": event}
        if op == "deny":
            event = d.manual_deny(str(request.get("ticket_id", "")),
                                  steward=str(request.get("steward", "")),
                                  reason=str(request.get("reason", "")))
            return {"ok": True, "decision": event}
        if op == "ack_fire_alarm":
            return d.acknowledge_fire_alarm(str(request.get("steward", "")))
        if op in ("mesh", "conflicts", "venue"):
            if self.mesh is None:
                raise ManualRefusedError("this gate shares no admissions (no [mesh] configured)",
                                         "no_mesh")
            answer: dict[str, Any] = self.mesh.handle(request)
            return answer
        if op in self.extra_ops:
            return self.extra_ops[op](request)
        raise ManualRefusedError(f"unknown op {op!r}", "invalid")

    def _current_event(self) -> str:
        """The session a steward's lookup or history is about: the one open now."""
        return self.daemon.profile.current_event(self.clock.now().unix)

    # --- running ----------------------------------------------------------------------

    def frames(self) -> Iterator[Any]:
        """The source's frames, and a None each second without one (see Daemon.run)."""
        for frame in self.source.frames_with_idle(idle_s=1.0):
            if frame is not None:
                if isinstance(self.clock, FrameClock):
                    self.clock.current = frame.captured_at
                self.quality.offer(frame.image)
            yield frame

    def run(self) -> int:
        notify.ready(systemd_status(self.config.gate.id, self.source.health))
        log.info("gate ready gate=%s sessions=%s entrance=%s replay=%s", self.config.gate.id,
                 ",".join(self.config.events), self.config.gate.entrance, self.options.replay)
        interval = notify.watchdog_interval()
        if interval is not None:
            watchdog = threading.Thread(target=self._watchdog, args=(interval,),
                                        name="watchdog", daemon=True)
            watchdog.start()
        self.options.started()
        try:
            self.daemon.run(self.frames(), self.stop)
        finally:
            notify.stopping()
        return 0

    def _watchdog(self, interval: float) -> None:
        """Ping systemd while the main loop lives: it went round recently, or it is inside
        a turnstile cycle that has not overrun its own timeout; and the lane's thread has
        not overrun one either. A loop or a lane stuck anywhere else stops the pings, and
        systemd restarts the gate."""
        period = max(interval / 4, 0.01)
        while not self.stop.is_set():
            now = time.monotonic()
            d = self.daemon
            if (now - d.heartbeat < interval / 2 or now < d.busy_until) \
                    and not d.lane_overrun(now):
                notify.watchdog()
            self.stop.wait(period)

    def close(self) -> None:
        self.stop.set()
        self.options.stopping()
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:
                log.exception("error while stopping")

    def __enter__(self) -> GateApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build(config: Config, options: RunOptions = RunOptions(), *,
          pin_factory: Any = None) -> GateApp:
    """Make every part of the gate from its config. Closes what it opened on failure."""
    closers: list[Any] = []
    try:
        return _build(config, options, pin_factory, closers)
    except BaseException:
        for closer in reversed(closers):
            with contextlib.suppress(Exception):
                closer()
        raise


def _build(config: Config, options: RunOptions, pin_factory: Any, closers: list[Any]
           ) -> GateApp:
    trust = keyfiles.load_trust_dir(config.keys.trust_dir)  # an unsafe folder: its own error
    problems = run_problems(config)  # the same checks as `gate config check`
    if problems:
        raise ConfigError(problems=tuple(problems))
    assert config.hardware is not None
    scanner_config = config.scanner or ScannerConfig()
    profile, policy = config.profile(), config.policy_record()
    revocations: RevocationView = NoRevocations()
    feed_store = None
    if config.feeds is None:
        log.warning("%s gate=%s (feeds.required = false)", NO_FEED_WARNING, profile.gate_id)
    else:
        from portique.runtime.feedview import SharedFeedView

        feed_store = SharedFeedView(config.feeds.store, event=profile.event,
                                    events=config.events)
        closers.append(feed_store.close)
        revocations = feed_store
    journal = Journal(config.journal.path, gate_id=profile.gate_id)
    closers.append(journal.close)
    journal.signer = _journal_signer(config, profile.gate_id)

    if pin_factory is None:
        pin_factory = open_pin_factory(config.hardware.pin_factory)
        closers.append(pin_factory.close)
    options.prepare_pins(config, pin_factory)
    turnstile = options.make_turnstile(config, pin_factory)
    closers.append(turnstile.close)

    clock: GateClock | FrameClock
    source: FrameSource
    made = options.make_source(config)
    if made is not None:
        source, clock = made
    elif options.replay is not None:
        clock = FrameClock()
        source = ClipSource.open(options.replay, pace="fast" if options.fast else "recorded",
                                 lossless=options.fast)
    else:
        clock = GateClock(config.clock, on_event=journal_clock_events(journal))
        source = options.make_camera(scanner_config.camera)
    bus = EventBus()
    metrics = GateMetrics()
    metrics.no_revocation_feed.set(1 if config.feeds is None else 0)
    daemon = Daemon(profile=profile, policy=policy, trust=trust, revocations=revocations,
                    journal=journal, turnstile=turnstile,
                    decoder=make_decoder(scanner_config.decoder.value,
                                         sampler=scanner_config.sampler),
                    debouncer=Debouncer(scanner_config.debounce_seconds), clock=clock,
                    lane=config.lane, steward=config.steward, bus=bus, metrics=metrics,
                    manifest=feed_store)
    longest_open = max(config.hardware.open_timeout_s, config.lane.accessible_open_s)
    daemon.cycle_budget_s = longest_open + 10.0  # an accessible opening is no stall
    closers.append(daemon.close)
    daemon.lockstep = options.replay is not None and options.fast
    app = GateApp(config=config, options=options, bus=bus, daemon=daemon, source=source,
                  turnstile=turnstile, journal=journal, metrics=metrics, clock=clock,
                  feed_store=feed_store, _closers=closers)

    latch = config.journal.path.parent / LATCH_FILE
    if latch.exists():
        turnstile.restore_latch("a fire alarm from before the restart was never acknowledged")

    def on_turnstile(event: TurnstileEvent) -> None:
        if event.kind is EventKind.FIRE_ALARM_RAISED:
            _write_latch(latch, event.detail or "fire alarm")
        elif event.kind is EventKind.FREE_EGRESS_ENDED:
            _remove_latch(latch)
        if event.kind in JOURNALLED_EVENTS:
            try:
                journal.gate_event(str(event.kind), at=event.at, steward=event.steward_id,
                                   detail=event.detail or (event.fault.message
                                                           if event.fault else ""))
            except GateError as exc:
                log.error("gate event not journalled kind=%s cause=%s", event.kind, exc)
        bus.publish(TurnstileChanged(kind=str(event.kind), detail=event.detail))
        quiet = str(event.kind) in ("passage",)
        log.log(logging.INFO if quiet else logging.WARNING,
                "turnstile event gate=%s kind=%s detail=%s", profile.gate_id, event.kind,
                event.detail)

    closers.append(turnstile.subscribe(on_turnstile))
    if options.print_lines:
        printer = LinePrinter(bus, sys.stdout, lang=Lang(config.steward.language)
                              if config.steward.language in ("fr", "en") else Lang.EN,
                              tz=profile.timezone)
        printer.start()
        closers.append(printer.close)
    closers.extend(options.built(app, pin_factory))
    source.__enter__()  # a camera that is not there is LOST, never an error: steward-only
    closers.append(source.close)
    control = ControlServer(config.control, handle=app.handle, bus=bus, status=app.status)
    control.start()
    closers.append(control.close)
    app.control = control
    if config.upload is not None:
        token = read_credential("upload-token") or ""
        uploader = Uploader(journal, config.upload, gate_id=profile.gate_id,
                            event=profile.event, token=token)
        uploader.start()
        closers.append(uploader.close)
        app.uploader = uploader
    if config.mesh is not None:
        from portique.runtime.mesh.node import start_mesh

        app.mesh = start_mesh(config.mesh, gate_id=profile.gate_id, journal=journal, bus=bus,
                              registry=metrics.registry)
        closers.append(app.mesh.close)
    if config.metrics.port:
        metrics.serve(config.metrics.port)
        closers.append(metrics.close)
    housekeeping = Housekeeping(app)
    housekeeping.start()
    closers.append(housekeeping.close)
    return app


JOURNALLED_EVENTS = frozenset({EventKind.FIRE_ALARM_RAISED, EventKind.FIRE_LOOP_CLOSED,
                               EventKind.FREE_EGRESS_ENDED, EventKind.FAULT,
                               EventKind.PASSAGE_WITHOUT_ADMIT})
"""Turnstile events written in the journal (passages are already in the admissions)."""

LATCH_FILE = "fire-alarm-latched"
"""In the state folder while free egress is latched: a restart keeps the gate free."""


def _journal_signer(config: Config, gate_id: str) -> tuple[str, Any] | None:
    """The key that signs the journal's checkpoints: journal.key_file, else the mesh key."""
    path = config.journal.key_file or (config.mesh.key_file if config.mesh else None)
    if path is None:
        log.warning("journal checkpoints are not signed: no journal.key_file nor mesh key "
                    "(the journal's tree is kept, nobody can vouch for its head)")
        return None
    try:
        return gate_id, keyfiles.load_private_key(path)
    except KeyFileError as exc:
        raise ConfigError(f"journal.key_file: {exc}") from None


def _sync_folder(folder: Path) -> None:
    """fsync a folder: a file created, renamed or removed in it survives a power cut only
    once its folder's entry is on disk too."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_latch(path: Path, why: str) -> None:
    try:
        with path.open("w", encoding="utf-8") as handle:
            handle.write(f"{time.time():.3f} {why}\n")
            handle.flush()
            os.fsync(handle.fileno())
        _sync_folder(path.parent)  # the file's name, not only its bytes
    except OSError as exc:
        log.error("cannot record the fire-alarm latch at %s: %s", path, exc)


def _remove_latch(path: Path) -> None:
    try:
        path.unlink()
        _sync_folder(path.parent)  # else a power cut brings the latch back
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.error("cannot remove the fire-alarm latch at %s: %s", path, exc)


ZONE_EVERY = 5
"""Housekeeping ticks between two recounts of the zone gauges (a recount reads every
admission of the gate's sessions; `gate status` counts afresh at each call)."""


class Housekeeping:
    """Every second: feed time into the clock, gauges into metrics, camera state changes."""

    def __init__(self, app: GateApp, period: float = 1.0) -> None:
        self.app, self.period = app, period
        self._stop = threading.Event()
        self._camera_state = ""
        self._feed_fetched = 0.0
        self._next_beat = 0.0
        self._beat_seq = 0
        self._rate = DecisionRate()
        self._feed_sequences: dict[str, int] = {}
        self._ticks = 0
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.tick()
            except GateError as exc:
                log.warning("housekeeping: %s", exc)
            except Exception:
                log.exception("housekeeping failed")

    def heartbeat(self) -> None:
        """This gate's signed heartbeat for the fleet view (docs/mesh.md), when it is due."""
        app = self.app
        mesh = app.mesh
        if mesh is None or time.monotonic() < self._next_beat:
            return
        self._next_beat = time.monotonic() + mesh.config.heartbeat_interval_s
        refusals: dict[str, int] = {}
        for metric in app.metrics.decisions.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("verdict") == "refuse":
                    refusals[sample.labels["reason"]] = int(sample.value)
        self._beat_seq += 1
        now = time.time()
        mesh.heartbeat(heartbeat_body(
            app.status(), venue=mesh.config.venue, seq=self._beat_seq,
            interval_s=mesh.config.heartbeat_interval_s,
            decisions_per_min=self._rate.rate(app.daemon.counters.decided, time.monotonic()),
            refusals=refusals, version=__version__, now=now))

    def tick(self) -> None:
        app, m = self.app, self.app.metrics
        store = app.feed_store
        current = app.daemon.profile.current_event(app.clock.now().unix)
        for event in app.config.events if store is not None else ():
            s = store.status(event)
            if s is None:
                continue
            if s.sequence != self._feed_sequences.get(event):
                if event in self._feed_sequences:  # not the one in force at start
                    app.bus.publish(FeedApplied(event=event, sequence=s.sequence,
                                                published_at=format_time(s.published_at)))
                self._feed_sequences[event] = s.sequence
            if event == current:
                shown = app.feed_status(event) or s
                m.feed_sequence.set(shown.sequence)
                m.feed_age.set(shown.age(time.time()))
            if isinstance(app.clock, GateClock) and s.fetched_at > self._feed_fetched:
                self._feed_fetched = s.fetched_at
                app.clock.feed_time(s.published_at, received_wall=s.fetched_at)
        state = app.clock.state()
        m.clock_trusted.set(1 if state.trusted else 0)
        m.fire_alarm.set(1 if app.turnstile.free_egress_latched else 0)
        health = app.source.health
        m.camera_up.set(1 if health.ok else 0)
        m.camera_ok.set(1 if health.ok else 0)
        m.camera_state.state(health.state.value)
        stats = app.source.stats
        m.frames_dropped.inc(max(0, stats.dropped - getattr(self, "_dropped", 0)))
        self._dropped = stats.dropped
        m.upload_backlog.set(app.journal.upload_backlog())
        self._ticks += 1
        zones = app.zones(app.clock.now().unix) if self._ticks % ZONE_EVERY == 1 else ()
        for zone in zones:
            labels = (zone["zone"], zone["session"])
            m.zone_inside.labels(*labels).set(zone["inside"])
            m.zone_entries.labels(*labels).set(zone["entries"])
            m.zone_exits.labels(*labels).set(zone["exits"])
        now = time.time()
        if now - app.journal.last_checkpoint_at >= app.config.journal.checkpoint_interval_s:
            app.journal.checkpoint(at=now)
        ready = app.readiness()
        m.set_readiness(ready.ok, ((c.name, c.ok) for c in ready.checks))
        if health.state.value != self._camera_state:
            self._camera_state = health.state.value
            log.log(logging.WARNING if health.state in TROUBLE else logging.INFO,
                    "camera gate=%s %s", app.config.gate.id, health.headline())
            app.bus.publish(CameraChanged(state=health.state.value, device=health.device,
                                          why=health.why))
            notify.status(systemd_status(app.config.gate.id, health))
        self.heartbeat()


def systemd_status(gate_id: str, health: CameraHealth) -> str:
    """The line `systemctl status gate` shows: the camera's trouble first, when it has one."""
    if health.state in TROUBLE:
        return f"gate {gate_id}: {health.headline()}; steward-only (manual admit and deny work)"
    return f"gate {gate_id} ready: {health.headline()}"


def install_signal_handlers(app: GateApp) -> None:
    def stop(signum: int, _frame: Any) -> None:
        log.info("stopping on signal %s", signal.Signals(signum).name)
        app.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _session_status(session: Any, now: float, feed: dict[str, Any] | None) -> dict[str, Any]:
    opens, closes = session.opens_at, session.closes_at
    state = "open" if (opens is None or opens <= now) and (closes is None or now < closes) \
        else ("not_open" if opens is not None and now < opens else "closed")
    return {"event": session.event, "state": state,
            "opens": None if opens is None else format_time(opens),
            "closes": None if closes is None else format_time(closes),
            "rules": len(session.rules), "feed": feed}


def _limit(value: Any) -> int:
    """A request's `limit`, within 1..100; anything else is refused with a clear error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManualRefusedError(f"limit must be a whole number, got {value!r}", "invalid")
    return max(1, min(value, 100))


def _entry(e: Any) -> dict[str, Any]:
    return {"scan_id": e.scan_id, "at": format_time(e.at), "gate": e.gate,
            "ticket_id": e.ticket_id, "generation": e.generation,
            "verdict": e.verdict.value, "reason": e.reason.value, "method": e.method.value,
            "steward": e.steward, "note": e.note,
            "admission": None if e.admission_state is None else e.admission_state.value}


def dump_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)

