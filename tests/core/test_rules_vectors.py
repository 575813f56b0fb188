"""The entry rules' conformance vectors (tests/vectors/rules.json, docs/rules.md) hold for
the reference implementation, and the decision applies the same rules in its check order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portique.base.timeparse import parse_time
from portique.ticket.reasons import Reason, Verdict
from portique.ticket.rules import Condition, EntryRules, Facts, Session, Stay, judge

VECTORS_FILE = Path(__file__).parents[1] / "vectors" / "rules.json"
DOC = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DOC["vectors"]


def _value(raw: Any) -> Any:
    return tuple(raw) if isinstance(raw, list) else raw


def session_of(raw: dict[str, Any]) -> Session:
    """A vector's session, read as docs/rules.md ("Vectors") says."""
    rules = tuple(EntryRules(
        categories=None if "categories" not in r else frozenset(r["categories"]),
        entrances=None if "entrances" not in r else frozenset(r["entrances"]),
        reentry=r.get("reentry"), max_entries=r.get("max_entries"),
        max_entries_per_day=r.get("max_entries_per_day"),
        min_minutes_between=r.get("min_minutes_between"),
        windows=tuple((w[0], w[1]) for w in r.get("windows", [])),
        conditions=tuple(Condition(c["var"], c["op"], _value(c["value"]), c.get("name", ""))
                         for c in r.get("conditions", [])))
        for r in raw.get("rules", []))
    return Session(raw["event"],
                   None if "opens" not in raw else parse_time(raw["opens"]),
                   None if "closes" not in raw else parse_time(raw["closes"]),
                   tuple(raw.get("exit_all_at", [])), rules)


def run(vector: dict[str, Any]) -> tuple[str, str, float | None]:
    gate, ticket = vector["gate"], vector["ticket"]
    flags = set(ticket["flags"])
    facts = Facts(category=ticket["category"], entrance=gate["entrance"],
                  accessible="ACCESSIBLE" in flags, paper="PAPER" in flags,
                  reentry_flag="REENTRY" in flags, gate_allows_reentry=gate["allow_reentry"])
    history = None if vector["history"] is None else [
        Stay(parse_time(s["at"]), None if s["exited_at"] is None else parse_time(s["exited_at"]))
        for s in vector["history"]]
    exit_gate = gate["direction"] == "exit"
    outcome = judge(session_of(vector["session"]), facts, exit_gate=exit_gate,
                    history=history, now=parse_time(vector["now"]), tz=vector["timezone"])
    if outcome.reason is not None:
        return Verdict.REFUSE.value, outcome.reason.value, outcome.moment
    if exit_gate:
        reason = Reason.EXIT
    elif outcome.reentry:
        reason = Reason.REENTRY
    else:
        reason = Reason.VALID_PAPER if facts.paper else Reason.VALID
    return Verdict.ADMIT.value, reason.value, None


def test_committed_file_matches_its_generator() -> None:
    from tests.vectors.generate_rules import render

    assert VECTORS_FILE.read_text(encoding="utf-8") == render()


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    verdict, reason, moment = run(vector)
    expected = vector["expected"]
    assert (verdict, reason) == (expected["verdict"], expected["reason"])
    want = None if expected["moment"] is None else parse_time(expected["moment"])
    assert moment == want


RULE_REASONS = {Reason.SESSION_NOT_OPEN, Reason.SESSION_CLOSED, Reason.CATEGORY_ENTRANCE,
                Reason.OUTSIDE_ENTRY_WINDOW, Reason.MAX_ENTRIES_REACHED,
                Reason.DAILY_LIMIT_REACHED, Reason.TOO_SOON, Reason.RULE_NOT_MET,
                Reason.RULE_UNEVALUABLE, Reason.ALREADY_ADMITTED, Reason.NOT_INSIDE,
                Reason.VALID, Reason.VALID_PAPER, Reason.REENTRY, Reason.EXIT}


def test_vectors_cover_every_reason_the_rules_can_give() -> None:
    assert {Reason(v["expected"]["reason"]) for v in VECTORS} == RULE_REASONS


def test_vectors_cover_both_clock_changes_and_midnight() -> None:
    names = " ".join(v["name"] for v in VECTORS)
    nows = [v["now"] for v in VECTORS]
    assert any(n.startswith("2024-03-31") for n in nows)
    assert any(n.startswith("2024-10-27") for n in nows)
    assert "midnight" in names
