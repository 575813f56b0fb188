"""Times on the command line and in files: ISO-8601 with an offset, or Unix seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNIX_RE = re.compile(r"-?\d+(\.\d+)?")


def parse_time(value: str | int | float) -> float:
    """Unix seconds from '2024-08-05T19:30:00+02:00', '...Z' or '1722879000'.

    A time without an offset is refused: at a gate, 'which 19:30?' matters.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if _UNIX_RE.fullmatch(text):
        return float(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a time: {value!r} (use ISO-8601 like 2024-08-05T19:30:00+02:00, "
            "or Unix seconds)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset (add +02:00 or Z)")
    return moment.timestamp()


def format_time(unix: float) -> str:
    """ISO-8601 in UTC, to the second."""
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")
