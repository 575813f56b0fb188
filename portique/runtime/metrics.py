"""Prometheus metrics of one gate, served on loopback only.

Names are stable (dashboards and alerts depend on them):

| metric | kind | labels |
|---|---|---|
| portique_decisions_total | counter | verdict, reason |
| portique_frame_to_decision_seconds | histogram | |
| portique_decode_seconds | histogram | |
| portique_frames_total / portique_frames_dropped_total | counter | |
| portique_feed_sequence / portique_feed_age_seconds | gauge | |
| portique_clock_trusted / portique_fire_alarm / portique_camera_up | gauge (0/1) | |
| portique_camera_ok | gauge (0/1): 1 while the camera delivers good frames | |
| portique_camera_state | enum: 1 on the state in force (ok, lost, black, frozen ...) | |
| portique_upload_backlog | gauge | |
| portique_no_revocation_feed | gauge (0/1): 1 when the config says feeds.required = false | |
| portique_ready | gauge (0/1): every line of `gate ready` passes | |
| portique_ready_check | gauge (0/1) per line of `gate ready` | check |
| portique_turnstile_outcomes_total | counter | outcome |
| portique_zone_inside / portique_zone_entries / portique_zone_exits | gauge | zone, session |
| portique_mesh_outbox_stuck | gauge (0/1): alarm, records not reaching the other gates | |
| portique_mesh_quarantined / portique_mesh_outbox_oldest_seconds | gauge | |
| portique_mesh_rejected_total | counter | reason |
| portique_mesh_failovers_total | counter: moves to the next broker of mesh.brokers | |

(The mesh's metrics are made by ``portique.runtime.mesh.node.MeshMetrics``, in this registry.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    start_http_server,
)

from portique.base.configschema import setting
from portique.base.errors import GateError
from portique.scanner.health import CameraState

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class MetricsError(GateError, OSError):
    """The metrics endpoint could not be opened."""


@dataclass(frozen=True)
class MetricsConfig:
    port: int = setting(0, description="Port of the Prometheus endpoint on 127.0.0.1 "
                        "(0: no endpoint)", minimum=0, maximum=65535)


class GateMetrics:
    """The gate's metrics in a registry of their own (tests make as many as they like)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter("portique_decisions", "Decisions by verdict and reason",
                                 ["verdict", "reason"], registry=r)
        self.latency = Histogram("portique_frame_to_decision_seconds",
                                 "From frame capture to decision", buckets=_LATENCY_BUCKETS,
                                 registry=r)
        self.decode = Histogram("portique_decode_seconds", "QR decoding time per frame",
                                buckets=_LATENCY_BUCKETS, registry=r)
        self.frames = Counter("portique_frames", "Frames processed", registry=r)
        self.frames_dropped = Counter("portique_frames_dropped",
                                      "Frames dropped because a newer one arrived", registry=r)
        self.feed_sequence = Gauge("portique_feed_sequence", "Revocation feed sequence in force",
                                   registry=r)
        self.feed_age = Gauge("portique_feed_age_seconds",
                              "Seconds since the feed in force was published", registry=r)
        self.clock_trusted = Gauge("portique_clock_trusted", "1 when the clock is trusted",
                                   registry=r)
        self.fire_alarm = Gauge("portique_fire_alarm", "1 while free egress is latched",
                                registry=r)
        self.camera_up = Gauge("portique_camera_up", "1 while frames arrive", registry=r)
        self.camera_ok = Gauge("portique_camera_ok", "1 while the camera delivers good frames "
                               "(0: lost, black, frozen or starting: steward-only)", registry=r)
        self.camera_state = Enum("portique_camera_state", "The camera's state",
                                 states=[s.value for s in CameraState], registry=r)
        self.upload_backlog = Gauge("portique_upload_backlog",
                                    "Journal records waiting for upload", registry=r)
        self.no_revocation_feed = Gauge(
            "portique_no_revocation_feed", "1 when the gate runs without a revocation feed "
            "(feeds.required = false): no revocation feed: resold tickets cannot be refused",
            registry=r)
        self.ready = Gauge("portique_ready", "1 when every line of `gate ready` passes",
                           registry=r)
        self.ready_check = Gauge("portique_ready_check", "1 when this line of `gate ready` "
                                 "passes", ["check"], registry=r)
        self.outcomes = Counter("portique_turnstile_outcomes", "Passage outcomes of admissions",
                                ["outcome"], registry=r)
        self.zone_inside = Gauge("portique_zone_inside", "People inside a zone, per session "
                                 "(entries - exits, from the journal and the mesh)",
                                 ["zone", "session"], registry=r)
        self.zone_entries = Gauge("portique_zone_entries", "Admissions into a zone, per "
                                  "session (voided ones left out)", ["zone", "session"],
                                  registry=r)
        self.zone_exits = Gauge("portique_zone_exits", "Exits from a zone, per session "
                                "(recorded, and automatic at exit_all_at)", ["zone", "session"],
                                registry=r)

    def set_readiness(self, ok: bool, checks: Iterable[tuple[str, bool]]) -> None:
        """`gate ready`'s verdict and each line's (name, passes)."""
        self.ready.set(1 if ok else 0)
        for name, passes in checks:
            self.ready_check.labels(name).set(1 if passes else 0)

    def serve(self, port: int) -> None:
        """Start the HTTP endpoint on 127.0.0.1 (never on another interface)."""
        try:
            self._server, _ = start_http_server(port, addr="127.0.0.1",
                                                registry=self.registry)
        except OSError as exc:
            raise MetricsError(f"metrics.port {port}: cannot listen on 127.0.0.1 "
                               f"({exc.strerror or exc}): is another gate or program "
                               "using it? (`ss -ltnp` shows who)") from exc

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()
