"""What happens at a gate, as typed records: one frozen class per kind, one JSON form each.

The daemon, the wiring and the mesh publish these on the event bus; the control socket
sends their JSON form to watchers (`gate steward`, `gate run --print`, tools), and the
steward UI reads them back with `from_json`. The JSON is the control protocol's
(docs/steward.md): a ``type`` and the fields below; times are UTC ISO-8601 to the second,
exactly as sent, so a record and its JSON form turn into each other without loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from portique.base.errors import GateError
from portique.scanner.health import CameraState


class EventFormatError(GateError, ValueError):
    """A JSON object that is not one of the gate's events (the message says what is wrong)."""


@dataclass(frozen=True, slots=True)
class TicketRef:
    """Which ticket: its event, id and generation."""

    event: str
    ticket_id: str
    generation: int

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "ticket_id": self.ticket_id,
                "generation": self.generation}

    @classmethod
    def from_json(cls, d: object) -> TicketRef | None:
        if d is None:
            return None
        m = _mapping(d, "ticket")
        return cls(_str(m, "event"), _str(m, "ticket_id"), _int(m, "generation"))


@dataclass(frozen=True, slots=True)
class DecisionMade:
    """The gate decided on a code, or a steward by hand (``method`` says which)."""

    TYPE: ClassVar[str] = "decision"
    scan_id: str | None
    at: str
    gate: str
    verdict: str
    reason: str
    sentence_en: str
    sentence_fr: str
    ticket: TicketRef | None
    category: str | None
    entrances: tuple[int, ...] | None
    method: str
    steward: str | None
    latency_ms: float | None
    turnstile: str
    """What the turnstile was told: unlock, refuse or call_steward."""
    outcome: str | None = None
    """For an admission, once the visitor has passed or not: passed, timed_out, ..."""
    voided: bool | None = None
    """For an admission, once over: True when nobody passed and it was voided."""
    accessible: bool | None = None
    """The ticket's ACCESSIBLE flag (None: no ticket read, or a manual decision)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.TYPE, "scan_id": self.scan_id, "at": self.at, "gate": self.gate,
            "verdict": self.verdict, "reason": self.reason,
            "sentence": {"en": self.sentence_en, "fr": self.sentence_fr},
            "ticket": None if self.ticket is None else self.ticket.to_json(),
            "category": self.category,
            "entrances": None if self.entrances is None else list(self.entrances),
            "method": self.method, "steward": self.steward, "latency_ms": self.latency_ms,
            "turnstile": self.turnstile,
        }
        if self.outcome is not None:
            out["outcome"] = self.outcome
        if self.voided is not None:
            out["voided"] = self.voided
        if self.accessible is not None:
            out["accessible"] = self.accessible
        return out

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> DecisionMade:
        said = _mapping(m.get("sentence", {}), "sentence")
        entrances = m.get("entrances")
        if entrances is not None and (not isinstance(entrances, list) or not all(
                isinstance(e, int) and not isinstance(e, bool) for e in entrances)):
            raise EventFormatError("decision: entrances must be a list of integers")
        latency = m.get("latency_ms")
        if latency is not None and (isinstance(latency, bool)
                                    or not isinstance(latency, int | float)):
            raise EventFormatError("decision: latency_ms must be a number")
        return cls(
            scan_id=_opt_str(m, "scan_id"), at=_str(m, "at"), gate=_str(m, "gate"),
            verdict=_str(m, "verdict"), reason=_str(m, "reason"),
            sentence_en=_opt_str(said, "en") or "", sentence_fr=_opt_str(said, "fr") or "",
            ticket=TicketRef.from_json(m.get("ticket")), category=_opt_str(m, "category"),
            entrances=None if entrances is None else tuple(entrances),
            method=_str(m, "method"), steward=_opt_str(m, "steward"),
            latency_ms=None if latency is None else float(latency),
            turnstile=_str(m, "turnstile"), outcome=_opt_str(m, "outcome"),
            voided=_opt_bool(m, "voided"), accessible=_opt_bool(m, "accessible"))


@dataclass(frozen=True, slots=True)
class TicketDisplayed:
    """The same ticket shown again while its holder is still at the gate: shown, not decided."""

    TYPE: ClassVar[str] = "displayed"
    ticket: TicketRef
    at: str

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "ticket": self.ticket.to_json(), "at": self.at}

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> TicketDisplayed:
        ticket = TicketRef.from_json(m.get("ticket"))
        if ticket is None:
            raise EventFormatError("displayed: ticket is required")
        return cls(ticket=ticket, at=_str(m, "at"))


@dataclass(frozen=True, slots=True)
class PassageEnded:
    """An unlock is over: the visitor passed, or the admission was voided."""

    TYPE: ClassVar[str] = "passage"
    scan_id: str | None
    outcome: str
    voided: bool
    ticket: TicketRef | None

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "scan_id": self.scan_id, "outcome": self.outcome,
                "voided": self.voided,
                "ticket": None if self.ticket is None else self.ticket.to_json()}

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> PassageEnded:
        voided = _opt_bool(m, "voided")
        return cls(scan_id=_opt_str(m, "scan_id"), outcome=_str(m, "outcome"),
                   voided=bool(voided), ticket=TicketRef.from_json(m.get("ticket")))


@dataclass(frozen=True, slots=True)
class LaneReleased:
    """The lock opened for an admitted visitor: at once when the lane was free, or as
    soon as the person before them had passed (``at``, while ``decided_at`` is when the
    code was decided)."""

    TYPE: ClassVar[str] = "released"
    scan_id: str | None
    at: str
    decided_at: str
    ticket: TicketRef | None

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "scan_id": self.scan_id, "at": self.at,
                "decided_at": self.decided_at,
                "ticket": None if self.ticket is None else self.ticket.to_json()}

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> LaneReleased:
        return cls(scan_id=_opt_str(m, "scan_id"), at=_str(m, "at"),
                   decided_at=_str(m, "decided_at"),
                   ticket=TicketRef.from_json(m.get("ticket")))


@dataclass(frozen=True, slots=True)
class TurnstileChanged:
    """The turnstile's own news: fire alarm raised, loop closed, free egress ended, a
    fault, a passage without an admission (``kind`` is the turnstile's event kind)."""

    TYPE: ClassVar[str] = "turnstile"
    kind: str
    detail: str | None

    FIRE_ALARM_RAISED: ClassVar[str] = "fire_alarm_raised"
    FIRE_LOOP_CLOSED: ClassVar[str] = "fire_loop_closed"
    FREE_EGRESS_ENDED: ClassVar[str] = "free_egress_ended"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "kind": self.kind, "detail": self.detail}

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> TurnstileChanged:
        return cls(kind=_str(m, "kind"), detail=_opt_str(m, "detail"))


