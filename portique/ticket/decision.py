"""The decision: may the person holding this code go through this gate, now?

One pure function, ``decide``. Everything it needs comes in as arguments (the code text,
``now`` read once by the caller, the trust store, the revocation and admissions views,
the gate's profile and policy); a frozen ``Decision`` comes out. No I/O, no clock.

The checks run in this fixed order and the first failure wins (docs/credential.md,
"Check order", draws it):

 1. parse           strict, canonical decode of the text      NOT_A_TICKET, UNSUPPORTED_VERSION,
                                                               MALFORMED
 2. known key       issuer key id in the trust store, not     UNKNOWN_KEY, KEY_WITHDRAWN,
                    withdrawn, valid now, for this event      KEY_NOT_TRUSTED
 3. issuer sig      Ed25519 over level 1                      BAD_SIGNATURE
 4. session         the ticket's session is served here, its  WRONG_EVENT, SESSION_ELSEWHERE,
                    gates are open; the gate's entrance       SESSION_NOT_OPEN, SESSION_CLOSED,
                                                              WRONG_ENTRANCE
 5. revocation      (event, ticket) generation still valid    CANCELLED, SUPERSEDED
 6. validity        valid_from <= now < valid_until           NOT_YET_VALID, EXPIRED
 7. level 2         paper goes by policy; the gate clock is   PAPER_TICKET, CLOCK_UNTRUSTED,
                    trusted; the step is inside the window    STALE_CODE, PHONE_CLOCK_AHEAD
 8. device sig      Ed25519 of the holder's device            BAD_DEVICE_SIGNATURE
 9. entry rules     the session's rules (portique.ticket.rules, CATEGORY_ENTRANCE,
    and anti-      docs/rules.md) or, without rules, not       OUTSIDE_ENTRY_WINDOW,
    passback       already inside (re-entry, exit by profile)  ALREADY_ADMITTED, NOT_INSIDE,
                                                              MAX_ENTRIES_REACHED,
                                                              DAILY_LIMIT_REACHED, TOO_SOON,
                                                              RULE_NOT_MET, RULE_UNEVALUABLE
10. lane            an accessible-lane ticket at a standard     ACCESSIBLE_LANE (steward)
                    lane, when the gate calls the steward
11. admit                                                     VALID, VALID_PAPER, REENTRY, EXIT
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Protocol

from portique.base import localtime
from portique.base.errors import CredentialFormatError, NotATicketError, UnsupportedVersionError
from portique.base.timeparse import format_time
from portique.ticket.credential import (
    STEP_SECONDS,
    Credential,
    Flag,
    TicketFields,
    parse_code,
    valid_ticket_id,
    verify_device,
    verify_issuer,
)
from portique.ticket.reasons import Lang, Reason, Verdict, sentence
from portique.ticket.rules import (
    Facts,
    RuleOutcome,
    Session,
    evaluate_entry,
    exit_allowed,
    session_open,
)
from portique.ticket.trust import KeyStatus, TrustStore
from portique.ticket.views import (
    CANCELLED,
    Admission,
    AdmissionsView,
    HistoryView,
    RevocationView,
    TicketKey,
)

_PAPER = int(Flag.PAPER)
_REENTRY = int(Flag.REENTRY)
_ACCESSIBLE = int(Flag.ACCESSIBLE)


class PaperPolicy(enum.StrEnum):
    STEWARD = "steward"
    """A printed confirmation is genuine but copyable: a steward looks at it."""
    ADMIT_ONCE = "admit_once"
    """Admit it like a phone ticket; anti-passback stops the second copy."""


class UntrustedClockPolicy(enum.StrEnum):
    REFUSE = "refuse"
    STEWARD = "steward"


class Direction(enum.StrEnum):
    ENTRY = "entry"
    EXIT = "exit"


class LaneKind(enum.StrEnum):
    STANDARD = "standard"
    ACCESSIBLE = "accessible"
    """Wider lane: ACCESSIBLE tickets open it longer, with their own signal pattern."""


class AccessibleAtStandard(enum.StrEnum):
    """What a standard lane does with a ticket flagged ACCESSIBLE."""

    ADMIT = "admit"
    """Opens as for anyone else."""
    STEWARD = "steward"
    """Calls the steward, with a sentence that points to the accessible lane."""


@dataclass(frozen=True, slots=True)
class Policy:
    """How strict the gate is where the format leaves a choice."""

    paper: PaperPolicy = PaperPolicy.STEWARD
    untrusted_clock: UntrustedClockPolicy = UntrustedClockPolicy.STEWARD
    grace_seconds: int = 15
    """How long after its step ends a code is still accepted (phone and gate clock skew)."""
    ahead_seconds: int = 15
    """How long before its step starts a code is already accepted (phone clock ahead)."""


@dataclass(frozen=True, slots=True)
class GateProfile:
    """Who this gate is: the event and entrance it serves, and how people pass."""

    gate_id: str
    event: str
    entrance: int
    direction: Direction = Direction.ENTRY
    allow_reentry: bool = False
    timezone: tzinfo = UTC
    """The venue's time zone, for times in sentences and the entry rules."""
    sessions: tuple[Session, ...] = ()
    """The sessions this gate serves; empty: `event` alone, always open (old configs)."""
    elsewhere: tuple[tuple[str, str], ...] = ()
    """(event, gate area) of sessions served elsewhere at the venue, for the sentence."""
    lane: LaneKind = LaneKind.STANDARD
    accessible_at_standard: AccessibleAtStandard = AccessibleAtStandard.ADMIT
    accessible_lane: str = ""
    """Where the accessible lane is, in the words of the sentence ("lane 1, on the left")."""

    def session_of(self, event: str) -> Session | None:
        """The session `event` names among those served here, or None."""
        if not self.sessions:
            return Session(event) if event == self.event else None
        for session in self.sessions:
            if session.event == event:
                return session
        return None

    def area_of(self, event: str) -> str:
        """The gate area that serves `event`, if the config knows it, else ""."""
        for other, area in self.elsewhere:
            if other == event:
                return area
        return ""

    def current_event(self, now: float) -> str:
        """The session a manual action is for at `now`: the one whose gates are open (the
        latest opened, when two overlap), else the next to open, else `event`."""
        open_now = [s for s in self.sessions if (s.opens_at is None or s.opens_at <= now)
                    and (s.closes_at is None or now < s.closes_at)]
        if open_now:
            return max(open_now, key=lambda s: s.opens_at or 0.0).event
        later = [s for s in self.sessions if s.opens_at is not None and s.opens_at > now]
        if later:
            return min(later, key=lambda s: s.opens_at or 0.0).event
        return self.event


