"""The mesh node: one gate's client of the venue broker, and the anti-entropy exchange.

Three threads, none of them the scanning loop's: paho's network thread (connects, keeps
reconnecting with a doubling wait, hands messages over), the mesh worker (signs and
publishes this gate's records, verifies and merges the others' in batches, answers
summaries) and a forwarder that wakes the worker on the gate's decision and passage events.
The scanning loop never waits for the network: it only ever reads ``peer_admissions``.

Topics, under ``<topic_prefix>/<venue>/`` (QoS 1, persistent session, no local echo):
``records/<gate>`` live records, ``summary/<gate>`` anti-entropy summaries,
``resend/<gate>`` records re-sent to one gate that lacks them; ``checkpoints/<gate>`` and
``cosignatures/<gate>`` the journal checkpoints and their cosignatures (witness.py).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from portique import keyfiles
from portique.base.errors import ConfigError, GateError, KeyFileError
from portique.base.timeparse import format_time
from portique.runtime.control import EventBus
from portique.runtime.credentials import read_credential
from portique.runtime.events import DecisionMade, MeshConflictFound, PassageEnded
from portique.runtime.journal import Journal, JournalError
from portique.runtime.mesh.config import MeshConfig
from portique.runtime.mesh.heartbeat import FleetView, sign_heartbeat, verify_heartbeat
from portique.runtime.mesh.store import MeshStore
from portique.runtime.mesh.wire import (
    MAX_MESSAGE_BYTES,
    MAX_PACKET_BYTES,
    MeshMessageError,
    Record,
    Rejection,
    Summary,
    sign_summary,
    verify,
)
from portique.runtime.mesh.witness import Witness
from portique.ticket.trust import KeyRole

log = logging.getLogger("portique.runtime.mesh")

_LAG_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0, 30.0, 300.0)
_BATCH = 500
_TICK_S = 1.0
_SUMMARY_MIN_GAP_S = 1.0
_GAUGES_MIN_GAP_S = 0.25
_REJECTION_LOG_S = 30.0


@dataclass(frozen=True)
class StaleSummary:
    """The latest summary of a gate, rejected as stale: how far from this gate's clock."""

    skew_s: float
    """This gate's clock minus the summary's signed time (positive: signed in the past)."""
    at: float
    """When it was rejected (this gate's wall clock)."""
    seen: float
    """When it was rejected (monotonic)."""


@dataclass
class Lacking:
    """A stream this gate is behind in: the oldest record wanted and since when, the
    latest wanted and since when (monotonic), and the wait before asking (again)."""

    wanted: int
    since: float
    latest: int
    latest_since: float
    wait: float


@dataclass
class PeerSeen:
    """What this gate knows of another gate's messages (since it started)."""

    last_message_at: float | None = None
    last_lag_s: float | None = None
    messages: int = 0
    last_heartbeat_at: float | None = None
    """When its latest heartbeat arrived: a gate heard, even with nothing to share."""


class MeshMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.connected = Gauge("portique_mesh_connected", "1 while the venue broker is "
                               "connected", registry=r)
        self.conflicts = Counter("portique_mesh_conflicts", "Tickets found in force at two "
                                 "gates from two scans", registry=r)
        self.merged = Counter("portique_mesh_records_merged", "Other gates' records merged",
                              registry=r)
        self.rejected = Counter("portique_mesh_rejected", "Mesh messages ignored, by reason "
                                "(malformed, oversized, forged, unsigned, from a gate not "
                                "listed, on the wrong topic, stale or replayed summaries)",
                                ["reason"], registry=r)
        self.outbox = Gauge("portique_mesh_outbox", "This gate's records not yet acknowledged "
                            "by the broker", registry=r)
        self.outbox_stuck = Gauge("portique_mesh_outbox_stuck", "1 while some of this gate's "
                                  "records cannot reach the other gates (set aside, or "
                                  "waiting longer than mesh.outbox_stuck_after_s)", registry=r)
        self.outbox_oldest = Gauge("portique_mesh_outbox_oldest_seconds", "How long the "
                                   "oldest record not yet acknowledged has waited (0: none)",
                                   registry=r)
        self.clock_alarm = Gauge("portique_mesh_clock_alarm", "1 while other gates' summaries "
                                 "are rejected as stale (signed too far from this gate's "
                                 "clock): a clock may be wrong, anti-entropy with them has "
                                 "stopped", registry=r)
        self.quarantined = Gauge("portique_mesh_quarantined", "This gate's journal rows that "
                                 "no record can carry, set aside (the other gates do not "
                                 "know of them)", registry=r)
        self.answers = Counter("portique_mesh_answers", "Anti-entropy re-send answers to other "
                               "gates' summaries: sent, or postponed by the rate limit",
                               ["outcome"], registry=r)
        self.resent = Counter("portique_mesh_resent_records", "Records re-sent to gates that "
                              "lacked them", registry=r)
        self.failovers = Counter("portique_mesh_failovers", "Moves to the next broker of "
                                 "mesh.brokers after one died or could not be reached",
                                 registry=r)
        self.lag = Histogram("portique_mesh_lag_seconds", "From a record's making at its gate "
                             "to its merge here (live records)", buckets=_LAG_BUCKETS,
                             registry=r)


class RejectionLog:
    """Ignored messages as counted lines: the first of each reason at once, then one line
    per reason per `interval` with how many more there were (a flood of bad messages must
    not push the gate's own lines out of journald's rate limit)."""

    def __init__(self, interval: float = _REJECTION_LOG_S) -> None:
        self.interval = interval
        self._window: dict[Rejection, tuple[float, int, str, str]] = {}
        """Per reason: when its window opened, messages not logged since, last topic/why."""

    def note(self, reason: Rejection, topic: str, why: str, now: float) -> None:
        window = self._window.get(reason)
        if window is None:
            self._window[reason] = (now, 0, topic, why)
            log.warning("mesh message ignored: reason=%s topic=%s detail=%s (further ones "
                        "of this reason are counted, one line per %.0f s)", reason.value,
                        topic, why, self.interval)
        else:
            self._window[reason] = (window[0], window[1] + 1, topic, why)

    def flush(self, now: float) -> None:
        for reason, (opened, count, topic, why) in list(self._window.items()):
            if now - opened < self.interval:
                continue
            if count:
                log.warning("mesh messages ignored: reason=%s count=%d in the last %.0f s, "
                            "last topic=%s detail=%s", reason.value, count, now - opened,
                            topic, why)
                self._window[reason] = (now, 0, topic, why)
            else:
                del self._window[reason]  # quiet for a whole window: the next one logs


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


def _own_key_problem(peers: dict[str, Ed25519PublicKey], gate_id: str,
                     key: Ed25519PrivateKey) -> str | None:
    """Why the other gates would not believe this gate's messages, or None."""
    own = peers.get(gate_id)
    if own is None:
        return (f"mesh.gates: this gate ({gate_id}) is not listed: the other gates would "
                "ignore its messages")
    if own.public_bytes_raw() != key.public_key().public_bytes_raw():
        return (f"mesh.key_file: its public key is not the one mesh.gates lists for this "
                f"gate ({gate_id})")
    return None


def _tls_problems(config: MeshConfig) -> list[str]:
    if config.tls is None:
        return []
    return [f"mesh.tls.{name}: {path}: no such file"
            for name in ("ca_file", "cert_file", "key_file")
            if (path := getattr(config.tls, name)) is not None and not path.is_file()]


def start_problems(config: MeshConfig, *, gate_id: str) -> list[str]:
    """What `start_mesh` would refuse to start with, one message per problem, the same
    words: the gate's key, the venue's gate keys, this gate among them, the TLS files
    (`gate config check` shows them before `gate run` meets them)."""
    problems = []
    key = None
    try:
        key = keyfiles.load_private_key(config.key_file)
    except KeyFileError as exc:
        problems.append(f"mesh.key_file: {exc}")
    try:
        peers = load_peer_keys(config)
    except ConfigError as exc:
        problems.extend(exc.problems)
    else:
        own = None if key is None else _own_key_problem(peers, gate_id, key)
        if own is not None:
            problems.append(own)
    return problems + _tls_problems(config)


