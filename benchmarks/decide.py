"""Figure: the cost of one decision, next to two raw Ed25519 verifications.

A valid phone code needs two signature checks (issuer, device); everything else the
decision does (Base45, strict parsing, trust, revocation, window, anti-passback) is
overhead on top of them. Goal: decision / two raw verifications <= 1.25. Garbage is
refused before any signature work: goal median under 20 us. With a session's entry
rules on (docs/rules.md: every kind of rule, a ticket with an earlier stay), the goal is
<= 1.3; the rules' own evaluation is timed alone beside it.

    .venv/bin/python benchmarks/decide.py
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoneinfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks._common import interleaved, median, us
from portique.ticket import credential
from portique.ticket.credential import Flag, TicketFields
from portique.ticket.decision import GateProfile, Now, Policy, decide
from portique.ticket.reasons import Reason, Verdict
from portique.ticket.rules import Condition, EntryRules, Facts, Session, Stay, evaluate_entry
from portique.ticket.trust import TrustedKey, TrustStore
from portique.ticket.views import MemoryAdmissions, MemoryHistory, MemoryRevocations

T0 = 1722877200


def key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


def main() -> int:
    issuer, device = key("bench-issuer"), key("bench-device")
    fields = TicketFields(
        kid="iss-2024", event="PAR24-ATH05", ticket_id="0042-7781-22", generation=3,
        valid_from=T0 - 3600, valid_until=T0 + 3600, entrances=frozenset({2}),
        category="CAT-B", flags=Flag(0), device_key=device.public_key().public_bytes_raw())
    level1 = credential.issue(fields, issuer)
    step = credential.step_at(T0)
    code = credential.dynamic_code(level1, device, step)
    trust = TrustStore.of([TrustedKey("iss-2024", issuer.public_key().public_bytes_raw())])
    revocations = MemoryRevocations.of(("PAR24-ATH05", f"T{i}", 2) for i in range(10_000))
    admissions = MemoryAdmissions({})
    profile, policy, now = GateProfile("7", "PAR24-ATH05", 2), Policy(), Now(T0 + 5)

    def decision() -> object:
        return decide(code, now, trust=trust, revocations=revocations, admissions=admissions,
                      profile=profile, policy=policy)

    assert decision().verdict is Verdict.ADMIT  # type: ignore[attr-defined]

    # the raw anchor: the same two verifications on already-loaded keys and prepared messages
    issuer_pub, device_pub = issuer.public_key(), device.public_key()
    issuer_msg, issuer_sig = credential.ISSUER_CONTEXT + level1[:-64], level1[-64:]
    device_msg = credential.device_message(level1, step)
    device_sig = device.sign(device_msg)

    def two_raw_verifications() -> None:
        issuer_pub.verify(issuer_sig, issuer_msg)
        device_pub.verify(device_sig, device_msg)

    rng = random.Random(7)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
    garbage = [
        "", "HTTPS://EXAMPLE.ORG/TICKET/42", "PQ1:" + "0" * 5000, "x" * 20000,
        *("PQ1:" + "".join(rng.choice(alphabet) for _ in range(rng.randint(10, 330)))
          for _ in range(200)),
        *("".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(1, 400)))
          for _ in range(200)),
    ]
    garbage_iter = iter(garbage * 10_000)

    def refuse_garbage() -> object:
        return decide(next(garbage_iter), now, trust=trust, revocations=revocations,
                      admissions=admissions, profile=profile, policy=policy)

    # the same code at a gate whose session has entry rules of every kind, and a ticket
    # that was in and out earlier the same day (a re-entry: every rule is evaluated)
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    rules = EntryRules(reentry=True, max_entries=5, max_entries_per_day=3,
                       min_minutes_between=30, windows=(("08:00", "24:00"),),
                       entrances=frozenset({1, 2, 3}),
                       conditions=(Condition("now_isoweekday", "in", (1, 2, 3, 4, 5, 6, 7)),
                                   Condition("minutes_since_last_entry", ">=", 10)))
    session = Session("PAR24-ATH05", T0 - 6 * 3600, T0 + 6 * 3600, ("04:00",), (rules,))
    ruled = GateProfile("7", "PAR24-ATH05", 2, timezone=paris, sessions=(session,))
    stays = (Stay(T0 - 7200, T0 - 5400, "7"),)
    history = MemoryHistory({("PAR24-ATH05", fields.ticket_id): stays})
    facts = Facts(category="CAT-B", entrance=2)

    def decision_with_rules() -> object:
        return decide(code, now, trust=trust, revocations=revocations, admissions=admissions,
                      profile=ruled, policy=policy, history=history)

    def rules_alone() -> object:
        return evaluate_entry(session, facts, stays, now.unix, paris)

    checked = decision_with_rules()
    assert (checked.verdict, checked.reason) == (Verdict.ADMIT, Reason.REENTRY)  # type: ignore[attr-defined]

    samples = interleaved({"decision": decision, "raw2": two_raw_verifications,
                           "rules_on": decision_with_rules, "rules": rules_alone},
                          number=250, rounds=80)  # short turns: load on a shared machine
                                                  # comes and goes, each subject sees it
    garbage_samples = interleaved({"garbage": refuse_garbage}, number=2000, rounds=15)
    ours, raw = median(samples["decision"]), median(samples["raw2"])
    junk = median(garbage_samples["garbage"])
    ratio = ours / raw
    with_rules, rules_cost = median(samples["rules_on"]), median(samples["rules"])
    rules_ratio = with_rules / raw
    print("decision of a valid dynamic code (benchmarks/decide.py)")
    print(f"  our decision            {us(ours)}   {1 / ours:8.0f} decisions/s")
    print(f"  two raw Ed25519 verify  {us(raw)}   {1 / raw:8.0f} pairs/s")
    print(f"  ratio ours/raw          {ratio:8.3f}   (goal <= 1.25)")
    print(f"  garbage refused, median {us(junk)}   (goal < 20 us; "
          f"{len(garbage)} kinds of junk)")
    print(f"  with entry rules on     {us(with_rules)}   {1 / with_rules:8.0f} decisions/s")
    print(f"  ratio rules on/raw      {rules_ratio:8.3f}   (goal <= 1.3)")
    print(f"  the rules alone         {us(rules_cost)}   (evaluate_entry, same inputs)")
    ok = ratio <= 1.25 and junk < 20e-6 and rules_ratio <= 1.3
    print("  result                  " + ("meets every goal" if ok else "MISSES A GOAL"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