@dataclass(frozen=True, slots=True)
class Now:
    """The instant of one decision, read once by the caller, and whether to trust it."""

    unix: float
    trusted: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    """What the gate decided, why, and about which ticket."""

    verdict: Verdict
    reason: Reason
    at: float
    ticket: TicketKey | None = None
    fields: TicketFields | None = None
    previous: Admission | None = None
    """For ALREADY_ADMITTED: the admission already in force."""
    detail: str = ""
    """Technical detail for logs (e.g. which byte was malformed); never shown to visitors."""
    timezone: tzinfo = field(default=UTC, compare=False)
    moment: float | None = None
    """The time the reason names: when the session's gates open, the next entry window..."""
    info: str = ""
    """What else the sentence names: a gate area, a limit, the entrances of a rule."""
    auto_exit: float | None = None
    """For a re-entry after an automatic exit: when it let the holder out (the journal
    records the earlier stay as exited then)."""

    def sentence(self, lang: Lang) -> str:
        """The plain sentence a steward can say out loud, in `lang`."""
        details: dict[str, str] = {}
        if self.fields is not None:
            details["entrances"] = ", ".join(str(e) for e in sorted(self.fields.entrances))
            details["from"] = self._clock(self.fields.valid_from, lang)
            details["until"] = self._clock(self.fields.valid_until, lang)
        if self.previous is not None:
            details["gate"] = self.previous.gate
            details["time"] = self._clock(self.previous.at, lang, date=False)
        if self.moment is not None:
            same_day = localtime.local(self.moment, self.timezone).date() == \
                localtime.local(self.at, self.timezone).date()
            details["when"] = self._clock(self.moment, lang, date=not same_day)
        if self.info:
            details["info"] = self.info
        return sentence(self.reason, lang, **details)

    @property
    def sentence_en(self) -> str:
        return self.sentence(Lang.EN)

    @property
    def sentence_fr(self) -> str:
        return self.sentence(Lang.FR)

    def _clock(self, unix: float, lang: Lang, *, date: bool = True) -> str:
        """The venue's wall clock, labelled with its zone when the reading is ambiguous."""
        return localtime.clock(unix, self.timezone, date=date, french=lang is Lang.FR)


