"""The control socket: stewards' tools and `gate status` talk to the daemon through it.

A Unix stream socket (mode 0660, owned by the configured group: who is in the group may
drive the gate; nobody else may even connect). The protocol is JSON lines: each request
is one JSON object on one line with an ``op``; each answer is one JSON object on one
line with ``ok`` (true, or false with an ``error`` sentence). ``watch`` answers with a
stream of events, one per line, until the client hangs up.

| op | fields | answer |
|---|---|---|
| status | | the gate's health (see `Daemon.status`) |
| watch | | a status, then every event (decision, passage, alarm, camera) as it happens |
| lookup | query, limit | manifest candidates, best first |
| history | ticket_id | the ticket's journal entries at this gate, latest first |
| admit | ticket_id, steward, reason, [supervisor] | manual admission (journalled, rate-limited) |
| deny | ticket_id, steward, reason | manual refusal (journalled) |
| ack_fire_alarm | steward | end latched free egress once the loop is closed again |
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import queue
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.configschema import setting
from gate.errors import ConfigError, GateError

log = logging.getLogger(__name__)

ADMIT_ANSWER_S = 150.0
"""How long a client waits for an admit: it answers after the passage or the timeout."""

MAX_REQUEST_BYTES = 64 * 1024
"""A request line longer than this is refused: nobody types 64 KiB into a lookup."""


@dataclass(frozen=True)
class ControlConfig:
    socket: Path = setting(Path("/run/portique/control.sock"),
                           description="Path of the control socket")
    group: str = setting("", description="Group whose members may use the socket "
                         "(stewards); empty: the daemon's own group")


class ControlError(GateError, OSError):
    """The daemon could not be reached or answered with an error."""


class EventBus:
    """Fan-out of events to watchers; a slow watcher loses old events, never blocks the gate."""

    def __init__(self, depth: int = 256) -> None:
        self._depth = depth
        self._lock = threading.Lock()
        self._queues: list[queue.Queue[dict[str, Any]]] = []
        self.dropped = 0

    def publish(self, event: dict[str, Any]) -> None:
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
    def subscription(self) -> Iterator[queue.Queue[dict[str, Any]]]:
        q: queue.Queue[dict[str, Any]] = queue.Queue(self._depth)
        with self._lock:
            self._queues.append(q)
        try:
            yield q
        finally:
            with self._lock:
                self._queues.remove(q)


Handler = Callable[[dict[str, Any]], dict[str, Any]]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True


class ControlServer:
    """Serves requests with `handle(request) -> answer`, and `watch` from the event bus."""

    def __init__(self, config: ControlConfig, *, handle: Handler, bus: EventBus,
                 status: Callable[[], dict[str, Any]]) -> None:
        self.path = config.socket
        self._handle, self._bus, self._status = handle, bus, status
        self._stop = threading.Event()
        gid = self._group_id(config.group)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if self.path.is_socket():
                self.path.unlink()
        outer = self

        class RequestHandler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer._serve_connection(self.rfile, self.wfile)

        old_umask = os.umask(0o117)
        try:
            self._server = _Server(str(self.path), RequestHandler)
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

    def _serve_connection(self, rfile: Any, wfile: Any) -> None:
        while not self._stop.is_set():
            line = rfile.readline(MAX_REQUEST_BYTES + 1)
            if not line:
                return
            if len(line) > MAX_REQUEST_BYTES:
                _send(wfile, {"ok": False, "error": "request too long"})
                return
            try:
                request = json.loads(line)
                if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                    raise ValueError("a request is a JSON object with an 'op'")
            except (ValueError, UnicodeDecodeError) as exc:
                _send(wfile, {"ok": False, "error": f"bad request: {exc}"})
                continue
            if request["op"] == "watch":
                self._watch(wfile)
                return
            try:
                answer = self._handle(request)
            except GateError as exc:
                answer = {"ok": False, "error": str(exc)}
                if getattr(exc, "code", None):
                    answer["code"] = exc.code  # type: ignore[attr-defined]
            except Exception:
                log.exception("control request failed op=%s", request.get("op"))
                answer = {"ok": False, "error": "internal error (see the gate's log)"}
            if not _send(wfile, answer):
                return

    def _watch(self, wfile: Any) -> None:
        with self._bus.subscription() as events:
            try:
                first = {"ok": True, "type": "status", "status": self._status()}
            except Exception:
                log.exception("status for a watcher failed")
                first = {"ok": False, "error": "internal error (see the gate's log)"}
            if not _send(wfile, first):
                return
            while not self._stop.is_set():
                try:
                    event = events.get(timeout=1.0)
                except queue.Empty:
                    event = {"type": "heartbeat"}
                if not _send(wfile, {"ok": True, **event}):
                    return


def _send(wfile: Any, message: dict[str, Any]) -> bool:
    try:
        wfile.write(json.dumps(message, ensure_ascii=False, default=str).encode() + b"\n")
        wfile.flush()
    except OSError:
        return False
    return True


class ControlClient:
    """The client side: one request per call, or a stream of events."""

    def __init__(self, path: Path, *, timeout: float = 5.0) -> None:
        self.path, self.timeout = path, timeout

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
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
        with self._connect() as sock, sock.makefile("rwb") as stream:
            if op == "admit":
                sock.settimeout(max(self.timeout, ADMIT_ANSWER_S))
            stream.write(json.dumps({"op": op, **fields}).encode() + b"\n")
            stream.flush()
            try:
                line = stream.readline(16 * 1024 * 1024)
            except TimeoutError:
                raise ControlError(f"the gate daemon did not answer {op!r} in time") from None
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
