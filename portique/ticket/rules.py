"""Sessions and entry rules: the venue's day, evaluated in the venue's time zone. Pure.

A gate serves several sessions (events) a day, each with its gate-opening and closing
times; a code is decided against its own session. Each session may carry entry rules per
ticket category (docs/rules.md specifies every key, variable and operator, and
tests/vectors/rules.json is the contract):

    entrances, reentry, max_entries, max_entries_per_day, min_minutes_between,
    windows (time of day), conditions (variable, operator, value)

and the session may empty itself at set times (``exit_all_at``). Every wall-clock time is
read in the venue's zone (zoneinfo): "today" is the venue's date, a window "08:00-12:00"
is the venue's clock. A rule that cannot be evaluated (an unknown variable or operator, a
value of the wrong type, a malformed time, an unknown zone, no history to count) refuses
with RULE_UNEVALUABLE: a rule never admits by failing.

No clock is read: ``now`` comes in. No I/O.
"""

from __future__ import annotations

import functools
import math
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from portique.base.errors import GateError
from portique.ticket.reasons import Reason

RULES_VERSION = 1
"""The rules format's version (docs/rules.md); vectors carry it."""

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")

VARIABLES = ("entries", "entries_today", "minutes_since_last_entry", "now_isoweekday",
             "now_time", "now_date", "category", "entrance", "inside", "accessible", "paper")
"""Every variable a condition may name (docs/rules.md, "Variables")."""

OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in", "between")
"""Every operator a condition may use (docs/rules.md, "Operators")."""

Scalar = int | float | str | bool


class RuleUnevaluable(GateError, ValueError):  # noqa: N818 (caught inside this module)
    """A rule names something the evaluator cannot compute: the ticket is refused."""


@dataclass(frozen=True, slots=True)
class Condition:
    """``var op value``: holds or not for one ticket at one instant."""

    var: str
    op: str
    value: Scalar | tuple[Scalar, ...]
    name: str = ""
    """What the venue calls the rule (in logs and the steward's detail)."""


@dataclass(frozen=True, slots=True)
class EntryRules:
    """The entry rules of one session for some ticket categories. None: no such rule."""

    categories: frozenset[str] | None = None
    """The categories these rules are for; None: every category without rules of its own."""
    entrances: frozenset[int] | None = None
    """Entrances tickets of these categories use in this session (beside the ticket's own)."""
    reentry: bool | None = None
    """True: may come back in after leaving; False: never; None: the ticket's REENTRY flag
    and the gate's allow_reentry decide (the rule of a gate without rules)."""
    max_entries: int | None = None
    max_entries_per_day: int | None = None
    min_minutes_between: float | None = None
    windows: tuple[tuple[str, str], ...] = ()
    """Times of day ("HH:MM", "HH:MM") when entry is open; empty: all day."""
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class Session:
    """One event a gate serves: when its gates are open, and its entry rules."""

    event: str
    opens_at: float | None = None
    """Unix seconds; None: open since ever (the single-event gate of old configs)."""
    closes_at: float | None = None
    exit_all_at: tuple[str, ...] = ()
    """Times of day ("HH:MM") at which everyone inside is counted out."""
    rules: tuple[EntryRules, ...] = ()

    def rules_for(self, category: str) -> EntryRules | None:
        """The rules naming `category`, else the rules for every category, else None."""
        fallback = None
        for rules in self.rules:
            if rules.categories is None:
                fallback = fallback or rules
            elif category in rules.categories:
                return rules
        return fallback

    @property
    def has_rules(self) -> bool:
        return bool(self.rules or self.exit_all_at)


@dataclass(frozen=True, slots=True)
class Stay:
    """One admission of a ticket into its session (voided ones are not stays)."""

    at: float
    """When it was admitted (Unix seconds)."""
    exited_at: float | None = None
    """When an exit gate recorded the holder going out; None: no exit recorded."""
    gate: str = ""


def stays_of(entries: Sequence[tuple[float, str]], exits: Sequence[float]) -> tuple[Stay, ...]:
    """A ticket's stays from its admissions (time, gate) and its recorded exits (times),
    wherever the venue learnt them: each exit ends the latest stay before it that has not
    ended yet. Oldest first."""
    ordered = sorted(entries)
    ended: list[float | None] = [None] * len(ordered)
    for out in sorted(exits):
        for i in range(len(ordered) - 1, -1, -1):
            if ordered[i][0] < out:
                if ended[i] is None:
                    ended[i] = out
                break
    return tuple(Stay(at, ended[i], gate) for i, (at, gate) in enumerate(ordered))


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What the rules say: nothing against (reason None), or why not."""

    reason: Reason | None
    detail: str = ""
    moment: float | None = None
    """A time the sentence names (when entry opens again, the next window...)."""
    limit: int | None = None
    inside: bool = False
    reentry: bool = False
    """The admission would be a re-entry (the ticket was admitted before in this session)."""
    previous: Stay | None = None
    auto_exit: float | None = None
    """The automatic exit that ended the previous stay, when one did (the journal records
    that stay as exited at this instant)."""


# --- wall-clock helpers -----------------------------------------------------------------

def zone(name: str) -> tzinfo:
    """The zoneinfo zone `name`; RuleUnevaluable when unknown."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise RuleUnevaluable(f"unknown time zone {name!r}") from exc


