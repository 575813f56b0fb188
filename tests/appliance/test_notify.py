"""portique.runtime.notify against real Unix datagram sockets, bound here as systemd would
bind them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from portique.runtime import notify


class Listener:
    """A bound datagram socket standing in for systemd's notification socket."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name  # as it appears in $NOTIFY_SOCKET

    def received(self) -> list[bytes]:
        """Every datagram queued so far. Delivery on a Unix socket is done when sendto
        returns, so a non-blocking read sees everything the call under test sent."""
        out: list[bytes] = []
        while True:
            try:
                out.append(self.sock.recv(65536))
            except BlockingIOError:
                return out


@pytest.fixture
def path_listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    # A short directory: a socket path must fit in 108 bytes, pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="ntf") as folder, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        path = str(Path(folder) / "notify")
        sock.bind(path)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        yield Listener(sock, path)


@pytest.fixture
def abstract_listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    name = f"portique-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        yield Listener(sock, "@" + name)


def test_ready_with_status_is_one_datagram_byte_exact(path_listener: Listener) -> None:
    assert notify.ready("scanning, clock trusted") is True
    assert path_listener.received() == [b"READY=1\nSTATUS=scanning, clock trusted"]


def test_ready_alone(path_listener: Listener) -> None:
    assert notify.ready() is True
    assert path_listener.received() == [b"READY=1"]


def test_each_helper_sends_exactly_its_assignment(path_listener: Listener) -> None:
    assert notify.watchdog() is True
    assert notify.stopping() is True
    assert notify.status("entrée 2 : prête") is True
    assert path_listener.received() == [
        b"WATCHDOG=1", b"STOPPING=1", "STATUS=entrée 2 : prête".encode()]


def test_a_status_cannot_smuggle_another_assignment(path_listener: Listener) -> None:
    assert notify.status("camera lost\nREADY=1") is True
    assert notify.ready("two\r\nlines") is True
    assert path_listener.received() == [b"STATUS=camera lost READY=1",
                                        b"READY=1\nSTATUS=two lines"]


def test_notify_joins_states_with_newlines(path_listener: Listener) -> None:
    assert notify.notify("STATUS=x", "WATCHDOG=1", "EXTEND_TIMEOUT_USEC=5000000") is True
    assert path_listener.received() == [b"STATUS=x\nWATCHDOG=1\nEXTEND_TIMEOUT_USEC=5000000"]


@pytest.mark.parametrize("states", [(), ("READY",), ("STATUS=a\nREADY=1",), ("A=1", "B")])
def test_malformed_states_are_refused_and_nothing_is_sent(
        path_listener: Listener, states: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"KEY=value|nothing"):
        notify.notify(*states)
    assert path_listener.received() == []


def test_abstract_socket_name(abstract_listener: Listener) -> None:
    assert notify.ready("abstract") is True
    assert notify.watchdog() is True
    assert abstract_listener.received() == [b"READY=1\nSTATUS=abstract", b"WATCHDOG=1"]


def test_env_is_passed_explicitly(abstract_listener: Listener,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert notify.notify("READY=1", env={"NOTIFY_SOCKET": abstract_listener.name}) is True
    assert notify.notify("READY=1", env={}) is False
    assert abstract_listener.received() == [b"READY=1"]


def test_a_child_process_notifies_through_its_environment(abstract_listener: Listener) -> None:
    # As under systemd: the variable is inherited, not passed in code.
    subprocess.run([sys.executable, "-c", "from portique.runtime import notify; "
                    "raise SystemExit(0 if notify.ready('from a child') else 1)"],
                   check=True, env={**os.environ, "NOTIFY_SOCKET": abstract_listener.name})
    assert abstract_listener.received() == [b"READY=1\nSTATUS=from a child"]


@pytest.mark.parametrize("value", [None, ""])
def test_not_under_systemd_is_a_no_op(path_listener: Listener, monkeypatch: pytest.MonkeyPatch,
                                      value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("NOTIFY_SOCKET")
    else:
        monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert notify.ready("x") is False
    assert notify.watchdog() is False
    assert notify.stopping() is False
    assert notify.status("x") is False
    assert path_listener.received() == []


def test_nobody_listening_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryDirectory(prefix="ntf") as folder:
        monkeypatch.setenv("NOTIFY_SOCKET", str(Path(folder) / "gone"))
        assert notify.watchdog() is False
    monkeypatch.setenv("NOTIFY_SOCKET", f"@portique-nobody-{uuid.uuid4().hex}")
    assert notify.watchdog() is False


def test_a_stream_socket_is_not_a_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryDirectory(prefix="ntf") as folder, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        path = str(Path(folder) / "stream")
        sock.bind(path)
        sock.listen()
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert notify.watchdog() is False


def test_relative_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "notify")
    assert notify.watchdog() is False


def test_watchdog_interval_for_this_process() -> None:
    own = str(os.getpid())
    assert notify.watchdog_interval(env={"WATCHDOG_USEC": "10000000",
                                         "WATCHDOG_PID": own}) == 10.0
    assert notify.watchdog_interval(env={"WATCHDOG_USEC": "2500000"}) == 2.5


def test_watchdog_interval_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert notify.watchdog_interval() == 10.0
    monkeypatch.delenv("WATCHDOG_USEC")
    assert notify.watchdog_interval() is None


@pytest.mark.parametrize("usec", ["", "0", "-5", "ten", "1e6", "²"])
def test_no_or_bad_watchdog_usec_means_no_watchdog(usec: str) -> None:
    assert notify.watchdog_interval(env={"WATCHDOG_USEC": usec,
                                         "WATCHDOG_PID": str(os.getpid())}) is None


def test_watchdog_pid_of_another_process_means_no_watchdog() -> None:
    env = {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getppid())}
    assert notify.watchdog_interval(env=env) is None
    assert notify.watchdog_interval(env={**env, "WATCHDOG_PID": "not-a-pid"}) is None


def test_a_child_of_a_watched_process_is_not_watched() -> None:
    # The child inherits WATCHDOG_* naming its parent: it must not think it owes pings.
    code = "from portique.runtime import notify; print(notify.watchdog_interval())"
    env = {**os.environ, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    child = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                           capture_output=True, text=True)
    assert child.stdout.strip() == "None"
