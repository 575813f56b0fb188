"""What the steward UI shows, as records read from the control protocol's JSON.

The daemon's answers are dicts (docs/steward.md lists the fields relied on); everything
here reads them defensively (a missing or odd field shows as "-", never a crash) and is
pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any

from portique.base import localtime
from portique.revocation.format import sanitise_holder_name
from portique.runtime.events import DecisionMade, Event
from portique.runtime.steward.i18n import T, tr
from portique.ticket.credential import Flag
from portique.ticket.decision import SUPERVISOR_MAY_OVERRIDE, ManualCheck
from portique.ticket.reasons import Lang, Reason, Verdict, sentence


def _text(value: object, default: str = "-") -> str:
    """A text of the daemon's answer as the screen shows it: what a feed's parser lets
    through (controls, bidi and other format characters replaced by U+FFFD, whatever the
    store or the daemon holds)."""
    return default if value is None or value == "" else sanitise_holder_name(str(value))


_UTC = UTC


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    return default


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def clock_time(iso: object, tz: tzinfo) -> str:
    """An ISO-8601 time from the daemon as HH:MM:SS in the venue's time zone."""
    try:
        moment = datetime.fromisoformat(str(iso)).astimezone(tz)
        return moment.strftime("%H:%M:%S") + localtime.label(moment)
    except ValueError:
        return "--:--:--"


