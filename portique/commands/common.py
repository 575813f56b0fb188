"""Helpers of the commands that talk to a running gate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from portique.base.errors import UsageError


def ask_gate(args: argparse.Namespace, op: str) -> dict[str, Any]:
    """One control-socket request from a command with --socket / --config; errors exit 2."""
    from portique.runtime.config import load as load_config
    from portique.runtime.control import ControlClient

    path = args.socket
    if path is None:
        path = load_config(args.config).control.socket if args.config else \
            Path("/run/portique/control.sock")
    answer = ControlClient(path).request(op)
    if not answer.get("ok"):
        raise UsageError(f"the gate answered: {answer.get('error')}")
    return answer
