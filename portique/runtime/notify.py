"""Tell systemd how the gate is doing: the sd_notify protocol, with no dependency.

Under a ``Type=notify`` unit, systemd passes ``$NOTIFY_SOCKET``: a Unix datagram socket,
a file path, or a name in the abstract namespace spelled with a leading ``@``. Each
message is one datagram of newline-separated ``KEY=value`` assignments (``READY=1``,
``WATCHDOG=1``, ``STOPPING=1``, ``STATUS=...``). Outside systemd (a terminal, a test,
``make demo``) there is no socket and every call here returns False and does nothing.

With ``WatchdogSec=`` set, systemd also passes ``$WATCHDOG_USEC`` (the interval) and
``$WATCHDOG_PID`` (the process it expects pings from); ping at half the interval, from the
loop whose progress the ping vouches for.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["notify", "ready", "status", "stopping", "watchdog", "watchdog_interval"]

log = logging.getLogger(__name__)


def notify(*states: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``states`` (each ``KEY=value``) to systemd in one datagram.

    Returns True when the datagram was sent; False when not under systemd (no
    ``$NOTIFY_SOCKET``), or when the socket is unusable (logged: a gate must not stop
    scanning because its supervisor is unreachable; if it is the watchdog, systemd restarts
    the gate). A state without ``=`` or with a newline is a programming error
    (ValueError): a newline would smuggle in another assignment.
    """
    if not states:
        raise ValueError("nothing to notify")
    for state in states:
        if "=" not in state or "\n" in state:
            raise ValueError(f"not a single KEY=value assignment: {state!r}")
    environ = os.environ if env is None else env
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract name; not notifying",
                    address)
        return False
    message = "\n".join(states).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError as exc:
        log.warning("could not notify systemd at %s: %s", environ["NOTIFY_SOCKET"], exc)
        return False
    return True


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def ready(status: str | None = None) -> bool:
    """Startup is finished: the gate is scanning. systemd now reports the unit active."""
    if status is None:
        return notify("READY=1")
    return notify("READY=1", "STATUS=" + _one_line(status))


def watchdog() -> bool:
    """The main loop is alive: reset the watchdog timer."""
    return notify("WATCHDOG=1")


def stopping() -> bool:
    """The gate is shutting down (turnstile being made safe, journal being closed)."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """A one-line health summary shown by ``systemctl status gate``; newlines are folded."""
    return notify("STATUS=" + _one_line(text))


def watchdog_interval(*, env: Mapping[str, str] | None = None) -> float | None:
    """Seconds within which systemd expects a ``watchdog()`` ping, or None for no watchdog.

    None when ``$WATCHDOG_USEC`` is absent, not a positive integer, or when
    ``$WATCHDOG_PID`` names another process (the variables were inherited from a parent
    that is being watched, not this process). Ping at half of this.
    """
    environ = os.environ if env is None else env
    usec = _positive_int(environ.get("WATCHDOG_USEC", ""))
    if usec is None:
        return None
    pid = environ.get("WATCHDOG_PID", "")
    if pid and _positive_int(pid) != os.getpid():
        return None
    return usec / 1_000_000


def _positive_int(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()) or int(text) == 0:
        return None
    return int(text)