def age_text(seconds: float, lang: Lang) -> str:
    """A duration as a steward reads it: 40 s, 3 min, 2 h, 1 d."""
    s = max(0, int(seconds))
    if s < 120:
        return tr(T.AGE_SECONDS, lang, n=s)
    if s < 2 * 3600:
        return tr(T.AGE_MINUTES, lang, n=s // 60)
    if s < 2 * 86400:
        return tr(T.AGE_HOURS, lang, n=s // 3600)
    return tr(T.AGE_DAYS, lang, n=s // 86400)


def verdict_of(value: object) -> Verdict | None:
    try:
        return Verdict(str(value))
    except ValueError:
        return None


VERDICT_TEXT = {Verdict.ADMIT: T.VERDICT_ADMIT, Verdict.REFUSE: T.VERDICT_REFUSE,
                Verdict.STEWARD: T.VERDICT_STEWARD}


@dataclass(frozen=True, slots=True)
class ReadyLine:
    """One line of the gate's ready-for-doors checklist (portique/runtime/readiness.py)."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class GateStatus:
    """The daemon's `status`, as the status bar and the banners need it."""

    gate: str
    event: str
    entrance: str
    feed_sequence: int | None
    feed_age_s: float | None
    clock_trusted: bool
    camera_state: str
    camera_fps: float
    admitted: int
    refused: int
    steward_calls: int
    fire_active: bool
    fire_latched: bool
    camera_device: str = ""
    camera_why: str = ""
    zones: tuple[tuple[str, str, int], ...] = ()
    """(zone, session, inside) of the session in force, from the gate's status."""
    feed_waived: bool = False
    """The config says feeds.required = false: resold tickets cannot be refused."""
    ready: tuple[ReadyLine, ...] | None = None
    """The ready-for-doors checklist, or None from a gate that does not report it."""
    training: bool = False
    """A training gate (`gate train run`): simulated pins, no real lock."""

    @property
    def ready_ok(self) -> bool | None:
        return None if self.ready is None else bool(self.ready) and all(
            line.ok for line in self.ready)

    @classmethod
    def from_json(cls, s: Mapping[str, Any]) -> GateStatus:
        feed, clock = _dict(s.get("feed")), _dict(s.get("clock"))
        camera, fire = _dict(s.get("camera")), _dict(s.get("fire_alarm"))
        decisions = _dict(s.get("decisions"))
        return cls(
            gate=_text(s.get("gate")), event=_text(s.get("event")),
            entrance=_text(s.get("entrance")),
            feed_sequence=_int(feed["sequence"]) if "sequence" in feed else None,
            feed_age_s=_float(feed.get("age_s")),
            clock_trusted=bool(clock.get("trusted", False)),
            camera_state=_text(camera.get("state"), "unknown"),
            camera_fps=_float(camera.get("fps")) or 0.0,
            camera_device=_text(camera.get("device")),
            camera_why=_text(camera.get("why")),
            admitted=_int(decisions.get("admit")), refused=_int(decisions.get("refuse")),
            steward_calls=_int(decisions.get("steward")),
            fire_active=bool(fire.get("active", False)),
            fire_latched=bool(fire.get("latched", False)),
            zones=tuple((_text(z.get("zone")), _text(z.get("session")), _int(z.get("inside")))
                        for z in (s.get("zones") or []) if isinstance(z, dict)
                        and z.get("session") == s.get("event")),
            feed_waived=bool(s.get("feed_waived", False)),
            ready=_ready_lines(s.get("ready")),
            training=bool(_dict(s.get("training")).get("active", False)),
        )

    @property
    def camera_lost(self) -> bool:
        """No ticket read by the camera (lost, black, frozen, starting ...): steward-only."""
        return self.camera_state != "ok"


def _ready_lines(value: object) -> tuple[ReadyLine, ...] | None:
    if not isinstance(value, Mapping) or not isinstance(value.get("checks"), list):
        return None
    return tuple(ReadyLine(_text(c.get("name")), bool(c.get("ok", False)),
                           _text(c.get("detail")))
                 for c in value["checks"] if isinstance(c, Mapping))


CAMERA_STATES = {"starting": T.CAMERA_STARTING, "lost": T.CAMERA_LOST,
                 "black": T.CAMERA_BLACK, "frozen": T.CAMERA_FROZEN,
                 "ended": T.CAMERA_ENDED, "closed": T.CAMERA_CLOSED}


def camera_state_text(state: str, lang: Lang) -> str:
    key = CAMERA_STATES.get(state)
    return f"CAMERA {state.upper()}" if key is None else tr(key, lang)


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One decision in the live feed."""

    at: str
    verdict: Verdict
    reason: str
    ticket_id: str
    category: str
    entrances: str
    sentence_fr: str
    sentence_en: str
    steward: str | None
    scan_id: str | None
    voided: bool = False
    """An admission nobody passed through: the gate voided it (the passage event, or the
    journal's admission state)."""

    @classmethod
    def from_entry(cls, e: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]],
                   tz: tzinfo) -> FeedRow | None:
        """The row of a journal entry (the `recent` op, after a reconnection): the sentence
        is made here from the reason code; an "already admitted" names the admission among
        `earlier` entries (older ones), other details the journal does not keep show as
        "?"."""
        verdict = verdict_of(e.get("verdict"))
        if verdict is None:
            return None
        details: dict[str, str] = {}
        if e.get("reason") == Reason.ALREADY_ADMITTED:
            before = next((x for x in earlier if x.get("admission") in ("open", "passed")
                           and x.get("ticket_id") == e.get("ticket_id")), None)
            if before is not None:
                details = {"gate": _text(before.get("gate")),
                           "time": clock_time(before.get("at"), tz)[:5]}  # as the gate says
        said = {}
        for lang in Lang:
            try:
                said[lang] = sentence(Reason(str(e.get("reason"))), lang, **details)
            except ValueError:
                said[lang] = _text(e.get("reason"))
        return cls(at=_text(e.get("at"), ""), verdict=verdict, reason=_text(e.get("reason")),
                   ticket_id=_text(e.get("ticket_id")), category="-", entrances="-",
                   sentence_fr=said[Lang.FR], sentence_en=said[Lang.EN],
                   steward=None if e.get("steward") is None else _text(e.get("steward")),
                   scan_id=None if e.get("scan_id") is None else str(e.get("scan_id")),
                   voided=e.get("admission") == "voided")
    accessible: bool = False
    """The ticket's ACCESSIBLE flag, shown on every decision."""

    @classmethod
    def from_event(cls, e: Event) -> FeedRow | None:
        """The row of a decision; None for other events."""
        verdict = verdict_of(e.verdict) if isinstance(e, DecisionMade) else None
        if not isinstance(e, DecisionMade) or verdict is None:
            return None
        return cls(
            at=e.at, verdict=verdict, reason=_text(e.reason),
            ticket_id=_text(None if e.ticket is None else e.ticket.ticket_id),
            category=_text(e.category),
            entrances=",".join(str(n) for n in e.entrances) if e.entrances else "-",
            sentence_fr=_text(e.sentence_fr, ""), sentence_en=_text(e.sentence_en, ""),
            steward=None if e.steward is None else _text(e.steward), scan_id=e.scan_id,
            voided=e.voided is True,
            accessible=bool(e.accessible),
        )

    def sentence(self, lang: Lang) -> str:
        return self.sentence_fr if lang is Lang.FR else self.sentence_en


def _moment(row: FeedRow) -> datetime:
    try:
        at = datetime.fromisoformat(row.at)
    except ValueError:
        return datetime.min.replace(tzinfo=_UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=_UTC)


def merge_rows(rows: Iterable[FeedRow], more: Iterable[FeedRow]) -> tuple[list[FeedRow], int]:
    """`rows` with the rows of `more` they lack (same scan id), oldest first, and how many
    were added. A row already there is kept (the live event's sentence has its details),
    but takes a voided state the newer news reports."""
    merged = list(rows)
    index = {r.scan_id: i for i, r in enumerate(merged) if r.scan_id}
    added = 0
    for row in more:
        at = index.get(row.scan_id) if row.scan_id else None
        if at is None:
            merged.append(row)
            if row.scan_id:
                index[row.scan_id] = len(merged) - 1
            added += 1
        elif row.voided and not merged[at].voided:
            merged[at] = replace(merged[at], voided=True)
    merged.sort(key=_moment)
    return merged, added


def voided(rows: Iterable[FeedRow], scan_id: str) -> tuple[list[FeedRow], bool]:
    """`rows` with the admission `scan_id` marked voided, and whether one was."""
    out, found = [], False
    for row in rows:
        if row.scan_id == scan_id and not row.voided:
            out.append(replace(row, voided=True))
            found = True
        else:
            out.append(row)
    return out, found


class MatchKind(enum.StrEnum):
    TICKET_ID = "ticket_id"
    ORDER_REF = "order_ref"
    NAME = "name"
    NAME_PREFIX = "name_prefix"
    NAME_WORDS = "name_words"
    NEAR = "near"


MATCH_TEXT = {MatchKind.TICKET_ID: T.MATCH_TICKET_ID, MatchKind.ORDER_REF: T.MATCH_ORDER_REF,
              MatchKind.NAME: T.MATCH_NAME, MatchKind.NAME_PREFIX: T.MATCH_NAME_PREFIX,
              MatchKind.NAME_WORDS: T.MATCH_NAME_WORDS, MatchKind.NEAR: T.MATCH_NEAR}


@dataclass(frozen=True, slots=True)
class Ticket:
    """A manifest entry found by a lookup."""

    ticket_id: str
    generation: int
    order_ref: str
    holder: str
    category: str
    entrances: tuple[int, ...]
    flags: Flag
    match: MatchKind | None
    cancelled: bool

    @classmethod
    def from_json(cls, c: Mapping[str, Any]) -> Ticket:
        entrances = c.get("entrances", c.get("entrance"))
        try:
            match: MatchKind | None = MatchKind(str(c.get("match")))
        except ValueError:
            match = None
        return cls(
            ticket_id=_text(c.get("ticket_id")), generation=_int(c.get("generation")),
            order_ref=_text(c.get("order_ref")), holder=_text(c.get("holder"), ""),
            category=_text(c.get("category")),
            entrances=tuple(_int(n) for n in entrances) if isinstance(entrances, list)
            else (),
            flags=_flags(c.get("flags")), match=match,
            cancelled=bool(c.get("cancelled", False)),
        )

    def match_text(self, lang: Lang) -> str:
        return "-" if self.match is None else tr(MATCH_TEXT[self.match], lang)

    def flags_text(self, lang: Lang) -> str:
        names = [tr(key, lang) for flag, key in ((Flag.PAPER, T.FLAG_PAPER),
                                                 (Flag.ACCESSIBLE, T.FLAG_ACCESSIBLE),
                                                 (Flag.REENTRY, T.FLAG_REENTRY))
                 if flag in self.flags]
        return ", ".join(names) if names else tr(T.FLAGS_NONE, lang)

    @property
    def entrances_text(self) -> str:
        return ",".join(str(n) for n in self.entrances) or "-"


def _flags(value: object) -> Flag:
    """Flags as the number the feed carries, or as a list of names."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Flag(value & 0x07)
    result = Flag(0)
    if isinstance(value, list):
        for name in value:
            member = Flag.__members__.get(str(name).upper())
            if member is not None:
                result |= member
    return result


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One journalled decision about a ticket at this gate (the `history` op)."""

    at: str
    gate: str
    verdict: Verdict | None
    reason: str
    method: str
    steward: str
    note: str
    admission: str | None

    @classmethod
    def from_json(cls, e: Mapping[str, Any]) -> HistoryEntry:
        admission = e.get("admission")
        return cls(at=_text(e.get("at"), ""), gate=_text(e.get("gate")),
                   verdict=verdict_of(e.get("verdict")), reason=_text(e.get("reason")),
                   method=_text(e.get("method")), steward=_text(e.get("steward")),
                   note=_text(e.get("note")),
                   admission=None if admission is None else str(admission))

    def sentence(self, lang: Lang, **details: str) -> str:
        try:
            return sentence(Reason(self.reason), lang, **details)
        except ValueError:
            return self.reason


def history_sentences(history: Sequence[HistoryEntry], lang: Lang, tz: tzinfo) -> list[str]:
    """Each entry's sentence; "already admitted" names the admission below it (the
    `history` op carries reason codes, not the decision's details)."""
    said = []
    for index, entry in enumerate(history):
        details: dict[str, str] = {}
        if entry.reason == Reason.ALREADY_ADMITTED:
            earlier = next((e for e in history[index + 1:]
                            if e.admission in ("open", "passed")), None)
            if earlier is not None:
                details = {"gate": earlier.gate, "time": clock_time(earlier.at, tz)}
        said.append(entry.sentence(lang, **details))
    return said


METHOD_TEXT = {"camera": T.METHOD_CAMERA, "steward": T.METHOD_STEWARD, "paper": T.METHOD_PAPER}
ADMISSION_TEXT = {"open": T.ADMISSION_OPEN, "passed": T.ADMISSION_PASSED,
                  "voided": T.ADMISSION_VOIDED, "exited": T.ADMISSION_EXITED}


def ticket_state(ticket: Ticket, history: Sequence[HistoryEntry], lang: Lang,
                 tz: tzinfo) -> tuple[str, bool]:
    """The ticket's state in one sentence, and whether it bars entry (cancelled, inside)."""
    if ticket.cancelled:
        return tr(T.STATE_CANCELLED, lang), True
    for entry in history:  # latest first
        at = clock_time(entry.at, tz)
        if entry.admission in ("passed", "open", "exited"):
            key = {"passed": T.STATE_INSIDE, "open": T.STATE_IN_PROGRESS,
                   "exited": T.STATE_EXITED}[entry.admission]
            return tr(key, lang, gate=entry.gate, time=at), entry.admission != "exited"
        if entry.admission == "voided":
            return tr(T.STATE_VOIDED, lang, time=at), False
        if entry.verdict is Verdict.REFUSE and entry.reason != Reason.ALREADY_ADMITTED:
            return tr(T.STATE_REFUSED, lang, time=at), False
    return tr(T.STATE_NOT_ADMITTED, lang), False


REFUSALS: Mapping[str, T] = {
    ManualCheck.LIMIT: T.REFUSAL_LIMIT, ManualCheck.NOT_IN_MANIFEST: T.REFUSAL_NOT_IN_MANIFEST,
    ManualCheck.VOID: T.REFUSAL_VOID, ManualCheck.ALREADY_INSIDE: T.REFUSAL_ALREADY_INSIDE,
    ManualCheck.WRONG_ENTRANCE: T.REFUSAL_WRONG_ENTRANCE,
    ManualCheck.EXIT_GATE: T.REFUSAL_EXIT_GATE,
    ManualCheck.INVALID_TICKET_ID: T.REFUSAL_INVALID_TICKET_ID,
    "busy": T.REFUSAL_BUSY, "invalid": T.REFUSAL_INVALID,
    "supervisor_refused": T.REFUSAL_SUPERVISOR_REFUSED,
    "override_locked": T.REFUSAL_OVERRIDE_LOCKED,
    "supervisors_unavailable": T.REFUSAL_SUPERVISORS_UNAVAILABLE,
    "loop_open": T.REFUSAL_LOOP_OPEN, "no_manifest": T.REFUSAL_NO_MANIFEST,
    "timeout": T.REFUSAL_TIMEOUT, "too_long": T.REFUSAL_TOO_LONG,
}
"""The daemon's refusal codes (docs/steward.md) and the sentence the screen says for each:
the daemon's own `error` is English, so the screen says it in the steward's language from
the code, and shows the code as it is."""

OVERRIDABLE = frozenset(check.value for check in SUPERVISOR_MAY_OVERRIDE)
"""Refusal codes a supervisor's id and PIN may override: the dialog is offered for these."""

LINK_ERRORS: Mapping[str, T] = {
    "no_socket": T.LINK_NO_SOCKET, "refused": T.LINK_REFUSED,
    "permission": T.LINK_PERMISSION, "timeout": T.LINK_TIMEOUT,
    "unreadable": T.LINK_UNREADABLE, "closed": T.LINK_CLOSED,
    "watch_refused": T.LINK_WATCH_REFUSED,
}


def link_error_text(kind: str, error: str, lang: Lang) -> str:
    """Why the gate cannot be reached, in `lang` (an unknown kind: the system's words)."""
    key = LINK_ERRORS.get(kind)
    return tr(key, lang) if key is not None else f"{tr(T.LINK_OTHER, lang)}: {error}"


def refusal_text(answer: Mapping[str, Any], lang: Lang, *, ticket_id: str = "-",
                 entrances: str = "-") -> str:
    """A refused request, said in `lang` from its code, the code kept: "... [limit]".

    An answer that never reached the daemon says why (`link`); a code the screen does not
    know yet keeps the daemon's own words after the code."""
    link = answer.get("link")
    if isinstance(link, str):
        return tr(T.UNREACHABLE, lang, error=link_error_text(link, str(answer.get("error")
                                                                         or ""), lang))
    code = str(answer.get("code") or "")
    key = REFUSALS.get(code)
    if key is None:
        error = _text(answer.get("error"), "")
        return f"{tr(T.REFUSAL_OTHER, lang)} [{code or '-'}]: {error}"
    return f"{tr(key, lang, ticket_id=ticket_id, entrances=entrances)} [{code}]"


PRESET_NOTES: Mapping[str, T] = {tr(key, Lang.EN): key for key in (
    T.ADMIT_PAPER, T.ADMIT_PHONE, T.ADMIT_APP, T.ADMIT_ASSISTED, T.DENY_NOT_HOLDER,
    T.DENY_NOT_HERE, T.DENY_CONDUCT)}
"""The dialogs' preset reasons, journalled in English (one spelling in every journal)."""


def note_text(note: str, lang: Lang) -> str:
    """A journalled note in `lang`: the presets and the daemon's "(override by ID)" are
    translated; a steward's own words stay as they were written."""
    reason, supervisor = note, None
    if note.endswith(")") and " (override by " in note:
        reason, _, rest = note.rpartition(" (override by ")
        supervisor = rest[:-1]
    key = PRESET_NOTES.get(reason)
    said = reason if key is None else tr(key, lang)
    return said if supervisor is None else tr(T.NOTE_OVERRIDE, lang, reason=said,
                                              supervisor=supervisor)
