"""The `gate sync` and `gate feed ...` subcommands: sync the local store, publish and serve
feeds, show the store's state, look up the manifest, purge personal data."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from portique import keyfiles
from portique.base.cli import EXIT_OK, EXIT_USAGE, emit, time_arg
from portique.base.errors import UsageError
from portique.base.logformat import FieldsFormatter
from portique.base.timeparse import format_time
from portique.revocation.errors import FeedError
from portique.runtime.config import Config
from portique.runtime.config import load as load_config
from portique.ticket.credential import Flag
from portique.ticket.trust import KeyRole

EXIT_SYNC_FAILED = 1


def register(sub: Any) -> None:
    sync = sub.add_parser("sync", help="bring the local feed store up to the newest signed "
                          "feed (exit 0 synced, 1 failed: last good data kept, 2 usage)")
    sync.add_argument("--config", required=True, type=Path, help="gate config with [feeds]")
    sync.add_argument("--watch", action="store_true", help="keep syncing every "
                      "feeds.poll_seconds until stopped (SIGTERM or Ctrl-C)")
    sync.add_argument("--interval", type=float, help="seconds between syncs with --watch "
                      "(overrides feeds.poll_seconds)")
    sync.add_argument("--json", action="store_true", help="machine-readable output")
    sync.set_defaults(handler=_sync)

    feed = sub.add_parser("feed", help="publish, serve and inspect revocation and manifest "
                          "feeds")
    fsub = feed.add_subparsers(metavar="ACTION", required=True)

    publish = fsub.add_parser("publish", help="write or update an event's feed folder "
                              "(reference publisher)")
    publish.add_argument("--event", required=True)
    publish.add_argument("--revocations", required=True, type=Path,
                         help="CSV: ticket_id,min_generation (a number, or cancelled)")
    publish.add_argument("--manifest", required=True, type=Path,
                         help="CSV: ticket_id,generation,order_ref,holder_name,category,"
                         "entrances,flags")
    publish.add_argument("--key", required=True, type=Path, help="feed private key (KID.key)")
    publish.add_argument("--kid", help="feed key id (default: the key file's name)")
    publish.add_argument("--out", required=True, type=Path, help="feed folder to serve")
    publish.add_argument("--ends-at", type=time_arg, help="when the event ends (ISO-8601 or "
                         "Unix seconds): gates purge holder names a while after")
    publish.add_argument("--at", type=time_arg, help="the signed time (default: now)")
    publish.add_argument("--keep-deltas", type=int, default=100,
                         help="deltas the index keeps listing (default 100, at most 1000)")
    publish.add_argument("--max-removal-share", type=float, default=0.05,
                         help="refuse to remove more than this share of the previous "
                         "publication's revocations or manifest entries (default 0.05; "
                         "10 rows are always allowed)")
    publish.add_argument("--allow-mass-removal", action="store_true",
                         help="publish even a removal above --max-removal-share (a "
                         "deliberate mass un-cancellation or a shrunken manifest)")
    publish.add_argument("--json", action="store_true")
    publish.set_defaults(handler=_publish)

    serve = fsub.add_parser("serve", help="serve a feed folder over HTTP (development)")
    serve.add_argument("folder", type=Path)
    serve.add_argument("--port", type=int, default=8088, help="default 8088; 0 picks one")
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine "
                       "only)")
    serve.set_defaults(handler=_serve)

    status = fsub.add_parser("status", help="the store's sequence, age and counts")
    status.add_argument("--config", required=True, type=Path)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)

    lookup = fsub.add_parser("lookup", help="find manifest entries by ticket id, order "
                             "reference or holder name (case and accents ignored)")
    lookup.add_argument("query")
    lookup.add_argument("--config", required=True, type=Path)
    lookup.add_argument("--limit", type=int, default=10)
    lookup.add_argument("--json", action="store_true")
    lookup.set_defaults(handler=_lookup)

    purge = fsub.add_parser("purge", help="erase holder names: those due "
                            "(feeds.purge_after_hours after the event ends), or --now")
    purge.add_argument("--config", required=True, type=Path)
    purge.add_argument("--now", action="store_true", help="erase this gate's event's names "
                       "now, whatever the time")
    purge.add_argument("--json", action="store_true")
    purge.set_defaults(handler=_purge)


def _feeds(path: Path) -> tuple[Config, Any]:
    config = load_config(path)
    if config.feeds is None:
        raise UsageError(f"{path}: no [feeds] section")
    return config, config.feeds


def _sync(args: argparse.Namespace) -> int:
    from portique.revocation.store import FeedStore
    from portique.revocation.sync import FeedClient, SyncResult, watch

    config, feeds = _feeds(args.config)
    trust = keyfiles.load_trust_dir(feeds.trust_dir or config.keys.trust_dir, role=None)
    if not any(k.role is KeyRole.FEED for k in trust.keys.values()):
        raise UsageError(f"{feeds.trust_dir or config.keys.trust_dir}: no feed key "
                         "(role feed) found")
    _log_to_stderr()
    with contextlib.ExitStack() as stores:
        # One client (and one store connection: a client is not thread-safe) per session
        # this gate serves: the next session's feed is kept up to date before its gates
        # open, so the switch needs neither a restart nor a sync.
        clients = [FeedClient(stores.enter_context(FeedStore.open(feeds.store)), event=event,
                              trust=trust, settings=feeds.sync_settings())
                   for event in config.events]

        def report(result: SyncResult) -> None:
            s = result.status
            emit(args, f"event {result.event}: {result.outcome.value}, sequence "
                 f"{result.from_sequence or '-'} -> {result.to_sequence}, published "
                 f"{format_time(result.published_at)}, {s.revocations} revocations, "
                 f"{s.manifest} manifest entries",
                 {"event": result.event, "outcome": result.outcome.value,
                  "from_sequence": result.from_sequence, "sequence": result.to_sequence,
                  "published_at": format_time(result.published_at),
                  "downloaded_bytes": result.downloaded_bytes, "files": list(result.files),
                  "revocations": s.revocations, "manifest": s.manifest})

        def failed_for(event: str) -> Callable[[FeedError], None]:
            def failed(exc: FeedError) -> None:
                emit(args, f"gate: sync of event {event} failed ({type(exc).__name__}): {exc}; "
                     "last good data kept", {"event": event, "error": type(exc).__name__,
                                             "cause": str(exc)})
            return failed

        if not args.watch:
            status = EXIT_OK
            for client in clients:  # every session, even after one failed
                try:
                    report(client.sync())
                except FeedError as exc:
                    failed_for(client.event)(exc)
                    status = EXIT_SYNC_FAILED
            return status
        interval = args.interval if args.interval is not None else feeds.poll_seconds
        if interval <= 0:
            raise UsageError("--interval must be more than 0 seconds")
        stop = threading.Event()
        stopped_by: list[str] = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # Runs between two reads of a download at most: the sync under way is cut
            # (nothing applied, the transaction of an apply already running completes or
            # rolls back) and the loop ends.
            stopped_by.append(signal.Signals(signum).name)
            stop.set()
            for client in clients:
                client.cancel()

        signal.signal(signal.SIGTERM, on_signal)
        others = [threading.Thread(target=watch, args=(client,), name=f"sync-{client.event}",
                                   kwargs={"interval": interval, "stop": stop,
                                           "on_result": report,
                                           "on_error": failed_for(client.event)},
                                   daemon=True) for client in clients[1:]]
        for thread in others:
            thread.start()
        with contextlib.suppress(KeyboardInterrupt):
            watch(clients[0], interval=interval, stop=stop, on_result=report,
                  on_error=failed_for(clients[0].event))
        stop.set()
        for client in clients[1:]:
            client.cancel()
        for thread in others:
            thread.join(timeout=10)
        cause = stopped_by[0] if stopped_by else "interrupted"
        events = ", ".join(config.events)
        logging.getLogger("portique.revocation.sync").info(
            "feed sync watch stopped: events=%s signal=%s", events, cause)
        emit(args, f"gate: sync --watch of event {events} stopped ({cause}); "
             "last good data kept", {"event": config.event, "stopped": cause,
                                     **({"events": list(config.events)}
                                        if len(config.events) > 1 else {})})
    return EXIT_OK


def _publish(args: argparse.Namespace) -> int:
    from portique.revocation.publish import (
        FeedState,
        publish,
        read_manifest_csv,
        read_revocations_csv,
    )

    key = keyfiles.load_private_key(args.key)
    kid = keyfiles.check_kid(args.kid or args.key.name.removesuffix(".key"))
    public = args.key.with_suffix(".pub")
    if public.exists():
        described = keyfiles.load_public_key(public)
        if described.role is not KeyRole.FEED:
            raise UsageError(f"--key {args.key}: role {described.role.value}, not feed; "
                             "feeds are signed with a feed key (gate keys new --role feed)")
    if not 0 <= args.keep_deltas <= 1000:
        raise UsageError(f"--keep-deltas must be 0-1000, got {args.keep_deltas}")
    if not 0 <= args.max_removal_share <= 1:
        raise UsageError(f"--max-removal-share must be 0-1, got {args.max_removal_share:g}")
    state = FeedState(read_revocations_csv(args.revocations), read_manifest_csv(args.manifest))
    now = int(time.time() if args.at is None else args.at)
    result = publish(out_dir=args.out, event=args.event, state=state, key=key, kid=kid,
                     now=now, ends_at=None if args.ends_at is None else int(args.ends_at),
                     keep_deltas=args.keep_deltas, max_removal_share=args.max_removal_share,
                     allow_mass_removal=args.allow_mass_removal)
    what = ("first snapshot" if result.previous is None else
            f"delta {result.delta.name}" if result.delta is not None else
            "no change: index re-signed")
    emit(args, f"published {result.event} sequence {result.sequence} ({what}) in "
         f"{result.folder}: {len(state.revocations)} revocations, {len(state.manifest)} "
         "manifest entries",
         {"event": result.event, "sequence": result.sequence, "previous": result.previous,
          "published_at": format_time(result.published_at), "folder": str(result.folder),
          "snapshot": result.snapshot.name,
          "delta": None if result.delta is None else result.delta.name,
          "revocations": len(state.revocations), "manifest": len(state.manifest)})
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from portique.revocation.serve import make_server

    if not args.folder.is_dir():
        raise UsageError(f"{args.folder}: no such folder")
    _log_to_stderr()
    server = make_server(args.folder, host=args.host, port=args.port)
    host, port = server.server_address[:2]
    print(f"serving {args.folder} on http://{host!s}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from portique.revocation.store import FeedStore

    config, feeds = _feeds(args.config)
    with FeedStore.open(feeds.store) as store:
        status = store.status(config.event)
    if status is None:
        emit(args, f"event {config.event}: no feed yet in {feeds.store}",
             {"event": config.event, "sequence": None})
        return EXIT_SYNC_FAILED
    now = time.time()
    emit(args, f"event {status.event}: sequence {status.sequence}, published "
         f"{format_time(status.published_at)} ({status.age(now):.0f} s ago), fetched "
         f"{format_time(status.fetched_at)}, {status.revocations} revocations, "
         f"{status.manifest} manifest entries, key {status.kid}"
         + ("" if status.purged_at is None else
            f", holder names purged {format_time(status.purged_at)}"),
         {"event": status.event, "sequence": status.sequence,
          "published_at": format_time(status.published_at), "age_seconds": status.age(now),
          "fetched_at": format_time(status.fetched_at), "revocations": status.revocations,
          "manifest": status.manifest, "kid": status.kid,
          "ends_at": None if status.ends_at is None else format_time(status.ends_at),
          "purged_at": None if status.purged_at is None else format_time(status.purged_at)})
    return EXIT_OK


def _lookup(args: argparse.Namespace) -> int:
    """The steward screen's own lookup (revocation/lookup.py: exact, then prefix, then
    near names despite a typo), on the local store, with cancelled tickets marked."""
    from portique.revocation import lookup
    from portique.revocation.store import FeedStore

    config, feeds = _feeds(args.config)
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    with FeedStore.open(feeds.store) as store:
        found = lookup.answer(store, config.event, args.query, limit=args.limit)
    rows: list[dict[str, Any]] = [{
        "match": c["match"], "score": round(float(c["score"]), 3),
        "ticket_id": c["ticket_id"], "generation": c["generation"],
        "order_ref": c["order_ref"], "holder_name": c["holder"], "category": c["category"],
        "entrances": c["entrances"], "cancelled": c["cancelled"],
        "flags": sorted(f.name.lower() for f in Flag if f in Flag(c["flags"]) and f.name)}
        for c in found.candidates]
    human = "\n".join(f"{r['ticket_id']:<16} gen {r['generation']:<3} {r['order_ref']:<14} "
                      f"{r['holder_name'] or '(purged)'}  [{r['category']}] entrances "
                      f"{','.join(map(str, r['entrances']))} ({r['match']}"
                      + ("" if r["match"] != "near" else f" {r['score']:.2f}") + ")"
                      + ("  CANCELLED" if r["cancelled"] else "") for r in rows)
    if found.truncated:
        human += "\n(the lookup stopped at its time budget: there may be more)"
    emit(args, human or f"no manifest entry matches {args.query!r}",
         {"matches": rows, "truncated": found.truncated})
    return EXIT_OK if rows else EXIT_SYNC_FAILED


def _purge(args: argparse.Namespace) -> int:
    from portique.revocation.store import FeedStore

    config, feeds = _feeds(args.config)
    now = time.time()
    with FeedStore.open(feeds.store) as store:
        if args.now:
            if store.status(config.event) is None:
                raise UsageError(f"no feed of event {config.event} in {feeds.store}")
            results: tuple[Any, ...] = (store.purge_personal_data(config.event, now=now),)
        else:
            results = store.purge_due(now=now, after_seconds=feeds.purge_after_hours * 3600)
    emit(args, "\n".join(f"event {r.event}: {r.names} holder names erased"
                         + ("" if r.wal_truncated else " (the WAL could not be truncated: "
                            "copies may remain in it until the next checkpoint)")
                         for r in results) or "nothing due for purge",
         {"purged": [{"event": r.event, "names": r.names, "wal_truncated": r.wal_truncated}
                     for r in results]})
    return EXIT_OK


def _log_to_stderr() -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(FieldsFormatter())
        root.addHandler(handler)
        root.setLevel(logging.INFO)


__all__ = ["EXIT_SYNC_FAILED", "EXIT_USAGE", "register"]
