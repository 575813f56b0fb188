"""The fleet view: each gate's signed heartbeat over the venue mesh, and every gate's
latest one in one table (`gate venue status`, docs/mesh.md "Heartbeats and the fleet view").

A heartbeat is ``0x01 ‖ signature (64) ‖ body``: the body is a JSON object (UTF-8), the
signature Ed25519 by the gate's mesh key over ``HEARTBEAT_CONTEXT ‖ body``, exactly as
sent (nothing is re-encoded before checking). Published retained (QoS 1) on
``<prefix>/<venue>/heartbeat/<gate>`` every ``mesh.heartbeat_interval_s``, so a laptop
that joins the broker read-only sees every gate at once; a retained heartbeat of a gate
that died says when it was sent, and is flagged stale.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from portique.base.timeparse import format_time
from portique.runtime.mesh.wire import MeshMessageError, Rejection

HEARTBEAT_CONTEXT = b"portique/heartbeat/v1\x00"
HEARTBEAT_VERSION = 1
MAX_HEARTBEAT_BYTES = 16 * 1024
STALE_AFTER_INTERVALS = 3
"""A heartbeat older than this many of its gate's intervals is stale."""


def sign_heartbeat(body: Mapping[str, Any], key: Ed25519PrivateKey) -> bytes:
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"),
                     ensure_ascii=False).encode("utf-8")
    return bytes((HEARTBEAT_VERSION,)) + key.sign(HEARTBEAT_CONTEXT + raw) + raw


def verify_heartbeat(payload: bytes, peers: Mapping[str, Ed25519PublicKey], *, venue: str,
                     topic_gate: str | None = None) -> dict[str, Any]:
    """The body of a heartbeat signed by a listed gate of `venue`, or MeshMessageError."""
    if len(payload) > MAX_HEARTBEAT_BYTES:
        raise MeshMessageError(f"heartbeat of {len(payload)} bytes (at most "
                               f"{MAX_HEARTBEAT_BYTES})", Rejection.OVERSIZED)
    if len(payload) < 66 or payload[0] != HEARTBEAT_VERSION:
        raise MeshMessageError("not a heartbeat (version byte 1, a signature, a body)",
                               Rejection.MALFORMED)
    signature, raw = payload[1:65], payload[65:]
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MeshMessageError("heartbeat body is not JSON", Rejection.MALFORMED) from None
    if not isinstance(body, dict) or not isinstance(body.get("gate"), str) \
            or not isinstance(body.get("sent_ms"), int) \
            or not isinstance(body.get("interval_s"), int | float):
        raise MeshMessageError("heartbeat body lacks gate, sent_ms or interval_s",
                               Rejection.MALFORMED)
    if body.get("venue") != venue:
        raise MeshMessageError(f"heartbeat of venue {body.get('venue')!r}, not {venue}",
                               Rejection.OTHER_VENUE)
    gate = body["gate"]
    key = peers.get(gate)
    if key is None:
        raise MeshMessageError(f"heartbeat of gate {gate!r}, which is not listed",
                               Rejection.UNKNOWN_GATE)
    try:
        key.verify(signature, HEARTBEAT_CONTEXT + raw)
    except InvalidSignature:
        raise MeshMessageError(f"heartbeat of gate {gate}: bad signature",
                               Rejection.BAD_SIGNATURE) from None
    if topic_gate is not None and topic_gate != gate:
        raise MeshMessageError(f"heartbeat of gate {gate} on gate {topic_gate}'s topic",
                               Rejection.WRONG_TOPIC)
    return body


def heartbeat_body(status: Mapping[str, Any], *, venue: str, seq: int, interval_s: float,
                   decisions_per_min: float, refusals: Mapping[str, int], version: str,
                   now: float) -> dict[str, Any]:
    """What a gate says of itself, from its status (fields another part of the gate does
    not give yet are null)."""
    ready = status.get("ready") or {}
    camera = status.get("camera") or {}
    clock = status.get("clock") or {}
    fire = status.get("fire_alarm") or {}
    mesh = status.get("mesh") or {}
    feed = status.get("feed")
    sessions = status.get("sessions")
    feeds: list[dict[str, Any]] = []
    if isinstance(sessions, list) and sessions:  # a day of several sessions, if configured
        for s in sessions:
            f = s.get("feed") or {}
            feeds.append({"event": s.get("event"), "sequence": f.get("sequence"),
                          "age_s": f.get("age_s"), "error": f.get("error")})
    elif feed is not None or status.get("event"):
        f = feed or {}
        feeds.append({"event": status.get("event"), "sequence": f.get("sequence"),
                      "age_s": f.get("age_s"), "error": f.get("error")})
    return {
        "v": HEARTBEAT_VERSION, "venue": venue, "gate": status.get("gate"), "seq": seq,
        "sent_ms": round(now * 1000), "interval_s": interval_s, "version": version,
        "ready": {"ok": bool(ready.get("ok", False)),
                  "failing": [c.get("name") for c in ready.get("checks", ())
                              if not c.get("ok")]} if ready else None,
        "camera": {"state": camera.get("state"), "fps": camera.get("fps"),
                   "device": camera.get("device"), "why": camera.get("why")},
        "feeds": feeds,
        "feed_waived": bool(status.get("feed_waived", False)),
        "clock": {"trusted": clock.get("trusted"), "why": clock.get("why"),
                  "unix_ms": round(now * 1000)},
        "decisions_per_min": round(decisions_per_min, 1),
        "refusals": dict(sorted(refusals.items())),
        "fire_alarm": {"active": bool(fire.get("active")), "latched": bool(fire.get("latched"))},
        "zones": status.get("zones"),
        "mesh": {"state": mesh.get("state"), "broker": mesh.get("broker")} if mesh else None,
        "training": bool((status.get("training") or {}).get("active", False)),
    }


