"""Sessions, entry rules and the venue in the config, and the decision's sentences about
them: old one-event configs keep working, bad keys are named with their path."""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.base import localtime
from portique.base.errors import ConfigError
from portique.base.timeparse import parse_time
from portique.runtime.config import from_dict
from portique.ticket import credential
from portique.ticket.credential import Flag, TicketFields
from portique.ticket.decision import (
    AccessibleAtStandard,
    GateProfile,
    LaneKind,
    Now,
    Policy,
    decide,
)
from portique.ticket.reasons import Lang, Reason, Verdict
from portique.ticket.rules import Session
from portique.ticket.trust import KeyRole, TrustedKey, TrustStore
from portique.ticket.views import MemoryAdmissions, MemoryHistory, NoRevocations

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
ISSUER = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
PHONE = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
EVENING = "PAR24-DAY-PM"


def table(**extra: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"gate": {"id": "1", "entrance": 2}, "keys": {"trust_dir": "/k"}}
    t.update(extra)
    return t


SESSION = {"event": EVENING, "opens": "2024-08-05T15:00:00+02:00",
           "closes": "2024-08-05T23:30:00+02:00"}


def test_an_old_config_is_one_session_always_open() -> None:
    config = from_dict(table(gate={"id": "1", "entrance": 2, "event": "PAR24-ATH05"}))
    profile = config.profile()
    assert config.events == ("PAR24-ATH05",)
    assert profile.sessions == ()
    assert profile.session_of("PAR24-ATH05") == Session("PAR24-ATH05")
    assert profile.session_of("PAR24-OTHER") is None


def test_sessions_replace_gate_event() -> None:
    config = from_dict(table(sessions=[SESSION, {**SESSION, "event": "PAR24-DAY-AM",
                                                 "opens": "2024-08-05T08:00:00+02:00",
                                                 "closes": "2024-08-05T13:30:00+02:00"}]))
    assert config.events == (EVENING, "PAR24-DAY-AM")
    session = config.profile().session_of(EVENING)
    assert session is not None and session.opens_at == parse_time("2024-08-05T13:00:00Z")


