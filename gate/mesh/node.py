"""The mesh node: one gate's client of the venue broker, and the anti-entropy exchange.

Three threads, none of them the scanning loop's: paho's network thread (connects, keeps
reconnecting with a doubling wait, hands messages over), the mesh worker (signs and
publishes this gate's records, verifies and merges the others' in batches, answers
summaries) and a forwarder that wakes the worker on the gate's decision and passage events.
The scanning loop never waits for the network: it only ever reads ``peer_admissions``.

Topics, under ``<topic_prefix>/<venue>/`` (QoS 1, persistent session, no local echo):
``records/<gate>`` live records, ``summary/<gate>`` anti-entropy summaries,
``resend/<gate>`` records re-sent to one gate that lacks them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gate import keyfiles
from gate.control import EventBus
from gate.errors import ConfigError, GateError, KeyFileError
from gate.journal import Journal, JournalError
from gate.mesh.config import MeshConfig
from gate.mesh.store import MeshStore
from gate.mesh.wire import MeshMessageError, Record, Summary, sign_summary, verify
from gate.timeparse import format_time
from gate.trust import KeyRole

log = logging.getLogger("gate.mesh")

_LAG_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0, 30.0, 300.0)
_BATCH = 500
_TICK_S = 1.0
_SUMMARY_MIN_GAP_S = 1.0


@dataclass
class PeerSeen:
    """What this gate knows of another gate's messages (since it started)."""

    last_message_at: float | None = None
    last_lag_s: float | None = None
    messages: int = 0


class MeshMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.connected = Gauge("portique_mesh_connected", "1 while the venue broker is "
                               "connected", registry=r)
        self.conflicts = Counter("portique_mesh_conflicts", "Tickets found in force at two "
                                 "gates from two scans", registry=r)
        self.merged = Counter("portique_mesh_records_merged", "Other gates' records merged",
                              registry=r)
        self.rejected = Counter("portique_mesh_rejected", "Mesh messages ignored (malformed, "
                                "forged, unsigned or from a gate not listed)", registry=r)
        self.outbox = Gauge("portique_mesh_outbox", "This gate's records not yet acknowledged "
                            "by the broker", registry=r)
        self.lag = Histogram("portique_mesh_lag_seconds", "From a record's making at its gate "
                             "to its merge here (live records)", buckets=_LAG_BUCKETS,
                             registry=r)


def load_peer_keys(config: MeshConfig) -> dict[str, Ed25519PublicKey]:
    """The venue's gate keys: mesh.gates, plus the gate-role .pub files of mesh.gates_dir."""
    keys: dict[str, bytes] = {g.id: bytes.fromhex(g.public_key) for g in config.gates}
    if config.gates_dir is not None:
        try:
            store = keyfiles.load_trust_dir(config.gates_dir, role=KeyRole.GATE)
        except KeyFileError as exc:
            raise ConfigError(f"mesh.gates_dir: {exc}") from None
        for kid, key in store.keys.items():
            if key.withdrawn:
                continue
            if kid in keys and keys[kid] != key.public_key:
                raise ConfigError(f"mesh.gates_dir: gate {kid} has another key in mesh.gates")
            keys[kid] = key.public_key
    return {gate: Ed25519PublicKey.from_public_bytes(raw) for gate, raw in keys.items()}


