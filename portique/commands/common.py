"""Helpers shared by the command groups: talking to a running gate, the ticket file, the
log format, argument types."""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

from portique.base.errors import UsageError
from portique.base.timeparse import format_time
from portique.ticket import credential
from portique.ticket.credential import Flag, TicketFields

TICKET_FORMAT = "portique-ticket/1"


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


def entrances_arg(value: str) -> frozenset[int]:
    try:
        numbers = frozenset(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"entrances must be numbers separated by commas, got {value!r}") from None
    if not numbers:
        raise argparse.ArgumentTypeError("at least one entrance is needed")
    return numbers


def ticket_document(level1: bytes) -> dict[str, Any]:
    """A ticket file as `gate ticket issue` writes it (format portique-ticket/1)."""
    fields = credential.parse_level1(level1)
    doc: dict[str, Any] = {
        "format": TICKET_FORMAT,
        "level1": base64.b64encode(level1).decode("ascii"),
        "fields": fields_json(fields),
    }
    if fields.paper:
        doc["code"] = credential.paper_code(level1)
    return doc


def fields_json(fields: TicketFields) -> dict[str, Any]:
    return {
        "kid": fields.kid,
        "event": fields.event,
        "ticket_id": fields.ticket_id,
        "generation": fields.generation,
        "valid_from": format_time(fields.valid_from),
        "valid_until": format_time(fields.valid_until),
        "entrances": sorted(fields.entrances),
        "category": fields.category,
        "flags": sorted(f.name.lower() for f in Flag if f in fields.flags and f.name),
        "device_key": None if fields.device_key is None else fields.device_key.hex(),
    }


def setup_logging(level: str) -> None:
    import logging

    from portique.base.logformat import FieldsFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FieldsFormatter())  # each line with its fields as key=value
    logging.basicConfig(level=getattr(logging, level), handlers=[handler])
