"""`gate venue status`: every gate of the venue in one table, from its signed heartbeats,
on a gate (through its control socket) or on an operations laptop joined to the broker
read-only (docs/mesh.md, "Heartbeats and the fleet view")."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from portique.base.errors import UsageError


def register(sub: Any) -> None:
    venue = sub.add_parser("venue", help="the venue's gates: the fleet view")
    vsub = venue.add_subparsers(metavar="ACTION", required=True)
    status = vsub.add_parser("status", help="every gate in one table, stale or unready "
                             "gates flagged (exit 1 when one is)")
    status.add_argument("--socket", type=Path, help="a gate's control socket (default: from "
                        "--config, else /run/portique/control.sock)")
    status.add_argument("--config", type=Path, help="a gate's config")
    status.add_argument("--broker", action="append", default=[], metavar="HOST[:PORT]",
                        help="instead of a gate: the venue broker(s), joined read-only "
                        "(repeatable, tried in order)")
    status.add_argument("--venue", help="with --broker: the venue's id")
    status.add_argument("--gates-dir", type=Path, help="with --broker: the gates' gate-role "
                        ".pub files (their heartbeats are checked against them)")
    status.add_argument("--topic-prefix", default="portique/v1")
    status.add_argument("--username", default="")
    status.add_argument("--password-file", type=Path)
    status.add_argument("--ca-file", type=Path, help="with TLS: the broker's CA (PEM)")
    status.add_argument("--wait", type=float, default=5.0, help="with --broker: seconds to "
                        "collect heartbeats (default 5; less when every gate is heard)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from portique.runtime.mesh.heartbeat import render

    if args.broker:
        answer = _from_broker(args)
    else:
        from portique.commands.common import ask_gate

        answer = ask_gate(args, "venue")["venue"]
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, sort_keys=True))
    else:
        print(render(answer["rows"], venue=answer["venue"]))
    return 1 if any(r["flags"] for r in answer["rows"]) else 0


def _from_broker(args: argparse.Namespace) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from portique import keyfiles
    from portique.base.errors import KeyFileError
    from portique.runtime.mesh.config import _split_broker
    from portique.runtime.mesh.watch import watch_fleet
    from portique.ticket.trust import KeyRole

    if not args.venue or args.gates_dir is None:
        raise UsageError("--broker needs --venue and --gates-dir")
    try:
        store = keyfiles.load_trust_dir(args.gates_dir, role=KeyRole.GATE)
    except KeyFileError as exc:
        raise UsageError(f"--gates-dir: {exc}") from None
    peers = {kid: Ed25519PublicKey.from_public_bytes(k.public_key)
             for kid, k in store.keys.items() if not k.withdrawn}
    password = None
    if args.password_file is not None:
        try:
            password = args.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"--password-file: {exc}") from None
    brokers = [_split_broker(b, 1883) for b in args.broker]
    view = watch_fleet(brokers=brokers, venue=args.venue, topic_prefix=args.topic_prefix,
                       peers=peers, wait_s=args.wait, username=args.username,
                       password=password, ca_file=args.ca_file)
    return {"venue": args.venue, "rows": view.rows(time.time())}
