"""The gate's clock: the time, read once per decision, and whether it can be trusted.

Dynamic codes are only as good as the gate's clock. The clock is trusted when

* the operating system says it is synchronised (the kernel's NTP status, as set by
  systemd-timesyncd or chrony), or
* a signed feed brought the publisher's time recently, and the local clock agreed with
  it within a tolerance,

and no jump has been seen since. A jump is a change of the wall clock against the
monotonic clock larger than the tolerance (someone set the time, a bad RTC at boot, the
NTP step of a Raspberry Pi that booted on its saved clock): after a jump the clock is
untrusted until new evidence arrives, either a signed feed time that agrees, or (source
``os``) the OS reporting the clock synchronised in a reading taken after the jump. The
kernel marks the clock unsynchronised whenever it is set or stepped; only the NTP daemon
marks it synchronised again, so such a reading means NTP vouches for the new time.
Jumps and the trust they cost and regain are ClockEvents, journalled as gate events.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from portique.base.configschema import setting
from portique.base.errors import GateError
from portique.ticket.decision import Now

log = logging.getLogger("portique.runtime.clock")

_TIME_ERROR = 5  # adjtimex(2): clock not synchronised


class ClockSource(enum.StrEnum):
    OS = "os"
    """Trust the clock when the OS says it is synchronised, or a signed feed time agrees."""
    FEED = "feed"
    """Trust the clock only when a recent signed feed time agrees with it."""
    ALWAYS = "always"
    """Always trust the clock (a gate with a GPS or PTP time source; demos and replays)."""


@dataclass(frozen=True)
class ClockConfig:
    source: ClockSource = setting(ClockSource.OS, description="What makes the clock trusted: "
                                  "os (OS synchronisation or signed feed time), feed (signed "
                                  "feed time only), always")
    feed_max_age_s: float = setting(6 * 3600.0, description="How long a signed feed time "
                                    "keeps the clock trusted, seconds", minimum=60,
                                    maximum=7 * 86400)
    feed_max_delay_s: float = setting(900.0, description="Largest delay between a feed's "
                                      "signed time and its arrival at the gate, seconds "
                                      "(the publisher re-signs at least this often)",
                                      minimum=10, maximum=86400)
    tolerance_s: float = setting(5.0, description="Largest disagreement with a signed feed "
                                 "time, and largest wall-clock jump, still trusted, seconds",
                                 minimum=0.5, maximum=300)


@dataclass(frozen=True, slots=True)
class ClockState:
    trusted: bool
    why: str
    os_synchronised: bool | None
    feed_time_age_s: float | None
    jumps: int


class ClockEventKind(enum.StrEnum):
    JUMPED = "clock_jumped"
    """The wall clock moved against the monotonic clock: untrusted from now."""
    TRUSTED_AGAIN = "clock_trusted_again"
    """After a jump, new evidence (OS synchronisation, a signed feed time) restored trust."""


@dataclass(frozen=True, slots=True)
class ClockEvent:
    kind: ClockEventKind
    at: float
    """The wall-clock time read when it was seen (after the jump, for a jump)."""
    detail: str


class GateEventJournal(Protocol):
    def gate_event(self, kind: str, *, at: float, steward: str | None = None,
                   detail: str = "") -> None: ...


def journal_clock_events(journal: GateEventJournal) -> Callable[[ClockEvent], None]:
    """A GateClock `on_event` that keeps each clock event in the journal's gate events."""
    def record(event: ClockEvent) -> None:
        try:
            journal.gate_event(str(event.kind), at=event.at, detail=event.detail)
        except GateError as exc:
            log.error("clock event not journalled kind=%s detail=%s cause=%s", event.kind,
                      event.detail, exc)
    return record


def os_synchronised() -> bool | None:
    """The kernel's view (adjtimex): True synchronised, False not, None unknown."""
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    try:
        libc = ctypes.CDLL(path, use_errno=True)
        buffer = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = libc.adjtimex(buffer)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return bool(state != _TIME_ERROR)