def decide(
    code: str,
    now: Now,
    *,
    trust: TrustStore,
    revocations: RevocationView,
    admissions: AdmissionsView,
    profile: GateProfile,
    policy: Policy,
    history: HistoryView | None = None,
) -> Decision:
    """Decide on one scanned code. Pure: same inputs, same Decision."""
    # 1. parse
    cred = read_code(code, now, profile)
    if isinstance(cred, Decision):
        return cred
    return decide_credential(cred, now, trust=trust, revocations=revocations,
                             admissions=admissions, profile=profile, policy=policy,
                             history=history)


def read_code(code: str, now: Now, profile: GateProfile) -> Credential | Decision:
    """Check 1 alone: the credential a code spells, or the refusal that says why not.

    The daemon reads a code once with it (to spot the same ticket shown again) and hands
    the credential to `decide_credential`, so a code is never parsed twice.
    """
    t, tz = now.unix, profile.timezone
    try:
        return parse_code(code)
    except NotATicketError as exc:
        return Decision(Verdict.REFUSE, Reason.NOT_A_TICKET, t, detail=str(exc), timezone=tz)
    except UnsupportedVersionError as exc:
        return Decision(Verdict.REFUSE, Reason.UNSUPPORTED_VERSION, t, detail=str(exc),
                        timezone=tz)
    except CredentialFormatError as exc:
        return Decision(Verdict.REFUSE, Reason.MALFORMED, t, detail=str(exc), timezone=tz)


