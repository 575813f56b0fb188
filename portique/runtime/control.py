"""The control socket: stewards' tools and `gate status` talk to the daemon through it.

A Unix stream socket (mode 0660, owned by the configured group: who is in the group may
drive the gate; nobody else may even connect). The protocol is JSON lines: each request
is one JSON object on one line with an ``op``; each answer is one JSON object on one
line with ``ok`` (true, or false with an ``error`` sentence and usually a ``code``).
``watch`` answers with a stream of events, one per line, until the client hangs up.

| op | fields | answer |
|---|---|---|
| status | | the gate's health (see `GateApp.status`) |
| watch | | a status, then every event (decision, passage, alarm, camera) as it happens |
| lookup | [query], [limit] | manifest candidates, best first |
| history | ticket_id | the ticket's journal entries at this gate, latest first |
| recent | [limit] | the latest decisions at this gate |
| admit | ticket_id, steward, reason, [paper], [supervisor, pin] | manual admission |
| deny | ticket_id, steward, reason | manual refusal (journalled) |
| ack_fire_alarm | steward | end latched free egress once the loop is closed again |
| mesh / conflicts | [limit] (conflicts) | the venue mesh as this gate sees it |

A manual admission is journalled and rate-limited; a supervisor's id and PIN override
the limit and the manifest's refusals (see portique/runtime/supervisors.py).

Every field is checked before the op runs (`check_request`): ``ticket_id`` by the
credential's own rule (1-32 of A-Z a-z 0-9 . _ -, code ``invalid_ticket_id``), ``steward``
and ``reason`` 1-200 characters, none of them a control, format or line/paragraph separator
character (Unicode categories Cc, Cf, Cs, Zl, Zp: no DEL, C1 control, bidi override or
zero-width character reaches another steward's screen or the journal), ``query`` a string
(the lookup cuts and cleans it),
``limit`` a whole number (not true/false), ``paper`` true or false, ``supervisor`` a
supervisor id, ``pin`` a string; an unknown field, a missing one or one of the wrong
type is refused (code ``invalid``) with its name. A request line is at most 64 KiB and
nested at most `MAX_JSON_DEPTH` deep (checked before parsing, in one pass over the line:
a hostile line costs the same few milliseconds as any other, see `json_depth`).

The socket serves at most ``control.max_connections`` clients at once, and at most
``control.max_connections_per_user`` of one user (the client's uid, which the kernel
reports for the socket: SO_PEERCRED). One more gets ``{"ok": false, "code": "busy", ...}``
and is closed at once. Watch streams never take the last ``control.request_slots``
connections: those stay for short requests (status, lookup, admit...); a ``watch``
beyond that is answered ``busy`` and the connection stays open for other requests.
A client has
``control.request_timeout_s`` to send each request line (code ``timeout``, then closed);
a client, a watcher most of all, that does not read what is sent to it for
``control.send_timeout_s`` is dropped.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import json
import logging
import os
import queue
import socket
import socketserver
import struct
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portique.base.configschema import setting
from portique.base.errors import ConfigError, GateError
from portique.runtime.events import Event
from portique.runtime.supervisors import PIN_FIELD_MAX, valid_supervisor_id
from portique.ticket import credential

log = logging.getLogger(__name__)

ADMIT_ANSWER_S = 150.0
"""How long a client waits for an admit: it answers after the passage or the timeout."""

MAX_REQUEST_BYTES = 64 * 1024
"""A request line longer than this is refused: nobody types 64 KiB into a lookup."""

MAX_JSON_DEPTH = 8
"""Requests are flat objects; anything nested deeper is refused before it is parsed."""

LISTEN_BACKLOG = 128
"""Connections the kernel queues while the accept loop catches up (a burst of stewards'
screens reconnecting after a restart)."""

TEXT_MAX = 200
"""Longest steward id, reason or lookup query."""


@dataclass(frozen=True)
class ControlConfig:
    socket: Path = setting(Path("/run/portique/control.sock"),
                           description="Path of the control socket")
    group: str = setting("", description="Group whose members may use the socket "
                         "(stewards); empty: the daemon's own group")
    max_connections: int = setting(64, description="Clients served at once; one more is "
                                   "refused at once (busy) and closed", minimum=1,
                                   maximum=1000)
    request_timeout_s: float = setting(10.0, description="Seconds a client has to send "
                                       "each request line before it is disconnected",
                                       minimum=0.05, maximum=300.0)
    send_timeout_s: float = setting(10.0, description="Seconds a client (a watcher) may "
                                    "leave what the gate sends it unread before it is "
                                    "dropped", minimum=0.05, maximum=300.0)
    max_connections_per_user: int = setting(16, description="Clients one user (the "
                                            "client's uid, from the kernel) may have open "
                                            "at once; one more is refused at once (busy)",
                                            minimum=1, maximum=1000)
    request_slots: int = setting(8, description="Connections watch streams may not take, "
                                 "kept for short requests (status, lookup, admit); "
                                 "watchers get the rest of max_connections, at least one",
                                 minimum=0, maximum=1000)

    @property
    def max_watchers(self) -> int:
        """Watch streams served at once."""
        return max(1, self.max_connections - self.request_slots)


class ControlError(GateError, OSError):
    """The daemon could not be reached or answered with an error."""


class RequestError(GateError, ValueError):
    """A control request the daemon does not carry out as sent; the message names the field."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code
        """Stable: invalid, invalid_ticket_id, too_deep, too_long."""


