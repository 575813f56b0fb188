"""Times shown to people: in the venue's time zone, labelled where a clock reading is ambiguous.

Machine output (``--json``, the journal, logs, metrics) stays UTC ISO-8601
(``portique.base.timeparse.format_time``). What a person reads (decision sentences,
``gate status``, the steward UI, ``gate check``) is the venue's wall clock. At the autumn
change the hour from 02:00 to 03:00 (Europe/Paris) happens twice; a reading in that hour
gets its zone's abbreviation and UTC offset ("02:30 CEST, UTC+02:00" is the first,
"02:30 CET, UTC+01:00" the second), so that nobody has to guess which one is meant.
Every other reading is plain ("15:00"). Pure: no clock is read here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo


def local(unix: float, tz: tzinfo) -> datetime:
    """The instant `unix` on the wall clock of `tz` (an aware datetime)."""
    return datetime.fromtimestamp(unix, tz)


def ambiguous(moment: datetime) -> bool:
    """True when `moment`'s wall-clock reading happens twice in its zone (the autumn fold)."""
    other = moment.replace(fold=1 - moment.fold)
    return other.utcoffset() != moment.utcoffset()


def _offset(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def label(moment: datetime) -> str:
    """The zone label a reading needs: "" unless ambiguous, else " CEST, UTC+02:00"."""
    if not ambiguous(moment):
        return ""
    return f" {moment.tzname()}, {_offset(moment)}"


def clock(unix: float, tz: tzinfo, *, date: bool = False, french: bool = False) -> str:
    """"15:00" (or "2024-08-05 15:00", French "05/08/2024 15:00"), labelled if ambiguous."""
    moment = local(unix, tz)
    text = moment.strftime(("%d/%m/%Y %H:%M" if french else "%Y-%m-%d %H:%M") if date
                           else "%H:%M")
    return text + label(moment)


def stamp(unix: float, tz: tzinfo) -> str:
    """A full local reading for screens: "2024-10-27 02:30:05 CET, UTC+01:00" when
    ambiguous, "2024-08-05 15:00:05" otherwise."""
    moment = local(unix, tz)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + label(moment)


def utc(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)
