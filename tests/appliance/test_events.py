"""Every event type turns into its JSON form and back without loss; bad JSON is named."""

from __future__ import annotations

import json

import pytest

from portique.runtime import events
from portique.runtime.events import (
    CameraChanged,
    DecisionMade,
    EventFormatError,
    FeedApplied,
    FireAlarmAcknowledged,
    LaneReleased,
    MeshConflictFound,
    OverrideRefused,
    PassageEnded,
    TicketDisplayed,
    TicketRef,
    TurnstileChanged,
)

TICKET = TicketRef("PAR24-ATH05", "T-0001", 2)
DECISION = DecisionMade(
    scan_id="4f1c0d9e8a7b6c5d4e3f2a1b0c9d8e7f", at="2024-08-05T17:30:00Z", gate="north-3",
    verdict="admit", reason="VALID", sentence_en="Welcome.", sentence_fr="Bienvenue.",
    ticket=TICKET, category="A", entrances=(1, 2), method="camera", steward=None,
    latency_ms=12.5, turnstile="unlock")

EXAMPLES: list[events.Event] = [
    DECISION,
    DecisionMade(scan_id=None, at="2024-08-05T17:30:01Z", gate="north-3", verdict="refuse",
                 reason="NOT_A_TICKET", sentence_en="This is not a ticket.",
                 sentence_fr="Ce n'est pas un billet.", ticket=None, category=None,
                 entrances=None, method="camera", steward=None, latency_ms=None,
                 turnstile="refuse"),
    DecisionMade(scan_id="0" * 32, at="2024-08-05T17:31:00Z", gate="north-3",
                 verdict="admit", reason="MANUAL_ADMIT", sentence_en="Admitted by a steward.",
                 sentence_fr="Admis par un steward.", ticket=TICKET, category=None,
                 entrances=None, method="steward", steward="s-42", latency_ms=None,
                 turnstile="unlock", outcome="timed_out", voided=True),
    TicketDisplayed(ticket=TICKET, at="2024-08-05T17:30:02Z"),
    PassageEnded(scan_id="4f1c0d9e8a7b6c5d4e3f2a1b0c9d8e7f", outcome="passed", voided=False,
                 ticket=TICKET),
    LaneReleased(scan_id="4f1c0d9e8a7b6c5d4e3f2a1b0c9d8e7f", at="2024-08-05T17:30:04Z",
                 decided_at="2024-08-05T17:30:00Z", ticket=TICKET),
    TurnstileChanged(kind=TurnstileChanged.FIRE_ALARM_RAISED, detail="loop opened"),
    TurnstileChanged(kind="passage", detail=None),
    FireAlarmAcknowledged(steward="s-42", accepted=False),
    CameraChanged(state="lost", device="/dev/video0", why="no frame for 3 s"),
    MeshConflictFound(event="PAR24-ATH05", ticket_id="T-0001", first_gate="1",
                      first_scan="a" * 32, first_at="2024-08-05T17:30:00Z", second_gate="2",
                      second_scan="b" * 32, second_at="2024-08-05T17:30:00Z",
                      found_at="2024-08-05T17:30:03Z"),
    FeedApplied(event="PAR24-ATH05", sequence=7, published_at="2024-08-05T16:00:00Z"),
    OverrideRefused(steward="s-42", supervisor="sup-9", ticket_id="T-0001", code="wrong_pin"),
]


def test_every_event_type_has_an_example() -> None:
    assert {type(e).TYPE for e in EXAMPLES} == set(events.EVENT_TYPES)


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_an_event_and_its_json_form_turn_into_each_other(event: events.Event) -> None:
    wire = json.loads(json.dumps(event.to_json()))
    assert wire["type"] == type(event).TYPE
    back = events.from_json(wire)
    assert back == event
    assert back.to_json() == wire


def test_the_decision_json_keeps_the_control_protocol_fields() -> None:
    assert DECISION.to_json() == {
        "type": "decision", "scan_id": DECISION.scan_id, "at": "2024-08-05T17:30:00Z",
        "gate": "north-3", "verdict": "admit", "reason": "VALID",
        "sentence": {"en": "Welcome.", "fr": "Bienvenue."},
        "ticket": {"event": "PAR24-ATH05", "ticket_id": "T-0001", "generation": 2},
        "category": "A", "entrances": [1, 2], "method": "camera", "steward": None,
        "latency_ms": 12.5, "turnstile": "unlock"}


@pytest.mark.parametrize(("wire", "named"), [
    ([], "event: must be an object"),
    ({"type": "nope"}, "unknown type 'nope'"),
    ({"state": "running"}, "unknown type None"),
    ({"type": "camera", "state": 3}, "state: must be a string"),
    ({"type": "camera", "state": "reconnecting"},
     "state: unknown camera state 'reconnecting' (one of starting, ok, lost"),
    ({"type": "feed_applied", "event": "E", "sequence": True, "published_at": "x"},
     "sequence: must be an integer"),
    ({"type": "passage", "scan_id": None, "outcome": "passed", "voided": "no",
      "ticket": None}, "voided: must be true or false"),
    ({**DECISION.to_json(), "entrances": ["1"]}, "entrances must be a list of integers"),
    ({**DECISION.to_json(), "ticket": {"event": "E", "ticket_id": "T"}},
     "generation: must be an integer"),
])
def test_json_that_is_no_event_is_refused_naming_the_field(wire: object, named: str) -> None:
    with pytest.raises(EventFormatError, match=named.replace("(", r"\(").replace("'", "'")):
        events.from_json(wire)
