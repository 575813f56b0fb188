"""The gate's configuration file (config/gate.toml): its sections and their meaning.

Every key is documented here by its ``description`` (``gate config keys`` prints them all)
and checked at start: unknown keys, wrong types and out-of-range values stop the gate with
the key's path. Relative paths are resolved from the config file's folder.

``gate run`` and ``gate config check`` validate a file with the same function,
`load_for_run`: the file's every problem at once (its keys, then what a running gate
needs: a turnstile, a revocation feed or ``feeds.required = false``, issuer keys, folders
it can write), one message each, naming the file and the key. A config that check
passes starts; one that run refuses, check refuses with the same messages.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from portique.base.configschema import build, read_toml, setting
from portique.base.errors import ConfigError, CredentialError, GateError
from portique.hardware.config import HardwareConfig
from portique.keyfiles import check_safe, load_private_key, load_trust_dir
from portique.revocation.config import FeedsConfig
from portique.runtime.clock import ClockConfig
from portique.runtime.control import ControlConfig
from portique.runtime.daemon import LaneConfig, StewardConfig
from portique.runtime.journal import JournalConfig
from portique.runtime.mesh.config import MeshConfig
from portique.runtime.metrics import MetricsConfig
from portique.runtime.upload import UploadConfig
from portique.runtime.venue import SessionSection, VenueSection, check_sessions
from portique.scanner.config import ScannerConfig
from portique.ticket.credential import EVENT_MAX, MAX_ENTRANCE, check_event
from portique.ticket.decision import (
    Direction,
    GateProfile,
    PaperPolicy,
    Policy,
    UntrustedClockPolicy,
)

_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")


@dataclass(frozen=True)
class GateSection:
    id: str = setting(description="This gate's name, as stewards and the journal call it "
                      "(e.g. \"3\" or \"north-3\"); 1-32 of A-Z a-z 0-9 . _ -")
    entrance: int = setting(description="The entrance number this gate belongs to (1-32)",
                            minimum=1, maximum=MAX_ENTRANCE)
    event: str = setting("", description="The one event (session) this gate admits to, "
                         f"always open, as in tickets; 1-{EVENT_MAX} of A-Z a-z 0-9 . _ -. "
                         "Leave out when [[sessions]] lists the sessions")
    direction: Direction = setting(Direction.ENTRY,
                                   description="entry, or exit (records exits for re-entry)")
    allow_reentry: bool = setting(False, description="Admit again a ticket flagged REENTRY "
                                  "whose holder went out through an exit gate")
    timezone: str = setting("Europe/Paris", description="The venue's IANA time zone, "
                            "for times in sentences and the steward UI")

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.id):
            raise ConfigError(f"gate.id: must be 1-32 of A-Z a-z 0-9 . _ -, got {self.id!r}")
        try:
            if self.event:
                check_event(self.event)
        except CredentialError as exc:
            raise ConfigError(f"gate.event: {exc}") from None
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"gate.timezone: unknown time zone {self.timezone!r}") from None


@dataclass(frozen=True)
class PolicySection:
    paper: PaperPolicy = setting(PaperPolicy.STEWARD, description="Printed confirmations: "
                                 "steward (a human checks them) or admit_once")
    untrusted_clock: UntrustedClockPolicy = setting(
        UntrustedClockPolicy.STEWARD,
        description="Phone codes while the gate's clock is not trusted: steward or refuse")
    grace_seconds: int = setting(15, description="Seconds a code stays accepted after its "
                                 "15-second step ends", minimum=0, maximum=120)
    ahead_seconds: int = setting(15, description="Seconds before its step starts that a code "
                                 "is already accepted", minimum=0, maximum=120)


@dataclass(frozen=True)
class KeysSection:
    trust_dir: Path = setting(description="Folder of trusted public keys (*.pub), as written "
                              "by `gate keys new`")


@dataclass(frozen=True)
class Config:
    gate: GateSection = setting(description="Who this gate is")
    keys: KeysSection = setting(description="Trusted keys")
    policy: PolicySection = setting(default_factory=PolicySection,
                                    description="Where the format leaves a choice")
    hardware: HardwareConfig | None = setting(
        None, description="The turnstile's pins and timings (docs/wiring.md); "
        "leave out on a machine that drives no turnstile")
    feeds: FeedsConfig | None = setting(
        None, description="The revocation and manifest feeds: local store and sync "
        "(docs/feeds.md); a gate without one refuses to start unless [feeds] says "
        "required = false")
    scanner: ScannerConfig | None = setting(
        None, description="The camera and the QR decoder (docs/scanner.md); leave out on a "
        "machine with no camera")
    journal: JournalConfig = setting(default_factory=JournalConfig,
                                     description="Where decisions are recorded")
    control: ControlConfig = setting(default_factory=ControlConfig,
                                     description="The stewards' control socket")
    clock: ClockConfig = setting(default_factory=ClockConfig,
                                 description="When the gate's clock is trusted")
    lane: LaneConfig = setting(default_factory=LaneConfig, description="One person at a time")
    steward: StewardConfig = setting(default_factory=StewardConfig,
                                     description="Manual admissions and the steward UI")
    metrics: MetricsConfig = setting(default_factory=MetricsConfig,
                                     description="The Prometheus endpoint")
    upload: UploadConfig | None = setting(None, description="Upload of the journal to the "
                                          "platform; leave out for a gate that keeps it local")
    mesh: MeshConfig | None = setting(None, description="Sharing admissions with the venue's "
                                      "other gates through its MQTT broker (docs/mesh.md); "
                                      "leave out for a gate on its own")
    sessions: tuple[SessionSection, ...] = setting(
        (), description="The sessions (events) this gate serves, with their gate-opening "
        "times and entry rules (docs/rules.md); leave out for gate.event alone")
    venue: VenueSection = setting(default_factory=VenueSection,
                                  description="This gate's zone, the other gates' zones, "
                                  "sessions served elsewhere (docs/rules.md)")
    source: Path | None = None
    feeds_waived: bool = False
    """True when the file says ``[feeds] required = false``: no revocation feed, on
    purpose (`NO_FEED_WARNING` in every status)."""

    def __post_init__(self) -> None:
        check_sessions(self.sessions, self.venue, self.gate.event)

    @property
    def events(self) -> tuple[str, ...]:
        """Every session this gate serves: [[sessions]], or gate.event alone."""
        return tuple(s.event for s in self.sessions) or (self.gate.event,)

    @property
    def event(self) -> str:
        """The first session: the one of an old config's gate.event."""
        return self.events[0]

    def profile(self) -> GateProfile:
        g, lane = self.gate, self.lane
        return GateProfile(gate_id=g.id, event=self.event, entrance=g.entrance,
                           direction=g.direction, allow_reentry=g.allow_reentry,
                           timezone=zoneinfo.ZoneInfo(g.timezone),
                           sessions=tuple(s.record() for s in self.sessions),
                           elsewhere=tuple((e.event, e.area) for e in self.venue.elsewhere),
                           lane=lane.kind, accessible_at_standard=lane.accessible_at_standard,
                           accessible_lane=lane.accessible_lane)

    def policy_record(self) -> Policy:
        p = self.policy
        return Policy(paper=p.paper, untrusted_clock=p.untrusted_clock,
                      grace_seconds=p.grace_seconds, ahead_seconds=p.ahead_seconds)


