"""The venue's day in the gate's config: ``[[sessions]]`` (with ``[[sessions.rules]]``) and
``[venue]`` (this gate's zone, the other gates' zones, sessions served elsewhere).

docs/rules.md specifies every key; the records built here are the pure core's
(portique.ticket.rules). A config without ``[[sessions]]`` keeps the old form: ``gate.event``
is the one session, always open, without rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from portique.base.configschema import setting
from portique.base.errors import ConfigError, CredentialError
from portique.base.timeparse import parse_time
from portique.ticket.credential import CATEGORY_MAX, EVENT_MAX, MAX_ENTRANCE, check_event
from portique.ticket.rules import (
    OPERATORS,
    VARIABLES,
    Condition,
    EntryRules,
    RuleUnevaluable,
    Session,
    minutes_of,
)

_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_ZONE_RE = re.compile(r"[A-Za-z0-9._ -]{1,48}")


def _time_of_day(value: str, where: str) -> None:
    try:
        minutes_of(value)
    except RuleUnevaluable:
        raise ConfigError(f"{where}: must be a time of day HH:MM (00:00 to 24:00), got "
                          f"{value!r}") from None


@dataclass(frozen=True)
class ConditionSection:
    var: str = setting(description=f"The variable: one of {', '.join(VARIABLES)}")
    op: str = setting(description=f"The operator: one of {', '.join(OPERATORS)}")
    value: Any = setting(description="A number, string or boolean; a list for in, not_in "
                         "and between")
    name: str = setting("", description="What the venue calls this rule (logs, steward)")

    def __post_init__(self) -> None:
        if self.var not in VARIABLES:
            raise ConfigError(f"var: unknown variable {self.var!r} (known: "
                              f"{', '.join(VARIABLES)})")
        if self.op not in OPERATORS:
            raise ConfigError(f"op: unknown operator {self.op!r} (known: "
                              f"{', '.join(OPERATORS)})")
        listed = self.op in ("in", "not_in", "between")
        values = self.value if isinstance(self.value, list) else [self.value]
        if listed != isinstance(self.value, list):
            raise ConfigError(f"value: {self.op} takes {'a list' if listed else 'one value'}, "
                              f"got {self.value!r}")
        if self.op == "between" and len(values) != 2:
            raise ConfigError(f"value: between takes two values, got {self.value!r}")
        for item in values:
            if not isinstance(item, int | float | str | bool):
                raise ConfigError(f"value: must be numbers, strings or booleans, got {item!r}")

    def record(self) -> Condition:
        value = tuple(self.value) if isinstance(self.value, list) else self.value
        return Condition(self.var, self.op, value, self.name)


@dataclass(frozen=True)
class RulesSection:
    categories: tuple[str, ...] = setting((), description="Ticket categories these rules are "
                                          "for; empty: every category without rules of its own")
    entrances: tuple[int, ...] = setting((), description="Entrances these categories use in "
                                         "this session; empty: any the ticket names")
    reentry: str = setting("", description="yes: may come back in after going out; no: never; "
                           "empty: the ticket's REENTRY flag and gate.allow_reentry decide")
    max_entries: int = setting(-1, description="Entries in all in the session (-1: no limit)",
                               minimum=-1, maximum=100000)
    max_entries_per_day: int = setting(-1, description="Entries per day, the venue's date "
                                       "(-1: no limit)", minimum=-1, maximum=100000)
    min_minutes_between: float = setting(-1.0, description="Minutes from one entry to the "
                                         "next (-1: none)", minimum=-1.0, maximum=100000.0)
    windows: tuple[tuple[str, ...], ...] = setting(
        (), description="Times of day entry is open, [[\"HH:MM\", \"HH:MM\"], ...] in the "
        "venue's zone, end excluded (22:00-02:00 crosses midnight); empty: all day")
    conditions: tuple[ConditionSection, ...] = setting(
        (), description="Further conditions (docs/rules.md, Variables and Operators)")

    def __post_init__(self) -> None:
        for category in self.categories:
            if not 1 <= len(category) <= CATEGORY_MAX:
                raise ConfigError(f"categories: {category!r} is not a ticket category "
                                  f"(1-{CATEGORY_MAX} characters)")
        for entrance in self.entrances:
            if not 1 <= entrance <= MAX_ENTRANCE:
                raise ConfigError(f"entrances: {entrance} is not an entrance (1-{MAX_ENTRANCE})")
        if self.reentry not in ("", "yes", "no"):
            raise ConfigError(f"reentry: must be yes, no or empty, got {self.reentry!r}")
        for number, window in enumerate(self.windows):
            if len(window) != 2:
                raise ConfigError(f"windows[{number}]: must be [\"HH:MM\", \"HH:MM\"], got "
                                  f"{list(window)!r}")
            for text in window:
                _time_of_day(text, f"windows[{number}]")
            if window[0] == window[1]:
                raise ConfigError(f"windows[{number}]: {window[0]} to {window[1]} is empty")

    def record(self) -> EntryRules:
        return EntryRules(
            categories=frozenset(self.categories) or None,
            entrances=frozenset(self.entrances) or None,
            reentry=None if not self.reentry else self.reentry == "yes",
            max_entries=None if self.max_entries < 0 else self.max_entries,
            max_entries_per_day=None if self.max_entries_per_day < 0
            else self.max_entries_per_day,
            min_minutes_between=None if self.min_minutes_between < 0
            else self.min_minutes_between,
            windows=tuple((w[0], w[1]) for w in self.windows),
            conditions=tuple(c.record() for c in self.conditions))


@dataclass(frozen=True)
class SessionSection:
    event: str = setting(description=f"The session's event, as in tickets; 1-{EVENT_MAX} of "
                         "A-Z a-z 0-9 . _ -")
    opens: str = setting(description="When this session's gates open: ISO-8601 with an offset "
                         "(2024-08-05T15:00:00+02:00)")
    closes: str = setting(description="When they close (after opens), ISO-8601 with an offset")
    exit_all_at: tuple[str, ...] = setting(
        (), description="Times of day (HH:MM, venue's zone) at which everyone inside this "
        "session is counted out")
    rules: tuple[RulesSection, ...] = setting((), description="Entry rules per ticket "
                                              "category (docs/rules.md)")

    def __post_init__(self) -> None:
        try:
            check_event(self.event)
        except CredentialError as exc:
            raise ConfigError(f"event: {exc}") from None
        for key in ("opens", "closes"):
            try:
                parse_time(getattr(self, key))
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc}") from None
        if parse_time(self.closes) <= parse_time(self.opens):
            raise ConfigError(f"closes: {self.closes} must be after opens {self.opens}")
        for number, text in enumerate(self.exit_all_at):
            _time_of_day(text, f"exit_all_at[{number}]")

    def record(self) -> Session:
        return Session(self.event, parse_time(self.opens), parse_time(self.closes),
                       self.exit_all_at, tuple(r.record() for r in self.rules))


@dataclass(frozen=True)
class ElsewhereSection:
    event: str = setting(description="A session of the venue this gate does not serve")
    area: str = setting(description="Where it is served, as the sentence says it "
                        "(\"the South gates, entrances 7 to 9\")")

    def __post_init__(self) -> None:
        try:
            check_event(self.event)
        except CredentialError as exc:
            raise ConfigError(f"event: {exc}") from None
        if not self.area.strip() or len(self.area) > 80:
            raise ConfigError("area: 1-80 characters")


@dataclass(frozen=True)
class GateZoneSection:
    id: str = setting(description="Another gate of the venue (its gate.id)")
    zone: str = setting(description="The zone its entries lead into")

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.id):
            raise ConfigError(f"id: must be 1-32 of A-Z a-z 0-9 . _ -, got {self.id!r}")
        if not _ZONE_RE.fullmatch(self.zone):
            raise ConfigError(f"zone: 1-48 of A-Z a-z 0-9 . _ - and space, got {self.zone!r}")


@dataclass(frozen=True)
class VenueSection:
    zone: str = setting("venue", description="The zone (a stand, a concourse) this gate's "
                        "entries lead into and its exits lead out of")
    gates: tuple[GateZoneSection, ...] = setting(
        (), description="The zones of the venue's other gates, for the occupancy counted from "
        "their admissions (mesh); a gate not listed counts in zone \"unknown\"")
    elsewhere: tuple[ElsewhereSection, ...] = setting(
        (), description="Sessions served at other gate areas: their tickets are told where")

    def __post_init__(self) -> None:
        if not _ZONE_RE.fullmatch(self.zone):
            raise ConfigError(f"venue.zone: 1-48 of A-Z a-z 0-9 . _ - and space, got "
                              f"{self.zone!r}")

    def zone_of(self, gate_id: str, own_gate: str) -> str:
        if gate_id == own_gate:
            return self.zone
        for gate in self.gates:
            if gate.id == gate_id:
                return gate.zone
        return "unknown"


def check_sessions(sessions: tuple[SessionSection, ...], venue: VenueSection,
                   gate_event: str) -> None:
    """The rules across sections: one form of session list, each event once."""
    if sessions and gate_event:
        raise ConfigError("gate.event: leave it out when [[sessions]] lists the sessions this "
                          "gate serves (gate.event is the one-session form of older configs)")
    if not sessions and not gate_event:
        raise ConfigError("gate.event: required key is missing (or list the sessions in "
                          "[[sessions]])")
    seen: set[str] = set()
    for number, session in enumerate(sessions):
        if session.event in seen:
            raise ConfigError(f"sessions[{number}].event: {session.event} is listed twice")
        seen.add(session.event)
    for number, other in enumerate(venue.elsewhere):
        if other.event in seen or other.event == gate_event:
            raise ConfigError(f"venue.elsewhere[{number}].event: {other.event} is served at "
                              "this gate")