# --- what a request may hold ----------------------------------------------------------

_TEXT, _QUERY, _TICKET_ID, _SUPERVISOR, _PIN, _LIMIT, _FLAG = (
    "text", "query", "ticket_id", "supervisor", "pin", "limit", "flag")

REQUESTS: dict[str, dict[str, tuple[str, bool]]] = {
    "status": {},
    "watch": {},
    "lookup": {"query": (_QUERY, False), "limit": (_LIMIT, False)},
    "history": {"ticket_id": (_TICKET_ID, True)},
    "recent": {"limit": (_LIMIT, False)},
    "admit": {"ticket_id": (_TICKET_ID, True), "steward": (_TEXT, True),
              "reason": (_TEXT, True), "paper": (_FLAG, False),
              "supervisor": (_SUPERVISOR, False), "pin": (_PIN, False)},
    "deny": {"ticket_id": (_TICKET_ID, True), "steward": (_TEXT, True),
             "reason": (_TEXT, True)},
    "ack_fire_alarm": {"steward": (_TEXT, True)},
    "mesh": {},
    "conflicts": {"limit": (_LIMIT, False)},
    "train": {"action": (_TEXT, True)},
    "venue": {},
}
"""Each known op's fields: (kind, required). An optional field may be absent or null."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _check_field(name: str, kind: str, value: object) -> None:
    if kind == _FLAG:
        if not isinstance(value, bool):
            raise RequestError(f"field {name!r}: must be true or false, got {_json_type(value)}")
        return
    if kind == _LIMIT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(f"field {name!r}: must be a whole number, got "
                               f"{_json_type(value)}")
        return
    if not isinstance(value, str):
        raise RequestError(f"field {name!r}: must be a string, got {_json_type(value)}")
    if kind == _TICKET_ID:
        if not credential.valid_ticket_id(value):
            raise RequestError(
                f"field {name!r}: not a ticket id (1 to {credential.TICKET_ID_MAX} of "
                f"A-Z a-z 0-9 . _ -): {value[:40]!r}", "invalid_ticket_id")
    elif kind == _SUPERVISOR:
        if not valid_supervisor_id(value):
            raise RequestError(f"field {name!r}: not a supervisor id (1 to 32 of "
                               f"A-Z a-z 0-9 . _ -): {value[:40]!r}")
    elif kind == _PIN:
        if not 1 <= len(value) <= PIN_FIELD_MAX:
            raise RequestError(f"field {name!r}: must be 1 to {PIN_FIELD_MAX} characters")
    elif kind == _QUERY:
        pass  # any text: the lookup cleans it and keeps its first 100 characters
    else:
        problem = text_problem(value)
        if problem:
            raise RequestError(f"field {name!r}: {problem}")


REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Unicode categories refused in free text: controls (C0, DEL, C1), format characters
(bidi overrides and isolates, zero-width spaces and joiners, soft hyphen...), lone
surrogates, line and paragraph separators."""