@dataclass(frozen=True, slots=True)
class FireAlarmAcknowledged:
    """A steward acknowledged the fire alarm; ``accepted`` is False while the loop is open."""

    TYPE: ClassVar[str] = "fire_alarm_ack"
    steward: str
    accepted: bool

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "steward": self.steward, "accepted": self.accepted}

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> FireAlarmAcknowledged:
        return cls(steward=_str(m, "steward"), accepted=bool(_opt_bool(m, "accepted")))


@dataclass(frozen=True, slots=True)
class CameraChanged:
    """The camera changed state (ok, starting, lost, black, frozen, ended, closed), with its
    device and why."""

    TYPE: ClassVar[str] = "camera"
    state: str
    device: str = ""
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "state": self.state, "device": self.device,
                "why": self.why}

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> CameraChanged:
        state = _str(m, "state")
        if state not in CAMERA_STATES:
            raise EventFormatError(f"state: unknown camera state {state!r} (one of "
                                   f"{', '.join(CAMERA_STATES)})")
        return cls(state=state, device=_opt_str(m, "device") or "",
                   why=_opt_str(m, "why") or "")


CAMERA_STATES = tuple(s.value for s in CameraState)
"""The camera states a `CameraChanged` may carry (portique.scanner.health.CameraState)."""


