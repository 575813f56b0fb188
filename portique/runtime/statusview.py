"""`gate status`: the running gate's health as one screen of text."""

from __future__ import annotations

import zoneinfo
from datetime import tzinfo
from typing import Any

from portique.base import localtime
from portique.base.timeparse import parse_time
from portique.revocation.config import NO_FEED_WARNING

TROUBLE = ("lost", "black", "frozen")


def camera_lines(camera: dict[str, Any]) -> list[str]:
    """The camera's line (in capitals when the gate cannot read tickets), its profile."""
    state, device = camera["state"], camera.get("device", "")
    counts = (f"{camera['fps']} frames/s, {camera['frames']} read, {camera['dropped']} "
              f"dropped")
    if state in TROUBLE:
        retry = camera.get("retry_in_s")
        lines = [f"CAMERA       {state.upper()} {device}: {camera.get('why') or '-'}"
                 f"{f' (next try in {retry:g} s)' if retry is not None else ''}; "
                 "steward-only: manual admit and deny work",
                 f"             since {camera.get('since')}, {counts}, "
                 f"{camera.get('withheld', 0)} withheld"]
    else:
        lines = [f"camera       {state} {device}, {counts}" if device
                 else f"camera       {state}, {counts}"]
    profile = camera.get("profile")
    if profile:
        effective = ", ".join(f"{name}={c['effective']}"
                              for name, c in profile.get("controls", {}).items())
        lines.append(f"camera setup {profile['backend']}: {effective or 'nothing asked'}")
        lines.extend(f"             {note}" for note in profile.get("notes", []))
    return lines


def render_status(s: dict[str, Any]) -> str:
    clock, camera, fire = s["clock"], s["camera"], s["fire_alarm"]
    feed, journal, decisions = s.get("feed"), s["journal"], s["decisions"]
    lines = [
        f"gate {s['gate']}  event {s['event']}  entrance {s['entrance']} ({s['direction']})  "
        f"up {s['uptime_s']:.0f} s",
    ]
    training = s.get("training")
    if isinstance(training, dict) and training.get("active"):
        lines.append("TRAINING     a training gate: simulated pins, no real lock; simulations "
                     "through `gate train simulate`")
    tz = _zone(s.get("timezone"))
    if s.get("now") and tz is not None:
        lines.append(f"venue time   {localtime.stamp(parse_time(s['now']), tz)} "
                     f"({s['timezone']})")
    for session in s.get("sessions") or []:
        opens, closes = session.get("opens"), session.get("closes")
        when = "" if opens is None or tz is None else \
            f", gates {_local(opens, tz)} to {_local(closes, tz)}"
        lines.append(f"session      {session['event']}: {session['state'].replace('_', ' ')}"
                     f"{when}, {session['rules']} rule set(s)")
    lines.append("")
    lines += [
        f"fire alarm   {'ACTIVE' if fire['active'] else 'no'}"
        f"{'  FREE EGRESS LATCHED (steward acknowledge needed)' if fire['latched'] else ''}",
        f"clock        {'trusted' if clock['trusted'] else 'NOT TRUSTED'}: {clock['why']}",
        *camera_lines(camera),
    ]
    if s.get("feed_waived"):
        lines.append(f"FEED         NONE: {NO_FEED_WARNING} (feeds.required = false)")
    elif feed is not None and "error" in feed:
        lines.append(f"FEED         UNREADABLE, tickets go to the steward: {feed['error']}")
    elif feed is None:
        lines.append("feed         none in force (no revocations known)")
    else:
        lines.append(f"feed         sequence {feed['sequence']}, published {feed['published_at']}"
                     f" ({feed['age_s']:.0f} s ago), {feed['revocations']} revocations, "
                     f"{feed['manifest']} tickets in the manifest")
    lines.append(f"decisions    {decisions.get('total', 0)} (admit {decisions.get('admit', 0)}, "
                 f"refuse {decisions.get('refuse', 0)}, steward {decisions.get('steward', 0)})"
                 f", {decisions.get('displayed', 0)} shown again")
    if journal.get("last_error"):
        lines.append(f"JOURNAL      NOT WRITABLE, nobody is admitted: {journal['last_error']}")
    upload = journal.get("upload_error")
    waiting = f"{journal['upload_backlog']} waiting for upload" \
        if journal.get("upload_configured", True) else "no upload configured"
    lines.append(f"journal      {journal['path']}, {journal['failures']} write failures, "
                 f"{waiting}{f' (last upload failed: {upload})' if upload else ''}")
    mesh = s.get("mesh")
    if mesh:
        state = "connected" if mesh["state"] == "connected" else \
            f"ALONE (deciding without the other gates): {mesh['why']}"
        lines.append(f"mesh         venue {mesh['venue']}, {state}, {len(mesh['peers'])} peers, "
                     f"{mesh['outbox']} to publish, {mesh['conflicts']} conflicts")
        for why in mesh.get("outbox_stuck_why", []):
            lines.append(f"MESH OUTBOX  STUCK, the other gates miss admissions: {why}")
        for why in mesh.get("clock_alarm_why", []):
            lines.append(f"MESH CLOCK   CHECK THE CLOCK: {why}")
    ready = s.get("ready")
    if isinstance(ready, dict):
        failing = [c["name"] for c in ready.get("checks", []) if not c.get("ok")]
        lines.append("ready        for doors (`gate ready`: every check passes)" if not failing
                     else f"NOT READY    for doors, failing: {', '.join(failing)} "
                     "(`gate ready` says why)")
    for fault in s.get("faults", []):
        lines.append(f"FAULT        {fault['at']} {fault['kind']}: {fault['message']}")
    for zone in s.get("zones") or []:
        lines.append(f"zone         {zone['zone']}, session {zone['session']}: "
                     f"{zone['inside']} inside ({zone['entries']} entries, "
                     f"{zone['exits']} exits)")
    last = s.get("last_decision")
    if last:
        ticket = (last.get("ticket") or {}).get("ticket_id", "-")
        at = last["at"] if tz is None else localtime.stamp(parse_time(last["at"]), tz)
        lines.append(f"last         {at} {last['verdict']} {last['reason']} "
                     f"ticket {ticket}")
    return "\n".join(lines)


def _zone(name: object) -> tzinfo | None:
    try:
        return zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def _local(iso: object, tz: tzinfo) -> str:
    """A UTC time from the status as the venue's clock, labelled if ambiguous."""
    return localtime.clock(parse_time(str(iso)), tz, date=True)
