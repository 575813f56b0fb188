"""What the decision core asks of the outside world, as read-only views.

The revocation view answers from the signed revocation feed; the admissions view from the
gate's journal (and, later, from the other gates of the venue). Both are keyed on the
decoded ticket identity, never on the scanned text. The in-memory implementations here
serve the CLI's one-off checks, tests and vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from portique.ticket.rules import Stay

CANCELLED = 0xFFFF
"""A revocation's minimum valid generation that voids every generation: cancelled."""


@dataclass(frozen=True, slots=True)
class TicketKey:
    """The decoded identity of one copy of a ticket."""

    event: str
    ticket_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class Admission:
    """The latest passage of a ticket through the venue's gates."""

    event: str
    ticket_id: str
    generation: int
    gate: str
    at: float
    inside: bool = True
    """False once the holder went out through an exit that recorded it."""


class RevocationView(Protocol):
    def min_valid_generation(self, event: str, ticket_id: str) -> int | None:
        """The lowest generation still valid, CANCELLED, or None when nothing is revoked."""
        ...


class AdmissionsView(Protocol):
    def last_admission(self, event: str, ticket_id: str) -> Admission | None:
        """The ticket's latest admission still in force (voided ones excluded)."""
        ...


class HistoryView(Protocol):
    def stays(self, event: str, ticket_id: str) -> tuple[Stay, ...]:
        """The ticket's admissions into `event` not voided, here and at the venue's other
        gates, each with its exit time if an exit gate recorded one."""
        ...


@dataclass(frozen=True)
class MemoryHistory:
    """Stays held in a mapping: (event, ticket id) -> stays."""

    entries: Mapping[tuple[str, str], tuple[Stay, ...]]

    def stays(self, event: str, ticket_id: str) -> tuple[Stay, ...]:
        return self.entries.get((event, ticket_id), ())


class NoRevocations:
    """A view in which nothing is revoked."""

    def min_valid_generation(self, event: str, ticket_id: str) -> int | None:
        return None


@dataclass(frozen=True)
class MemoryRevocations:
    """Revocations held in a mapping: (event, ticket id) -> minimum valid generation."""

    entries: Mapping[tuple[str, str], int]

    @classmethod
    def of(cls, entries: Iterable[tuple[str, str, int]]) -> MemoryRevocations:
        merged: dict[tuple[str, str], int] = {}
        for event, ticket_id, generation in entries:
            key = (event, ticket_id)
            merged[key] = max(generation, merged.get(key, 0))
        return cls(merged)

    def min_valid_generation(self, event: str, ticket_id: str) -> int | None:
        return self.entries.get((event, ticket_id))


@dataclass(frozen=True)
class MemoryAdmissions:
    """Admissions held in a mapping: (event, ticket id) -> latest admission."""

    entries: Mapping[tuple[str, str], Admission]

    @classmethod
    def of(cls, admissions: Iterable[Admission]) -> MemoryAdmissions:
        latest: dict[tuple[str, str], Admission] = {}
        for admission in admissions:
            key = (admission.event, admission.ticket_id)
            if key not in latest or admission.at >= latest[key].at:
                latest[key] = admission
        return cls(latest)

    def last_admission(self, event: str, ticket_id: str) -> Admission | None:
        return self.entries.get((event, ticket_id))