class MeshNode:
    """One gate's share of the venue mesh. `start()`, then `close()`."""

    def __init__(self, config: MeshConfig, *, gate_id: str, journal: Journal,
                 key: Ed25519PrivateKey, peers: dict[str, Ed25519PublicKey],
                 bus: EventBus | None = None, password: str | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        problem = _own_key_problem(peers, gate_id, key)
        if problem is not None:
            raise ConfigError(problem)
        self.config, self.gate_id, self.journal, self.bus = config, gate_id, journal, bus
        self.peers = peers
        self.store = MeshStore(journal, gate_id=gate_id, venue=config.venue, key=key)
        self._key = key
        self.metrics = MeshMetrics(registry or CollectorRegistry())
        base = f"{config.topic_prefix}/{config.venue}"
        self.topics = {"records": f"{base}/records", "summary": f"{base}/summary",
                       "resend": f"{base}/resend", "heartbeat": f"{base}/heartbeat"}
        self.fleet = FleetView(expected=set(peers))
        """Every gate's latest heartbeat (this gate's own included)."""
        self.witness = Witness(journal, gate_id=gate_id, key=key, peers=peers, base=base)
        self.seen: dict[str, PeerSeen] = {g: PeerSeen() for g in peers if g != gate_id}
        self.connected = False
        self.state_since = time.time()
        self.why: str | None = "not connected yet"
        self.rejected = 0
        self.rejected_by: dict[Rejection, int] = {}
        self.last_rejection: dict[str, Any] | None = None
        self.rejections = RejectionLog()
        self.answers_sent = 0
        self.records_resent = 0
        self.summaries_sent = 0
        self.answers_postponed = 0
        self.stale: dict[str, StaleSummary] = {}
        """Per gate whose latest summary was rejected as stale (a believed one clears it)."""
        self._clock_alarmed = False
        self._summary_sent_ms: dict[str, int] = {}
        """Per gate: the signed time of its latest summary believed (older ones: replays)."""
        self._answered_at: dict[str, float] = {}
        self._postponed: dict[str, tuple[Summary, float]] = {}
        self.monotonic: Callable[[], float] = time.monotonic
        """The clock of the lacking records' graces (a test may drive it)."""
        self._lacking: dict[tuple[str, bytes], Lacking] = {}
        """Per stream held elsewhere (or here) beyond this gate's head. Records on their
        way arrive within `lacking_grace_s`; this gate's summary asks for what is still
        lacking after it, so a rush of records in flight does not set every gate's
        summary off."""
        self.publish_refused: dict[str, Any] | None = None
        """The broker's last refusal of one of this gate's records, until one is accepted."""
        self._hold_outbox_until = 0.0
        self.merged = 0
        self.on_merged: Callable[[list[Record], float], None] | None = None
        """Called by the worker after each merge (records, merge time): for benchmarks."""
        self._work: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._inflight: dict[int, int] = {}
        self._inflight_lock = threading.Lock()
        self._stop = threading.Event()
        self._connected_event = threading.Event()
        self._last_summary = 0.0
        self._gauges_at = 0.0
        self._summary_wanted = False
        self._threads: list[threading.Thread] = []
        self.brokers = config.broker_list
        self._broker_index = 0
        """The broker tried now (or connected to): an index into `brokers`."""
        self.failovers = 0
        self._client = self._make_client(password)

    # --- the broker client ------------------------------------------------------------

    @property
    def broker(self) -> str:
        """The broker this gate is connected to, or trying now, as host:port."""
        host, port = self.brokers[self._broker_index]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _next_broker(self, client: Any) -> None:
        """Move to the next broker of the list (round it) for paho's next attempt."""
        if len(self.brokers) < 2:
            return
        was = self.broker
        self._broker_index = (self._broker_index + 1) % len(self.brokers)
        self.failovers += 1
        self.metrics.failovers.inc()
        # paho's host and port setters refuse while its state still says "connection lost"
        # although the socket is closed by then; its reconnect() reads these two.
        client._host, client._port = self.brokers[self._broker_index]
        log.warning("mesh: broker %s unavailable, trying %s next: venue=%s", was, self.broker,
                    self.config.venue)

    def _make_client(self, password: str | None) -> Any:
        c = self.config
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=c.client_id or f"portique-{c.venue}-{self.gate_id}",
                             protocol=MQTTProtocolVersion.MQTTv5, reconnect_on_failure=True)
        if c.username:
            client.username_pw_set(c.username, password if password is not None
                                   else c.password or None)
        if c.tls is not None:
            missing = _tls_problems(c)
            if missing:
                raise ConfigError(missing[0])
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
                          (f"{self.topics['resend']}/{self.gate_id}", options),
                          (f"{self.topics['heartbeat']}/+", options),
                          *((t, options) for t in self.witness.subscriptions())])
        self._set_state(True, None)
        log.info("mesh connected venue=%s broker=%s session_present=%s", self.config.venue,
                 self.broker, getattr(flags, "session_present", None))
        self._work.put(("connected",))

    def _on_connect_fail(self, client: Any, _userdata: Any) -> None:
        self._set_state(False, f"cannot reach the broker at {self.broker}")
        self._next_broker(client)

    def _on_disconnect(self, client: Any, _userdata: Any, _flags: Any, reason: Any,
                       _properties: Any) -> None:
        if self.connected and not self._stop.is_set():
            log.warning("mesh: broker lost, deciding alone: venue=%s reason=%s",
                        self.config.venue, reason)
        refused = not self.connected and (self.why or "").startswith("the broker refused")
        self._set_state(False, self.why if refused else f"broker connection lost ({reason})")
        if not self._stop.is_set():
            self._next_broker(client)

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
        size = len(message.payload)
        if size > MAX_MESSAGE_BYTES:  # neither copied nor queued: dropped here
            self._work.put(("oversized", message.topic, size, time.time()))
            return
        kind = "heartbeat" if message.topic.startswith(self.topics["heartbeat"] + "/") \
            else "message"
        self._work.put((kind, message.topic, bytes(message.payload), time.time()))

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, reason: Any,
                    _properties: Any) -> None:
        if getattr(reason, "is_failure", False):  # MQTT 5: e.g. "Not authorized" (an ACL)
            self._work.put(("refused", mid, str(reason)))
        else:
            self._work.put(("acked", mid))

    # --- life -------------------------------------------------------------------------

    def start(self) -> None:
        c = self.config
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = c.session_expiry_s
        properties.MaximumPacketSize = MAX_PACKET_BYTES  # the broker sends nothing larger
        host, port = self.brokers[self._broker_index]
        self._client.connect_async(host, port, keepalive=c.keepalive_s, clean_start=False,
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

    def heartbeat(self, body: dict[str, Any]) -> None:
        """Sign and publish this gate's heartbeat (retained), from the worker."""
        self._work.put(("beat", body))

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
                if isinstance(event, DecisionMade | PassageEnded) and event.scan_id:
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
                    self._update_gauges()
            except (JournalError, GateError) as exc:
                log.error("mesh: %s", exc)
            except Exception:
                log.exception("mesh worker failed (it goes on)")

    def _handle(self, items: list[tuple[Any, ...]]) -> None:
        records: list[tuple[Record, bytes]] = []
        live: list[tuple[Record, float]] = []
        wake = connected = False
        # Whether what the gauges show may have changed: other gates' records and
        # heartbeats leave it as it was, so a batch of those alone runs no gauge query
        # (the tick still runs them every second).
        gauged = False
        acked: list[int] = []
        for item in items:
            kind = item[0]
            if kind == "stop":
                return
            if kind != "heartbeat" and (kind != "message" or item[1].startswith(
                    self.topics["summary"] + "/")):
                gauged = True
            if kind == "wake":
                wake = True
            elif kind == "connected":
                connected = wake = True
                self._hold_outbox_until = 0.0
            elif kind == "acked":
                with self._inflight_lock:
                    seq = self._inflight.pop(item[1], None)
                if seq is not None:
                    acked.append(seq)
                    self.publish_refused = None
            elif kind == "refused":
                with self._inflight_lock:
                    seq = self._inflight.pop(item[1], None)
                if seq is not None:
                    self._refused(seq, item[2])
            elif kind == "oversized":
                _, topic, size, _received = item
                self._reject(topic, MeshMessageError(
                    f"message of {size} bytes is too long (at most {MAX_MESSAGE_BYTES})",
                    Rejection.OVERSIZED))
            elif kind == "heartbeat":
                _, topic, payload, received = item
                try:
                    body = verify_heartbeat(payload, self.peers, venue=self.config.venue,
                                            topic_gate=topic.rsplit("/", 1)[-1])
                except MeshMessageError as exc:
                    self._reject(topic, exc)
                else:
                    self.fleet.note(body, received)
                    peer = self.seen.get(str(body.get("gate", "")))
                    if peer is not None:
                        peer.last_heartbeat_at = received
            elif kind == "beat":
                body = item[1]
                self.fleet.note(body, time.time())
                self._publish(f"{self.topics['heartbeat']}/{self.gate_id}",
                              sign_heartbeat(body, self._key), retain=True)
            elif kind == "message" and self.witness.owns(item[1]):
                _, topic, payload, received = item
                answer = self.witness.handle(topic, payload, received)
                if answer is not None:
                    self._publish(*answer)
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
                    self._summary_sent_ms[parsed.origin] = parsed.sent_ms
                    self.stale.pop(parsed.origin, None)
                    self._answer(parsed, received)
        if records:
            self._merge(records, live)
        if acked:
            self.store.mark_published(acked)
        if wake:
            self._collect()
            self._publish_outbox()
        self._check_lacking(self.monotonic())
        if connected:
            self._publish_summary(force=True)
        elif self._summary_wanted:
            self._publish_summary()
        if gauged and time.monotonic() - self._gauges_at >= _GAUGES_MIN_GAP_S:
            self._update_gauges()  # four queries: not after every single message

    def _lack(self, stream: tuple[str, bytes], wanted: int) -> None:
        """Note that a record of `stream` up to `wanted` is held elsewhere (or beyond a
        gap here). Not for this gate's own current stream (nobody else can fill it) nor a
        gate not listed (its records are refused)."""
        origin, incarnation = stream
        if origin not in self.peers or (origin == self.gate_id
                                        and incarnation == self.store.incarnation):
            return
        now = self.monotonic()
        lack = self._lacking.get(stream)
        if lack is None:
            self._lacking[stream] = Lacking(wanted, now, wanted, now,
                                            self.config.lacking_grace_s)
        elif wanted > lack.latest:
            lack.latest, lack.latest_since = wanted, now

    def _check_lacking(self, now: float) -> None:
        """Ask (with this gate's summary) for what is still lacking after the grace
        (`now` monotonic); what has arrived meanwhile is forgotten. Each record wanted
        has its own grace (a stream that runs a steady few milliseconds behind is never
        asked for), and a stream asked for waits twice as long before it is asked for
        again, up to the summary interval (a record that never comes is not asked for
        every two seconds for ever)."""
        if not self._lacking:
            return
        heads = {(g, i): h for g, i, h in self.store.heads()}
        longest = max(self.config.lacking_grace_s, self.config.summary_interval_s)
        for stream, lack in list(self._lacking.items()):
            head = heads.get(stream, 0)
            if head >= lack.latest:
                del self._lacking[stream]
                continue
            if head >= lack.wanted:  # the oldest target is met: the latest one is next
                lack.wanted, lack.since = lack.latest, lack.latest_since
            if now - lack.since >= lack.wait:
                self._summary_wanted = True
                lack.since = now
                lack.wait = min(longest, max(2 * lack.wait, self.config.lacking_grace_s))

    def _tick(self) -> None:
        self._collect()
        self._publish_outbox()
        if time.time() - self._last_summary >= self.config.summary_interval_s:
            self._publish_summary(force=True)
        self._answer_postponed()
        if self.connected:
            checkpoint = self.witness.due(time.time())
            if checkpoint is not None:
                self._publish(self.witness.topic_out(), checkpoint)
        self.rejections.flush(time.monotonic())

    def _refused(self, seq: int, reason: str) -> None:
        """The broker refused a record: it stays in the outbox, tried again after a summary
        interval (or on reconnection), not every second."""
        if self.publish_refused is None:
            log.error("mesh: the broker refused this gate's record, the other gates will not "
                      "learn of it until it accepts: seq=%d reason=%s broker=%s", seq,
                      reason, self.broker)
        self.publish_refused = {"at": format_time(time.time()), "seq": seq, "reason": reason}
        self._hold_outbox_until = time.monotonic() + self.config.summary_interval_s

    def _collect(self) -> None:
        collected = self.store.collect_own(now=time.time())
        for q in collected.quarantined:  # once: a quarantined row is never collected again
            log.error("mesh: journal row set aside, the other gates will not learn of it: "
                      "ticket=%s event=%s state=%s scan=%s cause=%s", q.ticket_id, q.event,
                      q.state.label, q.scan_id, q.reason)

    def outbox_alarm(self, now: float) -> tuple[list[str], int, float | None]:
        """Why this gate's records are stuck (empty: they flow), the rows set aside, and
        the age of the oldest record waiting for the broker."""
        quarantined = self.store.quarantine_count()
        oldest = self.store.outbox_oldest()
        age = None if oldest is None else max(0.0, now - oldest)
        why = []
        if self.publish_refused is not None:
            why.append(f"the broker refuses this gate's records ({self.publish_refused['reason']}"
                       f", record {self.publish_refused['seq']} at "
                       f"{self.publish_refused['at']})")
        if quarantined:
            why.append(f"{quarantined} journal row(s) cannot be made into records and were "
                       "set aside: the other gates do not know of them")
        if age is not None and age > self.config.outbox_stuck_after_s:
            why.append(f"the oldest record has waited {age:.0f} s for the broker (alarm "
                       f"after {self.config.outbox_stuck_after_s:g} s)")
        return why, quarantined, age

    def stale_now(self, now: float) -> dict[str, StaleSummary]:
        """The gates whose latest summary was rejected as stale within the last three
        summary intervals (`now` monotonic): a believed summary from a gate, or silence,
        ends its entry."""
        window = 3 * self.config.summary_interval_s
        return {g: s for g, s in sorted(self.stale.items()) if now - s.seen <= window}

    def clock_alarm(self, now: float) -> list[str]:
        """Why anti-entropy has stopped with some gates because their summaries are
        rejected as stale (empty: none is); `now` monotonic."""
        current = self.stale_now(now)
        if not current:
            return []
        offsets = ", ".join(f"gate {g}: {abs(s.skew_s):.0f} s "
                            f"{'behind' if s.skew_s > 0 else 'ahead'}"
                            for g, s in current.items())
        return [f"summaries of gate(s) {', '.join(current)} rejected as stale, signed more "
                f"than {self.config.summary_max_age_s:g} s from this gate's clock "
                f"({offsets}): this gate's clock (or theirs) may be wrong; anti-entropy "
                "with them has stopped (missed records are not re-sent either way)"]

    def _update_gauges(self) -> None:
        self._gauges_at = time.monotonic()
        clock = self.clock_alarm(time.monotonic())
        if bool(clock) != self._clock_alarmed:
            self._clock_alarmed = bool(clock)
            if clock:
                log.error("mesh: %s", clock[0])
            else:
                log.warning("mesh: no summary rejected as stale any more, clock alarm over")
        self.metrics.clock_alarm.set(1 if clock else 0)
        why, quarantined, age = self.outbox_alarm(time.time())
        self.metrics.outbox.set(self.store.outbox_size())
        self.metrics.outbox_stuck.set(1 if why else 0)
        self.metrics.quarantined.set(quarantined)
        self.metrics.outbox_oldest.set(age or 0.0)

    def _verify(self, topic: str, payload: bytes) -> Record | Summary | None:
        try:
            parsed = verify(payload, self.peers, venue=self.config.venue)
            self._check_topic(topic, parsed)
            if isinstance(parsed, Summary):
                self._check_fresh(parsed)
        except MeshMessageError as exc:
            self._reject(topic, exc)
            return None
        return parsed

    def _check_topic(self, topic: str, parsed: Record | Summary) -> None:
        """A summary only on its sender's own summary topic; a record on its origin's
        records topic or re-sent to this gate. Anything else is a replay elsewhere."""
        if isinstance(parsed, Summary):
            allowed = [f"{self.topics['summary']}/{parsed.origin}"]
        else:
            allowed = [f"{self.topics['records']}/{parsed.origin}",
                       f"{self.topics['resend']}/{self.gate_id}"]
        if topic not in allowed:
            what = "summary" if isinstance(parsed, Summary) else "record"
            raise MeshMessageError(f"a {what} of gate {parsed.origin} on {topic}, not on "
                                   f"{' or '.join(allowed)}", Rejection.WRONG_TOPIC)

    def _check_fresh(self, summary: Summary) -> None:
        skew = time.time() - summary.sent_ms / 1000
        bound = self.config.summary_max_age_s
        if abs(skew) > bound:
            self.stale[summary.origin] = StaleSummary(skew, time.time(), time.monotonic())
            when = f"{skew:.0f} s ago" if skew > 0 else f"{-skew:.0f} s ahead"
            raise MeshMessageError(f"summary of gate {summary.origin} signed {when} (more "
                                   f"than {bound:g} s from this gate's clock)",
                                   Rejection.STALE)
        last = self._summary_sent_ms.get(summary.origin)
        if last is not None and summary.sent_ms <= last:
            raise MeshMessageError(f"summary of gate {summary.origin} signed at "
                                   f"{format_time(summary.sent_ms / 1000)}, not after its "
                                   f"last one ({format_time(last / 1000)})",
                                   Rejection.REPLAYED)

    def _reject(self, topic: str, exc: MeshMessageError) -> None:
        self.rejected += 1
        self.rejected_by[exc.reason] = self.rejected_by.get(exc.reason, 0) + 1
        self.metrics.rejected.labels(reason=exc.reason.value).inc()
        self.last_rejection = {"at": format_time(time.time()), "topic": topic,
                               "reason": str(exc), "kind": exc.reason.value}
        self.rejections.note(exc.reason, topic, str(exc), time.monotonic())

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
                self.bus.publish(MeshConflictFound(
                    event=conflict.event, ticket_id=conflict.ticket_id,
                    first_gate=conflict.first_gate, first_scan=conflict.first_scan,
                    first_at=format_time(conflict.first_at),
                    second_gate=conflict.second_gate, second_scan=conflict.second_scan,
                    second_at=format_time(conflict.second_at),
                    found_at=format_time(conflict.found_at)))
        for stream, wanted in result.lacking.items():
            self._lack(stream, wanted)
        if self.on_merged is not None and result.new:
            self.on_merged(result.new, now)

    # --- publishing -------------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int | None:
        if not self.connected:
            return None
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return None
        return int(info.mid)

    def _publish_outbox(self) -> None:
        if not self.connected or time.monotonic() < self._hold_outbox_until:
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
            self.summaries_sent += 1

    def _answer(self, summary: Summary, received: float) -> None:
        """Answer a believed summary: say what this gate holds if the sender holds more,
        and re-send what the sender lacks, at most once per `resend_min_interval_s` per
        sender (a later summary waits, the latest one replacing any before it). Only an
        answer that re-sends something counts: the periodic summaries of gates that lack
        nothing cost one look at the streams each."""
        if summary.origin == self.gate_id:
            return
        mine = {(g, i): h for g, i, h in self.store.heads()}
        for g, i, h in summary.heads:
            if h > mine.get((g, i), 0):  # the sender holds what we lack: once the grace
                self._lack((g, i), h)     # is over, say what we hold
        last = self._answered_at.get(summary.origin)
        if last is not None and time.monotonic() - last < self.config.resend_min_interval_s:
            if summary.origin not in self._postponed:
                self.answers_postponed += 1
                self.metrics.answers.labels(outcome="postponed").inc()
            self._postponed[summary.origin] = (summary, received)
            return
        self._postponed.pop(summary.origin, None)
        self._resend(summary, received)

    def _answer_postponed(self) -> None:
        now = time.monotonic()
        for origin, (summary, received) in list(self._postponed.items()):
            if now - self._answered_at.get(origin, 0.0) >= self.config.resend_min_interval_s:
                del self._postponed[origin]
                self._resend(summary, received)

    def _resend(self, summary: Summary, received: float) -> None:
        """Re-send what the summary's sender lacks, of the streams this gate answers for:
        its own, the sender's own past ones (a gate that lost its journal), and those of
        gates not heard from lately (they cannot answer themselves); of those, what this
        gate held when the summary arrived (`received`, this gate's clock)."""
        quiet_after = 3 * self.config.summary_interval_s
        now = time.time()

        def answers_for(origin: str) -> bool:
            if origin in (self.gate_id, summary.origin):
                return True
            seen = self.seen.get(origin)
            return seen is None or seen.last_message_at is None \
                or now - seen.last_message_at > quiet_after

        missing = self.store.missing_for(summary, answers_for=answers_for, held_at=received)
        if not missing:
            return
        self._answered_at[summary.origin] = time.monotonic()
        self.answers_sent += 1
        self.metrics.answers.labels(outcome="sent").inc()
        topic = f"{self.topics['resend']}/{summary.origin}"
        sent = 0
        for message in missing:
            if self._publish(topic, message) is None:
                break
            sent += 1
        self.metrics.resent.inc(sent)
        self.records_resent += sent
        log.info("mesh: re-sent %d records to gate %s", sent, summary.origin)

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
                "last_heartbeat_at": None if seen.last_heartbeat_at is None
                else format_time(seen.last_heartbeat_at),
                "last_record_at": None if received is None else format_time(received)})
        conflicts = self.store.conflicts(limit=20)
        stuck, quarantined, oldest = self.outbox_alarm(now)
        clock = self.clock_alarm(time.monotonic())
        return {
            "venue": self.config.venue,
            "broker": self.broker,
            "brokers": [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.brokers],
            "failovers": self.failovers,
            "tls": self.config.tls is not None,
            "state": "connected" if self.connected else "alone",
            "since": format_time(self.state_since),
            "why": self.why,
            "incarnation": self.store.incarnation.hex(),
            "outbox": self.store.outbox_size(),
            "outbox_oldest_s": None if oldest is None else round(oldest, 1),
            "outbox_stuck": bool(stuck),
            "outbox_stuck_why": stuck,
            "quarantined": quarantined,
            "recent_quarantined": [q.as_json() for q in self.store.quarantined(limit=20)],
            "merged": self.merged,
            "rejected": self.rejected,
            "rejected_by": {r.value: n for r, n in sorted(self.rejected_by.items())},
            "answers": {"sent": self.answers_sent, "postponed": self.answers_postponed},
            "last_rejection": self.last_rejection,
            "clock_alarm": bool(clock),
            "clock_alarm_why": clock,
            "stale_summaries": [
                {"gate": g, "skew_s": round(s.skew_s, 1), "at": format_time(s.at)}
                for g, s in self.stale_now(time.monotonic()).items()],
            "peers": peers,
            "conflicts": self.store.conflict_count(),
            "recent_conflicts": [c.as_json() for c in conflicts],
        }

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Control-socket ops: ``mesh`` (the status above), ``conflicts`` and ``venue``
        (every gate's latest heartbeat, the fleet view)."""
        if request["op"] == "venue":
            return {"ok": True, "venue": {"venue": self.config.venue,
                                          "rows": self.fleet.rows(time.time())}}
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
