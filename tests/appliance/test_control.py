"""The control socket under hostile or broken clients, over a real Unix socket against a
real gate: ticket ids no ticket could carry, fields of the wrong type, deeply nested
JSON, idle and non-reading clients, more clients than the gate serves at once."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portique.devtools.simulation import SimulatedRun
from portique.runtime import supervisors
from portique.runtime.control import ControlClient
from portique.runtime.daemon import ManualRefusedError
from portique.runtime.events import CameraChanged, TurnstileChanged
from portique.runtime.wiring import GateApp

from .conftest import World, clip, feed_store, gate_table
from .test_durability import _toml

PIN = "482913"
DEADLINE_S = 60.0


def _manifest(world: World) -> None:
    world.sections["feeds"] = feed_store(world.state, {}, [
        {"ticket_id": "PAR24-000103", "generation": "0", "order_ref": "ORD-77",
         "holder_name": "Hélène Dupont", "category": "CAT-B", "entrances": "2",
         "flags": ""}])


def _with_supervisor(world: World, **steward: Any) -> Path:
    path = world.state / "supervisors.toml"
    supervisors.set_pin(path, "SUP-1", PIN)
    world.sections["steward"] = {"supervisors": str(path), **steward}
    return path


@contextlib.contextmanager
def _gate(world: World) -> Iterator[GateApp]:
    """A started gate on the empty clip (nothing decided by the camera)."""
    with world.running(SimulatedRun(replay=clip("empty"), fast=True,
                                  simulate_passage_s=0.05)) as app:
        app.run()
        yield app


def _connect(world: World, *, timeout: float = 30.0) -> socket.socket:
    return _connect_to(world.config().control.socket, timeout=timeout)


def _connect_to(path: Path, *, timeout: float = 30.0) -> socket.socket:
    """A blocking connect (it waits while the listen queue is full), then a timeout."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(timeout), 0))
    sock.connect(str(path))
    sock.settimeout(timeout)
    return sock


def _ask(sock: socket.socket, raw: bytes) -> dict[str, Any]:
    sock.sendall(raw if raw.endswith(b"\n") else raw + b"\n")
    return _answer(sock)


def _answer(sock: socket.socket) -> dict[str, Any]:
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise AssertionError(f"connection closed without a full answer: {line!r}")
        line += chunk
    answer: dict[str, Any] = json.loads(line)
    return answer


def _closed(sock: socket.socket) -> bool:
    """True once the daemon has closed its end (everything it sent read)."""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return True


# --- 1. ticket ids no ticket could carry ---------------------------------------------

BAD_IDS = ["PAR24 000103", "A" * 33, "PAR24-00010\u00e9", "PAR24-000103\n", "", "PAR24/1"]


def test_ticket_ids_no_ticket_could_carry_are_refused_on_every_path(world: World) -> None:
    _manifest(world)
    _with_supervisor(world)
    with _gate(world) as app:
        client = ControlClient(Path(world.config().control.socket))
        for bad in BAD_IDS:
            for op, fields in (
                    ("admit", {"steward": "S-1", "reason": "dead phone",
                               "supervisor": "SUP-1", "pin": PIN}),
                    ("admit", {"steward": "S-1", "reason": "dead phone"}),
                    ("deny", {"steward": "S-1", "reason": "no ticket"}),
                    ("history", {})):
                answer = client.request(op, ticket_id=bad, **fields)
                assert answer["ok"] is False, (op, bad, answer)
                assert answer["code"] == "invalid_ticket_id", (op, bad, answer)
                assert "ticket_id" in answer["error"], answer
            # the daemon's own check, for callers that do not go through the socket
            with pytest.raises(ManualRefusedError) as refused:
                app.daemon.manual_admit(bad, steward="S-1", reason="x", supervisor="SUP-1",
                                        pin=PIN)
            assert refused.value.code == "invalid_ticket_id"
        # the longest id a ticket can carry is still one a supervisor may admit by hand
        longest = client.request("admit", ticket_id="P" * 32, steward="S-1", reason="x",
                                 supervisor="SUP-1", pin=PIN)
        assert longest["ok"], longest
    assert world.decisions() == [("admit", "MANUAL_ADMIT", "P" * 32)]
    assert world.rows("SELECT kind FROM gate_events") == []  # no override was even tried


# --- 11. fields of the wrong type, nested JSON ---------------------------------------

