"""Gates of one venue on a real Mosquitto: anti-passback across gates, broker outages,
a gate that lost its journal, partitions and conflicts, forged messages."""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from portique.runtime.control import ControlClient
from portique.runtime.mesh.wire import Record, State, record_body, sign_record
from portique.runtime.statusview import render_status
from tests.mesh.conftest import ALICE, HANA, VENUE, Venue, gate_key, wait_for


def test_admitted_at_one_gate_is_refused_at_another_naming_the_first(venue: Venue) -> None:
    one, two = venue.gate("1"), venue.gate("2")
    one.start("valid_step_change")
    two.start("valid_step_change")
    assert one.play() == [("admit", "VALID", ALICE)]
    wait_for(lambda: two.knows(ALICE, at_gate="1"), "gate 2 learns gate 1's admission")

    assert two.play() == [("refuse", "ALREADY_ADMITTED", ALICE)]
    assert two.app is not None
    last = two.app.daemon.last_decision
    assert last is not None
    assert last["sentence"]["en"] == "This ticket was already admitted at gate 1 at 18:59."
    # nobody went through gate 2: its lock never opened, its own journal has no admission
    assert two.rows("SELECT COUNT(*) FROM admissions") == [(0,)]
    # the lag and the peer are in the status, through the control socket
    status = ControlClient(two.folder / "control.sock").request("mesh")["mesh"]
    assert status["state"] == "connected"
    peer = next(p for p in status["peers"] if p["gate"] == "1")
    assert peer["records"] >= 1 and peer["last_message_at"] is not None
    assert peer["lag_ms"] is not None


def test_broker_stopped_then_restarted_gates_go_on_then_catch_up(venue: Venue) -> None:
    one, two, three = venue.gate("1"), venue.gate("2"), venue.gate("3")
    one.start("valid_step_change")
    two.start("second_scan")
    three.start("valid_step_change")
    venue.broker.stop()
    wait_for(lambda: not one.mesh.connected and not two.mesh.connected,
             "the gates notice the broker is gone")

    # alone, the gates go on deciding, and say so
    assert one.play() == [("admit", "VALID", ALICE)]
    assert two.play() == [("admit", "VALID", HANA), ("refuse", "ALREADY_ADMITTED", HANA)]
    status = ControlClient(one.folder / "control.sock").request("status")["status"]
    assert status["mesh"]["state"] == "alone"
    assert "mesh         venue stade-de-france, ALONE (deciding without the other gates)" \
        in render_status(status)
    assert one.mesh.status()["outbox"] == 1

    venue.broker.start()
    wait_for(lambda: all(g.mesh.connected for g in (one, two, three)), "all reconnected")
    wait_for(lambda: three.knows(ALICE, "1") and three.knows(HANA, "2")
             and two.knows(ALICE, "1") and one.knows(HANA, "2"), "every gate caught up")
    wait_for(lambda: one.mesh.status()["outbox"] == 0, "gate 1's outbox acknowledged")
    assert three.play() == [("refuse", "ALREADY_ADMITTED", ALICE)]
    assert [c for g in (one, two, three) for c in g.conflicts()] == []


def test_gate_restarted_with_an_empty_journal_relearns_the_venue(venue: Venue) -> None:
    one, two, three = venue.gate("1"), venue.gate("2"), venue.gate("3")
    one.start("valid_step_change")
    two.start("second_scan")
    three.start()
    one.play()
    two.play()
    wait_for(lambda: three.knows(ALICE, "1") and three.knows(HANA, "2"), "gate 3 has both")

    two.stop()
    two.journal_path.unlink()  # a replaced SD card: the journal is gone
    for suffix in ("-wal", "-shm"):
        two.journal_path.with_name(two.journal_path.name + suffix).unlink(missing_ok=True)
    two.start("second_scan")
    wait_for(lambda: two.knows(ALICE, "1") and two.knows(HANA, "2"),
             "gate 2 relearns gate 1's admission and its own past one")
    # what it admitted before the loss is refused now: it learnt it back from its peers
    assert two.play() == [("refuse", "ALREADY_ADMITTED", HANA),
                          ("refuse", "ALREADY_ADMITTED", HANA)]
    assert two.app is not None and two.app.daemon.last_decision is not None
    assert "already admitted at gate 2" in two.app.daemon.last_decision["sentence"]["en"]


