"""Write tests/vectors/rules.json: the entry rules' conformance vectors (docs/rules.md).

Every expected verdict, reason and time below is stated by hand from docs/rules.md, never
computed by the implementation: the vectors are the contract another implementation is
held to, and tests/core/test_rules_vectors.py holds ours to it.

    python -m tests.vectors.generate_rules      # rewrites tests/vectors/rules.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("rules.json")
PARIS = "Europe/Paris"

MORNING = {"event": "PAR24-ATH05", "opens": "2024-08-05T08:00:00+02:00",
           "closes": "2024-08-05T13:30:00+02:00"}
EVENING = {"event": "PAR24-ATH06", "opens": "2024-08-05T15:00:00+02:00",
           "closes": "2024-08-05T23:30:00+02:00"}
ALL_DAY = {"event": "PAR24-ATH05"}  # no opening times: always open
GATE = {"entrance": 2, "direction": "entry", "allow_reentry": False}
EXIT_GATE = {"entrance": 2, "direction": "exit", "allow_reentry": False}
TICKET = {"category": "A", "flags": []}


def case(name: str, now: str, expected_reason: str, *, session: dict[str, Any] | None = None,
         rules: list[dict[str, Any]] | None = None, exit_all_at: list[str] | None = None,
         gate: dict[str, Any] | None = None, ticket: dict[str, Any] | None = None,
         history: list[dict[str, Any]] | None = None, moment: str | None = None,
         timezone: str = PARIS, verdict: str | None = None) -> dict[str, Any]:
    s = dict(session or ALL_DAY)
    if rules is not None:
        s["rules"] = rules
    if exit_all_at is not None:
        s["exit_all_at"] = exit_all_at
    admits = expected_reason in ("VALID", "VALID_PAPER", "REENTRY", "EXIT")
    return {
        "name": name, "timezone": timezone, "session": s, "gate": gate or GATE,
        "ticket": ticket or TICKET, "history": [] if history is None else history,
        "now": now,
        "expected": {"verdict": verdict or ("admit" if admits else "refuse"),
                     "reason": expected_reason, "moment": moment},
    }


def stay(at: str, exited_at: str | None = None) -> dict[str, Any]:
    return {"at": at, "exited_at": exited_at}


REENTER = [{"reentry": True}]

CASES: list[dict[str, Any]] = [
    # --- sessions: opening and closing times (check 4) ---------------------------------
    case("evening session before its gates open", "2024-08-05T14:40:00+02:00",
         "SESSION_NOT_OPEN", session=EVENING, moment="2024-08-05T13:00:00Z"),
    case("one second before the opening", "2024-08-05T12:59:59Z", "SESSION_NOT_OPEN",
         session=EVENING, moment="2024-08-05T13:00:00Z"),
    case("at the opening exactly", "2024-08-05T13:00:00Z", "VALID", session=EVENING),
    case("one second before the closing", "2024-08-05T11:29:59Z", "VALID", session=MORNING),
    case("at the closing exactly", "2024-08-05T11:30:00Z", "SESSION_CLOSED",
         session=MORNING, moment="2024-08-05T11:30:00Z"),
    case("a session without times is always open", "2031-01-01T00:00:00Z", "VALID"),
    case("gates not open win over a rule that cannot be evaluated",
         "2024-08-05T12:00:00Z", "SESSION_NOT_OPEN", session=EVENING,
         rules=[{"conditions": [{"var": "no_such_variable", "op": "==", "value": 1}]}],
         moment="2024-08-05T13:00:00Z"),
    # --- anti-passback and re-entry -------------------------------------------------------
    case("first entry, no rules", "2024-08-05T10:00:00Z", "VALID"),
    case("paper ticket, first entry", "2024-08-05T10:00:00Z", "VALID_PAPER",
         ticket={"category": "A", "flags": ["PAPER"]}),
    case("still inside", "2024-08-05T10:00:00Z", "ALREADY_ADMITTED",
         history=[stay("2024-08-05T09:00:00Z")]),
    case("out, no rules, no REENTRY flag", "2024-08-05T10:00:00Z", "ALREADY_ADMITTED",
         history=[stay("2024-08-05T09:00:00Z", "2024-08-05T09:30:00Z")]),
    case("out, REENTRY flag but the gate does not allow it", "2024-08-05T10:00:00Z",
         "ALREADY_ADMITTED", ticket={"category": "A", "flags": ["REENTRY"]},
         history=[stay("2024-08-05T09:00:00Z", "2024-08-05T09:30:00Z")]),
    case("out, REENTRY flag and a gate that allows it", "2024-08-05T10:00:00Z", "REENTRY",
         ticket={"category": "A", "flags": ["REENTRY"]},
         gate={"entrance": 2, "direction": "entry", "allow_reentry": True},
         history=[stay("2024-08-05T09:00:00Z", "2024-08-05T09:30:00Z")]),
    case("out, rules allow re-entry without the flag", "2024-08-05T10:00:00Z", "REENTRY",
         rules=REENTER, history=[stay("2024-08-05T09:00:00Z", "2024-08-05T09:30:00Z")]),
    case("out, rules forbid re-entry despite flag and gate", "2024-08-05T10:00:00Z",
         "ALREADY_ADMITTED", rules=[{"reentry": False}],
         ticket={"category": "A", "flags": ["REENTRY"]},
         gate={"entrance": 2, "direction": "entry", "allow_reentry": True},
         history=[stay("2024-08-05T09:00:00Z", "2024-08-05T09:30:00Z")]),
    case("inside, rules allow re-entry: still inside", "2024-08-05T10:00:00Z",
         "ALREADY_ADMITTED", rules=REENTER, history=[stay("2024-08-05T09:00:00Z")]),
    case("history not in time order", "2024-08-05T12:00:00Z", "ALREADY_ADMITTED",
         rules=REENTER, history=[stay("2024-08-05T11:00:00Z"),
                                 stay("2024-08-05T09:00:00Z", "2024-08-05T09:30:00Z")]),
    # --- max_entries ------------------------------------------------------------------
    case("second of two entries", "2024-08-05T12:00:00Z", "REENTRY",
         rules=[{"reentry": True, "max_entries": 2}],
         history=[stay("2024-08-05T09:00:00Z", "2024-08-05T09:30:00Z")]),
    case("third of two entries", "2024-08-05T12:00:00Z", "MAX_ENTRIES_REACHED",
         rules=[{"reentry": True, "max_entries": 2}],
         history=[stay("2024-08-05T09:00:00Z", "2024-08-05T09:30:00Z"),
                  stay("2024-08-05T10:00:00Z", "2024-08-05T10:30:00Z")]),
    case("max_entries 0 admits nobody", "2024-08-05T12:00:00Z", "MAX_ENTRIES_REACHED",
         rules=[{"max_entries": 0}]),
    # --- max_entries_per_day: the venue's date, midnight ----------------------------------
    case("per day: entry before local midnight does not count the next day",
         "2024-08-05T00:10:00+02:00", "REENTRY",
         rules=[{"reentry": True, "max_entries_per_day": 1}],
         history=[stay("2024-08-04T23:50:00+02:00", "2024-08-04T23:55:00+02:00")]),
    case("per day: entry after local midnight counts", "2024-08-05T00:20:00+02:00",
         "DAILY_LIMIT_REACHED", rules=[{"reentry": True, "max_entries_per_day": 1}],
         history=[stay("2024-08-05T00:05:00+02:00", "2024-08-05T00:10:00+02:00")],
         moment="2024-08-05T22:00:00Z"),
    case("per day: the venue's date, not UTC's (23:30 UTC is 01:30 in Paris)",
         "2024-08-05T10:00:00+02:00", "DAILY_LIMIT_REACHED",
         rules=[{"reentry": True, "max_entries_per_day": 1}],
         history=[stay("2024-08-04T23:30:00Z", "2024-08-04T23:45:00Z")],
         moment="2024-08-05T22:00:00Z"),
    case("per day in New York: the same instants fall on different dates",
         "2024-08-05T10:00:00+02:00", "REENTRY", timezone="America/New_York",
         rules=[{"reentry": True, "max_entries_per_day": 1}],
         history=[stay("2024-08-04T23:30:00Z", "2024-08-04T23:45:00Z")]),
    case("per day: spring change day is 23 hours long", "2024-03-31T23:30:00+02:00",
         "DAILY_LIMIT_REACHED", rules=[{"reentry": True, "max_entries_per_day": 1}],
         history=[stay("2024-03-31T00:30:00+01:00", "2024-03-31T01:00:00+01:00")],
         moment="2024-03-31T22:00:00Z"),
    case("per day: both 02:30 of the autumn change count for that day",
         "2024-10-27T02:45:00+01:00", "DAILY_LIMIT_REACHED",
         rules=[{"reentry": True, "max_entries_per_day": 2}],
         history=[stay("2024-10-27T02:30:00+02:00", "2024-10-27T02:40:00+02:00"),
                  stay("2024-10-27T02:30:00+01:00", "2024-10-27T02:40:00+01:00")],
         moment="2024-10-27T23:00:00Z"),
    # --- min_minutes_between: real minutes, across midnight and clock changes -------------
    case("too soon after the last entry", "2024-08-05T10:20:00Z", "TOO_SOON",
         rules=[{"reentry": True, "min_minutes_between": 30}],
         history=[stay("2024-08-05T10:00:00Z", "2024-08-05T10:05:00Z")],
         moment="2024-08-05T10:30:00Z"),
    case("exactly the minimum after the last entry", "2024-08-05T10:30:00Z", "REENTRY",
         rules=[{"reentry": True, "min_minutes_between": 30}],
         history=[stay("2024-08-05T10:00:00Z", "2024-08-05T10:05:00Z")]),
    case("minimum between entries across local midnight", "2024-08-06T00:10:00+02:00",
         "TOO_SOON", rules=[{"reentry": True, "min_minutes_between": 30}],
         history=[stay("2024-08-05T23:50:00+02:00", "2024-08-05T23:55:00+02:00")],
         moment="2024-08-05T22:20:00Z"),
    case("spring change: 01:50 CET to 03:10 CEST is 20 minutes, not 80",
         "2024-03-31T03:10:00+02:00", "TOO_SOON",
         rules=[{"reentry": True, "min_minutes_between": 60}],
         history=[stay("2024-03-31T01:50:00+01:00", "2024-03-31T01:55:00+01:00")],
         moment="2024-03-31T01:50:00Z"),
    case("autumn change: 02:40 CEST to 02:10 CET is 30 minutes, not minus 30",
         "2024-10-27T02:10:00+01:00", "REENTRY",
         rules=[{"reentry": True, "min_minutes_between": 30}],
         history=[stay("2024-10-27T02:40:00+02:00", "2024-10-27T02:45:00+02:00")]),
    case("autumn change: the time to come back falls in the repeated hour",
         "2024-10-27T02:00:00+01:00", "TOO_SOON",
         rules=[{"reentry": True, "min_minutes_between": 30}],
         history=[stay("2024-10-27T02:40:00+02:00", "2024-10-27T02:45:00+02:00")],
         moment="2024-10-27T01:10:00Z"),
    # --- windows: the venue's wall clock --------------------------------------------------
    case("window: before it opens", "2024-08-05T07:59:00+02:00", "OUTSIDE_ENTRY_WINDOW",
         rules=[{"windows": [["08:00", "12:00"]]}], moment="2024-08-05T06:00:00Z"),
    case("window: at its start", "2024-08-05T08:00:00+02:00", "VALID",
         rules=[{"windows": [["08:00", "12:00"]]}]),
    case("window: at its end (excluded), next one tomorrow", "2024-08-05T12:00:00+02:00",
         "OUTSIDE_ENTRY_WINDOW", rules=[{"windows": [["08:00", "12:00"]]}],
         moment="2024-08-06T06:00:00Z"),
    case("window: two windows, between them", "2024-08-05T13:00:00+02:00",
         "OUTSIDE_ENTRY_WINDOW", rules=[{"windows": [["08:00", "12:00"], ["18:00", "24:00"]]}],
         moment="2024-08-05T16:00:00Z"),
    case("window: until 24:00", "2024-08-05T23:59:00+02:00", "VALID",
         rules=[{"windows": [["18:00", "24:00"]]}]),
    case("window across midnight: after midnight", "2024-08-06T01:00:00+02:00", "VALID",
         rules=[{"windows": [["22:00", "02:00"]]}]),
    case("window across midnight: after its end", "2024-08-06T03:00:00+02:00",
         "OUTSIDE_ENTRY_WINDOW", rules=[{"windows": [["22:00", "02:00"]]}],
         moment="2024-08-06T20:00:00Z"),
    case("window in the spring gap never opens that day", "2024-03-31T03:30:00+02:00",
         "OUTSIDE_ENTRY_WINDOW", rules=[{"windows": [["02:00", "03:00"]]}],
         moment="2024-04-01T00:00:00Z"),
    case("window in the spring gap: just before the change", "2024-03-31T01:59:00+01:00",
         "OUTSIDE_ENTRY_WINDOW", rules=[{"windows": [["02:00", "03:00"]]}],
         moment="2024-03-31T01:00:00Z"),
    case("window in the autumn fold: first 02:30", "2024-10-27T02:30:00+02:00", "VALID",
         rules=[{"windows": [["02:00", "03:00"]]}]),
    case("window in the autumn fold: second 02:30", "2024-10-27T02:30:00+01:00", "VALID",
         rules=[{"windows": [["02:00", "03:00"]]}]),
    # --- exit_all_at: everyone counted out ------------------------------------------------
    case("automatic exit overnight, re-entry allowed", "2024-08-06T10:00:00+02:00",
         "REENTRY", rules=REENTER, exit_all_at=["03:00"],
         history=[stay("2024-08-05T20:00:00+02:00")]),
    case("no automatic exit: still inside the next day", "2024-08-06T10:00:00+02:00",
         "ALREADY_ADMITTED", rules=REENTER, history=[stay("2024-08-05T20:00:00+02:00")]),
    case("automatic exit, re-entry not allowed", "2024-08-06T10:00:00+02:00",
         "ALREADY_ADMITTED", exit_all_at=["03:00"],
         history=[stay("2024-08-05T20:00:00+02:00")]),
    case("entered after today's automatic exit: inside", "2024-08-06T10:00:00+02:00",
         "ALREADY_ADMITTED", rules=REENTER, exit_all_at=["03:00"],
         history=[stay("2024-08-06T03:00:00+02:00")]),
    case("automatic exit at a time in the spring gap: not yet", "2024-03-31T03:20:00+02:00",
         "ALREADY_ADMITTED", rules=REENTER, exit_all_at=["02:30"],
         history=[stay("2024-03-31T01:45:00+01:00")]),
    case("automatic exit at a time in the spring gap: done (at 03:30 CEST)",
         "2024-03-31T03:40:00+02:00", "REENTRY", rules=REENTER, exit_all_at=["02:30"],
         history=[stay("2024-03-31T01:45:00+01:00")]),
    case("automatic exit in the autumn fold happens at the first 02:30",
         "2024-10-27T02:10:00+01:00", "REENTRY", rules=REENTER, exit_all_at=["02:30"],
         history=[stay("2024-10-27T02:10:00+02:00")]),
    case("automatic exit in the autumn fold: entered after the first 02:30",
         "2024-10-27T02:40:00+01:00", "ALREADY_ADMITTED", rules=REENTER,
         exit_all_at=["02:30"], history=[stay("2024-10-27T02:35:00+02:00")]),
    case("automatic exit at midnight", "2024-08-06T00:00:00+02:00", "REENTRY",
         rules=REENTER, exit_all_at=["00:00"], history=[stay("2024-08-05T23:00:00+02:00")]),
    # --- exit gates ------------------------------------------------------------------------
    case("exit: inside", "2024-08-05T10:00:00Z", "EXIT", gate=EXIT_GATE,
         history=[stay("2024-08-05T09:00:00Z")]),
    case("exit: never admitted", "2024-08-05T10:00:00Z", "NOT_INSIDE", gate=EXIT_GATE),
    case("exit: already out", "2024-08-05T10:00:00Z", "NOT_INSIDE", gate=EXIT_GATE,
         history=[stay("2024-08-05T09:00:00Z", "2024-08-05T09:30:00Z")]),
    case("exit: counted out by the automatic exit", "2024-08-06T10:00:00+02:00",
         "NOT_INSIDE", gate=EXIT_GATE, exit_all_at=["03:00"],
         history=[stay("2024-08-05T20:00:00+02:00")]),
    # --- entrances and categories -----------------------------------------------------------
    case("category sent to another entrance", "2024-08-05T10:00:00Z", "CATEGORY_ENTRANCE",
         rules=[{"categories": ["B"], "entrances": [5, 6]}, {"max_entries": 3}],
         ticket={"category": "B", "flags": []}),
    case("other categories take the rules for every category", "2024-08-05T10:00:00Z",
         "VALID", rules=[{"categories": ["B"], "entrances": [5, 6]}, {"max_entries": 3}]),
    case("a category's own rules win over the rules for every category",
         "2024-08-05T10:00:00Z", "MAX_ENTRIES_REACHED",
         rules=[{"max_entries": 3}, {"categories": ["A"], "max_entries": 0}]),
    case("no rules for the category and none for every category", "2024-08-05T10:00:00Z",
         "VALID", rules=[{"categories": ["B"], "max_entries": 0}]),
    # --- conditions ---------------------------------------------------------------------------
    case("condition: weekend only, on a Monday", "2024-08-05T10:00:00Z", "RULE_NOT_MET",
         rules=[{"conditions": [{"var": "now_isoweekday", "op": "in", "value": [6, 7]}]}]),
    case("condition: weekend only, on a Saturday", "2024-08-10T10:00:00Z", "VALID",
         rules=[{"conditions": [{"var": "now_isoweekday", "op": "in", "value": [6, 7]}]}]),
    case("condition: isoweekday is the venue's (Sunday 23:30 UTC is Monday in Paris)",
         "2024-08-04T23:30:00Z", "RULE_NOT_MET",
         rules=[{"conditions": [{"var": "now_isoweekday", "op": "==", "value": 7}]}]),
    case("condition: now_time between, inside", "2024-08-05T08:30:00+02:00", "VALID",
         rules=[{"conditions": [{"var": "now_time", "op": "between",
                                 "value": ["08:00", "09:00"]}]}]),
    case("condition: now_time between, upper end excluded", "2024-08-05T09:00:00+02:00",
         "RULE_NOT_MET", rules=[{"conditions": [{"var": "now_time", "op": "between",
                                                 "value": ["08:00", "09:00"]}]}]),
    case("condition on the last entry with no entry yet holds", "2024-08-05T10:00:00Z",
         "VALID", rules=[{"conditions": [{"var": "minutes_since_last_entry", "op": ">=",
                                          "value": 10}]}]),
    case("condition: entries_today < 1 after one entry today", "2024-08-05T12:00:00Z",
         "RULE_NOT_MET", rules=[{"reentry": True, "conditions": [
             {"var": "entries_today", "op": "<", "value": 1}]}],
         history=[stay("2024-08-05T09:00:00Z", "2024-08-05T09:30:00Z")]),
    case("condition: accessible tickets only", "2024-08-05T12:00:00Z", "RULE_NOT_MET",
         rules=[{"conditions": [{"var": "accessible", "op": "==", "value": True}]}]),
    case("condition: accessible ticket", "2024-08-05T12:00:00Z", "VALID",
         ticket={"category": "A", "flags": ["ACCESSIBLE"]},
         rules=[{"conditions": [{"var": "accessible", "op": "==", "value": True}]}]),
    case("condition: not_in categories", "2024-08-05T12:00:00Z", "RULE_NOT_MET",
         rules=[{"conditions": [{"var": "category", "op": "not_in", "value": ["A", "C"]}]}]),
    case("condition: the gate's entrance", "2024-08-05T12:00:00Z", "VALID",
         rules=[{"conditions": [{"var": "entrance", "op": "!=", "value": 3}]}]),
    case("condition: now_date", "2024-08-05T23:30:00Z", "RULE_NOT_MET",
         rules=[{"conditions": [{"var": "now_date", "op": "==", "value": "2024-08-05"}]}]),
    case("condition: inside is false for a new ticket", "2024-08-05T12:00:00Z", "VALID",
         rules=[{"conditions": [{"var": "inside", "op": "==", "value": False}]}]),
    case("condition: paper tickets refused", "2024-08-05T12:00:00Z", "RULE_NOT_MET",
         ticket={"category": "A", "flags": ["PAPER"]},
         rules=[{"conditions": [{"var": "paper", "op": "==", "value": False}]}]),
    # --- rules that cannot be evaluated refuse -------------------------------------------------
    case("unknown variable", "2024-08-05T12:00:00Z", "RULE_UNEVALUABLE",
         rules=[{"conditions": [{"var": "inside_count", "op": "<", "value": 5000}]}]),
    case("unknown operator", "2024-08-05T12:00:00Z", "RULE_UNEVALUABLE",
         rules=[{"conditions": [{"var": "entries", "op": "=~", "value": 1}]}]),
    case("a number compared with a string", "2024-08-05T12:00:00Z", "RULE_UNEVALUABLE",
         rules=[{"conditions": [{"var": "entries", "op": "<", "value": "2"}]}]),
    case("a boolean ordered", "2024-08-05T12:00:00Z", "RULE_UNEVALUABLE",
         rules=[{"conditions": [{"var": "inside", "op": "<", "value": True}]}]),
    case("between with three values", "2024-08-05T12:00:00Z", "RULE_UNEVALUABLE",
         rules=[{"conditions": [{"var": "entries", "op": "between", "value": [0, 1, 2]}]}]),
    case("in with one value, not a list", "2024-08-05T12:00:00Z", "RULE_UNEVALUABLE",
         rules=[{"conditions": [{"var": "entries", "op": "in", "value": 1}]}]),
    case("a window that is not HH:MM", "2024-08-05T12:00:00Z", "RULE_UNEVALUABLE",
         rules=[{"windows": [["8:00", "25:00"]]}]),
    case("an empty window", "2024-08-05T12:00:00Z", "RULE_UNEVALUABLE",
         rules=[{"windows": [["08:00", "08:00"]]}]),
    case("an automatic exit time that is not HH:MM", "2024-08-05T12:00:00Z",
         "RULE_UNEVALUABLE", exit_all_at=["3am"]),
    case("an unknown time zone", "2024-08-05T12:00:00Z", "RULE_UNEVALUABLE",
         timezone="Mars/Olympus_Mons", rules=[{"max_entries": 3}]),
    case("a negative limit", "2024-08-05T12:00:00Z", "RULE_UNEVALUABLE",
         rules=[{"max_entries": -1}]),
    case("history that could not be read", "2024-08-05T12:00:00Z", "RULE_UNEVALUABLE",
         rules=[{"max_entries": 3}]) | {"history": None},
    case("unevaluable wins over a failing entrance rule", "2024-08-05T12:00:00Z",
         "RULE_UNEVALUABLE", rules=[{"entrances": [9], "windows": [["08:00", "8:30"]]}]),
    case("a broken rule of another category does not matter", "2024-08-05T12:00:00Z",
         "VALID", rules=[{"categories": ["B"], "conditions": [
             {"var": "nope", "op": "==", "value": 1}]}]),
]


def render() -> str:
    document = {
        "format": "portique entry rules conformance vectors",
        "rules_version": 1,
        "spec": "docs/rules.md",
        "what": "judge(session, ticket, gate, history, now) in the venue's time zone: the "
                "session's opening times, then its entry rules. expected.moment is the time "
                "the refusal's sentence names (UTC), or null.",
        "vectors": CASES,
    }
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"{OUT}: {len(CASES)} vectors")