NO_FEED = ("feeds: no [feeds] table: without a revocation feed, resold and cancelled "
           "tickets cannot be refused; configure feeds.store and feeds.base_url "
           "(docs/feeds.md), or say that this gate runs without one: [feeds] required = false")
NO_HARDWARE = ("hardware: required to run a gate (pins and timings of the turnstile; "
               "pin_factory = \"mock\" for a simulated one)")


def from_dict(table: dict[str, Any], *, base_dir: Path | None = None) -> Config:
    """Validate a config given as a dict (as parsed from TOML); one ConfigError carries
    every problem found."""
    problems = [f"{key}: unknown key" for key in ("source", "feeds_waived") if key in table]
    table = {k: v for k, v in table.items() if k not in ("source", "feeds_waived")}
    waived = False
    feeds = table.get("feeds")
    if isinstance(feeds, dict) and feeds.get("required") is False:
        others = sorted(set(feeds) - {"required"})
        if others:
            problems.append(
                f"feeds.required: false says this gate runs without a revocation feed, but "
                f"{', '.join('feeds.' + k for k in others)} configure one: remove "
                "required = false to use the feed, or those keys to run without it")
        else:
            waived = True
            del table["feeds"]
    config = None
    try:
        config = build(Config, table, base_dir=base_dir)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems or config is None:
        raise ConfigError(problems=tuple(problems))
    return replace(config, feeds_waived=True) if waived else config


