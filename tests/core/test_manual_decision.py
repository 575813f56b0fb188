"""A steward's manual admit: the camera's revocation and anti-passback checks, the checks of
its own, and what a supervisor may override (nothing else)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from portique.ticket.credential import Flag
from portique.ticket.decision import (
    SUPERVISOR_MAY_OVERRIDE,
    Decision,
    Direction,
    ManualCheck,
    ManualRefusal,
    ManualRequest,
    Now,
    decide_manual,
)
from portique.ticket.reasons import Reason, Verdict
from portique.ticket.views import CANCELLED, MemoryRevocations, TicketKey

from .conftest import EVENT, T0, Gate, phone_code

TICKET = "T0001234"  # the ticket phone_code() carries, generation 1


def manual(gate: Gate, **changes: object) -> Decision | ManualRefusal:
    request = replace(ManualRequest(ticket_id=TICKET, reason="phone died", in_manifest=True,
                                    generation=1), **changes)
    return decide_manual(request, Now(T0), revocations=gate.revocations,
                         admissions=gate.admissions, profile=gate.profile)


def refused(result: Decision | ManualRefusal) -> ManualCheck:
    assert isinstance(result, ManualRefusal), result
    return result.check


def test_a_ticket_in_the_manifest_is_admitted_by_hand() -> None:
    result = manual(Gate())
    assert isinstance(result, Decision)
    assert (result.verdict, result.reason) == (Verdict.ADMIT, Reason.MANUAL_ADMIT)
    assert result.ticket == TicketKey(EVENT, TICKET, 1) and result.at == T0
    assert result.detail == "phone died"


@pytest.mark.parametrize(("revoked_below", "camera_reason"), [
    (CANCELLED, Reason.CANCELLED), (2, Reason.SUPERSEDED)])
def test_what_the_camera_refuses_as_void_the_steward_cannot_admit(
        revoked_below: int, camera_reason: Reason) -> None:
    gate = replace(Gate(), revocations=MemoryRevocations({(EVENT, TICKET): revoked_below}))
    assert gate.decide(phone_code()).reason is camera_reason
    assert refused(manual(gate)) is ManualCheck.VOID
    said = manual(gate)
    assert isinstance(said, ManualRefusal)
    assert ("cancelled" if camera_reason is Reason.CANCELLED else "superseded") in said.message


@pytest.mark.parametrize("inside", [True, False])
def test_what_the_camera_refuses_as_already_admitted_the_steward_cannot_admit(
        inside: bool) -> None:
    gate = Gate().admitted(TICKET, inside=inside)  # out again, but no re-entry allowed
    assert gate.decide(phone_code()).reason is Reason.ALREADY_ADMITTED
    assert refused(manual(gate)) is ManualCheck.ALREADY_INSIDE


def test_a_ticket_that_may_come_back_is_admitted_again_by_hand_as_by_the_camera() -> None:
    gate = Gate().admitted(TICKET, inside=False)
    gate = replace(gate, profile=replace(gate.profile, allow_reentry=True))
    assert gate.decide(phone_code(flags=Flag.REENTRY)).reason is Reason.REENTRY
    result = manual(gate, flags=int(Flag.REENTRY))
    assert isinstance(result, Decision) and result.reason is Reason.MANUAL_ADMIT


def test_checks_of_its_own_come_in_their_order() -> None:
    gate = replace(Gate().admitted(TICKET),
                   revocations=MemoryRevocations({(EVENT, TICKET): CANCELLED}))
    everything = {"manual_admits_in_window": 10, "manual_admit_limit": 10,
                  "in_manifest": False, "generation": 0}
    assert refused(manual(gate, ticket_id="BAD ID", **everything)) \
        is ManualCheck.INVALID_TICKET_ID
    assert refused(manual(gate, **everything)) is ManualCheck.LIMIT
    assert refused(manual(gate, **{**everything, "manual_admits_in_window": 9})) \
        is ManualCheck.NOT_IN_MANIFEST
    assert refused(manual(gate, generation=1)) is ManualCheck.VOID
    assert refused(manual(Gate().admitted(TICKET))) is ManualCheck.ALREADY_INSIDE


def test_a_supervisor_overrides_the_overridable_checks_and_only_those() -> None:
    gate = replace(Gate().admitted(TICKET),
                   revocations=MemoryRevocations({(EVENT, TICKET): CANCELLED}))
    everything = {"manual_admits_in_window": 10, "manual_admit_limit": 10,
                  "in_manifest": False, "generation": 0}
    result = manual(gate, supervisor=True, **everything)
    assert isinstance(result, Decision) and result.reason is Reason.MANUAL_ADMIT
    assert refused(manual(gate, supervisor=True, ticket_id="T" * 33, **everything)) \
        is ManualCheck.INVALID_TICKET_ID
    assert set(ManualCheck) - SUPERVISOR_MAY_OVERRIDE == {ManualCheck.INVALID_TICKET_ID,
                                                          ManualCheck.EXIT_GATE}


def test_a_ticket_for_another_entrance_is_refused_by_hand_as_by_the_camera() -> None:
    gate = Gate()
    assert gate.decide(phone_code(entrances=frozenset({1}))).reason is Reason.WRONG_ENTRANCE
    assert refused(manual(gate, entrances=frozenset({1}))) is ManualCheck.WRONG_ENTRANCE
    result = manual(gate, entrances=frozenset({1}), supervisor=True)
    assert isinstance(result, Decision) and result.reason is Reason.MANUAL_ADMIT
    assert isinstance(manual(gate, entrances=frozenset({2})), Decision)


def test_nobody_is_admitted_by_hand_at_an_exit_gate() -> None:
    gate = replace(Gate(), profile=replace(Gate().profile, direction=Direction.EXIT))
    assert refused(manual(gate)) is ManualCheck.EXIT_GATE
    assert refused(manual(gate, supervisor=True)) is ManualCheck.EXIT_GATE