def text_problem(value: str) -> str | None:
    """What is wrong with a steward id or a reason (``must not be empty``, ``U+202E
    RIGHT-TO-LEFT OVERRIDE is not allowed...``), or None when it may be shown and stored."""
    if not value.strip():
        return "must not be empty"
    if len(value) > TEXT_MAX:
        return f"must be at most {TEXT_MAX} characters, got {len(value)}"
    for position, char in enumerate(value):
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            name = unicodedata.name(char, "")
            described = f"U+{ord(char):04X}" + (f" {name}" if name else "")
            return (f"{described} at position {position + 1} is not allowed (no control, "
                    "format or line/paragraph separator characters)")
    return None


def check_request(request: dict[str, Any]) -> dict[str, Any]:
    """The request with every field of a known op checked (null optional fields left out).

    Unknown ops are passed on as they are: the handler refuses them.
    """
    op = request.get("op")
    if not isinstance(op, str):
        raise RequestError("a request is a JSON object with an 'op' string")
    rules = REQUESTS.get(op)
    if rules is None:
        return request
    for name in request:
        if name != "op" and name not in rules:
            known = ", ".join(rules) or "none"
            raise RequestError(f"field {name[:40]!r}: unknown for {op} (its fields: {known})")
    checked: dict[str, Any] = {"op": op}
    for name, (kind, required) in rules.items():
        value = request.get(name)
        if value is None:
            if required:
                raise RequestError(f"field {name!r}: required for {op}")
            continue
        _check_field(name, kind, value)
        checked[name] = value
    return checked


_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPENING, _CLOSING = frozenset(b"[{"), frozenset(b"]}")


def json_depth(line: bytes, bound: int = MAX_JSON_DEPTH) -> int:
    """How deep a JSON text nests (brackets inside strings do not count), without parsing.

    One pass over the bytes, each looked at once, keeping whether it is inside a string
    and whether the byte before was an escaping backslash: the time is linear in the line
    whatever it holds (runs of escaped quotes, long strings, brackets in strings), and the
    pass runs Python code, so other threads get their turn of the interpreter meanwhile.
    It stops as soon as the depth passes `bound` and then answers ``bound + 1``. Malformed
    JSON gets some depth; the parser refuses it next.
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPENING:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > bound:
                    return deepest
        elif byte in _CLOSING and depth > 0:
            depth -= 1
    return deepest


def parse_request(line: bytes) -> dict[str, Any]:
    """One request line, parsed and checked; RequestError says what is wrong."""
    if json_depth(line) > MAX_JSON_DEPTH:
        raise RequestError(f"bad request: JSON nested deeper than {MAX_JSON_DEPTH} levels",
                           "too_deep")
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"bad request: {exc}") from None
    if not isinstance(request, dict):
        raise RequestError("bad request: a request is a JSON object with an 'op'")
    return check_request(request)


class EventBus:
    """Fan-out of events to watchers; a slow watcher loses old events, never blocks the gate."""

    def __init__(self, depth: int = 256) -> None:
        self._depth = depth
        self._lock = threading.Lock()
        self._queues: list[queue.Queue[Event]] = []
        self.dropped = 0

    def publish(self, event: Event) -> None:
        with self._lock:
            targets = list(self._queues)
        for q in targets:
            while True:
                try:
                    q.put_nowait(event)
                    break
                except queue.Full:
                    with contextlib.suppress(queue.Empty):
                        q.get_nowait()
                        self.dropped += 1

    @contextlib.contextmanager
    def subscription(self) -> Iterator[queue.Queue[Event]]:
        q: queue.Queue[Event] = queue.Queue(self._depth)
        with self._lock:
            self._queues.append(q)
        try:
            yield q
        finally:
            with self._lock:
                self._queues.remove(q)


Handler = Callable[[dict[str, Any]], dict[str, Any]]


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, default=str).encode() + b"\n"


@dataclass(frozen=True)
class Peer:
    """The process at the other end of a connection, as the kernel saw it at connect."""

    pid: int
    uid: int
    gid: int


_UCRED = struct.Struct("3i")  # struct ucred: pid_t pid; uid_t uid; gid_t gid
UNKNOWN_UID = -1
"""The quota key of clients whose credentials cannot be read (not on Linux): they share one
user's share of the connections."""


