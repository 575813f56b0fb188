"""One bad record never blocks the others; a stuck outbox is an alarm; floods of oversized,
replayed or misplaced messages cost the gate neither memory, nor re-sends, nor its log."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from portique.base.errors import CredentialError
from portique.commands.main import main
from portique.devtools.broker import LoopbackBroker
from portique.runtime.control import ControlClient
from portique.runtime.mesh import wire
from portique.runtime.mesh.wire import MeshMessageError, Record, State, Summary
from portique.runtime.statusview import render_status
from portique.ticket import credential
from tests.mesh.conftest import ALICE, VENUE, Gate, Venue, gate_key, wait_for

EVENT = "PAR24-ATH05"
TOPICS = f"portique/v1/{VENUE}"


def _journal_admission(gate: Gate, ticket_id: str) -> str:
    """An admission written straight into the gate's journal, past every validation."""
    scan = os.urandom(16).hex()
    at = 1722870000.0  # before the clips' scans (decisions are listed by time)
    with contextlib.closing(sqlite3.connect(gate.journal_path)) as db, db:
        db.execute("INSERT INTO decisions (scan_id, at, gate, event, ticket_id, generation, "
                   "verdict, reason, method) VALUES (?, ?, ?, ?, ?, 0, 'admit', 'VALID', "
                   "'steward')", (scan, at, gate.id, EVENT, ticket_id))
        db.execute("INSERT INTO admissions (scan_id, event, ticket_id, generation, gate, at, "
                   "state, updated_at) VALUES (?, ?, ?, 0, ?, ?, 'open', ?)",
                   (scan, EVENT, ticket_id, gate.id, at, at))
    return scan


@contextlib.contextmanager
def _intruder(port: int, subscribe: str | None = None) -> Iterator[tuple[mqtt.Client,
                                                                         list[bytes]]]:
    """A client of the broker that is no gate; what it receives on `subscribe`."""
    received: list[bytes] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"intruder-{os.getpid()}",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.on_message = lambda _c, _u, m: received.append(bytes(m.payload))
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if subscribe is not None:
            client.subscribe(subscribe, qos=1)
            assert subscribed.wait(10), "the intruder's subscription was never acknowledged"
        yield client, received
    finally:
        client.disconnect()
        client.loop_stop()


def _send(client: mqtt.Client, topic: str, payload: bytes, times: int = 1) -> None:
    for _ in range(times):
        client.publish(topic, payload, qos=1).wait_for_publish(10)


# --- item: one bad record never blocks the others ---------------------------------------


@pytest.mark.parametrize(("value", "ok"), [
    ("PAR24-000101", True), ("a" * 32, True), ("a" * 33, False), ("BAD ID", False),
    ("", False), ("é", False), ("x/y", False)])
def test_valid_ticket_id_is_the_credentials_rule(value: str, ok: bool) -> None:
    assert credential.valid_ticket_id(value) is ok
    fields = credential.TicketFields("k", EVENT, value, 0, 1, 2, frozenset({1}),
                                     flags=credential.Flag.PAPER)
    if ok:
        credential.encode_body(fields)
    else:
        with pytest.raises(CredentialError, match="ticket id"):
            credential.encode_body(fields)


