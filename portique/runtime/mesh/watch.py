"""The fleet view from an operations laptop: a read-only client of the venue broker that
collects every gate's retained heartbeat (`gate venue status --broker ...`)."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from portique.base.errors import GateError
from portique.runtime.mesh.heartbeat import FleetView, verify_heartbeat
from portique.runtime.mesh.wire import MeshMessageError


class WatchError(GateError, ConnectionError):
    """No broker of the list could be reached, or it refused the connection."""


def watch_fleet(*, brokers: list[tuple[str, int]], venue: str, topic_prefix: str,
                peers: dict[str, Ed25519PublicKey], wait_s: float, username: str = "",
                password: str | None = None, ca_file: Path | None = None) -> FleetView:
    """Connect to the first broker of `brokers` that answers, subscribe to the venue's
    heartbeats (nothing is published), and collect them for up to `wait_s` (less when
    every listed gate has been heard)."""
    view = FleetView(expected=set(peers))
    base = f"{topic_prefix}/{venue}/heartbeat"
    ignored: list[str] = []
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            refused.append(str(reason))
            connected.set()
            return
        client.subscribe(f"{base}/+", qos=1)
        connected.set()

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        try:
            body = verify_heartbeat(bytes(message.payload), peers, venue=venue,
                                    topic_gate=message.topic.rsplit("/", 1)[-1])
        except MeshMessageError as exc:
            ignored.append(str(exc))
            return
        view.note(body, time.time())

    errors = []
    for host, port in brokers:
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"portique-venue-view-{uuid.uuid4().hex[:12]}",
                             protocol=MQTTProtocolVersion.MQTTv5)
        if username:
            client.username_pw_set(username, password)
        if ca_file is not None:
            client.tls_set(ca_certs=str(ca_file), cert_reqs=ssl.CERT_REQUIRED,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.on_connect = on_connect
        client.on_message = on_message
        try:
            client.connect(host, port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            errors.append(f"{host}:{port}: {exc}")
            continue
        client.loop_start()
        try:
            if not connected.wait(10) or refused:
                errors.append(f"{host}:{port}: " + (refused[0] if refused else "no answer"))
                refused.clear()
                connected.clear()
                continue
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if all(r["heard"] for r in view.rows(time.time())):
                    break
                time.sleep(0.05)
            return view
        finally:
            with contextlib.suppress(Exception):
                client.disconnect()
            client.loop_stop()
    raise WatchError("no broker reached: " + "; ".join(errors))