@pytest.mark.parametrize(("extra", "message"), [
    ({"gate": {"id": "1", "entrance": 2, "event": "PAR24-ATH05"}, "sessions": [SESSION]},
     "gate.event: leave it out when [[sessions]] lists the sessions"),
    ({}, "gate.event: required key is missing (or list the sessions in [[sessions]])"),
    ({"sessions": [{**SESSION, "opens": "2024-08-05T15:00:00"}]},
     "sessions[0].opens: time '2024-08-05T15:00:00' has no UTC offset"),
    ({"sessions": [{**SESSION, "closes": "2024-08-05T14:00:00+02:00"}]},
     "sessions[0].closes: 2024-08-05T14:00:00+02:00 must be after opens"),
    ({"sessions": [SESSION, SESSION]}, "sessions[1].event: PAR24-DAY-PM is listed twice"),
    ({"sessions": [{**SESSION, "rules": [{"conditions": [
        {"var": "inside_count", "op": "<", "value": 5}]}]}]},
     "sessions[0].rules[0].conditions[0].var: unknown variable 'inside_count'"),
    ({"sessions": [{**SESSION, "rules": [{"windows": [["08:00", "25:00"]]}]}]},
     "sessions[0].rules[0].windows[0]: must be a time of day HH:MM"),
    ({"sessions": [{**SESSION, "exit_all_at": ["3am"]}]},
     "sessions[0].exit_all_at[0]: must be a time of day HH:MM"),
    ({"sessions": [SESSION], "venue": {"elsewhere": [{"event": EVENING, "area": "South"}]}},
     "venue.elsewhere[0].event: PAR24-DAY-PM is served at this gate"),
])
def test_bad_sessions_are_named_with_their_path(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict(table(**extra))
    assert message in str(caught.value)


def test_the_example_config_keeps_loading(tmp_path: Path) -> None:
    import tomllib

    example = Path(__file__).parents[2] / "config" / "gate.toml"
    config = from_dict(tomllib.loads(example.read_text(encoding="utf-8")))
    assert config.events


# --- the decision's sentences ------------------------------------------------------------

def code(*, event: str = EVENING, flags: Flag = Flag(0), at: float) -> str:
    fields = TicketFields(kid="iss", event=event, ticket_id="T1", generation=0,
                          valid_from=int(at) - 86400, valid_until=int(at) + 86400,
                          entrances=frozenset({2}), category="A", flags=flags,
                          device_key=PHONE.public_key().public_bytes_raw())
    return credential.dynamic_code(credential.issue(fields, ISSUER), PHONE,
                                   credential.step_at(at))


TRUST = TrustStore.of([TrustedKey("iss", ISSUER.public_key().public_bytes_raw(), KeyRole.ISSUER)])


def decide_at(at: float, profile: GateProfile, **kw: Any) -> Any:
    return decide(code(at=at, **kw), Now(at), trust=TRUST, revocations=NoRevocations(),
                  admissions=MemoryAdmissions({}), profile=profile, policy=Policy(),
                  history=MemoryHistory({}))


def test_a_session_served_elsewhere_says_where() -> None:
    profile = GateProfile("1", "PAR24-ATH05", 2, timezone=PARIS,
                          elsewhere=((EVENING, "the South gates, entrances 7 to 9"),))
    decision = decide_at(parse_time("2024-08-05T16:00:00Z"), profile)
    assert (decision.verdict, decision.reason) == (Verdict.REFUSE, Reason.SESSION_ELSEWHERE)
    assert decision.sentence(Lang.EN) == ("This ticket's session is not served here: please "
                                          "go to the South gates, entrances 7 to 9.")
    other = decide_at(parse_time("2024-08-05T16:00:00Z"), profile, event="PAR24-ELSE")
    assert other.reason is Reason.WRONG_EVENT  # the config does not know where


def test_an_opening_time_in_the_repeated_hour_says_its_zone() -> None:
    opens = parse_time("2024-10-27T02:30:00+01:00")  # the second 02:30, winter time
    profile = GateProfile("1", EVENING, 2, timezone=PARIS,
                          sessions=(Session(EVENING, opens, opens + 3600),))
    decision = decide_at(parse_time("2024-10-27T00:40:00Z"), profile)
    assert decision.reason is Reason.SESSION_NOT_OPEN
    assert decision.sentence(Lang.EN) == ("Your session's gates open at 02:30 CET, UTC+01:00. "
                                          "Please come back then.")
    assert localtime.clock(opens - 3600, PARIS) == "02:30 CEST, UTC+02:00"
    assert localtime.clock(parse_time("2024-08-05T13:00:00Z"), PARIS) == "15:00"


@pytest.mark.parametrize(("lane", "policy", "verdict", "reason"), [
    (LaneKind.STANDARD, AccessibleAtStandard.STEWARD, Verdict.STEWARD, Reason.ACCESSIBLE_LANE),
    (LaneKind.STANDARD, AccessibleAtStandard.ADMIT, Verdict.ADMIT, Reason.VALID),
    (LaneKind.ACCESSIBLE, AccessibleAtStandard.STEWARD, Verdict.ADMIT, Reason.VALID),
])
def test_an_accessible_ticket_at_each_lane(lane: LaneKind, policy: AccessibleAtStandard,
                                           verdict: Verdict, reason: Reason) -> None:
    profile = GateProfile("1", EVENING, 2, timezone=PARIS, lane=lane,
                          accessible_at_standard=policy, accessible_lane="lane 1, on the left")
    at = parse_time("2024-08-05T16:00:00Z")
    decision = decide_at(at, profile, flags=Flag.ACCESSIBLE)
    assert (decision.verdict, decision.reason) == (verdict, reason)
    if reason is Reason.ACCESSIBLE_LANE:
        assert "lane 1, on the left" in decision.sentence(Lang.FR)
    plain = decide_at(at, profile)  # a ticket without the flag opens any lane
    assert (plain.verdict, plain.reason) == (Verdict.ADMIT, Reason.VALID)


def test_gate_check_says_times_in_the_venues_zone(capsys: pytest.CaptureFixture[str]) -> None:
    import base64
    import json as jsonlib

    from portique.commands.main import main
    from tests.appliance.conftest import FIXTURES, fixture_key

    at = parse_time("2024-08-05T16:00:00+02:00")  # the fixture tickets are valid from 17:00
    ticket = jsonlib.loads((FIXTURES / "tickets" / "alice.json").read_text(encoding="utf-8"))
    level1 = base64.b64decode(ticket["level1"])
    text = credential.dynamic_code(level1, fixture_key("dev-alice"), credential.step_at(at))
    base = ["check", text, "--keys", str(FIXTURES / "keys"), "--event", "PAR24-ATH05",
            "--entrance", "2", "--at", str(at), "--lang", "en"]
    main(base)
    out = capsys.readouterr().out
    assert "NOT_YET_VALID" in out and "valid only from 2024-08-05 17:00." in out
    main([*base, "--timezone", "UTC"])
    assert "valid only from 2024-08-05 15:00." in capsys.readouterr().out
    main([*base, "--json"])
    assert jsonlib.loads(capsys.readouterr().out)["at"] == "2024-08-05T14:00:00Z"
