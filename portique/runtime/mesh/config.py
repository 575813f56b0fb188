"""The ``[mesh]`` config section: the venue broker, credentials and the venue's gates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from portique.base.configschema import setting
from portique.base.errors import ConfigError

_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_CLIENT_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TOPIC_RE = re.compile(r"[A-Za-z0-9._/-]{1,64}")


@dataclass(frozen=True)
class MeshGate:
    """One gate of the venue whose messages this gate believes."""

    id: str = setting(description="The gate's id, as its own gate.id")
    public_key: str = setting(description="The gate's mesh public key: the 64 hex digits of "
                              "public_key in its `gate keys new --role gate` .pub file")

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.id):
            raise ConfigError(f"mesh.gates: id must be 1-32 of A-Z a-z 0-9 . _ -, "
                              f"got {self.id!r}")
        try:
            raw = bytes.fromhex(self.public_key)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ConfigError(f"mesh.gates: gate {self.id}: public_key must be 64 hex digits "
                              "(32 bytes)")


@dataclass(frozen=True)
class MeshTls:
    """TLS to the broker. The broker's name is always checked against its certificate."""

    ca_file: Path = setting(description="CA certificate(s) that sign the broker's "
                            "certificate (PEM)")
    cert_file: Path | None = setting(None, description="This gate's client certificate (PEM),"
                                     " when the broker asks for one")
    key_file: Path | None = setting(None, description="The client certificate's private key "
                                    "(PEM)")

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("mesh.tls: cert_file and key_file go together")


@dataclass(frozen=True)
class MeshConfig:
    venue: str = setting(description="The venue's id: gates with the same venue and broker "
                         "share admissions; 1-32 of A-Z a-z 0-9 . _ -")
    key_file: Path = setting(description="This gate's private mesh key (PEM, mode 0600), as "
                             "written by `gate keys new --role gate --kid <gate.id>`")
    host: str = setting("127.0.0.1", description="The venue broker's host name or address")
    port: int = setting(1883, description="The broker's MQTT port (8883 is usual with TLS)",
                        minimum=1, maximum=65535)
    brokers: tuple[str, ...] = setting((), description="The venue's brokers in order of "
                                       "preference, host or host:port each (port default: "
                                       "mesh.port); when one dies the gate moves to the next, "
                                       "round the list. Empty: mesh.host alone. When given, "
                                       "mesh.host is not used")
    tls: MeshTls | None = setting(None, description="TLS to the broker; leave out for a "
                                  "plain connection on a closed venue network")
    username: str = setting("", description="Broker user name; empty: none")
    password: str = setting("", description="Broker password; prefer the systemd credential "
                            "mesh-password, which wins over this key")
    topic_prefix: str = setting("portique/v1", description="Topics are "
                                "<topic_prefix>/<venue>/...")
    client_id: str = setting("", description="MQTT client id (the broker keeps the session "
                             "under it); empty: portique-<venue>-<gate.id>")
    gates: tuple[MeshGate, ...] = setting((), description="The venue's gates as "
                                          "[[mesh.gates]] id = ..., public_key = ...")
    gates_dir: Path | None = setting(None, description="A folder of gate-role .pub files "
                                     "whose key id is the gate's id (adds to mesh.gates)")
    keepalive_s: int = setting(15, description="MQTT keep-alive: a dead broker is noticed "
                               "within about 1.5 times this", minimum=5, maximum=600)
    session_expiry_s: int = setting(86400, description="How long the broker keeps this "
                                    "gate's session (subscriptions, queued messages) while "
                                    "it is away", minimum=0, maximum=7 * 86400)
    reconnect_min_s: float = setting(0.5, description="First wait before reconnecting",
                                     minimum=0.1, maximum=60.0)
    reconnect_max_s: float = setting(10.0, description="Longest wait between reconnection "
                                     "attempts (the wait doubles up to it)",
                                     minimum=0.5, maximum=600.0)
    summary_interval_s: float = setting(30.0, description="Anti-entropy: this gate says what "
                                        "it holds on every (re)connection and this often",
                                        minimum=0.2, maximum=3600.0)
    summary_max_age_s: float = setting(60.0, description="A summary is believed only while "
                                       "its signed time is within this of the gate's clock "
                                       "(either way); older ones are replays", minimum=1.0,
                                       maximum=3600.0)
    lacking_grace_s: float = setting(2.0, description="Anti-entropy: a record another "
                                     "gate's summary shows (or a skipped one of a stream) may "
                                     "still be on its way this long before this gate's own "
                                     "summary asks for it", minimum=0.0, maximum=600.0)
    resend_min_interval_s: float = setting(5.0, description="At most one re-send answer per "
                                           "gate this often (later summaries wait for it)",
                                           minimum=0.1, maximum=3600.0)
    heartbeat_interval_s: float = setting(10.0, description="Fleet view: this gate publishes "
                                          "its signed heartbeat this often (retained); older "
                                          "than 3 intervals it is shown stale",
                                          minimum=0.2, maximum=600.0)
    outbox_stuck_after_s: float = setting(60.0, description="Alarm when this gate's oldest "
                                          "record has waited this long for the broker",
                                          minimum=0.5, maximum=86400.0)

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.venue):
            raise ConfigError(f"mesh.venue: must be 1-32 of A-Z a-z 0-9 . _ -, "
                              f"got {self.venue!r}")
        if not _TOPIC_RE.fullmatch(self.topic_prefix) or "//" in self.topic_prefix \
                or self.topic_prefix.startswith("/") or self.topic_prefix.endswith("/"):
            raise ConfigError(f"mesh.topic_prefix: must be 1-64 of A-Z a-z 0-9 . _ - / "
                              f"without empty levels, got {self.topic_prefix!r}")
        if not self.host or any(c.isspace() for c in self.host):
            raise ConfigError(f"mesh.host: must be a host name or address, got {self.host!r}")
        for entry in self.brokers:
            _split_broker(entry, self.port)
        if self.client_id and not _CLIENT_RE.fullmatch(self.client_id):
            raise ConfigError(f"mesh.client_id: must be 1-64 of A-Z a-z 0-9 . _ -, "
                              f"got {self.client_id!r}")
        seen: set[str] = set()
        for g in self.gates:
            if g.id in seen:
                raise ConfigError(f"mesh.gates: gate {g.id} is listed twice")
            seen.add(g.id)
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ConfigError("mesh.reconnect_min_s: must not exceed mesh.reconnect_max_s")

    @property
    def broker_list(self) -> tuple[tuple[str, int], ...]:
        """(host, port) of every broker, in order of preference."""
        if not self.brokers:
            return ((self.host, self.port),)
        return tuple(_split_broker(entry, self.port) for entry in self.brokers)


def _split_broker(entry: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6 address]:port`` as (host, port)."""
    host, port = entry, default_port
    if entry.startswith("["):
        close = entry.find("]")
        rest = entry[close + 1:] if close > 0 else "?"
        host = entry[1:close]
        if rest and (not rest.startswith(":") or not rest[1:].isdigit()):
            raise ConfigError(f"mesh.brokers: {entry!r} must be host, host:port or "
                              "[address]:port")
        if rest:
            port = int(rest[1:])
    elif entry.count(":") == 1:
        host, _, text = entry.partition(":")
        if not text.isdigit():
            raise ConfigError(f"mesh.brokers: {entry!r}: the port must be a number")
        port = int(text)
    if not host or any(c.isspace() for c in host) or not 1 <= port <= 65535:
        raise ConfigError(f"mesh.brokers: {entry!r} must be host, host:port or "
                          "[address]:port with a port of 1-65535")
    return host, port
