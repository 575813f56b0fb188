"""A Mosquitto broker on loopback, started and stopped on demand (tests, demo, benchmarks).

Not for production: a venue runs its own broker (docs/mesh.md). This one listens on
127.0.0.1 only, keeps its state in a folder of its own (``persistence true``, so a restart
keeps sessions and queued messages, as a real broker does) and logs to ``mosquitto.log``.
It bounds packets as docs/mesh.md tells a venue broker to (``max_packet_size``).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from portique.base.errors import GateError
from portique.runtime.mesh.wire import MAX_PACKET_BYTES

MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")


class BrokerError(GateError, RuntimeError):
    """The loopback broker is missing or did not start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(path: Path) -> Path:
    if not path.exists():
        found = shutil.which(path.name)
        if found is None:
            raise BrokerError(f"{path} is missing: the Mosquitto broker is needed here; "
                              "`make setup` installs it (Debian package mosquitto)")
        return Path(found)
    return path


@dataclass(frozen=True)
class Bridge:
    """A Mosquitto bridge from this broker to another (docs/mesh.md, "Bridged brokers")."""

    name: str
    port: int
    host: str = "127.0.0.1"
    topic: str = "portique/v1/#"

    def lines(self, local: str) -> list[str]:
        return [f"connection {self.name}", f"address {self.host}:{self.port}",
                f"remote_clientid portique-bridge-{local}-{self.name}",
                f"topic {self.topic} both 1", "cleansession true", "try_private true",
                "notifications false", "restart_timeout 1 5", "start_type automatic",
                "keepalive_interval 5"]


class LoopbackBroker:
    """`start()`, `stop()`, `restart()` a Mosquitto on 127.0.0.1:`port`."""

    def __init__(self, folder: Path, *, port: int | None = None,
                 users: dict[str, str] | None = None, max_queued: int = 100_000,
                 max_packet_bytes: int | None = MAX_PACKET_BYTES,
                 acl: list[str] | None = None, bridges: list[Bridge] | None = None,
                 name: str = "broker") -> None:
        """`max_packet_bytes` None: Mosquitto's own limit (256 MiB), as on a broker set up
        without the venue's bound. `acl`: the lines of an ACL file (with `users`).
        `bridges`: Mosquitto bridges from this broker to others (a stand's broker to the
        venue core), written as docs/mesh.md shows."""
        self.folder, self.port = folder, port or free_port()
        self.users = users
        self.max_queued = max_queued
        self.max_packet_bytes = max_packet_bytes
        self.acl = acl
        self.bridges = list(bridges or [])
        self.name = name
        self.binary = _binary(MOSQUITTO)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "mosquitto.log"
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self._write_conf()

    def _write_conf(self) -> None:
        lines = [f"listener {self.port} 127.0.0.1",
                 "persistence true", f"persistence_location {self.folder}/",
                 f"max_queued_messages {self.max_queued}",
                 "log_type error", "log_type warning", "log_type notice",
                 "log_type information", "connection_messages true"]
        if self.max_packet_bytes is not None:
            lines.append(f"max_packet_size {self.max_packet_bytes}")
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to `mosquitto`, who cannot write here
        else:
            lines.append(f"user {getpass.getuser()}")
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            passwd = self.folder / "passwords"
            tool = _binary(MOSQUITTO_PASSWD)
            passwd.unlink(missing_ok=True)
            for i, (user, password) in enumerate(self.users.items()):
                subprocess.run([str(tool), "-b", *(["-c"] if i == 0 else []), str(passwd),
                                user, password], check=True, capture_output=True)
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
            if self.acl is not None:
                acl_file = self.folder / "acl"
                acl_file.write_text("\n".join(self.acl) + "\n", encoding="utf-8")
                lines.append(f"acl_file {acl_file}")
        for bridge in self.bridges:
            lines += bridge.lines(self.name)
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            return
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([str(self.binary), "-c", str(self.conf)],
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                tail = self.log.read_text(errors="replace")[-1500:]
                raise BrokerError(f"mosquitto exited at start:\n{tail}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{self.port} in {timeout} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL), as when its machine dies."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> LoopbackBroker:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
