"""Real keys and real credentials for the core tests, from fixed seeds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.ticket import credential
from portique.ticket.credential import Flag, TicketFields
from portique.ticket.decision import Decision, GateProfile, Now, Policy, decide
from portique.ticket.trust import TrustedKey, TrustStore
from portique.ticket.views import Admission, MemoryAdmissions, MemoryRevocations

EVENT = "PAR24-ATH05"
T0 = 1722877200  # 2024-08-05T19:00:00+02:00, a step boundary (divisible by 15)
VALID_FROM = T0 - 3 * 3600
VALID_UNTIL = T0 + 4 * 3600


def seeded_key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


ISSUER = seeded_key("core-issuer")
OTHER_ISSUER = seeded_key("core-other-issuer")
DEVICE = seeded_key("core-device")
OTHER_DEVICE = seeded_key("core-other-device")


def pub(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def fields(**changes: object) -> TicketFields:
    base = TicketFields(
        kid="iss-1", event=EVENT, ticket_id="T0001234", generation=1,
        valid_from=VALID_FROM, valid_until=VALID_UNTIL, entrances=frozenset({2, 5}),
        category="CAT-B", flags=Flag(0), device_key=pub(DEVICE),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def phone_code(at: float = T0, *, step: int | None = None, issuer: Ed25519PrivateKey = ISSUER,
               device: Ed25519PrivateKey = DEVICE, **changes: object) -> str:
    level1 = credential.issue(fields(**changes), issuer)
    return credential.dynamic_code(level1, device, credential.step_at(at) if step is None
                                   else step)


def paper_code(**changes: object) -> str:
    f = fields(flags=Flag.PAPER, device_key=None, **changes)
    return credential.paper_code(credential.issue(f, ISSUER))


TRUST = TrustStore.of([TrustedKey("iss-1", pub(ISSUER))])
PROFILE = GateProfile(gate_id="3", event=EVENT, entrance=2)


@dataclass
class Gate:
    """A gate's inputs for `decide`, easy to vary per test."""

    trust: TrustStore = TRUST
    revocations: MemoryRevocations = MemoryRevocations({})
    admissions: MemoryAdmissions = MemoryAdmissions({})
    profile: GateProfile = PROFILE
    policy: Policy = Policy()

    def decide(self, code: str, at: float = T0, *, trusted: bool = True) -> Decision:
        return decide(code, Now(at, trusted), trust=self.trust, revocations=self.revocations,
                      admissions=self.admissions, profile=self.profile, policy=self.policy)

    def admitted(self, ticket_id: str = "T0001234", *, gate: str = "7", at: float = T0 - 600,
                 inside: bool = True) -> Gate:
        return replace(self, admissions=MemoryAdmissions.of(
            [Admission(EVENT, ticket_id, 1, gate, at, inside)]))


@pytest.fixture
def gate() -> Gate:
    return Gate()