def load(path: Path) -> Config:
    """Read and validate a config file; ConfigError names the file and the key, with every
    problem of the file (``problems``).

    UnsafeFileError when someone other than root and the running user could have changed
    the file (portique.keyfiles.check_safe)."""
    return _load(path, for_run=False)


def load_for_run(path: Path) -> Config:
    """`load`, and everything a running gate needs from its config (`run_problems`), all
    problems in one ConfigError: what `gate run` and `gate config check` both use."""
    return _load(path, for_run=True)


def _load(path: Path, *, for_run: bool) -> Config:
    check_safe(path, what="config")
    table = read_toml(path)
    problems: list[str] = []
    config = None
    try:
        config = from_dict(table, base_dir=path.resolve().parent)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if for_run:
        if config is not None:
            problems.extend(run_problems(config))
        else:  # what the table already shows, so that one run of check lists it all
            if "hardware" not in table:
                problems.append(NO_HARDWARE)
            if "feeds" not in table:
                problems.append(NO_FEED)
    if problems or config is None:
        raise ConfigError(problems=tuple(p if p.startswith(f"{path}:") else f"{path}: {p}"
                                         for p in problems))
    return replace(config, source=path)


def run_problems(config: Config) -> list[str]:
    """What keeps a valid config from running a gate, one message per problem (empty
    when it can run): no turnstile, no revocation feed without ``feeds.required = false``,
    no issuer key, a feed store without the event's feed, a key file that cannot be read,
    a state or socket folder that cannot be made or written."""
    problems = []
    if config.hardware is None:
        problems.append(NO_HARDWARE)
    if config.feeds is None and not config.feeds_waived:
        problems.append(NO_FEED)
    trust_dir = config.keys.trust_dir
    try:
        if len(load_trust_dir(trust_dir)) == 0:
            problems.append(f"keys.trust_dir {trust_dir}: no issuer key")
    except GateError as exc:
        problems.append(f"keys.trust_dir: {exc}")
    problems.extend(_start_file_problems(config))
    # A journal already there opens even read-only (recorded admissions stay readable,
    # every new one is refused, and the gate says why); a new one must be made.
    folders = [] if config.journal.path.is_file() else [("journal.path",
                                                        config.journal.path.parent)]
    for key, folder in [*folders, ("control.socket", config.control.socket.parent)]:
        problem = _folder_problem(folder)
        if problem:
            problems.append(f"{key}: {problem}")
    return problems


def _start_file_problems(config: Config) -> list[str]:
    """The files `gate run` opens as it starts, each with the message the start would
    refuse with: the feed store (with a feed of the gate's event), the journal's signing
    key, and the mesh's keys and TLS files (portique.runtime.mesh.node.start_problems)."""
    from portique.revocation.store import open_view

    problems: list[str] = []
    if config.feeds is not None:
        try:
            open_view(config.feeds.store, event=config.profile().event).close()
        except GateError as exc:
            problems.append(str(exc))
    if config.journal.key_file is not None:
        try:
            load_private_key(config.journal.key_file)
        except GateError as exc:
            problems.append(f"journal.key_file: {exc}")
    if config.mesh is not None:
        from portique.runtime.mesh.node import start_problems

        problems.extend(start_problems(config.mesh, gate_id=config.gate.id))
    return problems


def _folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be written (or made) by this user, or None."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{folder}: cannot be a folder ({existing} is a file)"
    if not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == folder else f" (and {existing}, where it would be made)"
        return f"{folder}: not writable by this user{made}"
    return None
