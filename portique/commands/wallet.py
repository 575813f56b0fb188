"""`gate wallet mint` and `gate wallet serve`: rehearsal tickets with their feed, and the
page a phone opens to hold one and show its live code (docs/wallet.md)."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from portique.base.cli import EXIT_OK, emit, time_arg
from portique.base.errors import UsageError


def register(sub: Any) -> None:
    from portique.commands.common import entrances_arg

    wallet = sub.add_parser("wallet", help="rehearsal with real phones: TEST tickets and the "
                            "page that shows their live code")
    wsub = wallet.add_subparsers(metavar="ACTION", required=True)
    mint = wsub.add_parser("mint", help="a batch of rehearsal tickets for a session, their "
                           "device keys, wallets and signed feed")
    mint.add_argument("--issuer-key", required=True, type=Path, help="issuer KID.key")
    mint.add_argument("--feed-key", required=True, type=Path, help="feed KID.key")
    mint.add_argument("--event", required=True, help="the session's event id")
    mint.add_argument("--count", type=int, default=20)
    mint.add_argument("--prefix", default="TEST-", help="ticket ids are PREFIX + a number")
    mint.add_argument("--valid-from", required=True, type=time_arg)
    mint.add_argument("--valid-until", required=True, type=time_arg)
    mint.add_argument("--entrances", required=True, type=entrances_arg)
    mint.add_argument("--out", required=True, type=Path, help="the batch's folder")
    mint.add_argument("--json", action="store_true")
    mint.set_defaults(handler=_mint)
    serve = wsub.add_parser("serve", help="serve the batch's wallet pages on the test network")
    serve.add_argument("folder", type=Path, help="a folder made by `gate wallet mint`")
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1; the test "
                       "network's address for phones (with --self-signed or --tls-cert)")
    serve.add_argument("--port", type=int, default=8443, help="default 8443; 0: any free")
    serve.add_argument("--self-signed", metavar="NAME", action="append", default=[],
                       help="serve HTTPS with a self-signed certificate (made once in "
                       "FOLDER/tls, then reused) for this host name or address "
                       "(repeatable): phones give WebCrypto only to HTTPS")
    serve.add_argument("--tls-cert", type=Path)
    serve.add_argument("--tls-key", type=Path)
    serve.set_defaults(handler=_serve)


def _mint(args: argparse.Namespace) -> int:
    from portique.commands.common import ticket_document
    from portique.devtools.wallet import mint

    result = mint(args.out, issuer_key=args.issuer_key, feed_key=args.feed_key,
                  event=args.event, count=args.count, valid_from=int(args.valid_from),
                  valid_until=int(args.valid_until), entrances=args.entrances,
                  now=int(time.time()), prefix=args.prefix)
    tickets = args.out / "tickets"
    tickets.mkdir(parents=True, exist_ok=True)
    for t in result.tickets:  # the same ticket files as `gate ticket issue` writes
        (tickets / f"{t.ticket_id}.json").write_text(
            json.dumps(ticket_document(t.level1), indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8")
    emit(args, f"minted {len(result.tickets)} TEST tickets of {args.event} in {args.out} "
         f"(tickets/, devices/, wallet/); feed sequence {result.feed.sequence} in "
         f"{args.out}/feed/ (serve it with `gate feed serve {args.out}/feed`); show them with "
         f"`gate wallet serve {args.out}`",
         {"out": str(args.out), "event": args.event, "feed_sequence": result.feed.sequence,
          "tickets": [t.ticket_id for t in result.tickets]})
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from portique.devtools.wallet import WalletServer, self_signed

    tls: tuple[Path, Path] | None = None
    if args.self_signed and (args.tls_cert or args.tls_key):
        raise UsageError("--self-signed or --tls-cert/--tls-key, not both")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.tls_cert is not None:
        tls = (args.tls_cert, args.tls_key)
    elif args.self_signed:
        tls = self_signed(args.folder / "tls", args.self_signed)
    try:
        server = WalletServer(args.folder, host=args.host, port=args.port, tls=tls)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    print(f"TEST wallets of {len(server.wallets)} rehearsal tickets on {server.url} "
          "(Ctrl-C to stop)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.stop()
    return EXIT_OK
