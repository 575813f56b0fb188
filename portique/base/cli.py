"""What every `gate` command shares: exit codes, human-or-JSON output, time arguments."""

from __future__ import annotations

import argparse
import json
from typing import Any

from portique.base.timeparse import parse_time

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
"""0 success (for `check`: admit), 1 refused or handed to a steward, 2 usage or config error."""


def emit(args: argparse.Namespace, human: str, machine: dict[str, Any]) -> None:
    """Print human text, or one JSON object with --json."""
    if getattr(args, "json", False):
        print(json.dumps(machine, ensure_ascii=False, sort_keys=True))
    else:
        print(human)


def time_arg(value: str) -> float:
    """An argparse type: ISO-8601 with an offset, or Unix seconds."""
    try:
        return parse_time(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