def peer_of(sock: socket.socket) -> Peer | None:
    """The connecting process's pid, uid and gid (SO_PEERCRED), or None where unsupported."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except (OSError, AttributeError):
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return Peer(pid, uid, gid)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, path: str, handler: type[socketserver.BaseRequestHandler], *,
                 max_connections: int, max_per_user: int) -> None:
        self.max_connections, self.max_per_user = max_connections, max_per_user
        self.active = 0
        self.per_user: dict[int, int] = {}
        """Open connections by the clients' uid."""
        self.refused = 0
        """Connections refused because `max_connections` were open."""
        self.refused_user = 0
        """Connections refused because their user had `max_per_user` open."""
        self.accept_failures = 0
        """Accepts that failed for want of file descriptors."""
        self._count_lock = threading.Lock()
        self._warned_at = -1e9
        super().__init__(path, handler)

    def get_request(self) -> tuple[Any, Any]:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # Out of descriptors: the listening socket stays readable, so without a
                # pause the accept loop would spin. Wait a little for some to be freed.
                self.accept_failures += 1
                self.warn("control socket cannot accept, out of file descriptors "
                           "failures=%s cause=%s", self.accept_failures, exc.strerror)
                time.sleep(0.1)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        # The accept loop counts the connection before its thread starts, so the caps hold
        # however fast clients connect. The handler gets the Peer as its client address.
        peer = peer_of(request)
        uid = UNKNOWN_UID if peer is None else peer.uid
        error = None
        with self._count_lock:
            if self.active >= self.max_connections:
                self.refused += 1
                error = (f"the gate serves {self.max_connections} control connections at "
                         "most and all are in use: try again in a moment")
                self.warn("control connection refused, too many open open=%s refused=%s "
                           "uid=%s", self.max_connections, self.refused, uid)
            elif self.per_user.get(uid, 0) >= self.max_per_user:
                self.refused_user += 1
                error = (f"uid {uid} already has {self.max_per_user} control connections "
                         "open, the most one user may have: close some or try again later")
                self.warn("control connection refused, user has too many open uid=%s "
                           "pid=%s open=%s refused_user=%s", uid,
                           None if peer is None else peer.pid, self.max_per_user,
                           self.refused_user)
            else:
                self.active += 1
                self.per_user[uid] = self.per_user.get(uid, 0) + 1
        if error is not None:
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(_line({"ok": False, "code": "busy", "error": error}))
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, peer)
        except BaseException:
            self._release(uid)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(UNKNOWN_UID if client_address is None else client_address.uid)

    def _release(self, uid: int) -> None:
        with self._count_lock:
            self.active -= 1
            left = self.per_user[uid] - 1
            if left:
                self.per_user[uid] = left
            else:
                del self.per_user[uid]

    def warn(self, message: str, *args: object) -> None:
        """A warning at most every 10 s: a flood of connections must not flood the log."""
        now = time.monotonic()
        if now - self._warned_at >= 10.0:
            self._warned_at = now
            log.warning(message, *args)


class _TimeoutError(Exception):
    """No complete request line in time."""