def test_a_record_the_mesh_cannot_encode_is_set_aside_and_the_others_flow(
        venue: Venue, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    one, two = venue.gate("1"), venue.gate("2")
    one.start("valid_step_change")
    two.start()
    caplog.set_level(logging.ERROR, logger="portique.runtime.mesh")
    spaced = _journal_admission(one, "BAD ID")
    long_id = "X" * 33
    _journal_admission(one, long_id)
    one.mesh.wake()
    wait_for(lambda: one.mesh.status()["quarantined"] == 2, "both bad rows set aside")

    # a later admission still reaches the other gate
    assert one.play() == [("admit", "VALID", ALICE)]
    wait_for(lambda: two.knows(ALICE, at_gate="1"), "gate 2 learns gate 1's admission")
    wait_for(lambda: one.mesh.status()["outbox"] == 0, "gate 1's outbox acknowledged")

    # each bad row logged once, naming the ticket and the cause, though collected again since
    lines = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert len(lines) == 2
    assert any("ticket=BAD ID" in x and f"scan={spaced}" in x and "ticket id must be" in x
               for x in lines)
    assert any(f"ticket={long_id}" in x for x in lines)
    # nothing stored was lost or changed; gate 2 never heard of them
    assert sorted(r[0] for r in one.rows("SELECT ticket_id FROM admissions")) == \
        sorted([ALICE, "BAD ID", long_id])
    assert two.rows("SELECT COUNT(*) FROM peer_admissions WHERE ticket_id != ?", ALICE) \
        == [(0,)]
    # the stream has no hole: gate 2 holds every record of gate 1 up to its head
    assert two.heads() == one.heads()

    # an alarm everywhere: mesh status, gate status, metrics
    status = ControlClient(one.folder / "control.sock").request("status")["status"]
    assert status["mesh"]["outbox"] == 0 and status["mesh"]["outbox_stuck"] is True
    assert "MESH OUTBOX  STUCK, the other gates miss admissions: 2 journal row(s)" \
        in render_status(status)
    assert main(["mesh", "status", "--socket", str(one.folder / "control.sock")]) == 0
    out = capsys.readouterr().out
    assert "OUTBOX STUCK 2 journal row(s) cannot be made into records" in out
    assert "set aside: ticket BAD ID (PAR24-ATH05, admitted, scan " in out
    assert one.app is not None
    registry = one.app.metrics.registry
    wait_for(lambda: registry.get_sample_value("portique_mesh_outbox_stuck") == 1.0,
             "the stuck gauge is raised")
    assert registry.get_sample_value("portique_mesh_quarantined") == 2.0


def test_an_outbox_waiting_too_long_is_an_alarm_until_it_drains(venue: Venue) -> None:
    one = venue.gate("1", outbox_stuck_after_s=0.5)
    one.start("valid_step_change")
    assert one.app is not None
    registry = one.app.metrics.registry
    venue.broker.stop()
    wait_for(lambda: not one.mesh.connected, "gate 1 notices the broker is gone")
    assert one.play() == [("admit", "VALID", ALICE)]
    status = wait_for(lambda: (s := one.mesh.status())["outbox_stuck"] and s,
                      "the waiting record raises the alarm")
    assert status["outbox"] == 1 and status["quarantined"] == 0
    assert "the oldest record has waited" in status["outbox_stuck_why"][0]
    wait_for(lambda: registry.get_sample_value("portique_mesh_outbox_stuck") == 1.0,
             "the stuck gauge is raised")
    assert (registry.get_sample_value("portique_mesh_outbox_oldest_seconds") or 0) > 0.5

    venue.broker.start()
    wait_for(lambda: one.mesh.status()["outbox_stuck"] is False, "the alarm clears")
    wait_for(lambda: registry.get_sample_value("portique_mesh_outbox_stuck") == 0.0,
             "the stuck gauge is lowered")


def _signed(r: Record, body: bytes | None = None) -> bytes:
    body = wire.record_body(r) if body is None else body
    return body + gate_key(r.origin).sign(wire.RECORD_CONTEXT + body)


def test_records_with_ids_outside_the_tickets_rule_are_refused_both_ways(
        venue: Venue) -> None:
    one = venue.gate("1")
    one.start()
    good = Record(VENUE, "2", b"\x02" * 8, 1, State.ADMITTED, EVENT, ALICE, 0, "cd" * 16,
                  1722877200000, 1722877200000)
    with pytest.raises(MeshMessageError, match="ticket id must be 1-32"):
        wire.record_body(dataclasses.replace(good, ticket_id="BAD ID"))
    with pytest.raises(MeshMessageError, match="event must be 1-24"):
        wire.record_body(dataclasses.replace(good, event="E" * 25))
    # a record signed by a listed gate whose event no ticket can carry (the wire allows 32)
    body = wire.record_body(good).replace(b"\x0b" + EVENT.encode(), b"\x19" + b"E" * 25)
    with _intruder(venue.broker.port) as (client, _):
        _send(client, f"{TOPICS}/records/2", _signed(good, body))
        _send(client, f"{TOPICS}/records/2", _signed(good))
    wait_for(lambda: one.knows(ALICE, at_gate="2"), "the good record is merged")
    assert one.mesh.rejected == 1
    assert one.mesh.last_rejection is not None
    assert "is not a ticket's event" in one.mesh.last_rejection["reason"]
    assert one.rows("SELECT COUNT(*) FROM peer_admissions") == [(1,)]


def test_the_largest_summary_the_format_allows_is_accepted() -> None:
    venue, gate = "v" * 32, "g" * 32  # the longest names too
    heads = tuple((f"{i:032d}", i.to_bytes(8, "big"), i)
                  for i in range(wire.MAX_SUMMARY_STREAMS))
    message = wire.sign_summary(Summary(venue, gate, b"\x02" * 8, 1, heads), gate_key("2"))
    assert len(message) == wire.MAX_MESSAGE_BYTES
    parsed = wire.verify(message, {gate: gate_key("2").public_key()}, venue=venue)
    assert isinstance(parsed, Summary) and parsed.heads == heads


# --- item: MQTT exhaustion --------------------------------------------------------------


def test_a_packet_above_the_bound_never_reaches_the_gate_from_an_unbounded_broker(
        tmp_path: Path, venue: Venue) -> None:
    """A venue broker set up without `max_packet_size`: the gate's own announced bound
    (MQTT 5 Maximum Packet Size) makes the broker drop what is larger, not deliver it."""
    loose = LoopbackBroker(tmp_path / "loose", max_packet_bytes=None)
    loose.start()
    try:
        one = venue.gate("1", port=loose.port)
        one.start()
        with _intruder(loose.port) as (client, _):
            _send(client, f"{TOPICS}/records/2", b"\x01" * (1024 * 1024))  # 1 MiB
            _send(client, f"{TOPICS}/records/2", b"\x07 a small bad message after it")
        wait_for(lambda: one.mesh.rejected >= 1, "the small message is rejected")
        # the messages came in order: the large one, had it been delivered, came first
        assert one.mesh.status()["rejected_by"] == {"malformed": 1}
        wait_for(lambda: "Dropping too large outgoing PUBLISH for portique-stade-de-france-1"
                 in loose.log.read_text(), "the broker says it dropped it")
    finally:
        venue.gates["1"].stop()
        loose.stop()


def test_a_message_longer_than_any_mesh_message_is_dropped_before_parsing(
        venue: Venue) -> None:
    one = venue.gate("1")
    one.start()
    with _intruder(venue.broker.port) as (client, _):
        _send(client, f"{TOPICS}/records/2", b"\x01" * (wire.MAX_MESSAGE_BYTES + 1))
    wait_for(lambda: one.mesh.rejected == 1, "the long message is rejected")
    assert one.mesh.status()["rejected_by"] == {"oversized": 1}
    assert one.app is not None
    assert one.app.metrics.registry.get_sample_value(
        "portique_mesh_rejected_total", {"reason": "oversized"}) == 1.0


def test_the_venue_broker_refuses_a_packet_above_the_bound(venue: Venue) -> None:
    one = venue.gate("1")
    one.start()
    gone = threading.Event()
    with _intruder(venue.broker.port) as (client, _):
        client.on_disconnect = lambda *_a: gone.set()
        client.publish(f"{TOPICS}/records/2", b"\x01" * (wire.MAX_PACKET_BYTES + 1), qos=1)
        assert gone.wait(10), "the broker kept the client that sent an oversized packet"
    wait_for(lambda: "disconnected due to oversize packet" in venue.broker.log.read_text(),
             "the broker says why")
    assert one.mesh.rejected == 0 and one.mesh.connected


def test_replayed_stale_and_misplaced_summaries_cause_no_resend(venue: Venue) -> None:
    one = venue.gate("1", resend_min_interval_s=3600.0)
    one.start("valid_step_change")
    assert one.play() == [("admit", "VALID", ALICE)]
    wait_for(lambda: one.mesh.status()["outbox"] == 0, "gate 1's record published")
    key = gate_key("2")
    now_ms = round(time.time() * 1000)

    def summary(sent_ms: int) -> bytes:
        return wire.sign_summary(Summary(VENUE, "2", b"\x02" * 8, sent_ms, ()), key)

    genuine = summary(now_ms)
    with _intruder(venue.broker.port, subscribe=f"{TOPICS}/resend/2") as (client, resent):
        _send(client, f"{TOPICS}/summary/2", genuine, times=20)    # 1 believed, 19 replays
        _send(client, f"{TOPICS}/records/2", genuine, times=20)    # not its topic
        _send(client, f"{TOPICS}/resend/1", genuine, times=20)     # not its topic
        _send(client, f"{TOPICS}/summary/3", genuine)              # another gate's topic
        _send(client, f"{TOPICS}/summary/2", summary(now_ms - 600_000))  # ten minutes old
        _send(client, f"{TOPICS}/summary/2", summary(now_ms + 600_000))  # from the future
        _send(client, f"{TOPICS}/summary/2", summary(now_ms + 1))  # fresh, but rate-limited
        wait_for(lambda: one.mesh.answers_postponed == 1, "the last summary is postponed")
        assert one.mesh.status()["rejected_by"] == {"replayed": 19, "stale": 2,
                                                    "wrong_topic": 41}
        wait_for(lambda: len(resent) == 1, "the one answer arrives")
    assert one.mesh.answers_sent == 1
    assert one.app is not None
    registry = one.app.metrics.registry
    assert registry.get_sample_value("portique_mesh_resent_records_total") == 1.0
    assert registry.get_sample_value("portique_mesh_answers_total",
                                     {"outcome": "postponed"}) == 1.0
    assert registry.get_sample_value("portique_mesh_rejected_total",
                                     {"reason": "wrong_topic"}) == 41.0


def test_a_postponed_answer_is_sent_once_the_interval_is_over(venue: Venue) -> None:
    one = venue.gate("1", resend_min_interval_s=3.0)
    one.start("valid_step_change")
    assert one.play() == [("admit", "VALID", ALICE)]
    key = gate_key("2")
    now_ms = round(time.time() * 1000)
    with _intruder(venue.broker.port, subscribe=f"{TOPICS}/resend/2") as (client, resent):
        for i in range(5):
            _send(client, f"{TOPICS}/summary/2",
                  wire.sign_summary(Summary(VENUE, "2", b"\x02" * 8, now_ms + i, ()), key))
        wait_for(lambda: one.mesh.answers_sent == 2, "the postponed answer goes out")
        wait_for(lambda: len(resent) == 2, "both answers arrive")
    assert one.mesh.answers_postponed == 1  # four summaries inside the interval: one answer


def test_a_flood_of_bad_messages_is_logged_as_counted_lines(
        venue: Venue, caplog: pytest.LogCaptureFixture) -> None:
    one = venue.gate("1")
    one.start()
    # one window for the whole flood however slowly this machine takes it in, then closed
    one.mesh.rejections.interval = 3600.0
    caplog.set_level(logging.WARNING, logger="portique.runtime.mesh")
    with _intruder(venue.broker.port) as (client, _):
        for i in range(300):
            client.publish(f"{TOPICS}/records/2", b"\x07garbage %d" % i, qos=1)
        _send(client, f"{TOPICS}/records/2", b"\x07the last one")
    wait_for(lambda: one.mesh.rejected == 301, "every bad message rejected")
    one.mesh.rejections.interval = 0.0

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]

    wait_for(lambda: any("count=300" in x for x in lines()), "the counted line")
    assert len(lines()) == 2
    assert "reason=malformed" in lines()[0] and "unknown version 7" in lines()[0]
    assert one.app is not None
    assert one.app.metrics.registry.get_sample_value(
        "portique_mesh_rejected_total", {"reason": "malformed"}) == 301.0


