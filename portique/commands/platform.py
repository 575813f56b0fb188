"""`gate platform receive`: the platform's journal endpoint for development (docs/upload.md):
a real HTTP server storing uploads idempotently in SQLite."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

from portique.base.errors import UsageError


def register(sub: Any) -> None:
    platform = sub.add_parser("platform", help="the platform's side, for development: a "
                              "journal upload receiver")
    psub = platform.add_subparsers(metavar="ACTION", required=True)
    receive = psub.add_parser("receive", help="receive gates' journal uploads (POST "
                              "/journal) and store them by (gate, scan id) in SQLite")
    receive.add_argument("--db", type=Path, required=True, help="the receiver's SQLite file "
                         "(made if missing; uploads already in it are kept)")
    receive.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this "
                         "machine only); the test network's address to reach real gates")
    receive.add_argument("--port", type=int, default=8480, help="default 8480; 0: any free")
    receive.add_argument("--path", default="/journal", help="the endpoint (default /journal)")
    receive.add_argument("--token-file", type=Path, help="a file holding the Bearer token "
                         "gates must send (default: none asked)")
    receive.add_argument("--keys", type=Path, help="folder of the gates' .pub keys (gate "
                         "role): each upload's journal proofs are then checked against the "
                         "checkpoint of the batch before, an inconsistent one refused (409)")
    receive.set_defaults(handler=_receive)
    show = psub.add_parser("records", help="the records a receiver's SQLite file holds")
    show.add_argument("--db", type=Path, required=True)
    show.add_argument("--gate")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_records)


def _receive(args: argparse.Namespace) -> int:
    from portique.devtools.platform import PlatformReceiver

    if not args.path.startswith("/"):
        raise UsageError(f"--path: must start with /, got {args.path!r}")
    token = ""
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"--token-file: {exc}") from None
    gate_keys = None
    if args.keys is not None:
        from portique.commands.journal import _gate_keys

        gate_keys = _gate_keys(args.keys, args)
    try:
        receiver = PlatformReceiver(args.db, host=args.host, port=args.port, path=args.path,
                                    token=token, gate_keys=gate_keys)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port} or open {args.db}: "
                         f"{exc}") from None
    print(f"receiving journal uploads on {receiver.url} (storing in {args.db}; "
          "Ctrl-C to stop)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        receiver.serve_forever()
    receiver.stop()
    return 0


def _records(args: argparse.Namespace) -> int:
    from portique.devtools.platform import ReceiverStore

    if not args.db.is_file():
        raise UsageError(f"--db: {args.db}: no such file")
    store = ReceiverStore(args.db)
    try:
        rows = store.records(args.gate)
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, sort_keys=True))
        return 0
    for r in rows:
        print(f"{r['gate']:<10} {r['scan_id']:<34} {r['verdict']:<8} {r['reason']:<22} "
              f"{r['ticket_id'] or '-':<16} {r['admission_state'] or '-':<8} x{r['received']}")
    print(f"{len(rows)} record(s)")
    return 0