def test_fields_of_the_wrong_type_are_refused_naming_the_field(world: World) -> None:
    _manifest(world)
    with _gate(world):
        sock = _connect(world)
        cases = [
            ({"op": "deny", "ticket_id": "PAR24-000103", "steward": ["x"], "reason": "r"},
             "steward"),
            ({"op": "deny", "ticket_id": "PAR24-000103", "steward": "S", "reason": 7},
             "reason"),
            ({"op": "deny", "ticket_id": 103, "steward": "S", "reason": "r"}, "ticket_id"),
            ({"op": "admit", "ticket_id": "PAR24-000103", "steward": "S", "reason": "r",
              "paper": "yes"}, "paper"),
            ({"op": "lookup", "query": "x", "limit": True}, "limit"),
            ({"op": "lookup", "query": {"$ne": ""}}, "query"),
            ({"op": "deny", "ticket_id": "PAR24-000103", "steward": "S", "reason": "r",
              "supervisr": "SUP-1"}, "supervisr"),
            ({"op": "deny", "ticket_id": "PAR24-000103", "reason": "r"}, "steward"),
            ({"op": "admit", "ticket_id": "PAR24-000103", "steward": "S", "reason": "r",
              "supervisor": "SUP 1", "pin": PIN}, "supervisor"),
            ({"op": "ack_fire_alarm", "steward": "x" * 201}, "steward"),
        ]
        for request, field in cases:
            answer = _ask(sock, json.dumps(request).encode())  # one connection for all
            assert answer["ok"] is False and answer["code"] == "invalid", (request, answer)
            assert f"'{field}'" in answer["error"], (request, answer)
        assert _ask(sock, b'{"op": "status"}')["ok"]
    assert world.decisions() == []
    assert world.rows("SELECT * FROM gate_events") == []


# Characters that would reach other stewards' screens and the journal: DEL, C1 controls,
# bidi overrides and isolates, zero-width and direction marks, separators, a BOM, a lone
# surrogate (the JSON escape), a C0 control.
UNPRINTABLE = [("S\x7f1", "U+007F"), ("S\x851", "U+0085"), ("S\u202e1", "U+202E"),
               ("S\u2066x\u2069", "U+2066"), ("S\u200b1", "U+200B"), ("S\u200f1", "U+200F"),
               ("a\u2028b", "U+2028"), ("a\u2029b", "U+2029"), ("\ufeffS", "U+FEFF"),
               ("S\ud8001", "U+D800"), ("S\t1", "U+0009")]


def test_control_and_format_characters_in_free_text_are_refused_naming_the_field(
        world: World) -> None:
    _manifest(world)
    with _gate(world) as app:
        sock = _connect(world)
        for bad, described in UNPRINTABLE:
            for request, field in (
                    ({"op": "deny", "ticket_id": "PAR24-000103", "steward": bad,
                      "reason": "no ticket"}, "steward"),
                    ({"op": "deny", "ticket_id": "PAR24-000103", "steward": "S-1",
                      "reason": bad}, "reason"),
                    ({"op": "admit", "ticket_id": "PAR24-000103", "steward": bad,
                      "reason": "dead phone"}, "steward"),
                    ({"op": "admit", "ticket_id": "PAR24-000103", "steward": "S-1",
                      "reason": bad}, "reason"),
                    ({"op": "ack_fire_alarm", "steward": bad}, "steward")):
                answer = _ask(sock, json.dumps(request).encode())
                assert answer["ok"] is False and answer["code"] == "invalid", (request, answer)
                assert f"'{field}'" in answer["error"] and described in answer["error"], answer
            # the daemon's own check, for callers that do not go through the socket
            with pytest.raises(ManualRefusedError, match=re.escape(described)) as refused:
                app.daemon.manual_deny("PAR24-000103", steward=bad, reason="r")
            assert refused.value.code == "invalid" and "steward" in str(refused.value)
            with pytest.raises(ManualRefusedError, match=re.escape(described)) as refused:
                app.daemon.manual_admit("PAR24-000103", steward="S-1", reason=bad)
            assert refused.value.code == "invalid" and "reason" in str(refused.value)
            with pytest.raises(ManualRefusedError, match=re.escape(described)):
                app.daemon.acknowledge_fire_alarm(bad)
        assert world.decisions() == []  # nothing was journalled
        assert world.rows("SELECT * FROM gate_events") == []
        # letters of any script, accents, spaces and symbols are still text
        fine = _ask(sock, json.dumps({"op": "deny", "ticket_id": "PAR24-000103",
                                      "steward": "Hélène Dupont-Ωμέγα 李",
                                      "reason": "billet papier — déchiré ✂"}).encode())
        assert fine["ok"], fine
    assert world.rows("SELECT verdict, steward, note FROM decisions") == [
        ("refuse", "Hélène Dupont-Ωμέγα 李", "billet papier — déchiré ✂")]