class _Connection:
    """One client's socket: request lines read against a deadline, answers sent with one."""

    def __init__(self, sock: socket.socket, *, send_timeout: float) -> None:
        self.sock, self.send_timeout = sock, send_timeout
        self._buffer = b""
        self.stalled = False
        """A send timed out: the client stopped reading."""

    def read_line(self, limit: int, timeout: float) -> bytes:
        """The next line (with its newline, or what came before the end); b"" at the end.

        The whole line must arrive within `timeout` (a client sending a byte now and then
        does not hold the connection); more than `limit` bytes raise RequestError.
        """
        deadline = time.monotonic() + timeout
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line, self._buffer = self._buffer[:end + 1], self._buffer[end + 1:]
                if len(line) > limit:
                    raise RequestError("request too long", "too_long")
                return line
            if len(self._buffer) > limit:
                raise RequestError("request too long", "too_long")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _TimeoutError
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(64 * 1024)
            except TimeoutError:
                raise _TimeoutError from None
            if not chunk:
                line, self._buffer = self._buffer, b""
                return line
            self._buffer += chunk

    def send(self, message: dict[str, Any]) -> bool:
        """Send one answer; False when the client is gone or has not read for too long."""
        try:
            self.sock.settimeout(self.send_timeout)
            self.sock.sendall(_line(message))
        except TimeoutError:
            self.stalled = True
            return False
        except OSError:
            return False
        return True


class ControlServer:
    """Serves requests with `handle(request) -> answer`, and `watch` from the event bus."""

    def __init__(self, config: ControlConfig, *, handle: Handler, bus: EventBus,
                 status: Callable[[], dict[str, Any]]) -> None:
        self.path = config.socket
        self._handle, self._bus, self._status = handle, bus, status
        self._request_timeout = config.request_timeout_s
        self._send_timeout = config.send_timeout_s
        self.max_watchers = config.max_watchers
        self._stop = threading.Event()
        self._watch_lock = threading.Lock()
        self.watchers = 0
        """Watch streams open now."""
        self.refused_watch = 0
        """Watch requests answered busy because `max_watchers` streams were open."""
        self.timed_out = 0
        """Connections closed because no request line came in time."""
        self.dropped_watchers = 0
        """Watch streams dropped because the watcher stopped reading."""
        gid = self._group_id(config.group)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ControlError(f"control.socket {self.path}: cannot create its folder "
                               f"({exc.strerror or exc})") from None
        with contextlib.suppress(FileNotFoundError):
            if self.path.is_socket():
                self.path.unlink()
        outer = self

        class RequestHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._serve_connection(self.request, self.client_address)

        old_umask = os.umask(0o117)
        try:
            self._server = _Server(str(self.path), RequestHandler,
                                   max_connections=config.max_connections,
                                   max_per_user=config.max_connections_per_user)
        except OSError as exc:
            raise ControlError(f"control socket {self.path}: cannot listen: {exc}") from None
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o660)
        if gid is not None:
            os.chown(self.path, -1, gid)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="control-socket", daemon=True)

    @staticmethod
    def _group_id(name: str) -> int | None:
        if not name:
            return None
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            raise ConfigError(f"control.group: no group named {name!r} on this machine") \
                from None

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():  # shutdown() waits for serve_forever: only if it runs
            self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def stats(self) -> dict[str, int]:
        """For `gate status`: connections open now, and those refused or dropped."""
        s = self._server
        return {"open": s.active, "max": s.max_connections, "refused_busy": s.refused,
                "max_per_user": s.max_per_user, "refused_user": s.refused_user,
                "watchers": self.watchers, "max_watchers": self.max_watchers,
                "refused_watch": self.refused_watch,
                "timed_out": self.timed_out, "dropped_watchers": self.dropped_watchers,
                "accept_failures": s.accept_failures}

    def _serve_connection(self, sock: socket.socket, peer: Peer | None) -> None:
        conn = _Connection(sock, send_timeout=self._send_timeout)
        uid = UNKNOWN_UID if peer is None else peer.uid
        while not self._stop.is_set():
            try:
                line = conn.read_line(MAX_REQUEST_BYTES, self._request_timeout)
            except RequestError as exc:
                conn.send({"ok": False, "error": str(exc), "code": exc.code})
                return
            except _TimeoutError:
                self.timed_out += 1
                conn.send({"ok": False, "code": "timeout", "error": (
                    f"no complete request within {self._request_timeout:g} s: "
                    "connection closed")})
                return
            except OSError:
                return
            if not line:
                return
            try:
                request = parse_request(line)
            except RequestError as exc:
                log.info("control request refused code=%s uid=%s error=%s", exc.code, uid,
                         exc)
                if not conn.send({"ok": False, "error": str(exc), "code": exc.code}):
                    return
                continue
            if request["op"] == "watch":
                if self._watch_slot(uid):
                    try:
                        self._watch(conn)
                    finally:
                        with self._watch_lock:
                            self.watchers -= 1
                    return
                if not conn.send({"ok": False, "code": "busy", "error": (
                        f"the gate serves {self.max_watchers} watch streams at most and "
                        "all are in use (the other connections are kept for short "
                        "requests): try again in a moment")}):
                    return
                continue
            try:
                answer = self._handle(request)
            except GateError as exc:
                answer = {"ok": False, "error": str(exc)}
                if getattr(exc, "code", None):
                    answer["code"] = exc.code  # type: ignore[attr-defined]
            except Exception:
                log.exception("control request failed op=%s", request.get("op"))
                answer = {"ok": False, "error": "internal error (see the gate's log)"}
            if not conn.send(answer):
                return

    def _watch_slot(self, uid: int) -> bool:
        """Take one of the `max_watchers` watch slots; False when none is free."""
        with self._watch_lock:
            if self.watchers >= self.max_watchers:
                self.refused_watch += 1
                refused = self.refused_watch
            else:
                self.watchers += 1
                return True
        self._server.warn("watch refused, too many watchers open=%s refused_watch=%s uid=%s",
                          self.max_watchers, refused, uid)
        return False

    def _watch(self, conn: _Connection) -> None:
        with self._bus.subscription() as events:
            try:
                first = {"ok": True, "type": "status", "status": self._status()}
            except Exception:
                log.exception("status for a watcher failed")
                first = {"ok": False, "error": "internal error (see the gate's log)"}
            if not conn.send(first):
                return
            while not self._stop.is_set():
                try:
                    message = {"ok": True, **events.get(timeout=1.0).to_json()}
                except queue.Empty:
                    message = {"ok": True, "type": "heartbeat"}
                if not conn.send(message):
                    if conn.stalled:
                        self.dropped_watchers += 1
                        log.warning("watcher dropped, it stopped reading for %.0f s "
                                    "dropped=%s", self._send_timeout, self.dropped_watchers)
                    return


