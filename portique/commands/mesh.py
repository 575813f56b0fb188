"""`gate mesh status`: the venue mesh as this gate sees it (peers, last message, lag,
conflicts), through the running gate's control socket."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    mesh = sub.add_parser("mesh", help="the venue mesh: gates sharing admissions")
    msub = mesh.add_subparsers(metavar="ACTION", required=True)
    status = msub.add_parser("status", help="broker connection, peers seen, last message "
                             "time and lag, conflicts")
    status.add_argument("--socket", type=Path, help="control socket (default: from --config, "
                        "else /run/portique/control.sock)")
    status.add_argument("--config", type=Path)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from portique.commands.common import ask_gate

    answer = ask_gate(args, "mesh")
    if args.json:
        print(json.dumps(answer["mesh"], ensure_ascii=False, sort_keys=True))
    else:
        print(render(answer["mesh"]))
    return 0


def render(m: dict[str, Any]) -> str:
    state = "connected" if m["state"] == "connected" else \
        f"ALONE (deciding without the other gates): {m['why']}"
    lines = [f"venue {m['venue']}  broker {m['broker']}{' (TLS)' if m['tls'] else ''}",
             f"state        {state}, since {m['since']}",
             *([f"brokers      {', '.join(m['brokers'])} (in order; "
                f"{m.get('failovers', 0)} failover(s) since start)"]
               if len(m.get("brokers", ())) > 1 else []),
             f"outbox       {m['outbox']} of this gate's records not yet acknowledged"
             + ("" if m.get("outbox_oldest_s") is None
                else f" (oldest waiting {m['outbox_oldest_s']:.0f} s)"),
             f"received     {m['merged']} records merged, {m['rejected']} messages ignored"
             + (" (" + ", ".join(f"{k} {n}" for k, n in m["rejected_by"].items()) + ")"
                if m.get("rejected_by") else ""),
             ""]
    if m.get("outbox_stuck"):
        stuck = [f"OUTBOX STUCK {why}" for why in m["outbox_stuck_why"]]
        stuck += [f"  set aside: ticket {q['ticket_id']} ({q['event']}, {q['state']}, scan "
                  f"{q['scan_id']}): {q['reason']}" for q in m.get("recent_quarantined", [])]
        at = next(i for i, line in enumerate(lines) if line.startswith("outbox")) + 1
        lines[at:at] = stuck
    if m.get("clock_alarm"):
        at = next(i for i, line in enumerate(lines) if line.startswith("outbox"))
        lines[at:at] = [f"CLOCK ALARM  {why}" for why in m["clock_alarm_why"]]
    if m.get("last_rejection"):
        r = m["last_rejection"]
        lines.insert(lines.index(""), f"ignored      last at {r['at']} on {r['topic']}: "
                     f"{r['reason']}")
    lines.append(f"{'peer':<12} {'last message':<27} {'age':>8} {'lag':>10} {'records':>8}")
    for p in m["peers"]:
        age = "-" if p["age_s"] is None else f"{p['age_s']:.0f} s"
        lag = "-" if p["lag_ms"] is None else f"{p['lag_ms']:.0f} ms"
        lines.append(f"{p['gate']:<12} {p['last_message_at'] or 'never':<27} {age:>8} "
                     f"{lag:>10} {p['records']:>8}")
    lines.append("")
    if m["conflicts"]:
        lines.append(f"CONFLICTS    {m['conflicts']} ticket(s) admitted at two gates:")
        for c in m["recent_conflicts"]:
            lines.append(f"  ticket {c['ticket_id']} ({c['event']}): gate {c['first']['gate']}"
                         f" and gate {c['second']['gate']}")
    else:
        lines.append("conflicts    none")
    return "\n".join(lines)
