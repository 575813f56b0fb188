"""`gate steward`: start the steward's terminal UI against a gate's control socket."""

from __future__ import annotations

import argparse
import getpass
import re
import zoneinfo
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portique.base.errors import UsageError
from portique.ticket.reasons import Lang

if TYPE_CHECKING:
    from portique.runtime.steward.session import Settings

_STEWARD_ID = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


def register(sub: Any) -> None:
    steward = sub.add_parser(
        "steward", help="the steward's terminal UI: live decisions, manual lookup, admit "
        "and deny, fire-alarm acknowledge (docs/steward.md)")
    steward.add_argument("--socket", type=Path, help="the gate's control socket (default: "
                         "control.socket of --config, else /run/portique/control.sock)")
    steward.add_argument("--config", type=Path, help="the gate's config: socket, language "
                         "([steward] language) and time zone")
    steward.add_argument("--steward", help="your steward id, recorded with every admit, "
                         "deny and acknowledge (default: your login name)")
    steward.add_argument("--lang", choices=[lang.value for lang in Lang],
                         help="language at start (default: [steward] language, else fr); "
                         "F4 switches")
    steward.set_defaults(handler=_steward)


def settings_from(args: argparse.Namespace) -> Settings:
    """The UI's settings from the command line and the gate's config."""
    from portique.runtime.control import ControlConfig
    from portique.runtime.steward.session import Settings

    socket = ControlConfig().socket
    lang = Lang.FR
    tz: tzinfo | None = None
    if args.config is not None:
        from portique.runtime.config import load

        config = load(args.config)
        socket = config.control.socket
        if config.steward.language in (Lang.FR.value, Lang.EN.value):
            lang = Lang(config.steward.language)
        tz = zoneinfo.ZoneInfo(config.gate.timezone)
    if args.socket is not None:
        socket = args.socket
    if args.lang is not None:
        lang = Lang(args.lang)
    steward = args.steward if args.steward is not None else getpass.getuser()
    if not _STEWARD_ID.fullmatch(steward or "") or not steward.strip():
        raise UsageError("--steward: 1-64 printable characters")
    if tz is None:
        tz = _gate_timezone(socket)
    if tz is None:
        from datetime import datetime

        tz = datetime.now().astimezone().tzinfo
    assert tz is not None
    return Settings(socket=socket, steward=steward.strip(), lang=lang, tz=tz)


def _gate_timezone(socket: Path) -> tzinfo | None:
    """The venue's time zone as the running gate states it (None if it cannot be asked)."""
    from portique.base.errors import GateError
    from portique.runtime.control import ControlClient

    try:
        answer = ControlClient(socket, timeout=2.0).request("status")
        return zoneinfo.ZoneInfo(str(answer["status"]["timezone"]))
    except (GateError, OSError, KeyError, ValueError, zoneinfo.ZoneInfoNotFoundError):
        return None


def _steward(args: argparse.Namespace) -> int:
    from portique.runtime.steward.app import StewardApp
    from portique.runtime.steward.client import GateLink

    settings = settings_from(args)
    StewardApp(settings, GateLink(settings.socket)).run()
    return 0