@dataclass(frozen=True, slots=True)
class MeshConflictFound:
    """One ticket in force at two gates from two different scans (found by the mesh)."""

    TYPE: ClassVar[str] = "mesh_conflict"
    event: str
    ticket_id: str
    first_gate: str
    first_scan: str
    first_at: str
    second_gate: str
    second_scan: str
    second_at: str
    found_at: str

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "event": self.event, "ticket_id": self.ticket_id,
                "first": {"gate": self.first_gate, "scan_id": self.first_scan,
                          "at": self.first_at},
                "second": {"gate": self.second_gate, "scan_id": self.second_scan,
                           "at": self.second_at},
                "found_at": self.found_at}

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> MeshConflictFound:
        first, second = _mapping(m.get("first"), "first"), _mapping(m.get("second"), "second")
        return cls(event=_str(m, "event"), ticket_id=_str(m, "ticket_id"),
                   first_gate=_str(first, "gate"), first_scan=_str(first, "scan_id"),
                   first_at=_str(first, "at"), second_gate=_str(second, "gate"),
                   second_scan=_str(second, "scan_id"), second_at=_str(second, "at"),
                   found_at=_str(m, "found_at"))


@dataclass(frozen=True, slots=True)
class FeedApplied:
    """A newer revocation and manifest feed is in force at this gate."""

    TYPE: ClassVar[str] = "feed_applied"
    event: str
    sequence: int
    published_at: str

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "event": self.event, "sequence": self.sequence,
                "published_at": self.published_at}

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> FeedApplied:
        return cls(event=_str(m, "event"), sequence=_int(m, "sequence"),
                   published_at=_str(m, "published_at"))


@dataclass(frozen=True, slots=True)
class OverrideRefused:
    """A supervisor's override the gate refused (wrong PIN, unknown supervisor, locked)."""

    TYPE: ClassVar[str] = "override_refused"
    steward: str
    supervisor: str
    ticket_id: str
    code: str

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "steward": self.steward, "supervisor": self.supervisor,
                "ticket_id": self.ticket_id, "code": self.code}

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> OverrideRefused:
        return cls(steward=_str(m, "steward"), supervisor=_str(m, "supervisor"),
                   ticket_id=_str(m, "ticket_id"), code=_str(m, "code"))


Event: TypeAlias = (DecisionMade | TicketDisplayed | PassageEnded | LaneReleased
                    | TurnstileChanged
                    | FireAlarmAcknowledged | CameraChanged | MeshConflictFound
                    | FeedApplied | OverrideRefused)

EVENT_TYPES: dict[str, Callable[[Mapping[str, Any]], Event]] = {
    cls.TYPE: cls.from_json for cls in (
        DecisionMade, TicketDisplayed, PassageEnded, LaneReleased, TurnstileChanged,
        FireAlarmAcknowledged, CameraChanged, MeshConflictFound, FeedApplied,
        OverrideRefused)
}
"""Every event type, by the ``type`` of its JSON form."""


def from_json(d: object) -> Event:
    """The event a JSON object stands for; EventFormatError naming what is wrong."""
    m = _mapping(d, "event")
    kind = m.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise EventFormatError(f"event: unknown type {kind!r}")
    return EVENT_TYPES[kind](m)


def _mapping(d: object, what: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise EventFormatError(f"{what}: must be an object, got {type(d).__name__}")
    return d


def _str(m: Mapping[str, Any], key: str) -> str:
    value = m.get(key)
    if not isinstance(value, str):
        raise EventFormatError(f"{key}: must be a string, got {type(value).__name__}")
    return value


def _opt_str(m: Mapping[str, Any], key: str) -> str | None:
    return None if m.get(key) is None else _str(m, key)


def _int(m: Mapping[str, Any], key: str) -> int:
    value = m.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise EventFormatError(f"{key}: must be an integer, got {type(value).__name__}")
    return value


def _opt_bool(m: Mapping[str, Any], key: str) -> bool | None:
    value = m.get(key)
    if value is not None and not isinstance(value, bool):
        raise EventFormatError(f"{key}: must be true or false, got {type(value).__name__}")
    return value
