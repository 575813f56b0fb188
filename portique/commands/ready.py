"""`gate ready`: is this gate ready for doors? One verdict per line (portique/runtime/readiness.py).

It asks the running gate over its control socket. When no gate answers there, it runs
the checks that need no running gate from the config and its files, prints a line saying
the gate is not running, and is never ready.

Exit codes: 0 every line passes, 1 a line fails (or the gate is not running), 2 usage or
configuration error (an unreadable config, a socket this user may not use).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from portique.base.cli import EXIT_OK, EXIT_REFUSED
from portique.base.errors import UsageError

DEFAULT_CONFIG = Path("/etc/portique/gate.toml")
DEFAULT_SOCKET = Path("/run/portique/control.sock")


def register(sub: Any) -> None:
    ready = sub.add_parser("ready", help="ready for doors? a checklist, one verdict per line "
                           "(exit 0 all pass, 1 a line fails, 2 usage or config error)")
    ready.add_argument("--config", type=Path, help="gate config (default: "
                       f"{DEFAULT_CONFIG} when it exists); gives the socket, and the "
                       "checks to run when the gate is not running")
    ready.add_argument("--socket", type=Path, help="control socket (default: from the "
                       f"config, else {DEFAULT_SOCKET})")
    ready.add_argument("--json", action="store_true", help="one JSON object: ok, source "
                       "(gate or offline), checks [{name, ok, detail}]")
    ready.set_defaults(handler=_ready)


def _ready(args: argparse.Namespace) -> int:
    from portique.runtime import readiness
    from portique.runtime.config import Config
    from portique.runtime.config import load as load_config
    from portique.runtime.control import ControlClient, ControlError

    config_path: Path | None = args.config
    if config_path is None and args.socket is None and DEFAULT_CONFIG.is_file():
        config_path = DEFAULT_CONFIG
    config: Config | None = None if config_path is None else load_config(config_path)
    socket = args.socket or (config.control.socket if config is not None else DEFAULT_SOCKET)

    not_running: str | None = None
    report: readiness.ReadinessReport | None = None
    if not socket.exists():
        not_running = f"no control socket at {socket}"
    else:
        try:
            answer = ControlClient(socket).request("status")
        except ControlError as exc:
            if "permission denied" in str(exc):
                raise
            not_running = str(exc)
        else:
            status = answer.get("status") if answer.get("ok") else None
            if not isinstance(status, dict) or not isinstance(status.get("ready"), dict):
                raise UsageError(f"the gate at {socket} gave no readiness: "
                                 f"{answer.get('error') or 'an older gate?'}")
            report = readiness.ReadinessReport.from_json(status["ready"])

    if report is None:
        if config is None:
            report = readiness.ReadinessReport(())
            detail = (f"{not_running}; give --config FILE for the checks that need no "
                      "running gate")
        else:
            report = readiness.offline_report(config)
            detail = f"{not_running}"
        assert not_running is not None
        checks = [{"name": "gate", "ok": False, "detail": f"not running: {detail}"}] + \
            report.to_json()["checks"]
        if args.json:
            print(json.dumps({"ok": False, "source": "offline", "checks": checks},
                             ensure_ascii=False, sort_keys=True))
        else:
            print(readiness.render(report, offline_why=detail))
        return EXIT_REFUSED

    if args.json:
        print(json.dumps({**report.to_json(), "source": "gate"}, ensure_ascii=False,
                         sort_keys=True))
    else:
        print(readiness.render(report))
    return EXIT_OK if report.ok else EXIT_REFUSED