@pytest.mark.parametrize("line", [
    b"[" * 30_000 + b"]" * 30_000,
    b'{"op": "status", "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    b'{"op": "lookup", "query": ' + b'{"a":' * 9 + b"1" + b"}" * 9 + b"}",
], ids=["nested list", "nested field", "nine objects deep"])
def test_deeply_nested_json_is_refused_before_parsing(world: World, line: bytes) -> None:
    with _gate(world):
        sock = _connect(world)
        answer = _ask(sock, line)
        assert answer == {"ok": False, "code": "too_deep",
                          "error": "bad request: JSON nested deeper than 8 levels"}
        assert _ask(sock, b'{"op": "status"}')["ok"]  # the connection goes on


def test_brackets_inside_strings_do_not_count_as_nesting(world: World) -> None:
    _manifest(world)
    with _gate(world):
        sock = _connect(world)
        answer = _ask(sock, json.dumps({"op": "lookup", "query": "[[[[[[[[[[{{{{{{{{{{\\\""
                                                                        }).encode())
        assert answer["ok"] is True and answer["candidates"] == [], answer


# The line the nesting check once spent seconds on (quadratic in its length): a quote,
# then escaped quotes up to the line limit (64 KiB with the newline).
ESCAPED_QUOTES = b'"' + b'\\"' * 32_767
assert len(ESCAPED_QUOTES) + 1 == 64 * 1024


def test_the_nesting_check_gives_the_right_verdict_on_its_worst_inputs(world: World) -> None:
    _manifest(world)
    nine = b"[" * 9 + b"]" * 9
    cases = [
        (ESCAPED_QUOTES, "invalid"),  # a string that never ends: not nested at all
        (b'{"op": "lookup", "query": "' + b'\\"' * 32_000 + b'", "x": ' + nine + b"}",
         "too_deep"),  # the escaped quotes end with the string, the nesting after counts
        (b'{"op": "lookup", "query": "\\\\", "x": ' + nine + b"}",
         "too_deep"),  # an escaped backslash, then the quote that ends the string
        (b'{"op": "lookup", "query": "a\\"[[[[[[[[[[{{{{{{{{{"}', None),
        (json.dumps({"op": "lookup", "query": "[{" * 30_000}).encode(), None),
        (b'{"op": "lookup", "query": "' + b"x" * 65_000 + b'"}', None),
        (b"[" * 65_000, "too_deep"),
        (b'{"op": "status", "x": ' + b"[" * 7 + b"1" + b"]" * 7 + b"}",
         "invalid"),  # eight deep is allowed: refused for its unknown field only
    ]
    with _gate(world):
        sock = _connect(world)
        for line, code in cases:
            assert len(line) < 64 * 1024
            answer = _ask(sock, line)
            if code is None:
                assert answer["ok"] is True and answer["candidates"] == [], (line[:60], answer)
            else:
                assert answer["ok"] is False and answer["code"] == code, (line[:60], answer)
        assert _ask(sock, b'{"op": "status"}')["ok"]


def test_hostile_request_lines_do_not_freeze_the_other_connections(world: World) -> None:
    """Fifteen clients send four of the nesting check's worst lines each (64 KiB of escaped
    quotes) while a steward asks for the status: the status comes back, and every hostile
    line is answered, well within a minute. Checked in one linear pass, the sixty lines
    are milliseconds of work; a check quadratic in the line (seconds to tens of seconds a
    line, holding the interpreter) would need many minutes for them, freezing every
    other thread of the gate meanwhile."""
    world.sections["control"] = {"request_timeout_s": 300.0}  # the lines wait in line
    lines = 4
    with _gate(world) as app:
        # with the steward's, 16 connections of one user: the default per-user cap
        attackers = [_connect(world) for _ in range(15)]
        senders = [threading.Thread(target=sock.sendall, daemon=True,
                                    args=((ESCAPED_QUOTES + b"\n") * lines,))
                   for sock in attackers]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + DEADLINE_S

        def answer_in_time(sock: socket.socket, what: str) -> dict[str, Any]:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                return _answer(sock)
            except TimeoutError:
                pytest.fail(f"{what}: no answer within {DEADLINE_S:g} s of the hostile lines")

        steward = _connect(world)
        steward.sendall(b'{"op": "status"}\n')
        answer = answer_in_time(steward, "the steward's status")
        assert answer["ok"] and answer["status"]["gate"] == app.status()["gate"]
        for n, sock in enumerate(attackers):  # and every hostile line got its answer
            for line in range(lines):
                refused = answer_in_time(sock, f"hostile client {n}, line {line}")
                assert refused["code"] == "invalid", refused
                assert refused["error"].startswith("bad request: "), refused
        for sender in senders:
            sender.join(timeout=DEADLINE_S)
            assert not sender.is_alive()


# --- 11. connections: cap, backlog, idle, non-reading watchers -----------------------

def test_connections_beyond_the_cap_are_refused_at_once_and_the_rest_served(
        world: World) -> None:
    world.sections["control"] = {"max_connections": 4}
    with _gate(world) as app:
        assert app.control is not None
        held = [_connect(world) for _ in range(4)]
        assert _ask(held[0], b'{"op": "status"}')["ok"]  # all four are being served
        extra = [_connect(world) for _ in range(6)]
        for sock in extra:
            answer = _answer(sock)  # sent at once, before any request
            assert answer["ok"] is False and answer["code"] == "busy", answer
            assert "4 control connections at most" in answer["error"]
            assert _closed(sock)
        busy = ControlClient(Path(world.config().control.socket)).request("status")
        assert busy["code"] == "busy"
        refused = len(extra) + 1
        for sock in held:
            sock.close()
        deadline = time.monotonic() + DEADLINE_S
        while (answer := ControlClient(Path(world.config().control.socket))
               .request("status")).get("code") == "busy":
            refused += 1
            assert time.monotonic() < deadline, "the freed connections were never counted"
            time.sleep(0.02)
        assert answer["ok"]
        assert answer["status"]["control"]["refused_busy"] == refused


NOBODY = 65534
PER_USER = 16  # the default control.max_connections_per_user


def _hold_as(uid: int, gid: int, path: Path, count: int, channel: socket.socket) -> None:
    """In a forked child: become uid/gid, open `count` connections and report each one's
    first answer (a status asked, or the refusal sent at once); when told, close them
    and report whether a new connection of this user is served again."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    socks = [_connect_to(path) for _ in range(count)]
    answers = []
    for i, sock in enumerate(socks):  # the gate takes them in order: the first are served
        answer = _ask(sock, b'{"op": "status"}') if i < PER_USER else _answer(sock)
        answers.append({"ok": answer["ok"], "code": answer.get("code"),
                        "error": answer.get("error")})
    channel.sendall(json.dumps(answers).encode() + b"\n")
    assert channel.recv(1) == b"c"
    for sock in socks:
        sock.close()
    deadline = time.monotonic() + DEADLINE_S
    while True:  # the gate counts a connection closed once its thread has ended
        again = _ask(_connect_to(path), b'{"op": "status"}')
        if again.get("code") != "busy" or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    channel.sendall(json.dumps({"ok": again["ok"], "code": again.get("code")}).encode()
                    + b"\n")


def test_one_user_cannot_take_more_than_its_share_of_the_connections(world: World) -> None:
    """A steward's account (here nobody, uid 65534, in a forked child, the socket's group
    its group) opens more connections than one user may hold: the gate, which learns
    each client's uid from the kernel, refuses the extra ones at once while another user
    (root, the test) is still served."""
    folder = Path(tempfile.mkdtemp(prefix="portique-control-"))
    folder.chmod(0o755)  # the test's tmp folder is root's alone: nobody could not reach it
    path = folder / "control.sock"
    world.sections["control"] = {"socket": str(path), "group": grp.getgrgid(NOBODY).gr_name}
    held: list[socket.socket] = []
    try:
        with _gate(world) as app:
            assert app.control is not None
            ours, theirs = socket.socketpair()
            pid = os.fork()
            if pid == 0:  # the child: never back into pytest
                status = 1
                try:
                    ours.close()
                    _hold_as(NOBODY, NOBODY, path, PER_USER + 2, theirs)
                    status = 0
                finally:
                    os._exit(status)
            theirs.close()
            ours.settimeout(DEADLINE_S * 2)
            with ours, ours.makefile("rb") as reports:
                child = json.loads(reports.readline())
                assert [a["code"] for a in child] == [None] * PER_USER + ["busy", "busy"], child
                assert all(a["ok"] for a in child[:PER_USER])
                assert f"uid {NOBODY} already has {PER_USER} control connections open" \
                    in child[-1]["error"], child[-1]
                # another user is served while nobody holds its share; and has a share too
                held = [_connect(world) for _ in range(PER_USER + 1)]
                for sock in held[:PER_USER]:
                    assert _ask(sock, b'{"op": "status"}')["ok"]
                refused = _answer(held[-1])
                assert refused["code"] == "busy", refused
                assert f"uid 0 already has {PER_USER}" in refused["error"], refused
                stats = _ask(held[0], b'{"op": "status"}')["status"]["control"]
                assert stats["open"] == 2 * PER_USER and stats["refused_user"] == 3, stats
                assert stats["refused_busy"] == 0 and stats["max_per_user"] == PER_USER
                ours.sendall(b"c")  # nobody closes its connections: its share is free again
                assert json.loads(reports.readline()) == {"ok": True, "code": None}
            _, code = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(code) == 0
    finally:
        for sock in held:
            sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_watch_streams_leave_connections_for_short_requests(world: World) -> None:
    """Watch streams may hold only max_connections - request_slots (8) of the connections:
    with 10 at most, two watchers, and the eight left still serve status and the like."""
    world.sections["control"] = {"max_connections": 10}
    with _gate(world) as app:
        assert app.control is not None
        watchers = [_connect(world) for _ in range(2)]
        for watcher in watchers:
            assert _ask(watcher, b'{"op": "watch"}')["type"] == "status"
        third = _connect(world)
        refused = _ask(third, b'{"op": "watch"}')
        assert refused["ok"] is False and refused["code"] == "busy", refused
        assert "2 watch streams at most" in refused["error"], refused
        assert _ask(third, b'{"op": "status"}')["ok"]  # the connection goes on
        short = [third] + [_connect(world) for _ in range(7)]
        for sock in short:
            assert _ask(sock, b'{"op": "status"}')["ok"]
        full = _connect(world)  # now all ten are in use
        assert _answer(full)["code"] == "busy"
        stats = _ask(third, b'{"op": "status"}')["status"]["control"]
        assert stats["watchers"] == 2 and stats["max_watchers"] == 2, stats
        assert stats["refused_watch"] == 1 and stats["open"] == 10, stats
        watchers.pop().close()  # a watcher leaves: its slot takes a new watch stream
        deadline = time.monotonic() + DEADLINE_S
        while (answer := _ask(third, b'{"op": "watch"}')).get("code") == "busy":
            assert time.monotonic() < deadline, "the watcher's slot was never freed"
            time.sleep(0.02)
        assert answer["ok"] and answer["type"] == "status", answer


def test_a_burst_of_connects_is_queued_not_refused(world: World) -> None:
    """Stewards' screens and scripts reconnecting at once after a restart: 100 connects
    in one go all reach the gate (the kernel queues them for the accept loop). One test
    process plays all the screens, so one user may take every connection here."""
    world.sections["control"] = {"max_connections_per_user": 64}
    with _gate(world):
        path = str(world.config().control.socket)
        socks, failures = [], []
        for _ in range(100):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(path)
            except BlockingIOError as exc:
                failures.append(exc)
            socks.append(sock)
        assert failures == []
        for sock in socks:
            sock.setblocking(True)
            sock.settimeout(30)
            sock.sendall(b'{"op": "status"}\n')
        answers = [_answer(sock) for sock in socks]
        assert all(a["ok"] or a["code"] == "busy" for a in answers)
        assert sum(a["ok"] for a in answers) >= 64  # the default cap is served
        for sock in socks:
            sock.close()


def test_an_idle_client_is_disconnected_after_the_request_timeout(world: World) -> None:
    world.sections["control"] = {"request_timeout_s": 0.3}
    with _gate(world) as app:
        assert app.control is not None
        silent = _connect(world)
        assert _answer(silent) == {"ok": False, "code": "timeout", "error":
                                   "no complete request within 0.3 s: connection closed"}
        assert _closed(silent)
        trickle = _connect(world)  # a request line that never ends
        trickle.sendall(b'{"op": "sta')
        assert _answer(trickle)["code"] == "timeout"
        assert _closed(trickle)
        between = _connect(world)  # idle between two requests on one connection
        assert _ask(between, b'{"op": "status"}')["ok"]
        assert _answer(between)["code"] == "timeout"
        assert app.control.stats()["timed_out"] == 3


def test_a_watch_stream_outlives_the_request_timeout(world: World) -> None:
    world.sections["control"] = {"request_timeout_s": 0.2}
    with _gate(world):
        watcher = _connect(world)
        watcher.sendall(b'{"op": "watch"}\n')
        assert _answer(watcher)["type"] == "status"
        beats = 0
        while beats < 3:  # one a second: far longer than the request timeout
            event = _answer(watcher)
            assert event["ok"], event
            beats += event.get("type") == "heartbeat"


def test_a_watcher_that_stops_reading_is_dropped_and_others_go_on(world: World) -> None:
    world.sections["control"] = {"send_timeout_s": 0.3}
    with _gate(world) as app:
        assert app.control is not None
        stalled = _connect(world)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b'{"op": "watch"}\n')
        assert _answer(stalled)["type"] == "status"  # then it reads nothing more
        seen: list[dict[str, Any]] = []

        def keep_reading() -> None:
            for event in ControlClient(Path(world.config().control.socket)).watch():
                seen.append(event)
                if event.get("state") == "last":
                    return

        reader = threading.Thread(target=keep_reading, daemon=True)
        reader.start()
        deadline = time.monotonic() + DEADLINE_S
        while not seen:  # the reading watcher is subscribed once its status came
            assert time.monotonic() < deadline, "the reading watcher got no status"
            time.sleep(0.01)
        n = 0
        while app.control.stats()["dropped_watchers"] == 0:
            assert time.monotonic() < deadline, "the stalled watcher was never dropped"
            app.bus.publish(TurnstileChanged(kind="fault", detail=f"{n} " + "x" * 8192))
            n += 1
            time.sleep(0.005)
        app.bus.publish(CameraChanged(state="last"))
        reader.join(timeout=DEADLINE_S)  # the reading watcher still gets the new events
        assert not reader.is_alive() and seen[-1]["state"] == "last"
        assert _closed(stalled)
        assert app.control.stats()["dropped_watchers"] == 1


# --- 11. descriptors of a real daemon process ----------------------------------------

def _stalled_clip(folder: Path) -> Path:
    """A clip whose second frame is an hour away: the daemon waits, serving its socket."""
    folder.mkdir()
    shutil.copy(clip("empty") / "000.jpg", folder / "000.jpg")
    shutil.copy(clip("empty") / "001.jpg", folder / "001.jpg")
    (folder / "clip.json").write_text(json.dumps({
        "format": "portique-clip/1", "frames": [
            {"file": "000.jpg", "captured_at": 1722877200.0, "codes": []},
            {"file": "001.jpg", "captured_at": 1722877200.0 + 3600, "codes": []}]}))
    return folder


def test_idle_connections_cannot_exhaust_a_running_daemons_descriptors(
        tmp_path: Path) -> None:
    """400 idle connections against a daemon allowed 256 descriptors: those beyond the
    cap are refused at once, the daemon keeps its descriptors and answers again. (The
    test plays many users: one user may take every connection here.)"""
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "gate.toml"
    config.write_text(_toml(gate_table(state, control={"max_connections_per_user": 64})))
    socket_path = state.parent / "control.sock"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "portique", "run", "--config", str(config), "--replay",
         str(_stalled_clip(tmp_path / "stalled"))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    held: list[socket.socket] = []
    try:
        resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE, (256, 256))
        deadline = time.monotonic() + DEADLINE_S
        while True:
            with contextlib.suppress(OSError):
                if ControlClient(socket_path).request("status")["ok"]:
                    break
            assert daemon.poll() is None, daemon.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the daemon never answered"
            time.sleep(0.05)
        refused = 0
        for _ in range(400):
            held.append(_connect_to(socket_path))
        for sock in held[64:]:
            answer = _answer(sock)
            refused += answer["code"] == "busy"
        assert refused == 400 - 64
        descriptors = len(os.listdir(f"/proc/{daemon.pid}/fd"))
        assert descriptors < 256
        for sock in held:
            sock.close()
        held.clear()
        deadline = time.monotonic() + DEADLINE_S
        while (answer := ControlClient(socket_path).request("status")).get("code") == "busy":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert answer["ok"] and answer["status"]["control"]["refused_busy"] >= refused
        assert daemon.poll() is None
    finally:
        for sock in held:
            sock.close()
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err.decode()[-2000:]


def test_the_unit_gives_the_daemon_room_beyond_the_control_sockets_cap() -> None:
    from portique.runtime.control import ControlConfig

    from .conftest import REPO

    unit = (REPO / "systemd" / "gate.service").read_text().splitlines()
    limits = [line.split("=", 1)[1] for line in unit if line.startswith("LimitNOFILE=")]
    assert len(limits) == 1
    assert int(limits[0]) >= 4 * ControlConfig().max_connections + 1024
