"""The fleet view on a real Mosquitto: every gate's signed heartbeat reaches every gate and a
read-only operations laptop; `gate venue status` shows them in one table with stale and
unready gates flagged; forged heartbeats are ignored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from portique.devtools.broker import LoopbackBroker
from portique.runtime.control import ControlClient
from portique.runtime.mesh.heartbeat import sign_heartbeat, verify_heartbeat
from portique.runtime.mesh.wire import MeshMessageError, Rejection
from tests.mesh.conftest import HANA, VENUE, Venue, gate_key, make_keys, wait_for

ROOT = Path(__file__).resolve().parents[2]
BEAT = {"heartbeat_interval_s": 1.0}


def gate_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portique", *args], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          check=False, timeout=120)


def venue_rows(socket: Path) -> dict[str, dict[str, Any]]:
    answer = ControlClient(socket).request("venue")
    assert answer["ok"], answer
    return {r["gate"]: r for r in answer["venue"]["rows"]}


def test_every_gate_sees_every_gates_heartbeat_and_flags_a_dead_one(venue: Venue) -> None:
    gates = [venue.gate(g, **BEAT) for g in "123"]
    gates[0].start()
    gates[1].start("second_scan")
    gates[2].start()
    assert gates[1].play() == [("admit", "VALID", HANA), ("refuse", "ALREADY_ADMITTED", HANA)]
    socket = gates[0].folder / "control.sock"
    wait_for(lambda: all(r["heard"] for r in venue_rows(socket).values())
             and venue_rows(socket)["2"]["heartbeat"]["refusals"] == {"ALREADY_ADMITTED": 1},
             "gate 1 holds a fresh heartbeat of every gate, gate 2's refusal counted")
    assert set(venue_rows(socket)) == {"1", "2", "3"}
    assert gates[0].app is not None  # the heartbeats count as the other gates heard
    peers = gates[0].app.status()["mesh"]["peers"]
    assert {p["gate"] for p in peers if p["last_heartbeat_at"]} == {"2", "3"}
    for gate in gates:
        assert gate.app is not None
        app = gate.app

        def current(gate_id: str = gate.id, app: Any = app) -> Any:
            own, row = app.status(), venue_rows(socket)[gate_id]
            beat = row["heartbeat"]
            same = beat["camera"]["state"] == own["camera"]["state"] and \
                beat["ready"]["ok"] == own["ready"]["ok"]
            return (own, row, beat) if same else None

        own, row, beat = wait_for(current, f"a heartbeat of gate {gate.id} as it is now")
        assert beat["gate"] == gate.id and beat["venue"] == VENUE
        assert beat["camera"]["state"] == own["camera"]["state"]
        assert beat["feeds"][0]["event"] == own["event"]
        assert beat["clock"]["trusted"] == own["clock"]["trusted"]
        assert beat["fire_alarm"] == {"active": False, "latched": False}
        assert beat["version"] == "0.1.0" and beat["mesh"]["state"] == "connected"
        # flagged unready exactly when the gate's own `gate ready` says so
        assert beat["ready"]["ok"] == own["ready"]["ok"]
        assert ("UNREADY" in row["flags"]) == (not own["ready"]["ok"])
        assert "STALE" not in row["flags"]

    gates[2].stop()  # its machine dies: the last heartbeat stays, retained, and ages
    wait_for(lambda: "STALE" in venue_rows(socket)["3"]["flags"], "gate 3 flagged stale")
    assert "STALE" not in venue_rows(socket)["2"]["flags"]

    shown = gate_cli("venue", "status", "--socket", str(socket))
    assert shown.returncode == 1  # a gate is flagged
    line = next(ln for ln in shown.stdout.splitlines() if ln.startswith("3 "))
    assert "STALE" in line
    assert shown.stdout.splitlines()[0].startswith(f"venue {VENUE}: 3 gate(s)")
    as_json = json.loads(gate_cli("venue", "status", "--socket", str(socket),
                                  "--json").stdout)
    assert {r["gate"] for r in as_json["rows"]} == {"1", "2", "3"}


def test_a_read_only_laptop_sees_the_fleet_and_forged_heartbeats_are_ignored(
        tmp_path: Path) -> None:
    keys = tmp_path / "gate-keys"
    make_keys(keys, ["1", "2"])
    broker = LoopbackBroker(
        tmp_path / "broker", users={"gate-1": "pw1", "ops": "pw-ops", "intruder": "pw-x"},
        acl=["user gate-1", "topic readwrite portique/v1/#",
             "user ops", "topic read portique/v1/+/heartbeat/+",
             "user intruder", "topic readwrite portique/v1/#"])
    with broker:
        venue = Venue(tmp_path, broker, keys)
        one = venue.gate("1", username="gate-1", password="pw1", **BEAT)
        try:
            one.start()
            # a forged heartbeat of gate 2 (not signed by gate 2's key) is ignored
            forger = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder",
                                 protocol=MQTTProtocolVersion.MQTTv5)
            forger.username_pw_set("intruder", "pw-x")
            forger.connect("127.0.0.1", broker.port)
            forger.loop_start()
            forged = sign_heartbeat({"v": 1, "venue": VENUE, "gate": "2", "seq": 1,
                                     "sent_ms": round(time.time() * 1000), "interval_s": 1.0,
                                     "ready": {"ok": True, "failing": []}},
                                    Ed25519PrivateKey.generate())
            forger.publish(f"portique/v1/{VENUE}/heartbeat/2", forged, qos=1,
                           retain=True).wait_for_publish(10)
            forger.disconnect()
            forger.loop_stop()
            wait_for(lambda: one.mesh.rejected_by.get(Rejection.BAD_SIGNATURE, 0) >= 1,
                     "gate 1 ignores the forged heartbeat")
            socket = one.folder / "control.sock"
            wait_for(lambda: venue_rows(socket)["1"]["heard"], "gate 1's own heartbeat")
            assert venue_rows(socket)["2"]["flags"] == ["MISSING"]

            password = tmp_path / "ops-password"
            password.write_text("pw-ops\n", encoding="utf-8")
            laptop = gate_cli("venue", "status", "--broker", f"127.0.0.1:{broker.port}",
                              "--venue", VENUE, "--gates-dir", str(keys), "--username",
                              "ops", "--password-file", str(password), "--wait", "3",
                              "--json")
            answer = json.loads(laptop.stdout)
            rows = {r["gate"]: r for r in answer["rows"]}
            assert rows["1"]["heard"] and rows["1"]["heartbeat"]["gate"] == "1"
            assert "STALE" not in rows["1"]["flags"]
            assert rows["2"]["flags"] == ["MISSING"]  # the forged one was not believed
            assert laptop.returncode == 1
        finally:
            one.stop()


def test_heartbeat_verification_names_what_is_wrong() -> None:
    key = gate_key("1")
    peers = {"1": key.public_key()}
    body = {"v": 1, "venue": VENUE, "gate": "1", "seq": 3, "sent_ms": 1722877200000,
            "interval_s": 10.0}
    payload = sign_heartbeat(body, key)
    assert verify_heartbeat(payload, peers, venue=VENUE, topic_gate="1") == body
    cases = {
        Rejection.BAD_SIGNATURE: payload.replace(b'"seq":3', b'"seq":4'),
        Rejection.OTHER_VENUE: sign_heartbeat({**body, "venue": "elsewhere"}, key),
        Rejection.UNKNOWN_GATE: sign_heartbeat({**body, "gate": "9"}, key),
        Rejection.MALFORMED: b"\x01" + bytes(64) + b"not json",
        Rejection.OVERSIZED: b"\x01" + bytes(20000),
    }
    for reason, bad in cases.items():
        try:
            verify_heartbeat(bad, peers, venue=VENUE)
        except MeshMessageError as exc:
            assert exc.reason is reason, (reason, exc)
        else:
            raise AssertionError(f"{reason} not refused")
    try:
        verify_heartbeat(payload, peers, venue=VENUE, topic_gate="2")
    except MeshMessageError as exc:
        assert exc.reason is Rejection.WRONG_TOPIC
    else:
        raise AssertionError("a heartbeat on another gate's topic was believed")


def test_heartbeat_vector_signs_and_verifies_as_written_down() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    vector = json.loads((ROOT / "tests" / "vectors" / "mesh" / "heartbeat.json")
                        .read_text(encoding="utf-8"))
    message = bytes.fromhex(vector["message_hex"])
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["seed_hex"]))
    # an implementation from docs/mesh.md alone: 0x01, the signature over context + body
    body = vector["body_utf8"].encode("utf-8")
    assert message == b"\x01" + key.sign(bytes.fromhex(vector["context_hex"]) + body) + body
    assert sign_heartbeat(vector["body"], key) == message
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["public_key_hex"]))
    assert verify_heartbeat(message, {"3": public}, venue="stade-de-france",
                            topic_gate="3") == vector["body"]


def test_a_gate_without_a_feed_on_purpose_is_flagged_nofeed(venue: Venue) -> None:
    from tests.appliance.conftest import feed_store

    fed, unfed = venue.gate("1", **BEAT), venue.gate("2", **BEAT)
    fed.state.mkdir(parents=True)
    fed.sections["feeds"] = feed_store(fed.state, {})  # a synced feed
    unfed.sections["feeds"] = {"required": False}
    fed.start()
    unfed.start()
    socket = fed.folder / "control.sock"
    wait_for(lambda: all(venue_rows(socket)[g]["heard"] for g in "12"),
             "gate 1 holds both gates' heartbeats")
    rows = venue_rows(socket)
    assert rows["2"]["heartbeat"]["feed_waived"] is True and "NOFEED" in rows["2"]["flags"]
    assert rows["1"]["heartbeat"]["feed_waived"] is False
    assert "NOFEED" not in rows["1"]["flags"]
    shown = gate_cli("venue", "status", "--socket", str(socket))
    line = next(ln for ln in shown.stdout.splitlines() if ln.startswith("2 "))
    assert "NOFEED" in line and "none (waived)" in line
    assert shown.returncode == 1  # a flagged gate


def test_the_table_names_the_device_of_a_camera_that_is_not_ok() -> None:
    from portique.runtime.mesh.heartbeat import FleetView, heartbeat_body, render

    view = FleetView()
    for gate, state in (("1", "ok"), ("2", "lost")):
        status = {"gate": gate, "event": "PAR24-ATH05", "feed_waived": False,
                  "camera": {"state": state, "fps": 0.0, "device": f"/dev/video{gate}",
                             "why": None if state == "ok" else "no such device"}}
        view.note(heartbeat_body(status, venue=VENUE, seq=1, interval_s=10.0,
                                 decisions_per_min=0.0, refusals={}, version="0.1.0",
                                 now=1722877330.0), 1722877330.0)
    lines = render(view.rows(1722877331.0), venue=VENUE).splitlines()
    ok = next(ln for ln in lines if ln.startswith("1 "))
    lost = next(ln for ln in lines if ln.startswith("2 "))
    assert " lost /dev/video2 " in lost and "CAMERA" in lost
    assert "/dev/video1" not in ok
