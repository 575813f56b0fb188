"""Every verdict and reason of the decision, the check order, and every time edge +-1 s."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from portique.ticket import credential
from portique.ticket.credential import Flag
from portique.ticket.decision import Decision, Direction, PaperPolicy, Policy, UntrustedClockPolicy
from portique.ticket.reasons import Lang, Reason, Verdict
from portique.ticket.trust import KeyRole, TrustedKey, TrustStore
from portique.ticket.views import CANCELLED, MemoryRevocations, TicketKey

from .conftest import (
    DEVICE,
    EVENT,
    ISSUER,
    OTHER_DEVICE,
    OTHER_ISSUER,
    PROFILE,
    T0,
    VALID_FROM,
    VALID_UNTIL,
    Gate,
    paper_code,
    phone_code,
    pub,
)


def expect(verdict: Verdict, reason: Reason, decision: Decision) -> None:
    assert (decision.verdict, decision.reason) == (verdict, reason)


def test_valid_phone_code_is_admitted_with_its_identity(gate: Gate) -> None:
    d = gate.decide(phone_code())
    expect(Verdict.ADMIT, Reason.VALID, d)
    assert d.ticket == TicketKey(EVENT, "T0001234", 1)
    assert d.fields is not None and d.fields.category == "CAT-B"
    assert d.at == T0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", Reason.NOT_A_TICKET),
        ("https://example.org/ticket/123", Reason.NOT_A_TICKET),
        ("PQ1:" + "0" * 5000, Reason.NOT_A_TICKET),
        ("PQ2:ABCDEF", Reason.UNSUPPORTED_VERSION),
        ("PQ2:", Reason.UNSUPPORTED_VERSION),
        ("PQa:ABCDEF", Reason.NOT_A_TICKET),
        ("PQ :ABCDEF", Reason.NOT_A_TICKET),
        ("PQ1:", Reason.MALFORMED),
        ("PQ1:abc", Reason.MALFORMED),
        ("PQ1:0", Reason.MALFORMED),
    ],
)
def test_unparseable_codes_are_refused_with_their_reason(gate: Gate, text: str,
                                                          reason: Reason) -> None:
    d = gate.decide(text)
    expect(Verdict.REFUSE, reason, d)
    assert d.ticket is None
    assert d.detail


def test_binary_version_other_than_1_is_unsupported(gate: Gate) -> None:
    binary = credential.text_to_binary(phone_code())
    d = gate.decide(credential.to_text(b"\x02" + binary[1:]))
    expect(Verdict.REFUSE, Reason.UNSUPPORTED_VERSION, d)


def test_unknown_issuer_key(gate: Gate) -> None:
    expect(Verdict.REFUSE, Reason.UNKNOWN_KEY, gate.decide(phone_code(kid="nobody")))


def test_withdrawn_key_is_refused_even_with_a_good_signature(gate: Gate) -> None:
    g = replace(gate, trust=gate.trust.withdraw("iss-1"))
    expect(Verdict.REFUSE, Reason.KEY_WITHDRAWN, g.decide(phone_code()))


def test_key_not_for_this_event(gate: Gate) -> None:
    g = replace(gate, trust=TrustStore.of([TrustedKey("iss-1", pub(ISSUER),
                                                      events=frozenset({"OTHER"}))]))
    expect(Verdict.REFUSE, Reason.KEY_NOT_TRUSTED, g.decide(phone_code()))


def test_key_of_the_wrong_role_is_not_trusted_for_tickets(gate: Gate) -> None:
    g = replace(gate, trust=TrustStore.of([TrustedKey("iss-1", pub(ISSUER), KeyRole.FEED)]))
    expect(Verdict.REFUSE, Reason.KEY_NOT_TRUSTED, g.decide(phone_code()))


@pytest.mark.parametrize(("offset", "reason"), [(-1, Reason.KEY_NOT_TRUSTED), (0, Reason.VALID),
                                                (1, Reason.VALID)])
def test_key_valid_from_edge(gate: Gate, offset: int, reason: Reason) -> None:
    g = replace(gate, trust=TrustStore.of([TrustedKey("iss-1", pub(ISSUER), valid_from=T0)]))
    assert g.decide(phone_code(T0 + offset), T0 + offset).reason is reason


@pytest.mark.parametrize(("offset", "reason"), [(-1, Reason.VALID), (0, Reason.KEY_NOT_TRUSTED),
                                                (1, Reason.KEY_NOT_TRUSTED)])
def test_key_valid_until_edge(gate: Gate, offset: int, reason: Reason) -> None:
    g = replace(gate, trust=TrustStore.of([TrustedKey("iss-1", pub(ISSUER), valid_until=T0)]))
    assert g.decide(phone_code(T0 + offset), T0 + offset).reason is reason


def test_level1_signed_by_another_key_is_not_genuine(gate: Gate) -> None:
    expect(Verdict.REFUSE, Reason.BAD_SIGNATURE, gate.decide(phone_code(issuer=OTHER_ISSUER)))


def test_wrong_event(gate: Gate) -> None:
    d = gate.decide(phone_code(event="PAR24-SWM01"))
    expect(Verdict.REFUSE, Reason.WRONG_EVENT, d)


def test_wrong_entrance_names_the_right_ones(gate: Gate) -> None:
    d = gate.decide(phone_code(entrances=frozenset({4, 1})))
    expect(Verdict.REFUSE, Reason.WRONG_ENTRANCE, d)
    assert "1, 4" in d.sentence_en and "1, 4" in d.sentence_fr


def test_superseded_generation_after_resale(gate: Gate) -> None:
    g = replace(gate, revocations=MemoryRevocations.of([(EVENT, "T0001234", 2)]))
    expect(Verdict.REFUSE, Reason.SUPERSEDED, g.decide(phone_code(generation=1)))
    # the buyer's copy (generation 2) opens the gate
    assert g.decide(phone_code(generation=2)).verdict is Verdict.ADMIT


def test_cancelled_ticket_refuses_every_generation(gate: Gate) -> None:
    g = replace(gate, revocations=MemoryRevocations.of([(EVENT, "T0001234", CANCELLED)]))
    expect(Verdict.REFUSE, Reason.CANCELLED, g.decide(phone_code(generation=1)))
    expect(Verdict.REFUSE, Reason.CANCELLED, g.decide(phone_code(generation=0xFFFE)))


def test_revocation_is_keyed_on_the_decoded_ticket_not_the_text(gate: Gate) -> None:
    g = replace(gate, revocations=MemoryRevocations.of([(EVENT, "T0001234", 2)]))
    texts = {phone_code(T0 + 15 * k, generation=1) for k in range(4)}
    assert len(texts) == 4  # every step is spelled differently
    assert {g.decide(t, T0 + 15 * k).reason for k, t in enumerate(sorted(texts))} <= {
        Reason.SUPERSEDED}
    # revoking another event's ticket of the same id changes nothing here
    other = replace(gate, revocations=MemoryRevocations.of([("OTHER", "T0001234", CANCELLED)]))
    assert other.decide(phone_code()).verdict is Verdict.ADMIT


@pytest.mark.parametrize(("offset", "reason"), [(-1, Reason.NOT_YET_VALID), (0, Reason.VALID),
                                                (1, Reason.VALID)])
def test_valid_from_edge(gate: Gate, offset: int, reason: Reason) -> None:
    at = VALID_FROM + offset
    assert gate.decide(phone_code(at), at).reason is reason


@pytest.mark.parametrize(("offset", "reason"), [(-1, Reason.VALID), (0, Reason.EXPIRED),
                                                (1, Reason.EXPIRED)])
def test_valid_until_edge(gate: Gate, offset: int, reason: Reason) -> None:
    at = VALID_UNTIL + offset
    assert gate.decide(phone_code(at), at).reason is reason


def test_time_sentences_are_in_the_venue_time_zone(gate: Gate) -> None:
    from zoneinfo import ZoneInfo

    g = replace(gate, profile=replace(PROFILE, timezone=ZoneInfo("Europe/Paris")))
    d = g.decide(phone_code(VALID_FROM - 60), VALID_FROM - 60)
    assert d.reason is Reason.NOT_YET_VALID
    assert "16:00" in d.sentence_en  # VALID_FROM is 14:00 UTC, 16:00 in Paris in August
    assert "05/08/2024 16:00" in d.sentence_fr


# step window: a code of step s (starting at T0) is accepted for T0-15 <= t < T0+15+15
@pytest.mark.parametrize(
    ("offset", "reason"),
    [(-16, Reason.PHONE_CLOCK_AHEAD), (-15, Reason.VALID), (-14, Reason.VALID),
     (29, Reason.VALID), (30, Reason.STALE_CODE), (31, Reason.STALE_CODE)],
)
def test_step_window_edges(gate: Gate, offset: int, reason: Reason) -> None:
    code = phone_code(step=credential.step_at(T0))
    d = gate.decide(code, T0 + offset)
    assert d.reason is reason


def test_step_window_follows_policy(gate: Gate) -> None:
    code = phone_code(step=credential.step_at(T0))
    strict = replace(gate, policy=Policy(grace_seconds=0, ahead_seconds=0))
    assert strict.decide(code, T0 + 14).reason is Reason.VALID
    assert strict.decide(code, T0 + 15).reason is Reason.STALE_CODE
    assert strict.decide(code, T0 - 1).reason is Reason.PHONE_CLOCK_AHEAD


def test_screenshot_replayed_a_minute_later_is_stale(gate: Gate) -> None:
    screenshot = phone_code(T0)
    assert gate.decide(screenshot, T0).verdict is Verdict.ADMIT
    d = gate.decide(screenshot, T0 + 60)
    expect(Verdict.REFUSE, Reason.STALE_CODE, d)
    assert "screenshot" in d.sentence_en and "capture d'écran" in d.sentence_fr


def test_level2_signed_by_another_phone(gate: Gate) -> None:
    expect(Verdict.REFUSE, Reason.BAD_DEVICE_SIGNATURE,
           gate.decide(phone_code(device=OTHER_DEVICE)))


def test_level2_step_changed_without_resigning(gate: Gate) -> None:
    binary = bytearray(credential.text_to_binary(phone_code(T0)))
    step_pos = len(binary) - 68
    binary[step_pos:step_pos + 4] = (credential.step_at(T0) + 1).to_bytes(4, "big")
    d = gate.decide(credential.to_text(bytes(binary)), T0 + 15)
    expect(Verdict.REFUSE, Reason.BAD_DEVICE_SIGNATURE, d)


@pytest.mark.parametrize(("policy", "verdict"), [(UntrustedClockPolicy.STEWARD, Verdict.STEWARD),
                                                 (UntrustedClockPolicy.REFUSE, Verdict.REFUSE)])
def test_untrusted_clock_follows_policy(gate: Gate, policy: UntrustedClockPolicy,
                                        verdict: Verdict) -> None:
    g = replace(gate, policy=Policy(untrusted_clock=policy))
    expect(verdict, Reason.CLOCK_UNTRUSTED, g.decide(phone_code(), trusted=False))


def test_paper_goes_to_the_steward_by_default(gate: Gate) -> None:
    d = gate.decide(paper_code())
    expect(Verdict.STEWARD, Reason.PAPER_TICKET, d)
    assert d.ticket == TicketKey(EVENT, "T0001234", 1)


def test_paper_admit_once_policy(gate: Gate) -> None:
    g = replace(gate, policy=Policy(paper=PaperPolicy.ADMIT_ONCE))
    expect(Verdict.ADMIT, Reason.VALID_PAPER, g.decide(paper_code()))
    # a paper code does not depend on the gate's clock being synchronised
    assert g.decide(paper_code(), trusted=False).verdict is Verdict.ADMIT
    # the photocopy is refused once the first is in
    expect(Verdict.REFUSE, Reason.ALREADY_ADMITTED, g.admitted().decide(paper_code()))


def test_already_admitted_names_gate_and_time(gate: Gate) -> None:
    d = gate.admitted(gate="3", at=T0 - 18 * 60).decide(phone_code())
    expect(Verdict.REFUSE, Reason.ALREADY_ADMITTED, d)
    assert d.previous is not None and d.previous.gate == "3"
    assert d.sentence_en == "This ticket was already admitted at gate 3 at 16:42."
    assert d.sentence_fr == "Ce billet a déjà été admis au portique 3 à 16:42."


def test_reentry_needs_both_the_flag_and_the_profile(gate: Gate) -> None:
    outside = gate.admitted(inside=False)
    reentry_gate = replace(outside, profile=replace(PROFILE, allow_reentry=True))
    expect(Verdict.ADMIT, Reason.REENTRY, reentry_gate.decide(phone_code(flags=Flag.REENTRY)))
    assert reentry_gate.decide(phone_code()).reason is Reason.ALREADY_ADMITTED
    assert outside.decide(phone_code(flags=Flag.REENTRY)).reason is Reason.ALREADY_ADMITTED
    # still inside: no re-entry whatever the flags
    inside = replace(gate.admitted(), profile=replace(PROFILE, allow_reentry=True))
    assert inside.decide(phone_code(flags=Flag.REENTRY)).reason is Reason.ALREADY_ADMITTED


def test_exit_gate(gate: Gate) -> None:
    exit_profile = replace(PROFILE, direction=Direction.EXIT)
    expect(Verdict.ADMIT, Reason.EXIT,
           replace(gate.admitted(), profile=exit_profile).decide(phone_code()))
    expect(Verdict.REFUSE, Reason.NOT_INSIDE, replace(gate, profile=exit_profile)
           .decide(phone_code()))


def test_first_failure_wins(gate: Gate) -> None:
    revoked = replace(gate, revocations=MemoryRevocations.of([(EVENT, "T0001234", CANCELLED)]))
    # forged signature beats wrong event
    assert gate.decide(phone_code(issuer=OTHER_ISSUER, event="X")).reason is Reason.BAD_SIGNATURE
    # wrong event beats revocation, expiry and a stale step
    assert revoked.decide(phone_code(T0 - 3600, event="X"), T0 + 9 * 3600).reason is \
        Reason.WRONG_EVENT
    # revocation beats expiry
    assert revoked.decide(phone_code(), VALID_UNTIL + 10).reason is Reason.CANCELLED
    # expiry beats a stale step and a bad device signature
    assert gate.decide(phone_code(T0 - 600, device=OTHER_DEVICE), VALID_UNTIL).reason is \
        Reason.EXPIRED
    # untrusted clock beats the step window
    assert gate.decide(phone_code(T0 - 600), T0, trusted=False).reason is Reason.CLOCK_UNTRUSTED
    # stale step beats a bad device signature
    assert gate.decide(phone_code(T0 - 600, device=OTHER_DEVICE)).reason is Reason.STALE_CODE
    # bad device signature beats anti-passback
    assert gate.admitted().decide(phone_code(device=OTHER_DEVICE)).reason is \
        Reason.BAD_DEVICE_SIGNATURE


def test_decision_is_frozen_and_repeatable(gate: Gate) -> None:
    code = phone_code()
    first, second = gate.decide(code), gate.decide(code)
    assert first == second
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.verdict = Verdict.REFUSE  # type: ignore[misc]


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_has_two_distinct_sentences(reason: Reason) -> None:
    from portique.ticket.reasons import sentence

    en, fr = sentence(reason, Lang.EN), sentence(reason, Lang.FR)
    assert en and fr and en != fr
    assert en.endswith(".") and fr.endswith(".")


def test_device_key_of_other_phone_in_level1_is_not_a_bypass(gate: Gate) -> None:
    # a level 1 naming another phone's key, level 2 signed by the holder's phone
    code = phone_code(device_key=pub(OTHER_DEVICE), device=DEVICE)
    assert gate.decide(code).reason is Reason.BAD_DEVICE_SIGNATURE