class ControlClient:
    """The client side: one request per call, or a stream of events."""

    def __init__(self, path: Path, *, timeout: float = 5.0) -> None:
        self.path, self.timeout = path, timeout

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A blocking connect waits (up to the timeout) while the gate's listen queue is
        # full; a connect in timeout mode would fail at once with EAGAIN.
        seconds = int(self.timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack(
            "ll", seconds, int((self.timeout - seconds) * 1e6)))
        try:
            sock.connect(str(self.path))
            sock.settimeout(self.timeout)
        except FileNotFoundError:
            sock.close()
            raise ControlError(f"no gate daemon at {self.path} (socket missing)") from None
        except PermissionError:
            sock.close()
            raise ControlError(f"{self.path}: permission denied (are you in the gate's "
                               "steward group?)") from None
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot reach the gate daemon at {self.path}: "
                               f"{exc.strerror or exc}") from None
        return sock

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request; an admit answers once the person passed or the lock timed out."""
        with self._connect() as sock, sock.makefile("rb") as stream:
            if op == "admit":
                sock.settimeout(max(self.timeout, ADMIT_ANSWER_S))
            # refused before reading (busy): the one-line answer is still there to read
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
            try:
                line = stream.readline(16 * 1024 * 1024)
            except TimeoutError:
                raise ControlError(f"the gate daemon did not answer {op!r} in time") from None
            except ConnectionResetError:
                line = b""
        if not line:
            raise ControlError(f"the gate daemon closed the connection during {op!r}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def watch(self) -> Iterator[dict[str, Any]]:
        sock = self._connect()
        sock.settimeout(None)
        with sock, sock.makefile("rwb") as stream:
            stream.write(b'{"op": "watch"}\n')
            stream.flush()
            for line in stream:
                yield json.loads(line)
