"""The gate's main loop: frames in, decisions out, the turnstile driven, everything journalled.

source -> decode -> debounce -> decide (pure, `now` read once) -> journal -> turnstile

* The same code in consecutive frames is decided once (the debouncer); the same *ticket*
  shown again while its holder is still at the gate (a new step of the same phone, a
  second look) is displayed, not decided again.
* One person at a time: the lane is held from the admission until the passage sensor
  counts the person or the timeout voids the admission. Two valid codes in one frame are
  decided one after the other.
* An admission is committed to the journal before the lock opens; if the journal cannot
  be written nobody is admitted (JOURNAL_UNAVAILABLE) and the gate says why.

Every collaborator is passed in (see portique/runtime/wiring.py, which builds them from the config).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from portique.base.configschema import setting
from portique.base.errors import GateError
from portique.base.timeparse import format_time
from portique.hardware.errors import HardwareError
from portique.runtime.control import EventBus, text_problem
from portique.runtime.events import (
    DecisionMade,
    FireAlarmAcknowledged,
    OverrideRefused,
    PassageEnded,
    TicketDisplayed,
    TicketRef,
)
from portique.runtime.journal import AlreadyInsideError, Journal, JournalError, Method
from portique.runtime.metrics import GateMetrics
from portique.runtime.supervisors import DEFAULT_FILE as DEFAULT_SUPERVISORS_FILE
from portique.runtime.supervisors import (
    Authenticator,
    OverrideLimits,
    OverrideRefusedError,
    valid_supervisor_id,
)
from portique.scanner.errors import ScannerError
from portique.ticket import credential
from portique.ticket.credential import Flag
from portique.ticket.decision import (
    AccessibleAtStandard,
    Decision,
    GateProfile,
    LaneKind,
    ManualRefusal,
    ManualRequest,
    Now,
    Policy,
    decide_credential,
    decide_manual,
    read_code,
)
from portique.ticket.reasons import Lang, Reason, Verdict
from portique.ticket.trust import TrustStore
from portique.ticket.views import RevocationView, TicketKey

log = logging.getLogger("portique.runtime.daemon")


@dataclass(frozen=True)
class LaneConfig:
    same_ticket_hold_s: float = setting(8.0, description="A ticket decided at this gate is "
                                        "displayed, not decided again, when shown within this "
                                        "many seconds (its holder is still at the gate)",
                                        minimum=0.0, maximum=120.0)
    kind: LaneKind = setting(LaneKind.STANDARD, description="standard, or accessible (a wider "
                             "lane: ACCESSIBLE tickets open it longer, with their own signal)")
    accessible_open_s: float = setting(20.0, description="At an accessible lane: how long the "
                                       "lock stays open for an ACCESSIBLE ticket, seconds",
                                       minimum=1.0, maximum=300.0)
    accessible_at_standard: AccessibleAtStandard = setting(
        AccessibleAtStandard.ADMIT, description="At a standard lane, an ACCESSIBLE ticket: "
        "admit (opens normally) or steward (calls the steward, pointing to the accessible lane)")
    accessible_lane: str = setting("the accessible lane", description="Where the accessible "
                                   "lane is, as the steward sentence says it "
                                   "(\"lane 1, on the left\")")


@dataclass(frozen=True)
class StewardConfig:
    manual_admit_limit: int = setting(10, description="Manual admits this gate makes per "
                                      "window without a supervisor (overrides count too)",
                                      minimum=0, maximum=1000)
    manual_admit_window_s: float = setting(600.0, description="The window of the manual "
                                           "admit limit, seconds", minimum=10,
                                           maximum=86400)
    language: str = setting("fr", description="Language of the steward UI at start: fr or en")
    supervisors: Path = setting(DEFAULT_SUPERVISORS_FILE, description="The supervisors' "
                                "PIN hashes (`gate supervisor set ID`); mode 0600, owned by "
                                "root or the gate's user; systemd's copy "
                                "(LoadCredential=supervisors) is read first")
    override_max_failures: int = setting(5, description="Refused supervisor overrides (unknown "
                                         "supervisor, wrong PIN) that lock every override",
                                         minimum=1, maximum=100)
    override_failure_window_s: float = setting(600.0, description="The window in which those "
                                               "refusals count, seconds", minimum=10,
                                               maximum=86400)
    override_lockout_s: float = setting(900.0, description="How long overrides stay locked, "
                                        "seconds", minimum=10, maximum=86400)


class Frame(Protocol):
    @property
    def image(self) -> Any: ...
    @property
    def captured_at(self) -> float: ...
    @property
    def index(self) -> int: ...


class Decoder(Protocol):
    def decode(self, image: Any) -> list[str]: ...


class Debouncer(Protocol):
    def feed(self, texts: list[str], at: float) -> list[str]: ...


class Clock(Protocol):
    def now(self) -> Now: ...


class Turnstile(Protocol):
    def admit(self, timeout: float | None = None, *, accessible: bool = False) -> Any: ...
    def refuse(self) -> float: ...
    def call_steward(self) -> float: ...
    def acknowledge_fire_alarm(self, steward_id: str) -> bool: ...
    @property
    def fire_alarm_active(self) -> bool: ...
    @property
    def free_egress_latched(self) -> bool: ...


class ManifestLookup(Protocol):
    def lookup(self, event: str, query: str, *, limit: int = 10) -> tuple[Any, ...]: ...
    def manifest_entry(self, event: str, ticket_id: str) -> Any: ...


class ManualRefusedError(GateError, PermissionError):
    """A manual action the daemon will not carry out (limit, unknown ticket, busy lane)."""

    def __init__(self, message: str, code: str = "refused") -> None:
        super().__init__(message)
        self.code = code
        """Stable: limit, not_in_manifest, void, already_inside, busy, loop_open, invalid,
        invalid_ticket_id, supervisor_refused, override_locked, supervisors_unavailable."""

OVERRIDE_REFUSED = "supervisor_override_refused"
"""Gate event: an override attempt that did not authenticate (counts towards the lock)."""
OVERRIDE_BLOCKED = "supervisor_override_blocked"
"""Gate event: an override refused untried (overrides locked, supervisors file unusable)."""
OVERRIDES_LOCKED = "supervisor_overrides_locked"
"""Gate event: too many refused overrides; every override is refused for a while."""


@dataclass
class Counters:
    frames: int = 0
    decided: int = 0
    displayed: int = 0
    by_verdict: collections.Counter[str] = field(default_factory=collections.Counter)
    journal_failures: int = 0
    journal_error: str | None = None
    frame_errors: int = 0
    feed_error: str | None = None
    """Why the revocations could not be read at the last decision, or None."""
    started_at: float = field(default_factory=time.time)


class Daemon:
    """One gate: the loop over frames, manual actions, and what they share."""

    def __init__(self, *, profile: GateProfile, policy: Policy, trust: TrustStore,
                 revocations: RevocationView, journal: Journal, turnstile: Turnstile,
                 decoder: Decoder, debouncer: Debouncer, clock: Clock, lane: LaneConfig,
                 steward: StewardConfig, bus: EventBus | None = None,
                 metrics: GateMetrics | None = None, manifest: ManifestLookup | None = None,
                 passage_outcome: Callable[[Any], bool] | None = None) -> None:
        self.profile, self.policy, self.trust = profile, policy, trust
        self.revocations, self.journal, self.turnstile = revocations, journal, turnstile
        self.decoder, self.debouncer, self.clock = decoder, debouncer, clock
        self.lane_config, self.steward_config = lane, steward
        self.bus = bus or EventBus()
        self.metrics = metrics
        self.manifest = manifest
        self._passed = passage_outcome or (lambda outcome: str(outcome) != "timed_out")
        self._lane = threading.Lock()
        self._recent: dict[tuple[str, str], float] = {}
        self._manual_times: collections.deque[float] = collections.deque()
        self.overrides = Authenticator(steward.supervisors, OverrideLimits(
            steward.override_max_failures, steward.override_failure_window_s,
            steward.override_lockout_s))
        self._overrides_seeded = False
        self.counters = Counters()
        self.last_decision: dict[str, Any] | None = None
        self.heartbeat = time.monotonic()
        """When the loop last went round (monotonic): the watchdog pings while it is recent."""
        self.busy_until = 0.0
        """While a turnstile cycle runs, the time by which it must have ended (monotonic)."""
        self.before_unlock: Callable[[str | None], None] | None = None
        """Called with the admission's scan id right before the lock opens (tests' pin log)."""
        self.cycle_budget_s = 130.0
        """The longest a turnstile cycle may take (open timeout plus signals); wiring sets it."""

    # --- the loop ---------------------------------------------------------------------

    def run(self, frames: Iterable[Frame | None], stop: threading.Event) -> Counters:
        """Process frames until the source ends or `stop` is set.

        A None in `frames` means "no frame for a while" (a camera being reopened): the loop
        still pings the watchdog and sees a stop request.
        """
        for frame in frames:
            self.heartbeat = time.monotonic()
            if stop.is_set():
                break
            if frame is None:
                continue
            try:
                self.process_frame(frame)
            except GateError as exc:
                if not isinstance(exc, HardwareError | ScannerError):
                    raise
                self.counters.frame_errors += 1
                log.error("frame failed gate=%s frame=%s cause=%s", self.profile.gate_id,
                          getattr(frame, "index", "?"), exc)
            except Exception:
                # A fault in one frame (a decoder or library bug) must not take the gate
                # down at the gate's busiest moment: it is logged with its traceback,
                # counted and visible in `gate status`, and the next frame goes on.
                self.counters.frame_errors += 1
                log.exception("frame failed gate=%s frame=%s", self.profile.gate_id,
                              getattr(frame, "index", "?"))
        return self.counters

    def process_frame(self, frame: Frame) -> list[dict[str, Any]]:
        received = time.perf_counter()
        self.counters.frames += 1
        texts = self.decoder.decode(frame.image)
        decoded = time.perf_counter()
        if self.metrics:
            self.metrics.frames.inc()
            self.metrics.decode.observe(decoded - received)
        events = []
        for text in self.debouncer.feed(texts, frame.captured_at):
            events.append(self.handle_code(text, received=received))
        return events

    def handle_code(self, text: str, *, received: float | None = None) -> dict[str, Any]:
        """Decide on one new code text and carry the decision out."""
        with self._lane:
            now = self.clock.now()  # once for this code: the hold check and the decision
            cred = read_code(text, now, self.profile)
            key = None if isinstance(cred, Decision) else TicketKey(
                cred.fields.event, cred.fields.ticket_id, cred.fields.generation)
            if key is not None and self._still_at_gate(key, now):
                self.counters.displayed += 1
                shown = TicketDisplayed(ticket=_ticket_ref(key), at=format_time(now.unix))
                self.bus.publish(shown)
                return shown.to_json()
            try:
                decision = cred if isinstance(cred, Decision) else decide_credential(
                    cred, now, trust=self.trust, revocations=self.revocations,
                    admissions=self.journal, profile=self.profile, policy=self.policy,
                    history=self.journal)
                self.counters.feed_error = None
            except OSError as exc:  # the revocation view's store is damaged or gone
                self.counters.feed_error = str(exc)
                log.error("revocations unreadable, steward decides: gate=%s cause=%s",
                          self.profile.gate_id, exc)
                decision = Decision(Verdict.STEWARD, Reason.FEED_UNAVAILABLE, now.unix, key,
                                    detail=str(exc), timezone=self.profile.timezone)
            latency_ms = None if received is None else (time.perf_counter() - received) * 1e3
            if self.metrics and latency_ms is not None:
                self.metrics.latency.observe(latency_ms / 1e3)
            return self._carry_out(decision, Method.CAMERA, latency_ms=latency_ms)

    def _remember(self, key: TicketKey, at: float) -> None:
        """The ticket was just at the gate; forget those gone for longer than the hold."""
        self._recent[(key.event, key.ticket_id)] = at
        if len(self._recent) > 1024:
            hold = self.lane_config.same_ticket_hold_s
            self._recent = {k: t for k, t in self._recent.items() if at - t < hold}

    def _still_at_gate(self, key: TicketKey, now: Now) -> bool:
        seen = self._recent.get((key.event, key.ticket_id))
        hold = self.lane_config.same_ticket_hold_s
        return seen is not None and now.unix - seen < hold

    # --- carrying a decision out (the lane is held) -----------------------------------

    def _carry_out(self, decision: Decision, method: Method, *, latency_ms: float | None,
                   steward: str | None = None, note: str | None = None) -> dict[str, Any]:
        admits = decision.verdict is Verdict.ADMIT and decision.reason is not Reason.EXIT
        scan_id: str | None = None
        if admits:
            try:
                scan_id = self.journal.admit(decision, method=method, latency_ms=latency_ms,
                                             steward=steward, note=note)
                self.counters.journal_error = None
            except AlreadyInsideError:
                assert decision.ticket is not None
                previous = self.journal.last_admission(decision.ticket.event,
                                                       decision.ticket.ticket_id)
                decision = replace(decision, verdict=Verdict.REFUSE,
                                   reason=Reason.ALREADY_ADMITTED, previous=previous)
                admits = False
            except JournalError as exc:
                self.counters.journal_failures += 1
                self.counters.journal_error = str(exc)
                log.error("journal unavailable, nobody admitted: gate=%s ticket=%s cause=%s",
                          self.profile.gate_id, _who(decision), exc)
                decision = replace(decision, verdict=Verdict.STEWARD,
                                   reason=Reason.JOURNAL_UNAVAILABLE, detail=str(exc))
                admits = False
        if not admits:
            try:
                scan_id = self.journal.record(decision, method=method, latency_ms=latency_ms,
                                              steward=steward, note=note)
            except JournalError as exc:
                self.counters.journal_failures += 1
                self.counters.journal_error = str(exc)
                log.error("journal unavailable, decision not recorded: gate=%s reason=%s "
                          "cause=%s", self.profile.gate_id, decision.reason.value, exc)
        if decision.ticket is not None:
            self._remember(decision.ticket, decision.at)
        action = {Verdict.ADMIT: "unlock", Verdict.REFUSE: "refuse",
                  Verdict.STEWARD: "call_steward"}[decision.verdict]
        event = self._decision_event(decision, scan_id, method, latency_ms, action, steward)
        self._count(decision)
        self.bus.publish(event)
        log.info("decision gate=%s verdict=%s reason=%s ticket=%s method=%s scan_id=%s",
                 self.profile.gate_id, decision.verdict.value, decision.reason.value,
                 _who(decision), method.value, scan_id)
        if decision.verdict is Verdict.ADMIT:
            self.busy_until = time.monotonic() + self.cycle_budget_s
            if self.before_unlock is not None:
                self.before_unlock(scan_id)
            try:
                if self._accessible_opening(decision):
                    outcome = self.turnstile.admit(timeout=self.lane_config.accessible_open_s,
                                                   accessible=True)
                else:
                    outcome = self.turnstile.admit()
            finally:
                self.busy_until = 0.0
                self.heartbeat = time.monotonic()
            passed = self._passed(outcome)
            if admits and scan_id is not None:
                try:
                    self.journal.passage(scan_id, passed=passed, at=self.clock.now().unix)
                except JournalError as exc:
                    log.error("journal unavailable, passage not recorded: scan_id=%s cause=%s",
                              scan_id, exc)
            if self.metrics:
                self.metrics.outcomes.labels(str(outcome)).inc()
            self.bus.publish(PassageEnded(scan_id=scan_id, outcome=str(outcome),
                                          voided=admits and not passed,
                                          ticket=event.ticket))
            log.info("passage gate=%s scan_id=%s outcome=%s", self.profile.gate_id, scan_id,
                     outcome)
            event = replace(event, outcome=str(outcome), voided=admits and not passed)
            if decision.ticket is not None:  # the hold starts when the person has gone
                self._remember(decision.ticket, self.clock.now().unix)
        elif decision.verdict is Verdict.REFUSE:
            self.turnstile.refuse()
        else:
            self.turnstile.call_steward()
        self.last_decision = event.to_json()
        return self.last_decision

    def _accessible_opening(self, decision: Decision) -> bool:
        """An ACCESSIBLE ticket going in at an accessible lane: the longer opening."""
        f = decision.fields
        return f is not None and bool(int(f.flags) & int(Flag.ACCESSIBLE)) \
            and self.lane_config.kind is LaneKind.ACCESSIBLE and decision.reason is not Reason.EXIT

    def _count(self, decision: Decision) -> None:
        self.counters.decided += 1
        self.counters.by_verdict[decision.verdict.value] += 1
        if self.metrics:
            self.metrics.decisions.labels(decision.verdict.value, decision.reason.value).inc()

    def _decision_event(self, decision: Decision, scan_id: str | None, method: Method,
                        latency_ms: float | None, action: str, steward: str | None
                        ) -> DecisionMade:
        f = decision.fields
        return DecisionMade(
            scan_id=scan_id, at=format_time(decision.at), gate=self.profile.gate_id,
            verdict=decision.verdict.value, reason=decision.reason.value,
            sentence_en=decision.sentence(Lang.EN), sentence_fr=decision.sentence(Lang.FR),
            ticket=None if decision.ticket is None else _ticket_ref(decision.ticket),
            category=None if f is None else f.category,
            entrances=None if f is None else tuple(sorted(f.entrances)),
            method=method.value, steward=steward,
            latency_ms=None if latency_ms is None else round(latency_ms, 3),
            turnstile=action,
            accessible=None if f is None else bool(int(f.flags) & int(Flag.ACCESSIBLE)))

    # --- manual actions (control socket) ----------------------------------------------

    def manual_admit(self, ticket_id: str, *, steward: str, reason: str,
                     supervisor: str | None = None, pin: str | None = None,
                     paper: bool = False) -> dict[str, Any]:
        """A steward admits a ticket by hand (a printed confirmation, a dead phone).

        A supervisor (id and PIN, checked against the supervisors file) overrides the
        limit and the manifest checks; the ticket id must still be one a ticket could
        carry. Every check and the rate limit run with the lane held, so two stewards
        admitting at once can neither pass the limit together nor admit one ticket twice.
        """
        _require(steward, "steward")
        _require(reason, "reason")
        self._require_ticket(ticket_id)
        if supervisor is not None and not valid_supervisor_id(supervisor):
            raise ManualRefusedError("supervisor: 1 to 32 of A-Z a-z 0-9 . _ -", "invalid")
        if supervisor is not None:
            self._authenticate(supervisor, pin, steward=steward, ticket_id=ticket_id)
        elif pin is not None:
            raise ManualRefusedError("a PIN without a supervisor id: give both", "invalid")
        with self._lane_or_busy():
            now = self.clock.now()
            window = self.steward_config.manual_admit_window_s
            while self._manual_times and self._manual_times[0] < now.unix - window:
                self._manual_times.popleft()
            event = self.profile.current_event(now.unix)
            entry = None if self.manifest is None else \
                self.manifest.manifest_entry(event, ticket_id)
            request = ManualRequest(
                ticket_id=ticket_id, reason=reason, in_manifest=entry is not None,
                generation=0 if entry is None else int(entry.generation),
                flags=0 if entry is None else int(entry.flags),
                entrances=None if entry is None else frozenset(entry.entrances),
                manual_admits_in_window=len(self._manual_times),
                manual_admit_limit=self.steward_config.manual_admit_limit, window_s=window,
                supervisor=supervisor is not None, event=event)
            decided = decide_manual(request, now, revocations=self.revocations,
                                    admissions=self.journal, profile=self.profile)
            if isinstance(decided, ManualRefusal):
                raise ManualRefusedError(decided.message, decided.check.value)
            note = reason if supervisor is None else f"{reason} (override by {supervisor})"
            self._manual_times.append(now.unix)
            return self._carry_out(decided, Method.PAPER if paper else Method.STEWARD,
                                   latency_ms=None, steward=steward, note=note)

    def manual_deny(self, ticket_id: str, *, steward: str, reason: str) -> dict[str, Any]:
        _require(steward, "steward")
        _require(reason, "reason")
        self._require_ticket(ticket_id)
        with self._lane_or_busy():
            at = self.clock.now().unix
            decision = Decision(Verdict.REFUSE, Reason.MANUAL_DENY, at,
                                TicketKey(self.profile.current_event(at), ticket_id, 0),
                                detail=reason, timezone=self.profile.timezone)
            return self._carry_out(decision, Method.STEWARD, latency_ms=None, steward=steward,
                                   note=reason)

    def _require_ticket(self, ticket_id: object) -> None:
        """A ticket id the credential could carry: anything else could never have been
        issued, override or not. (The config already holds gate.event to the tickets' rule.)"""
        if not credential.valid_ticket_id(ticket_id):
            shown = ticket_id[:40] if isinstance(ticket_id, str) else type(ticket_id).__name__
            raise ManualRefusedError(
                f"ticket_id {shown!r} is not a ticket id: 1 to {credential.TICKET_ID_MAX} of "
                "A-Z a-z 0-9 . _ -", "invalid_ticket_id")

    def _authenticate(self, supervisor: str, pin: str | None, *, steward: str,
                      ticket_id: str) -> None:
        """The supervisor's id and PIN, or ManualRefusedError; every refusal journalled."""
        if not self._overrides_seeded:  # refusals before a restart still count
            self._overrides_seeded = True
            now = self.clock.now().unix
            try:
                ages = [now - at for at, kind, _, _ in self.journal.gate_events(limit=500)
                        if kind == OVERRIDE_REFUSED]
            except Exception as exc:  # an unreadable journal: the count starts afresh
                log.error("earlier refused overrides unreadable gate=%s cause=%s",
                          self.profile.gate_id, exc)
                ages = []
            self.overrides.guard.seed(ages, time.monotonic())
        try:
            self.overrides.authenticate(supervisor, pin)
        except OverrideRefusedError as exc:
            at = self.clock.now().unix
            detail = f"supervisor={supervisor} ticket={ticket_id} code={exc.code}: {exc}"
            log.warning("supervisor override refused gate=%s steward=%s supervisor=%s "
                        "ticket=%s code=%s", self.profile.gate_id, steward, supervisor,
                        ticket_id, exc.code)
            kinds = [OVERRIDE_REFUSED if exc.counted else OVERRIDE_BLOCKED]
            if exc.locked_now:
                kinds.append(OVERRIDES_LOCKED)
                log.error("supervisor overrides locked gate=%s lockout_s=%s",
                          self.profile.gate_id, self.steward_config.override_lockout_s)
            for kind in kinds:
                try:
                    self.journal.gate_event(kind, at=at, steward=steward, detail=detail)
                except JournalError as journal_exc:
                    log.error("refused override not journalled gate=%s supervisor=%s "
                              "cause=%s", self.profile.gate_id, supervisor, journal_exc)
            self.bus.publish(OverrideRefused(steward=steward, supervisor=supervisor,
                                             ticket_id=ticket_id, code=exc.code))
            raise ManualRefusedError(str(exc), exc.code) from None
        log.warning("supervisor override accepted gate=%s steward=%s supervisor=%s ticket=%s",
                    self.profile.gate_id, steward, supervisor, ticket_id)

    @contextlib.contextmanager
    def _lane_or_busy(self) -> Iterator[None]:
        """The lane for a manual action; refused as busy rather than waiting for ever."""
        if not self._lane.acquire(timeout=self.cycle_budget_s):
            raise ManualRefusedError("the lane is busy: try again in a moment", "busy")
        try:
            yield
        finally:
            self._lane.release()

    def acknowledge_fire_alarm(self, steward: str) -> dict[str, Any]:
        _require(steward, "steward")
        done = self.turnstile.acknowledge_fire_alarm(steward)
        self.bus.publish(FireAlarmAcknowledged(steward=steward, accepted=done))
        log.warning("fire alarm acknowledge gate=%s steward=%s accepted=%s",
                    self.profile.gate_id, steward, done)
        if not done:
            raise ManualRefusedError("the fire-alarm loop is still open: free egress stays on",
                                     "loop_open")
        return {"ok": True, "accepted": True}


def _require(value: object, name: str) -> None:
    """A steward id or reason as the control socket admits them (control.text_problem)."""
    if not isinstance(value, str) or not value.strip():
        raise ManualRefusedError(f"{name} is required", "invalid")
    problem = text_problem(value)
    if problem:
        raise ManualRefusedError(f"{name}: {problem}", "invalid")


def _ticket_ref(key: TicketKey) -> TicketRef:
    return TicketRef(key.event, key.ticket_id, key.generation)


def _who(decision: Decision) -> str:
    t = decision.ticket
    return "-" if t is None else f"{t.event}/{t.ticket_id}/g{t.generation}"