@dataclass
class Seen:
    body: dict[str, Any]
    received_at: float


class FleetView:
    """Every gate's latest believed heartbeat, and the gates expected but never heard."""

    def __init__(self, expected: set[str] | None = None) -> None:
        self.expected = set(expected or ())
        self._latest: dict[str, Seen] = {}
        self._lock = threading.Lock()

    def note(self, body: dict[str, Any], received_at: float) -> None:
        gate = str(body["gate"])
        with self._lock:
            held = self._latest.get(gate)
            if held is not None and int(held.body["sent_ms"]) > int(body["sent_ms"]):
                return  # an older one (a retained copy behind a live one)
            self._latest[gate] = Seen(body, received_at)

    def rows(self, now: float) -> list[dict[str, Any]]:
        with self._lock:
            latest = dict(self._latest)
        out = []
        for gate in sorted(set(latest) | self.expected, key=_gate_order):
            seen = latest.get(gate)
            if seen is None:
                out.append({"gate": gate, "heard": False, "flags": ["MISSING"],
                            "age_s": None, "heartbeat": None})
                continue
            body = seen.body
            age = max(0.0, now - int(body["sent_ms"]) / 1000)
            flags = []
            if age > STALE_AFTER_INTERVALS * float(body["interval_s"]):
                flags.append("STALE")
            ready = body.get("ready")
            if ready is None or not ready.get("ok"):
                flags.append("UNREADY")
            camera = (body.get("camera") or {}).get("state")
            if camera not in (None, "ok"):
                flags.append("CAMERA")
            if body.get("feed_waived"):
                flags.append("NOFEED")
            if (body.get("fire_alarm") or {}).get("active"):
                flags.append("FIRE")
            if body.get("training"):
                flags.append("TRAINING")
            out.append({"gate": gate, "heard": True, "flags": flags, "age_s": round(age, 1),
                        "sent_at": format_time(int(body["sent_ms"]) / 1000),
                        "heartbeat": body})
        return out


def _gate_order(gate: str) -> tuple[int, str]:
    return (int(gate), "") if gate.isdigit() else (1 << 30, gate)


def render(rows: list[dict[str, Any]], *, venue: str) -> str:
    """One line per gate: flags first, so a gate that needs someone stands out."""
    flagged = sum(1 for r in rows if r["flags"])
    lines = [f"venue {venue}: {len(rows)} gate(s), {flagged} flagged",
             f"{'gate':<12} {'flags':<22} {'age':>6} {'ready':<24} {'camera':<24} "
             f"{'feed (seq, age)':<20} {'clock':<9} {'dec/min':>7} {'refusals':<24} "
             f"{'zones':<16} version"]
    for r in rows:
        flags = ",".join(r["flags"]) or "ok"
        if not r["heard"]:
            lines.append(f"{r['gate']:<12} {flags:<22} {'-':>6}  never heard from")
            continue
        b = r["heartbeat"]
        ready = b.get("ready") or {}
        ready_text = "ready" if ready.get("ok") else \
            "NOT: " + ",".join(ready.get("failing") or ["?"])
        feeds = b.get("feeds") or []
        feed_text = " ".join(
            f"#{f.get('sequence') if f.get('sequence') is not None else '-'}"
            f"/{_age(f.get('age_s'))}" for f in feeds) or "-"
        clock = b.get("clock") or {}
        camera = b.get("camera") or {}
        camera_text = str(camera.get("state"))
        if camera.get("state") != "ok" and camera.get("device"):
            camera_text += f" {camera['device']}"  # which camera to go and see
        if b.get("feed_waived"):
            feed_text = "none (waived)"
        refusals = b.get("refusals") or {}
        top = sorted(refusals.items(), key=lambda kv: -kv[1])[:2]
        ref_text = " ".join(f"{k} {n}" for k, n in top) or "-"
        zones = b.get("zones")
        zones_text = "-" if not zones else " ".join(
            f"{z.get('zone', z.get('id', '?'))}:{z.get('inside', '?')}"
            for z in (zones if isinstance(zones, list) else
                      [{"zone": k, "inside": v} for k, v in dict(zones).items()]))
        lines.append(
            f"{r['gate']:<12} {flags:<22} {_age(r['age_s']):>6} {ready_text[:24]:<24} "
            f"{camera_text[:24]:<24} {feed_text[:20]:<20} "
            f"{'trusted' if clock.get('trusted') else 'UNTRUSTED':<9} "
            f"{b.get('decisions_per_min', 0):>7} {ref_text[:24]:<24} {zones_text[:16]:<16} "
            f"{b.get('version', '?')}")
    return "\n".join(lines)


def _age(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


class DecisionRate:
    """Decisions per minute over the last minute, from the gate's decision count."""

    def __init__(self) -> None:
        self._samples: list[tuple[float, int]] = []

    def rate(self, decided: int, now: float) -> float:
        self._samples.append((now, decided))
        self._samples = [(t, n) for t, n in self._samples if now - t <= 60.0]
        t0, n0 = self._samples[0]
        span = now - t0
        return 0.0 if span <= 0 else (decided - n0) * 60.0 / span


def wait_rows(view: FleetView, want: set[str], timeout: float) -> None:
    """Wait (bounded) until every gate of `want` has been heard."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        heard = {r["gate"] for r in view.rows(time.time()) if r["heard"]}
        if want <= heard:
            return
        time.sleep(0.05)
