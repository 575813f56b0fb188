"""The steward UI's link to the daemon: every socket read and write off the UI thread.

Three kinds of background work, each with a timeout, each reporting to the app with
`post_message` (thread-safe):

* the watch stream, read in its own thread; the daemon sends a heartbeat every second, so
  a silent stream is a lost one. When it breaks, the link says so (`LinkDown`) and tries
  again with a backoff that doubles up to `backoff_max`;
* the status, asked again every `status_every` seconds while the stream is up;
* requests (lookup, history, admit, deny, acknowledge), on a small pool of threads, each
  answered by a `Reply` carrying the id the app gave it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from portique.runtime import events
from portique.runtime.control import ControlClient
from portique.runtime.steward.messages import GateEvent, LinkDown, LinkUp, Reply, StatusArrived

log = logging.getLogger("portique.runtime.steward")

MAX_LINE = 4 * 1024 * 1024


class Target(Protocol):
    """Where the link's messages go (the app): `post_message` is thread-safe."""

    def post_message(self, message: Any) -> bool: ...


class Link(Protocol):
    """The app's only way to the daemon."""

    @property
    def path(self) -> Path: ...
    def start(self, target: Target) -> None: ...
    def stop(self) -> None: ...
    def request(self, request_id: int, op: str, fields: Mapping[str, Any], *,
                slow: bool = False) -> None: ...


@dataclass(frozen=True)
class LinkTimings:
    connect_s: float = 3.0
    """To connect, and for a quick request (status, lookup, history) to be answered."""
    slow_s: float = 30.0
    """For admit and deny: the answer comes once the person went through or timed out."""
    idle_s: float = 5.0
    """Silence on the watch stream (heartbeats come every second) that means it is lost."""
    status_every: float = 2.0
    backoff_first: float = 0.5
    backoff_max: float = 10.0


class GateLink:
    """The link over the daemon's control socket."""

    def __init__(self, path: Path, timings: LinkTimings = LinkTimings()) -> None:
        self._path = Path(path)
        self.timings = timings
        self._stop = threading.Event()
        self._up = threading.Event()
        self._sock: socket.socket | None = None
        self._sock_lock = threading.Lock()
        self._target: Target | None = None
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="steward-request")

    @property
    def path(self) -> Path:
        return self._path

    def start(self, target: Target) -> None:
        self._target = target
        for name, run in (("steward-watch", self._watch_loop),
                          ("steward-status", self._status_loop)):
            thread = threading.Thread(target=run, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        with self._sock_lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for thread in self._threads:
            thread.join(timeout=2.0)

    def request(self, request_id: int, op: str, fields: Mapping[str, Any], *,
                slow: bool = False) -> None:
        timeout = self.timings.slow_s if slow else self.timings.connect_s
        with contextlib.suppress(RuntimeError):  # the pool is shut down: the app is closing
            self._pool.submit(self._ask, request_id, op, dict(fields), timeout)

    # --- in the background ------------------------------------------------------------

    def _post(self, message: Any) -> None:
        if self._target is not None and not self._stop.is_set():
            self._target.post_message(message)

    def _ask(self, request_id: int, op: str, fields: dict[str, Any], timeout: float) -> None:
        try:
            answer = ControlClient(self._path, timeout=timeout).request(op, **fields)
            reached = True
        except (OSError, ValueError) as exc:  # ControlError is an OSError
            answer = {"ok": False, "error": describe(exc), "link": kind_of(exc)}
            reached = False
        self._post(Reply(request_id, op, answer, reached))

    def _status_loop(self) -> None:
        while not self._stop.wait(self.timings.status_every):
            if not self._up.is_set():
                continue
            try:
                answer = ControlClient(self._path, timeout=self.timings.connect_s).request(
                    "status")
            except (OSError, ValueError) as exc:
                log.info("status request failed: %s", describe(exc))
                continue
            status = answer.get("status") if isinstance(answer, dict) else None
            if isinstance(status, dict):
                self._post(StatusArrived(status))

    def _watch_loop(self) -> None:
        delay = self.timings.backoff_first
        while not self._stop.is_set():
            try:
                for event in self._watch():
                    if not self._up.is_set():
                        self._up.set()
                        delay = self.timings.backoff_first
                        self._post(LinkUp(str(self._path)))
                    if event.get("type") == "status" and isinstance(event.get("status"), dict):
                        self._post(StatusArrived(event["status"]))
                    elif event.get("type") != "heartbeat":
                        self._post_event(event)
                error, kind = "the gate daemon closed the connection", "closed"
            except (OSError, ValueError) as exc:
                error, kind = describe(exc), kind_of(exc)
            self._up.clear()
            if self._stop.is_set():
                return
            self._post(LinkDown(str(self._path), error, delay, kind))
            self._stop.wait(delay)
            delay = min(delay * 2, self.timings.backoff_max)

    def _post_event(self, wire: dict[str, Any]) -> None:
        """A watch-stream event, typed; one the UI cannot read is logged, never shown."""
        try:
            self._post(GateEvent(events.from_json(wire)))
        except events.EventFormatError as exc:
            log.warning("watch event skipped type=%s cause=%s", wire.get("type"), exc)

    def _watch(self) -> Iterator[dict[str, Any]]:
        """The watch stream's events, until it breaks (raises) or the link stops."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._sock_lock:
            self._sock = sock
        try:
            sock.settimeout(self.timings.connect_s)
            sock.connect(str(self._path))
            sock.sendall(b'{"op": "watch"}\n')
            sock.settimeout(self.timings.idle_s)
            with sock.makefile("rb") as stream:
                while not self._stop.is_set():
                    line = stream.readline(MAX_LINE)
                    if not line:
                        return
                    event = json.loads(line)
                    if not isinstance(event, dict):
                        raise ValueError("the gate daemon sent something other than an event")
                    if event.get("ok") is False:
                        raise WatchRefusedError(str(event.get("error")
                                                    or "the watch was refused"))
                    yield event
        finally:
            with self._sock_lock:
                self._sock = None
            sock.close()


class WatchRefusedError(ValueError):
    """The daemon answered the watch with a refusal (all watch slots taken)."""


def kind_of(exc: BaseException) -> str:
    """The kind of a connection failure, which the screen says in the steward's language
    (steward/model.py, LINK_ERRORS); "other" for the rest. The control client's own
    error keeps the system's error as its context."""
    if exc.__context__ is not None and not isinstance(exc, WatchRefusedError):
        inner = kind_of(exc.__context__)
        if inner != "other":
            return inner
    for kind, types in (("no_socket", FileNotFoundError), ("refused", ConnectionRefusedError),
                        ("permission", PermissionError), ("timeout", TimeoutError),
                        ("unreadable", json.JSONDecodeError),
                        ("watch_refused", WatchRefusedError)):
        if isinstance(exc, types):
            return kind
    return "other"


def describe(exc: BaseException) -> str:
    """A short sentence for a connection failure."""
    if isinstance(exc, FileNotFoundError):
        return "no socket (is the gate daemon running?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the gate daemon running?)"
    if isinstance(exc, PermissionError):
        return "permission denied (are you in the gate's steward group?)"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, json.JSONDecodeError):
        return "unreadable answer"
    text = str(exc) or type(exc).__name__
    return text[:200]