def read_credential(name: str) -> str | None:
    """A secret from systemd's credentials directory (LoadCredential=), or None."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        return None
    try:
        return (Path(folder) / name).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"systemd credential {name}: cannot read: {exc.strerror}") from None


class MeshNode:
    """One gate's share of the venue mesh. `start()`, then `close()`."""

    def __init__(self, config: MeshConfig, *, gate_id: str, journal: Journal,
                 key: Ed25519PrivateKey, peers: dict[str, Ed25519PublicKey],
                 bus: EventBus | None = None, password: str | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        own = peers.get(gate_id)
        mine = key.public_key().public_bytes_raw()
        if own is None:
            raise ConfigError(f"mesh.gates: this gate ({gate_id}) is not listed: the other "
                              "gates would ignore its messages")
        if own.public_bytes_raw() != mine:
            raise ConfigError(f"mesh.key_file: its public key is not the one mesh.gates lists "
                              f"for this gate ({gate_id})")
        self.config, self.gate_id, self.journal, self.bus = config, gate_id, journal, bus
        self.peers = peers
        self.store = MeshStore(journal, gate_id=gate_id, venue=config.venue, key=key)
        self._key = key
        self.metrics = MeshMetrics(registry or CollectorRegistry())
        base = f"{config.topic_prefix}/{config.venue}"
        self.topics = {"records": f"{base}/records", "summary": f"{base}/summary",
                       "resend": f"{base}/resend"}
        self.seen: dict[str, PeerSeen] = {g: PeerSeen() for g in peers if g != gate_id}
        self.connected = False
        self.state_since = time.time()
        self.why: str | None = "not connected yet"
        self.rejected = 0
        self.last_rejection: dict[str, Any] | None = None
        self.merged = 0
        self.on_merged: Callable[[list[Record], float], None] | None = None
        """Called by the worker after each merge (records, merge time): for benchmarks."""
        self._work: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._inflight: dict[int, int] = {}
        self._inflight_lock = threading.Lock()
        self._stop = threading.Event()
        self._connected_event = threading.Event()
        self._last_summary = 0.0
        self._summary_wanted = False
        self._threads: list[threading.Thread] = []
        self._client = self._make_client(password)

    # --- the broker client ------------------------------------------------------------

    def _make_client(self, password: str | None) -> Any:
        c = self.config
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=c.client_id or f"portique-{c.venue}-{self.gate_id}",
                             protocol=MQTTProtocolVersion.MQTTv5, reconnect_on_failure=True)
        if c.username:
            client.username_pw_set(c.username, password if password is not None
                                   else c.password or None)
        if c.tls is not None:
            for name in ("ca_file", "cert_file", "key_file"):
                path = getattr(c.tls, name)
                if path is not None and not path.is_file():
                    raise ConfigError(f"mesh.tls.{name}: {path}: no such file")
            try:
                client.tls_set(ca_certs=str(c.tls.ca_file),
                               certfile=None if c.tls.cert_file is None else str(c.tls.cert_file),
                               keyfile=None if c.tls.key_file is None else str(c.tls.key_file),
                               cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise ConfigError(f"mesh.tls: cannot use the certificates: {exc}") from None
            client.tls_insecure_set(False)
        client.reconnect_delay_set(c.reconnect_min_s, c.reconnect_max_s)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, client: Any, _userdata: Any, flags: Any, reason: Any,
                    _properties: Any) -> None:
        if reason.is_failure:
            self._set_state(False, f"the broker refused the connection: {reason}")
            return
        options = SubscribeOptions(qos=1, noLocal=True)
        client.subscribe([(f"{self.topics['records']}/+", options),
                          (f"{self.topics['summary']}/+", options),
                          (f"{self.topics['resend']}/{self.gate_id}", options)])
        self._set_state(True, None)
        log.info("mesh connected venue=%s broker=%s:%s session_present=%s", self.config.venue,
                 self.config.host, self.config.port, getattr(flags, "session_present", None))
        self._work.put(("connected",))

    def _on_connect_fail(self, _client: Any, _userdata: Any) -> None:
        self._set_state(False, f"cannot reach the broker at {self.config.host}:"
                        f"{self.config.port}")

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any,
                       _properties: Any) -> None:
        if self.connected and not self._stop.is_set():
            log.warning("mesh: broker lost, deciding alone: venue=%s reason=%s",
                        self.config.venue, reason)
        refused = not self.connected and (self.why or "").startswith("the broker refused")
        self._set_state(False, self.why if refused else f"broker connection lost ({reason})")

    def _set_state(self, connected: bool, why: str | None) -> None:
        if connected != self.connected:
            self.state_since = time.time()
        self.connected, self.why = connected, why
        self.metrics.connected.set(1 if connected else 0)
        if connected:
            self._connected_event.set()
        else:
            self._connected_event.clear()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        self._work.put(("message", message.topic, bytes(message.payload), time.time()))

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, _reason: Any,
                    _properties: Any) -> None:
        self._work.put(("acked", mid))

    # --- life -------------------------------------------------------------------------

    def start(self) -> None:
        c = self.config
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = c.session_expiry_s
        self._client.connect_async(c.host, c.port, keepalive=c.keepalive_s, clean_start=False,
                                   properties=properties)
        self._client.loop_start()
        worker = threading.Thread(target=self._run, name="mesh", daemon=True)
        worker.start()
        self._threads.append(worker)
        if self.bus is not None:
            ready = threading.Event()
            forwarder = threading.Thread(target=self._forward, args=(self.bus, ready),
                                         name="mesh-events", daemon=True)
            forwarder.start()
            ready.wait(5)
            self._threads.append(forwarder)
        self._work.put(("wake",))

    def close(self) -> None:
        self._stop.set()
        self._work.put(("stop",))
        for thread in self._threads:
            thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._client.loop_stop()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected_event.wait(timeout)

    def wake(self) -> None:
        """Publish what the journal holds and the mesh does not, now."""
        self._work.put(("wake",))

    def _forward(self, bus: EventBus, ready: threading.Event) -> None:
        with bus.subscription() as events:
            ready.set()
            while not self._stop.is_set():
                try:
                    event = events.get(timeout=0.2)
                except queue.Empty:
                    continue
                if event.get("type") in ("decision", "passage") and event.get("scan_id"):
                    self._work.put(("wake",))

    # --- the worker -------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                items = [self._work.get(timeout=max(0.0, next_tick - time.monotonic()))]
            except queue.Empty:
                items = []
            while len(items) < _BATCH:
                try:
                    items.append(self._work.get_nowait())
                except queue.Empty:
                    break
            try:
                self._handle(items)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + _TICK_S
                    self._tick()
            except (JournalError, GateError) as exc:
                log.error("mesh: %s", exc)
            except Exception:
                log.exception("mesh worker failed (it goes on)")

    def _handle(self, items: list[tuple[Any, ...]]) -> None:
        records: list[tuple[Record, bytes]] = []
        live: list[tuple[Record, float]] = []
        wake = connected = False
        acked: list[int] = []
        for item in items:
            kind = item[0]
            if kind == "stop":
                return
            if kind == "wake":
                wake = True
            elif kind == "connected":
                connected = wake = True
            elif kind == "acked":
                with self._inflight_lock:
                    seq = self._inflight.pop(item[1], None)
                if seq is not None:
                    acked.append(seq)
            elif kind == "message":
                _, topic, payload, received = item
                parsed = self._verify(topic, payload)
                if isinstance(parsed, Record):
                    records.append((parsed, payload))
                    self._saw(parsed.origin, received)
                    if topic.startswith(self.topics["records"] + "/"):
                        live.append((parsed, received))
                elif isinstance(parsed, Summary):
                    self._saw(parsed.origin, received)
                    self._answer(parsed)
        if records:
            self._merge(records, live)
        if acked:
            self.store.mark_published(acked)
        if wake:
            self.store.collect_own(now=time.time())
            self._publish_outbox()
        if connected:
            self._publish_summary(force=True)
        elif self._summary_wanted:
            self._publish_summary()
        self.metrics.outbox.set(self.store.outbox_size())

    def _tick(self) -> None:
        self.store.collect_own(now=time.time())
        self._publish_outbox()
        if time.time() - self._last_summary >= self.config.summary_interval_s:
            self._publish_summary(force=True)

    def _verify(self, topic: str, payload: bytes) -> Record | Summary | None:
        try:
            return verify(payload, self.peers, venue=self.config.venue)
        except MeshMessageError as exc:
            self.rejected += 1
            self.metrics.rejected.inc()
            self.last_rejection = {"at": format_time(time.time()), "topic": topic,
                                   "reason": str(exc)}
            log.warning("mesh message ignored: topic=%s reason=%s", topic, exc)
            return None

    def _saw(self, gate: str, at: float) -> None:
        seen = self.seen.get(gate)
        if seen is not None:
            seen.last_message_at = at
            seen.messages += 1

    def _merge(self, records: list[tuple[Record, bytes]], live: list[tuple[Record, float]]
               ) -> None:
        now = time.time()
        result = self.store.merge(records, now=now)
        self.merged += len(result.new)
        self.metrics.merged.inc(len(result.new))
        fresh = {(r.origin, r.incarnation, r.seq) for r in result.new}
        for record, received in live:
            if (record.origin, record.incarnation, record.seq) in fresh:
                lag = max(0.0, received - record.made_ms / 1000)
                self.metrics.lag.observe(lag)
                seen = self.seen.get(record.origin)
                if seen is not None:
                    seen.last_lag_s = lag
        for conflict in result.conflicts:
            self.metrics.conflicts.inc()
            log.warning("mesh conflict: ticket %s of %s admitted at gate %s (scan %s) and at "
                        "gate %s (scan %s)", conflict.ticket_id, conflict.event,
                        conflict.first_gate, conflict.first_scan, conflict.second_gate,
                        conflict.second_scan)
            if self.bus is not None:
                self.bus.publish({"type": "mesh_conflict", **conflict.as_json()})
        if result.new and self._has_gap(result.new):
            self._summary_wanted = True
        if self.on_merged is not None and result.new:
            self.on_merged(result.new, now)

    def _has_gap(self, new: list[Record]) -> bool:
        heads = {(g, i): h for g, i, h in self.store.heads()}
        return any(heads.get(r.stream, 0) < r.seq for r in new)

    # --- publishing -------------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes) -> int | None:
        if not self.connected:
            return None
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return None
        return int(info.mid)

    def _publish_outbox(self) -> None:
        if not self.connected:
            return
        with self._inflight_lock:
            pending = set(self._inflight.values())
        topic = f"{self.topics['records']}/{self.gate_id}"
        for item in self.store.outbox():
            if item.seq in pending:
                continue
            with self._inflight_lock:  # before publish: the ack may come back at once
                mid = self._publish(topic, item.message)
                if mid is None:
                    return
                self._inflight[mid] = item.seq

    def _publish_summary(self, *, force: bool = False) -> None:
        now = time.time()
        if not self.connected or (not force and now - self._last_summary < _SUMMARY_MIN_GAP_S):
            return
        summary = Summary(self.config.venue, self.gate_id, self.store.incarnation,
                          round(now * 1000), self.store.heads())
        if self._publish(f"{self.topics['summary']}/{self.gate_id}",
                         sign_summary(summary, self._key)) is not None:
            self._last_summary, self._summary_wanted = now, False

    def _answer(self, summary: Summary) -> None:
        """Re-send what the summary's sender lacks, of the streams this gate answers for:
        its own, the sender's own past ones (a gate that lost its journal), and those of
        gates not heard from lately (they cannot answer themselves)."""
        if summary.origin == self.gate_id:
            return
        quiet_after = 3 * self.config.summary_interval_s
        now = time.time()

        def answers_for(origin: str) -> bool:
            if origin in (self.gate_id, summary.origin):
                return True
            seen = self.seen.get(origin)
            return seen is None or seen.last_message_at is None \
                or now - seen.last_message_at > quiet_after

        missing = self.store.missing_for(summary, answers_for=answers_for)
        topic = f"{self.topics['resend']}/{summary.origin}"
        for message in missing:
            if self._publish(topic, message) is None:
                break
        if missing:
            log.info("mesh: re-sent %d records to gate %s", len(missing), summary.origin)
        mine = {(g, i): h for g, i, h in self.store.heads()}
        if any(h > mine.get((g, i), 0) for g, i, h in summary.heads):
            self._summary_wanted = True  # the sender holds what we lack: say what we hold

    # --- status -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = time.time()
        counts = self.store.peer_counts()
        peers = []
        for gate in sorted(self.seen):
            seen = self.seen[gate]
            held, received = counts.get(gate, (0, None))
            peers.append({
                "gate": gate,
                "last_message_at": None if seen.last_message_at is None
                else format_time(seen.last_message_at),
                "age_s": None if seen.last_message_at is None
                else round(now - seen.last_message_at, 1),
                "lag_ms": None if seen.last_lag_s is None else round(seen.last_lag_s * 1e3, 1),
                "messages": seen.messages, "records": held,
                "last_record_at": None if received is None else format_time(received)})
        conflicts = self.store.conflicts(limit=20)
        return {
            "venue": self.config.venue,
            "broker": f"{self.config.host}:{self.config.port}",
            "tls": self.config.tls is not None,
            "state": "connected" if self.connected else "alone",
            "since": format_time(self.state_since),
            "why": self.why,
            "incarnation": self.store.incarnation.hex(),
            "outbox": self.store.outbox_size(),
            "merged": self.merged,
            "rejected": self.rejected,
            "last_rejection": self.last_rejection,
            "peers": peers,
            "conflicts": self.store.conflict_count(),
            "recent_conflicts": [c.as_json() for c in conflicts],
        }

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Control-socket ops: ``mesh`` (the status above) and ``conflicts``."""
        if request["op"] == "conflicts":
            limit = max(1, min(int(request.get("limit", 100)), 1000))
            return {"ok": True, "conflicts": [c.as_json()
                                              for c in self.store.conflicts(limit=limit)]}
        return {"ok": True, "mesh": self.status()}


def start_mesh(config: MeshConfig, *, gate_id: str, journal: Journal,
               bus: EventBus | None = None, registry: CollectorRegistry | None = None
               ) -> MeshNode:
    """Load the keys and credentials the config names, and start the node."""
    try:
        key = keyfiles.load_private_key(config.key_file)
    except KeyFileError as exc:
        raise ConfigError(f"mesh.key_file: {exc}") from None
    password = read_credential("mesh-password")
    node = MeshNode(config, gate_id=gate_id, journal=journal, key=key,
                    peers=load_peer_keys(config), bus=bus, password=password,
                    registry=registry)
    node.start()
    return node