def decide_credential(
    cred: Credential,
    now: Now,
    *,
    trust: TrustStore,
    revocations: RevocationView,
    admissions: AdmissionsView,
    profile: GateProfile,
    policy: Policy,
    history: HistoryView | None = None,
) -> Decision:
    """Checks 2 to 11 on a credential `read_code` returned. Pure.

    `history` gives a ticket's stays in its session; it is read only for a session with
    entry rules (without it such a session's tickets are refused RULE_UNEVALUABLE).
    """
    t = now.unix
    tz = profile.timezone
    f = cred.fields
    flags = int(f.flags)  # plain int: enum flag arithmetic is slow on the hot path
    key = TicketKey(f.event, f.ticket_id, f.generation)

    def out(verdict: Verdict, reason: Reason, *, previous: Admission | None = None,
            detail: str = "", moment: float | None = None, info: str = "",
            auto_exit: float | None = None) -> Decision:
        return Decision(verdict, reason, t, key, f, previous, detail, tz, moment, info,
                        auto_exit)

    # 2. known key
    status, issuer_key = trust.lookup(f.kid, event=f.event, now=t)
    if status is KeyStatus.UNKNOWN:
        return out(Verdict.REFUSE, Reason.UNKNOWN_KEY, detail=f"kid {f.kid!r}")
    if status is KeyStatus.WITHDRAWN:
        return out(Verdict.REFUSE, Reason.KEY_WITHDRAWN, detail=f"kid {f.kid!r}")
    if issuer_key is None:
        return out(Verdict.REFUSE, Reason.KEY_NOT_TRUSTED,
                   detail=f"kid {f.kid!r}: {status.value}")

    # 3. issuer signature
    if not verify_issuer(cred, issuer_key):
        return out(Verdict.REFUSE, Reason.BAD_SIGNATURE)

    # 4. the ticket's session: served here, gates open; the entrance
    session = profile.session_of(f.event)
    if session is None:
        area = profile.area_of(f.event)
        if area:
            return out(Verdict.REFUSE, Reason.SESSION_ELSEWHERE, detail=f"event {f.event!r}",
                       info=area)
        return out(Verdict.REFUSE, Reason.WRONG_EVENT, detail=f"event {f.event!r}")
    if session.opens_at is not None or session.closes_at is not None:
        closed = session_open(session, t)
        if closed is not None and closed.moment is not None:
            return out(Verdict.REFUSE, closed.reason or Reason.SESSION_CLOSED,
                       moment=closed.moment,
                       detail=f"session {f.event}: {format_time(closed.moment)}")
    if profile.entrance not in f.entrances:
        return out(Verdict.REFUSE, Reason.WRONG_ENTRANCE)

    # 5. revoked or superseded generation
    void = _void(revocations, f.event, f.ticket_id, f.generation)
    if void is not None:
        return out(Verdict.REFUSE, void[0], detail=void[1])

    # 6. valid-from / valid-until
    if t < f.valid_from:
        return out(Verdict.REFUSE, Reason.NOT_YET_VALID)
    if t >= f.valid_until:
        return out(Verdict.REFUSE, Reason.EXPIRED)

    # 7. level 2: paper by policy, trusted clock, step window
    if flags & _PAPER:
        if policy.paper is PaperPolicy.STEWARD:
            return out(Verdict.STEWARD, Reason.PAPER_TICKET)
    else:
        if not now.trusted:
            verdict = (Verdict.STEWARD if policy.untrusted_clock is UntrustedClockPolicy.STEWARD
                       else Verdict.REFUSE)
            return out(verdict, Reason.CLOCK_UNTRUSTED)
        assert cred.step is not None  # parse guarantees level 2 on phone tickets
        step_start = cred.step * STEP_SECONDS
        if t < step_start - policy.ahead_seconds:
            return out(Verdict.REFUSE, Reason.PHONE_CLOCK_AHEAD,
                       detail=f"step starts {step_start - t:.0f}s ahead")
        if t >= step_start + STEP_SECONDS + policy.grace_seconds:
            return out(Verdict.REFUSE, Reason.STALE_CODE,
                       detail=f"step ended {t - step_start - STEP_SECONDS:.0f}s ago")

        # 8. device signature
        if not verify_device(cred):
            return out(Verdict.REFUSE, Reason.BAD_DEVICE_SIGNATURE)

    # 9. entry rules and anti-passback, exit and re-entry
    if session.has_rules:
        return _by_rules(session, cred, now, profile, history, out)
    previous = admissions.last_admission(f.event, f.ticket_id)
    if profile.direction is Direction.EXIT:
        if previous is None or not previous.inside:
            return out(Verdict.REFUSE, Reason.NOT_INSIDE, previous=previous)
        return out(Verdict.ADMIT, Reason.EXIT, previous=previous)
    if previous is not None:
        if _passback_holds(previous, flags, profile):
            return out(Verdict.REFUSE, Reason.ALREADY_ADMITTED, previous=previous)
        if _lane_calls_steward(flags, profile):
            return out(Verdict.STEWARD, Reason.ACCESSIBLE_LANE, info=profile.accessible_lane)
        return out(Verdict.ADMIT, Reason.REENTRY, previous=previous)

    # 10. an accessible-lane ticket at a standard lane
    if _lane_calls_steward(flags, profile):
        return out(Verdict.STEWARD, Reason.ACCESSIBLE_LANE, info=profile.accessible_lane)
    # 11. admit
    if flags & _PAPER:
        return out(Verdict.ADMIT, Reason.VALID_PAPER)
    return out(Verdict.ADMIT, Reason.VALID)


class _Out(Protocol):
    def __call__(self, verdict: Verdict, reason: Reason, *, previous: Admission | None = None,
                 detail: str = "", moment: float | None = None, info: str = "",
                 auto_exit: float | None = None) -> Decision: ...


def _lane_calls_steward(flags: int, profile: GateProfile) -> bool:
    return bool(flags & _ACCESSIBLE) and profile.lane is LaneKind.STANDARD and \
        profile.accessible_at_standard is AccessibleAtStandard.STEWARD