def test_records_the_broker_refuses_stay_in_the_outbox_and_raise_the_alarm(
        tmp_path: Path, venue: Venue, caplog: pytest.LogCaptureFixture) -> None:
    """A broker ACL that does not let the gate write its topic: the refused record is not
    taken for published."""
    strict = LoopbackBroker(tmp_path / "strict", users={"gate-1": "s3cret"},
                            acl=["user gate-1", f"topic read {TOPICS}/#"])
    strict.start()
    caplog.set_level(logging.ERROR, logger="portique.runtime.mesh")
    try:
        one = venue.gate("1", port=strict.port, username="gate-1", password="s3cret")
        one.start("valid_step_change")
        assert one.play() == [("admit", "VALID", ALICE)]
        status = wait_for(lambda: (s := one.mesh.status())["outbox_stuck"] and s,
                          "the refusal raises the alarm")
        assert status["outbox"] == 1  # still to publish, not lost
        assert "the broker refuses this gate's records (Not authorized" \
            in status["outbox_stuck_why"][0]
        lines = [r.getMessage() for r in caplog.records if "broker refused" in r.getMessage()]
        assert len(lines) == 1  # once, however often it is tried again
        assert lines[0].startswith("mesh: the broker refused this gate's record") \
            and "seq=1 reason=Not authorized" in lines[0]
    finally:
        venue.gates["1"].stop()
        strict.stop()