def test_partition_admitting_one_ticket_twice_ends_in_one_conflict(venue: Venue) -> None:
    one, two, three = venue.gate("1"), venue.gate("2"), venue.gate("3")
    one.start("valid_step_change")
    two.start("valid_step_change")
    three.start()
    venue.broker.stop()
    wait_for(lambda: not one.mesh.connected and not two.mesh.connected, "partitioned")
    assert one.play() == [("admit", "VALID", ALICE)]
    assert two.play() == [("admit", "VALID", ALICE)]  # gate 2 cannot know

    venue.broker.start()
    wait_for(lambda: all(g.mesh.connected for g in (one, two, three)), "all reconnected")
    wait_for(lambda: all(g.conflicts() for g in (one, two, three)), "the conflict is found")
    wait_for(venue.converged, "every gate holds every record")
    for g in (one, two, three):
        assert g.conflicts() == [(ALICE, "1", "2")]
        assert g.mesh.status()["conflicts"] == 1
    # the same conflict reaches the metrics and the control socket
    assert three.app is not None
    registry = three.app.metrics.registry
    assert registry.get_sample_value("portique_mesh_conflicts_total") == 1.0
    answer = ControlClient(three.folder / "control.sock").request("conflicts")
    assert answer["ok"] and len(answer["conflicts"]) == 1
    conflict = answer["conflicts"][0]
    assert (conflict["ticket_id"], conflict["first"]["gate"], conflict["second"]["gate"]) \
        == (ALICE, "1", "2")
    # a new summary round finds nothing new: still exactly one
    one.mesh.wake()
    wait_for(venue.converged, "converged again")
    assert [len(g.conflicts()) for g in (one, two, three)] == [1, 1, 1]


def _record(gate: str, ticket: str, seq: int = 1) -> Record:
    return Record(VENUE, gate, b"\x01" * 8, seq, State.ADMITTED, "PAR24-ATH05", ticket, 0,
                  "ab" * 16, 1722877200000, 1722877200000)


def test_forged_unsigned_and_unknown_messages_are_ignored_with_a_reason(
        venue: Venue, caplog: pytest.LogCaptureFixture) -> None:
    one = venue.gate("1")
    one.start("valid_step_change")
    caplog.set_level(logging.WARNING, logger="portique.runtime.mesh")
    forger = Ed25519PrivateKey.generate()
    messages = {
        "forged": sign_record(_record("2", ALICE), forger),           # gate 2, wrong key
        "unsigned": record_body(_record("2", ALICE, seq=2)),          # no signature at all
        "unknown": sign_record(_record("9", ALICE), forger),           # gate 9 is not listed
        "garbage": b"\x07not a mesh message",
        "altered": bytearray(sign_record(_record("3", ALICE), gate_key("3"))),
    }
    messages["altered"][-70] ^= 1  # one bit of the record's times, after signing
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", venue.broker.port)
    client.loop_start()
    try:
        for payload in messages.values():
            client.publish(f"portique/v1/{VENUE}/records/2", bytes(payload), qos=1
                           ).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
    wait_for(lambda: one.mesh.rejected == len(messages), "every bad message rejected")
    reasons = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert any("from gate 2: the signature does not verify" in r for r in reasons)
    assert any("from gate 2: no signature" in r for r in reasons)
    assert any("gate 9 is not listed" in r for r in reasons)
    assert any("unknown version 7" in r for r in reasons)
    # the second bad signature is counted (one line per reason per interval), not logged
    assert one.mesh.last_rejection is not None
    assert "from gate 3: the signature does not verify" in one.mesh.last_rejection["reason"]
    assert one.mesh.status()["rejected_by"] == {"bad_signature": 2, "malformed": 1,
                                                "unknown_gate": 1, "unsigned": 1}
    assert one.rows("SELECT COUNT(*) FROM peer_admissions") == [(0,)]
    assert one.rows("SELECT COUNT(*) FROM mesh_records WHERE origin != '1'") == [(0,)]
    # and alice is still admitted at gate 1: nothing forged counts
    assert one.play() == [("admit", "VALID", ALICE)]