def _by_rules(session: Session, cred: Credential, now: Now, profile: GateProfile,
              history: HistoryView | None, out: _Out) -> Decision:
    """Checks 9 to 11 for a session with entry rules (portique.ticket.rules)."""
    f = cred.fields
    flags = int(f.flags)
    stays = None if history is None else history.stays(f.event, f.ticket_id)

    def earlier(outcome: RuleOutcome) -> Admission | None:
        stay = outcome.previous
        if stay is None:
            return None
        return Admission(f.event, f.ticket_id, f.generation, stay.gate, stay.at,
                         inside=outcome.inside)

    if profile.direction is Direction.EXIT:
        outcome = exit_allowed(session, stays, now.unix, profile.timezone)
        if outcome.reason is not None:
            return out(Verdict.REFUSE, outcome.reason, previous=earlier(outcome),
                       detail=outcome.detail)
        return out(Verdict.ADMIT, Reason.EXIT, previous=earlier(outcome))
    facts = Facts(category=f.category, entrance=profile.entrance,
                  accessible=bool(flags & _ACCESSIBLE), paper=bool(flags & _PAPER),
                  reentry_flag=bool(flags & _REENTRY),
                  gate_allows_reentry=profile.allow_reentry)
    outcome = evaluate_entry(session, facts, stays, now.unix, profile.timezone)
    if outcome.reason is not None:
        rules = session.rules_for(f.category)
        info = "" if outcome.limit is None else str(outcome.limit)
        if outcome.reason is Reason.CATEGORY_ENTRANCE and rules is not None \
                and rules.entrances is not None:
            info = ", ".join(str(e) for e in sorted(rules.entrances))
        return out(Verdict.REFUSE, outcome.reason, previous=earlier(outcome),
                   detail=outcome.detail, moment=outcome.moment, info=info)
    if _lane_calls_steward(flags, profile):
        return out(Verdict.STEWARD, Reason.ACCESSIBLE_LANE, info=profile.accessible_lane)
    if outcome.reentry:
        return out(Verdict.ADMIT, Reason.REENTRY, previous=earlier(outcome),
                   auto_exit=outcome.auto_exit)
    return out(Verdict.ADMIT, Reason.VALID_PAPER if flags & _PAPER else Reason.VALID)


# --- checks shared by camera and manual decisions ----------------------------------------

def _void(revocations: RevocationView, event: str, ticket_id: str,
          generation: int) -> tuple[Reason, str] | None:
    """Check 5: CANCELLED or SUPERSEDED (with a detail) if this generation is void."""
    minimum = revocations.min_valid_generation(event, ticket_id)
    if minimum is None or generation >= minimum:
        return None
    if minimum >= CANCELLED:
        return Reason.CANCELLED, ""
    return Reason.SUPERSEDED, f"generation {generation} < {minimum}"


def _passback_holds(previous: Admission, flags: int, profile: GateProfile) -> bool:
    """Check 9 at an entry: whether an earlier admission keeps this one out (still
    inside, or out but without a re-entry this gate and ticket both allow)."""
    may_return = bool(flags & _REENTRY) and profile.allow_reentry
    return previous.inside or not may_return


# --- manual decisions (a steward at the gate) ---------------------------------------------

class ManualCheck(enum.StrEnum):
    """A check a steward's manual admit failed; its value is the control protocol's code."""

    INVALID_TICKET_ID = "invalid_ticket_id"
    """Not an id any ticket could carry: never overridable."""
    LIMIT = "limit"
    """More manual admits in the window than the gate allows without a supervisor."""
    NOT_IN_MANIFEST = "not_in_manifest"
    """The event's manifest does not list the ticket."""
    VOID = "void"
    """The ticket is cancelled, or this copy superseded by a newer one (check 5)."""
    ALREADY_INSIDE = "already_inside"
    """Anti-passback (check 9): admitted already and not allowed back in."""
    WRONG_ENTRANCE = "wrong_entrance"
    """The manifest's entrances for the ticket do not include this gate's (check 4)."""
    EXIT_GATE = "exit_gate"
    """This gate records exits: nobody is admitted by hand here. Never overridable."""


SUPERVISOR_MAY_OVERRIDE: frozenset[ManualCheck] = frozenset({
    ManualCheck.LIMIT, ManualCheck.NOT_IN_MANIFEST, ManualCheck.WRONG_ENTRANCE,
    ManualCheck.VOID, ManualCheck.ALREADY_INSIDE})
"""The checks an authenticated supervisor may override; every other one holds."""