def minutes_of(text: object) -> int:
    """Minutes since midnight of "HH:MM" (00:00 to 24:00); RuleUnevaluable otherwise."""
    if not isinstance(text, str):
        raise RuleUnevaluable(f"time of day {text!r} is not HH:MM (00:00 to 24:00)")
    return _minutes(text)


@functools.lru_cache(maxsize=1024)
def _minutes(text: str) -> int:
    # a session's few times of day are read at every decision: parsed once
    if not _HHMM.fullmatch(text):
        raise RuleUnevaluable(f"time of day {text!r} is not HH:MM (00:00 to 24:00)")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def wall_instant(day: date, minutes: int, tz: tzinfo) -> float:
    """The instant the venue's clock reads `minutes` after midnight of `day`.

    A reading in the spring gap is taken with the offset in force before the change
    (02:30 on 31 March 2024 in Paris is 01:30 UTC, which the clocks show as 03:30); a
    reading in the autumn fold is its first occurrence (summer time). "24:00" is the next
    day's 00:00. (PEP 495, fold=0, for both.)
    """
    day = day + timedelta(days=minutes // 1440)
    minutes %= 1440
    return datetime.combine(day, time(minutes // 60, minutes % 60, fold=0), tzinfo=tz
                            ).timestamp()


def _wall(unix: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(unix, tz)


def last_exit_all(exit_all_at: Sequence[str], now: float, tz: tzinfo) -> float | None:
    """The latest automatic exit at or before `now` (looking back two days), or None."""
    if not exit_all_at:
        return None
    today = _wall(now, tz).date()
    best: float | None = None
    for back in (0, 1, 2):
        day = today - timedelta(days=back)
        for text in exit_all_at:
            instant = wall_instant(day, minutes_of(text), tz)
            if instant <= now and (best is None or instant > best):
                best = instant
    return best


# --- the evaluation ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Facts:
    """What the rules may read about the ticket and the gate (docs/rules.md, "Variables")."""

    category: str
    entrance: int
    accessible: bool = False
    paper: bool = False
    reentry_flag: bool = False
    gate_allows_reentry: bool = False


@dataclass(frozen=True, slots=True)
class _Counts:
    entries: int
    entries_today: int
    last: Stay | None
    inside: bool
    auto_exit: float | None
    now_wall: datetime = field(compare=False)


def evaluate_entry(session: Session, facts: Facts, history: Sequence[Stay] | None, now: float,
                   tz: tzinfo | str) -> RuleOutcome:
    """The entry rules of `session` for a ticket with `facts` and `history`, at `now`.

    The first rule that fails wins, in the order of docs/rules.md ("Evaluation order"):
    unevaluable -> entrances -> windows -> inside / re-entry -> max_entries ->
    max_entries_per_day -> min_minutes_between -> conditions. `history` is the ticket's
    stays in this session, any order; None when it could not be read.
    """
    try:
        return _evaluate(session, facts, history, now, tz)
    except RuleUnevaluable as exc:
        return RuleOutcome(Reason.RULE_UNEVALUABLE, detail=str(exc))


def _evaluate(session: Session, facts: Facts, history: Sequence[Stay] | None, now: float,
              tz_or_name: tzinfo | str) -> RuleOutcome:
    tz = zone(tz_or_name) if isinstance(tz_or_name, str) else tz_or_name
    if not isinstance(now, int | float) or not math.isfinite(now):
        raise RuleUnevaluable(f"now {now!r} is not a finite number of seconds")
    rules = session.rules_for(facts.category)
    if rules is not None:
        _validated(rules)
    for text in session.exit_all_at:
        minutes_of(text)
    if history is None:
        raise RuleUnevaluable("the ticket's entries in this session could not be read")
    counts = _count(history, session, now, tz)
    previous = counts.last

    def no(reason: Reason, detail: str = "", *, moment: float | None = None,
           limit: int | None = None) -> RuleOutcome:
        return RuleOutcome(reason, detail, moment, limit, counts.inside, previous is not None,
                           previous, counts.auto_exit)

    if rules is not None:
        if rules.entrances is not None and facts.entrance not in rules.entrances:
            return no(Reason.CATEGORY_ENTRANCE, f"entrance {facts.entrance} not in "
                      f"{sorted(rules.entrances)}")
        if rules.windows:
            opens = _window(rules.windows, counts.now_wall, tz)
            if opens is not None:
                return no(Reason.OUTSIDE_ENTRY_WINDOW,
                          f"windows {list(rules.windows)}", moment=opens)
    if counts.inside:
        return no(Reason.ALREADY_ADMITTED, "inside")
    if previous is not None:
        if rules is not None and rules.reentry is not None:
            may_return = rules.reentry
        else:
            may_return = facts.reentry_flag and facts.gate_allows_reentry
        if not may_return:
            return no(Reason.ALREADY_ADMITTED, "re-entry not allowed")
    if rules is not None:
        if rules.max_entries is not None and counts.entries >= rules.max_entries:
            return no(Reason.MAX_ENTRIES_REACHED, f"{counts.entries} entries",
                      limit=rules.max_entries)
        if rules.max_entries_per_day is not None and \
                counts.entries_today >= rules.max_entries_per_day:
            tomorrow = wall_instant(counts.now_wall.date(), 1440, tz)
            return no(Reason.DAILY_LIMIT_REACHED, f"{counts.entries_today} entries today",
                      moment=tomorrow, limit=rules.max_entries_per_day)
        if rules.min_minutes_between is not None and previous is not None:
            back = previous.at + rules.min_minutes_between * 60
            if now < back:
                return no(Reason.TOO_SOON, f"{(now - previous.at) / 60:.1f} min since the "
                          "last entry", moment=back)
        for number, condition in enumerate(rules.conditions):
            if not _holds(condition, _variable(condition.var, facts, counts, now)):
                name = condition.name or f"conditions[{number}]"
                return no(Reason.RULE_NOT_MET, f"{name}: {condition.var} {condition.op} "
                          f"{condition.value!r}")
    return RuleOutcome(None, "", None, None, False, previous is not None, previous,
                       counts.auto_exit)


def session_open(session: Session, now: float) -> RuleOutcome | None:
    """Check 4's session part: None while the session's gates are open, else why not."""
    if session.opens_at is not None and now < session.opens_at:
        return RuleOutcome(Reason.SESSION_NOT_OPEN, moment=session.opens_at)
    if session.closes_at is not None and now >= session.closes_at:
        return RuleOutcome(Reason.SESSION_CLOSED, moment=session.closes_at)
    return None


def judge(session: Session, facts: Facts, *, exit_gate: bool, history: Sequence[Stay] | None,
          now: float, tz: tzinfo | str) -> RuleOutcome:
    """What tests/vectors/rules.json specifies: the session's opening times, then its
    entry rules (or, at an exit gate, whether the holder is inside)."""
    closed = session_open(session, now)
    if closed is not None:
        return closed
    if exit_gate:
        return exit_allowed(session, history, now, tz)
    return evaluate_entry(session, facts, history, now, tz)


def exit_allowed(session: Session, history: Sequence[Stay] | None, now: float,
                 tz: tzinfo | str) -> RuleOutcome:
    """At an exit gate: the holder must be inside (an automatic exit already let them out)."""
    try:
        zone_ = zone(tz) if isinstance(tz, str) else tz
        for text in session.exit_all_at:
            minutes_of(text)
        if history is None:
            raise RuleUnevaluable("the ticket's entries in this session could not be read")
        counts = _count(history, session, now, zone_)
    except RuleUnevaluable as exc:
        return RuleOutcome(Reason.RULE_UNEVALUABLE, detail=str(exc))
    if not counts.inside:
        return RuleOutcome(Reason.NOT_INSIDE, previous=counts.last, auto_exit=counts.auto_exit)
    return RuleOutcome(None, inside=True, previous=counts.last)


def _count(history: Sequence[Stay], session: Session, now: float, tz: tzinfo) -> _Counts:
    now_wall = _wall(now, tz)
    today = now_wall.date()
    entries = [s for s in history if s.at <= now]
    entries.sort(key=lambda s: s.at)
    last = entries[-1] if entries else None
    inside, auto_exit = False, None
    if last is not None and last.exited_at is None:
        cut = last_exit_all(session.exit_all_at, now, tz)
        if cut is not None and cut > last.at:
            auto_exit = cut
        else:
            inside = True
    return _Counts(len(entries), sum(1 for s in entries if _wall(s.at, tz).date() == today),
                   last, inside, auto_exit, now_wall)


def _window(windows: Sequence[tuple[str, str]], now_wall: datetime, tz: tzinfo
            ) -> float | None:
    """None when the wall clock is inside a window; else when the next window opens."""
    minute = now_wall.hour * 60 + now_wall.minute
    starts: list[float] = []
    for start_text, end_text in windows:
        start, end = minutes_of(start_text), minutes_of(end_text)
        if start == end:
            raise RuleUnevaluable(f"window {start_text}-{end_text} is empty")
        inside = start <= minute < end if start < end else (minute >= start or minute < end)
        if inside:
            return None
        day = now_wall.date()
        for offset in (0, 1):
            instant = wall_instant(day + timedelta(days=offset), start, tz)
            if instant > now_wall.timestamp():
                starts.append(instant)
                break
    return min(starts)


@functools.lru_cache(maxsize=256)
def _validated(rules: EntryRules) -> None:
    """_validate, once per rule set (a gate's rules do not change between decisions; a
    rule set that fails is checked again each time, and refused each time)."""
    _validate(rules)


def _validate(rules: EntryRules) -> None:
    for start, end in rules.windows:
        minutes_of(start)
        minutes_of(end)
    for number_name in ("max_entries", "max_entries_per_day"):
        value = getattr(rules, number_name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise RuleUnevaluable(f"{number_name} {value!r} is not a whole number >= 0")
    gap = rules.min_minutes_between
    if gap is not None and (isinstance(gap, bool) or not isinstance(gap, int | float)
                            or not math.isfinite(gap) or gap < 0):
        raise RuleUnevaluable(f"min_minutes_between {gap!r} is not a number >= 0")
    for condition in rules.conditions:
        if condition.var not in VARIABLES:
            raise RuleUnevaluable(f"unknown variable {condition.var!r}")
        if condition.op not in OPERATORS:
            raise RuleUnevaluable(f"unknown operator {condition.op!r}")


def _variable(name: str, facts: Facts, counts: _Counts, now: float) -> Scalar | None:
    """The value of variable `name` (docs/rules.md, "Variables"), computed when asked."""
    if name == "entries":
        return counts.entries
    if name == "entries_today":
        return counts.entries_today
    if name == "minutes_since_last_entry":
        return None if counts.last is None else (now - counts.last.at) / 60
    if name == "now_isoweekday":
        return counts.now_wall.isoweekday()
    if name == "now_time":
        return f"{counts.now_wall.hour:02d}:{counts.now_wall.minute:02d}"
    if name == "now_date":
        return counts.now_wall.date().isoformat()
    if name == "category":
        return facts.category
    if name == "entrance":
        return facts.entrance
    if name == "inside":
        return counts.inside
    if name == "accessible":
        return facts.accessible
    if name == "paper":
        return facts.paper
    raise RuleUnevaluable(f"unknown variable {name!r}")


_KINDS: dict[type, str] = {bool: "boolean", int: "number", float: "number", str: "string"}


def _kind(value: object) -> str:
    return _KINDS.get(type(value)) or type(value).__name__


def _same_kind(left: object, right: object, condition: Condition) -> None:
    if _kind(left) != _kind(right):
        raise RuleUnevaluable(f"{condition.var} is a {_kind(left)}, compared with a "
                              f"{_kind(right)} {right!r}")


def _holds(condition: Condition, left: Scalar | None) -> bool:
    op, right = condition.op, condition.value
    if op in ("in", "not_in", "between"):
        if not isinstance(right, tuple) or (op == "between" and len(right) != 2):
            raise RuleUnevaluable(f"{op} needs {'two values' if op == 'between' else 'a list'}"
                                  f", got {right!r}")
        if left is None:
            return True
        kind = _kind(left)
        for item in right:
            if _KINDS.get(type(item)) != kind:
                _same_kind(left, item, condition)
        if op == "between":
            low, high = right
            return bool(low <= left < high)  # type: ignore[operator]
        found = left in right
        return found if op == "in" else not found
    if isinstance(right, tuple):
        raise RuleUnevaluable(f"{op} compares with one value, got a list {right!r}")
    if left is None:
        return True  # no entry yet: a condition on the last entry has nothing to forbid
    _same_kind(left, right, condition)
    if op in ("<", "<=", ">", ">=") and isinstance(left, bool):
        raise RuleUnevaluable(f"{op} does not order booleans ({condition.var})")
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return bool(left < right)  # type: ignore[operator]
    if op == "<=":
        return bool(left <= right)  # type: ignore[operator]
    if op == ">":
        return bool(left > right)  # type: ignore[operator]
    return bool(left >= right)  # type: ignore[operator]