class GateClock:
    """Wall-clock time with a trust verdict. Thread-safe."""

    def __init__(self, config: ClockConfig, *, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 os_sync: Callable[[], bool | None] = os_synchronised,
                 on_event: Callable[[ClockEvent], None] | None = None) -> None:
        self.config = config
        self._wall, self._mono, self._os_sync = wall, monotonic, os_sync
        self._on_event = on_event
        self._lock = threading.Lock()
        self._offset = wall() - monotonic()
        self._feed_seen_at: float | None = None  # monotonic time of the last agreeing feed
        self._jumps = 0
        self._untrusted_since_jump = False
        self._os_state: bool | None = None
        self._os_checked_at = -1e9

    def now(self) -> Now:
        """Read the time once, with whether to trust it."""
        unix = self._wall()
        return Now(unix, self._trusted(unix))

    def feed_time(self, published_at: float, *, received_wall: float | None = None) -> bool:
        """A signed publisher time from a feed; True when the local clock agrees with it.

        A feed is fetched some time after it was signed, so the local clock must be no
        earlier than the signed time (less the tolerance) and no later than the signed
        time plus the publisher's largest delay.
        """
        received = self._wall() if received_wall is None else received_wall
        c = self.config
        agrees = published_at - c.tolerance_s <= received <= published_at + c.feed_max_delay_s
        events: list[ClockEvent] = []
        with self._lock:
            if agrees:
                self._feed_seen_at = self._mono()
                if self._untrusted_since_jump:
                    self._untrusted_since_jump = False
                    events.append(ClockEvent(ClockEventKind.TRUSTED_AGAIN, received,
                                             "a signed feed time agrees with the clock"))
            else:
                self._feed_seen_at = None
        self._emit(events)
        return agrees

    def state(self) -> ClockState:
        unix = self._wall()
        trusted = self._trusted(unix)
        with self._lock:
            age = None if self._feed_seen_at is None else self._mono() - self._feed_seen_at
            return ClockState(trusted, self._why(trusted), self._os_state, age, self._jumps)

    def _trusted(self, unix: float) -> bool:
        events = self._check_jump(unix)
        with self._lock:
            trusted = self._trusted_locked(unix, events)
        self._emit(events)
        return trusted

    def _trusted_locked(self, unix: float, events: list[ClockEvent]) -> bool:
        if self.config.source is ClockSource.ALWAYS:
            return True
        feed_ok = (not self._untrusted_since_jump and self._feed_seen_at is not None
                   and self._mono() - self._feed_seen_at <= self.config.feed_max_age_s)
        if self.config.source is ClockSource.FEED:
            return feed_ok
        if feed_ok:
            return True
        os_ok = bool(self._os_synchronised())
        if os_ok and self._untrusted_since_jump:
            # a reading taken after the jump (the jump dropped the one before it)
            self._untrusted_since_jump = False
            events.append(ClockEvent(ClockEventKind.TRUSTED_AGAIN, unix,
                                     "the operating system reports the clock synchronised "
                                     "after the jump"))
        return os_ok

    def _os_synchronised(self) -> bool | None:
        mono = self._mono()
        if mono - self._os_checked_at > 10.0:  # a system call, not on every decision
            self._os_state = self._os_sync()
            self._os_checked_at = mono
        return self._os_state

    def _check_jump(self, unix: float) -> list[ClockEvent]:
        offset = unix - self._mono()
        events: list[ClockEvent] = []
        with self._lock:
            moved = offset - self._offset
            if abs(moved) > self.config.tolerance_s:
                self._jumps += 1
                self._untrusted_since_jump = self.config.source is not ClockSource.ALWAYS
                self._feed_seen_at = None
                self._os_checked_at = float("-inf")  # a reading from before it proves nothing
                events.append(ClockEvent(ClockEventKind.JUMPED, unix,
                                         f"the wall clock moved {moved:+.1f} s against the "
                                         "monotonic clock"))
            self._offset = offset
        return events

    def _emit(self, events: list[ClockEvent]) -> None:
        """Log and hand on clock events, outside the lock."""
        for event in events:
            if event.kind is ClockEventKind.JUMPED:
                log.warning("clock jumped detail=%s: untrusted until the OS reports it "
                            "synchronised or a signed feed time agrees", event.detail)
            else:
                log.warning("clock trusted again after a jump cause=%s", event.detail)
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception:  # a recorder's fault must not stop the gate's decisions
                    log.exception("clock event not handed on kind=%s", event.kind)

    def _why(self, trusted: bool) -> str:
        if self.config.source is ClockSource.ALWAYS:
            return "trusted by configuration"
        if self._untrusted_since_jump:
            return "the clock jumped; waiting for synchronisation or a signed feed time"
        if self._feed_seen_at is not None and trusted:
            return "agrees with a recent signed feed time"
        if trusted:
            return "synchronised by the operating system"
        return "not synchronised (no OS synchronisation, no recent signed feed time)"


class FrameClock:
    """The clock of a recorded clip: `now` is the frame's capture time, trusted."""

    def __init__(self) -> None:
        self.current = 0.0

    def now(self) -> Now:
        return Now(self.current, True)

    def state(self) -> ClockState:
        return ClockState(True, "replay: the clip's recorded clock", None, None, 0)