@dataclass(frozen=True, slots=True)
class ManualRefusal:
    """A manual admit the gate refuses, the check that failed and a sentence that says it."""

    check: ManualCheck
    message: str

    @property
    def overridable(self) -> bool:
        return self.check in SUPERVISOR_MAY_OVERRIDE


@dataclass(frozen=True, slots=True)
class ManualRequest:
    """What a steward asks, and what the gate knows of the ticket from its manifest."""

    ticket_id: str
    reason: str
    """The steward's words, kept as the decision's detail."""
    in_manifest: bool
    generation: int = 0
    """The manifest's generation of the ticket (0 when not in the manifest)."""
    flags: int = 0
    """The manifest's flags of the ticket (REENTRY matters here)."""
    entrances: frozenset[int] | None = None
    """The manifest's entrances of the ticket (None when not in the manifest)."""
    manual_admits_in_window: int = 0
    manual_admit_limit: int = 10
    window_s: float = 600.0
    supervisor: bool = False
    """An authenticated supervisor overrides the checks in SUPERVISOR_MAY_OVERRIDE."""
    event: str = ""
    """The session the admit is for; empty: the profile's event."""


def decide_manual(
    request: ManualRequest,
    now: Now,
    *,
    revocations: RevocationView,
    admissions: AdmissionsView,
    profile: GateProfile,
) -> Decision | ManualRefusal:
    """A steward's manual admit: the camera's revocation and anti-passback checks (5 and 9,
    the same functions), after the checks only a manual admit has. Pure.

    Order: ticket id and exit gate (never overridable) -> limit -> manifest -> entrance ->
    revoked or superseded -> anti-passback -> admit (MANUAL_ADMIT). The manifest carries
    no validity window, so check 6 has nothing to compare here. A supervisor's override
    skips the overridable refusals; the next check still runs, so the override never
    hides an invalid id.
    """
    t, r = now.unix, request
    event = r.event or profile.event
    if not valid_ticket_id(r.ticket_id):
        return ManualRefusal(ManualCheck.INVALID_TICKET_ID,
                             f"ticket_id {r.ticket_id[:40]!r} is not a ticket id")
    if profile.direction is Direction.EXIT:
        return ManualRefusal(ManualCheck.EXIT_GATE, "this gate records exits: admit the "
                             "ticket at an entry gate")
    refusals: list[ManualRefusal] = []
    if r.manual_admits_in_window >= r.manual_admit_limit:
        refusals.append(ManualRefusal(
            ManualCheck.LIMIT, f"manual admit limit reached ({r.manual_admit_limit} in "
            f"{r.window_s / 60:.0f} min): a supervisor must override"))
    if not r.in_manifest:
        refusals.append(ManualRefusal(
            ManualCheck.NOT_IN_MANIFEST, f"ticket {r.ticket_id} is not in this event's "
            "manifest: a supervisor must override"))
    if r.entrances is not None and profile.entrance not in r.entrances:
        refusals.append(ManualRefusal(
            ManualCheck.WRONG_ENTRANCE, f"ticket {r.ticket_id} is for entrance "
            f"{', '.join(str(e) for e in sorted(r.entrances))}, not {profile.entrance}: a "
            "supervisor must override"))
    void = _void(revocations, event, r.ticket_id, r.generation)
    if void is not None:
        what = "cancelled" if void[0] is Reason.CANCELLED else "superseded by a newer copy"
        refusals.append(ManualRefusal(
            ManualCheck.VOID, f"ticket {r.ticket_id} is {what}: a supervisor must override"))
    previous = admissions.last_admission(event, r.ticket_id)
    if previous is not None and _passback_holds(previous, r.flags, profile):
        refusals.append(ManualRefusal(
            ManualCheck.ALREADY_INSIDE, f"ticket {r.ticket_id} was already admitted at gate "
            f"{previous.gate} at {format_time(previous.at)}"))
    for refusal in refusals:
        if not (r.supervisor and refusal.overridable):
            return refusal
    key = TicketKey(event, r.ticket_id, r.generation)
    return Decision(Verdict.ADMIT, Reason.MANUAL_ADMIT, t, key, detail=r.reason,
                    timezone=profile.timezone)
