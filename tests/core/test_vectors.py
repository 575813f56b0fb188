"""The committed credential test vectors: rebuilt from the JSON alone and decided."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.ticket import credential
from portique.ticket.credential import Flag, TicketFields
from portique.ticket.decision import (
    Direction,
    GateProfile,
    Now,
    PaperPolicy,
    Policy,
    UntrustedClockPolicy,
    decide,
)
from portique.ticket.reasons import Reason
from portique.ticket.trust import KeyRole, TrustedKey, TrustStore
from portique.ticket.views import Admission, MemoryAdmissions, MemoryRevocations

VECTORS_FILE = Path(__file__).parents[1] / "vectors" / "credential.json"
DOC = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
VECTORS = DOC["vectors"]


def _fields(raw: dict[str, Any]) -> TicketFields:
    return TicketFields(
        kid=raw["kid"], event=raw["event"], ticket_id=raw["ticket_id"],
        generation=raw["generation"], valid_from=raw["valid_from"],
        valid_until=raw["valid_until"], entrances=frozenset(raw["entrances"]),
        category=raw["category"], flags=Flag(raw["flags"]),
        device_key=None if raw["device_key"] is None else bytes.fromhex(raw["device_key"]),
    )


def _private(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(DOC["keys"][name]["seed_hex"]))


def test_committed_file_matches_its_generator() -> None:
    from tests.vectors.generate_credential import render

    assert VECTORS_FILE.read_text(encoding="utf-8") == render()


def test_constants_match_the_implementation() -> None:
    assert DOC["prefix"] == credential.PREFIX
    assert DOC["step_seconds"] == credential.STEP_SECONDS
    assert DOC["max_code_chars"] == credential.MAX_CODE_CHARS


def test_vectors_cover_every_reason_the_decision_can_give() -> None:
    given = {Reason(v["expected"]["reason"]) for v in VECTORS}
    not_from_decide = {Reason.MANUAL_ADMIT, Reason.MANUAL_DENY, Reason.JOURNAL_UNAVAILABLE,
                       Reason.FEED_UNAVAILABLE}
    from tests.core.test_rules_vectors import RULE_REASONS

    # Sessions and entry rules have their own vectors (tests/vectors/rules.json); the lane
    # check is the gate's own configuration (tests/appliance/test_lanes.py).
    elsewhere = (RULE_REASONS - given) | {Reason.SESSION_ELSEWHERE, Reason.ACCESSIBLE_LANE}
    assert set(Reason) - given == not_from_decide | elsewhere


SIGNED = [v for v in VECTORS if v["signed_by"] is not None]


@pytest.mark.parametrize("vector", SIGNED, ids=[v["name"] for v in SIGNED])
def test_vector_signing_reproduces_the_exact_bytes(vector: dict[str, Any]) -> None:
    fields = _fields(vector["fields"])
    level1 = credential.issue(fields, _private(vector["signed_by"]["issuer"]))
    assert level1.hex() == vector["level1_hex"]
    if fields.paper:
        assert credential.paper_code(level1) == vector["code"]
    else:
        device = _private(vector["signed_by"]["device"])
        assert credential.dynamic_code(level1, device, vector["step"]) == vector["code"]
    assert credential.text_to_binary(vector["code"]).hex() == vector["code_binary_hex"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_decision(vector: dict[str, Any]) -> None:
    trust = TrustStore.of(
        TrustedKey(k["kid"], bytes.fromhex(k["public_key"]), KeyRole(k["role"]),
                   k["valid_from"], k["valid_until"],
                   None if k["events"] is None else frozenset(k["events"]), k["withdrawn"])
        for k in vector["trust"])
    g, p = vector["gate"], vector["policy"]
    decision = decide(
        vector["code"], Now(vector["now"], vector["clock_trusted"]), trust=trust,
        revocations=MemoryRevocations.of((r["event"], r["ticket_id"], r["min_valid_generation"])
                                         for r in vector["revocations"]),
        admissions=MemoryAdmissions.of(Admission(**a) for a in vector["admissions"]),
        profile=GateProfile("vector", g["event"], g["entrance"], Direction(g["direction"]),
                            g["allow_reentry"]),
        policy=Policy(PaperPolicy(p["paper"]), UntrustedClockPolicy(p["untrusted_clock"]),
                      p["grace_seconds"], p["ahead_seconds"]),
    )
    expected = vector["expected"]
    assert decision.verdict.value == expected["verdict"]
    assert decision.reason.value == expected["reason"]
    if expected["ticket"] is None:
        assert decision.ticket is None
    else:
        assert decision.ticket is not None
        assert decision.ticket.ticket_id == expected["ticket"]["ticket_id"]
        assert decision.ticket.generation == expected["ticket"]["generation"]
