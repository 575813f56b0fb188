"""The trust store: which issuer public keys this gate believes, for what and when.

A gate holds public keys only. Each issuer key has a key id, a validity period and the
events it may sign for; a retired or compromised key is withdrawn and then refused,
whatever it signed. Pure data: loading key files lives in ``portique.keyfiles``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from portique.base.errors import GateError


class KeyRole(enum.StrEnum):
    """What a key may sign. A key of one role is never accepted for another."""

    ISSUER = "issuer"
    """Signs level 1 of tickets."""
    DEVICE = "device"
    """A holder's phone: signs level 2."""
    FEED = "feed"
    """Signs revocation and manifest feeds."""
    GATE = "gate"
    """A gate's own key: signs what it tells other gates."""


class KeyStatus(enum.Enum):
    USABLE = "usable"
    UNKNOWN = "unknown"
    WITHDRAWN = "withdrawn"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_EVENT = "wrong_event"
    WRONG_ROLE = "wrong_role"


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """One public key the gate believes, with what it may be used for."""

    kid: str
    public_key: bytes
    role: KeyRole = KeyRole.ISSUER
    valid_from: float | None = None
    valid_until: float | None = None
    events: frozenset[str] | None = None
    """Events this key may sign for; None means any event."""
    withdrawn: bool = False

    def status(self, *, event: str, now: float, role: KeyRole) -> KeyStatus:
        if self.withdrawn:
            return KeyStatus.WITHDRAWN
        if self.role is not role:
            return KeyStatus.WRONG_ROLE
        if self.valid_from is not None and now < self.valid_from:
            return KeyStatus.NOT_YET_VALID
        if self.valid_until is not None and now >= self.valid_until:
            return KeyStatus.EXPIRED
        if self.events is not None and event not in self.events:
            return KeyStatus.WRONG_EVENT
        return KeyStatus.USABLE


class TrustStoreError(GateError, KeyError):
    """A key id is unknown or used twice in one trust store."""


@dataclass(frozen=True)
class TrustStore:
    """Public keys by key id, with the key objects loaded once."""

    keys: Mapping[str, TrustedKey] = field(default_factory=dict)
    _loaded: Mapping[str, Ed25519PublicKey] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def of(cls, keys: Iterable[TrustedKey]) -> TrustStore:
        by_kid: dict[str, TrustedKey] = {}
        for key in keys:
            if key.kid in by_kid:
                raise TrustStoreError(f"key id {key.kid!r} appears twice")
            by_kid[key.kid] = key
        loaded = {kid: Ed25519PublicKey.from_public_bytes(k.public_key)
                  for kid, k in by_kid.items()}
        return cls(MappingProxyType(by_kid), MappingProxyType(loaded))

    def get(self, kid: str) -> TrustedKey | None:
        return self.keys.get(kid)

    def public_key(self, kid: str) -> Ed25519PublicKey:
        return self._loaded[kid]

    def lookup(self, kid: str, *, event: str, now: float,
               role: KeyRole = KeyRole.ISSUER) -> tuple[KeyStatus, Ed25519PublicKey | None]:
        """The key's status for this use, and the key object when it is usable."""
        key = self.keys.get(kid)
        if key is None:
            return KeyStatus.UNKNOWN, None
        status = key.status(event=event, now=now, role=role)
        if status is not KeyStatus.USABLE:
            return status, None
        return status, self._loaded[kid]

    def withdraw(self, kid: str) -> TrustStore:
        """A new store in which `kid` is withdrawn (retired or compromised)."""
        if kid not in self.keys:
            raise TrustStoreError(f"no key {kid!r} in the trust store")
        return TrustStore.of(
            replace(k, withdrawn=True) if k.kid == kid else k for k in self.keys.values()
        )

    def __len__(self) -> int:
        return len(self.keys)
