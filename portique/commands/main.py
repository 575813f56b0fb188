"""The `gate` command: stable, scriptable subcommands (human output, or --json).

Exit codes: 0 success (for `check`: admit), 1 refused or handed to a steward, 2 usage or
configuration error. Each command group is a module of this package with a
``register(subparsers)`` function; this module puts them together and turns every
project error into one ``gate: error: ...`` line and exit 2.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from portique import keyfiles
from portique.base.cli import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, emit, time_arg
from portique.base.errors import ConfigError, GateError, UsageError
from portique.base.timeparse import format_time
from portique.commands import (
    decode,
    feed,
    hw,
    journal,
    mesh,
    platform,
    ready,
    setup,
    steward,
    supervisor,
    train,
    venue,
    wallet,
)
from portique.commands.common import (
    TICKET_FORMAT,
    ask_gate,
    setup_logging,
    ticket_document,
)
from portique.commands.common import entrances_arg as _entrances_arg
from portique.runtime.config import Config, load_for_run
from portique.runtime.config import load as load_config
from portique.ticket import credential
from portique.ticket.credential import Flag, TicketFields
from portique.ticket.decision import Decision, GateProfile, Now, Policy, decide
from portique.ticket.reasons import Lang, Verdict
from portique.ticket.trust import KeyRole
from portique.ticket.views import MemoryAdmissions, NoRevocations, RevocationView

Handler = Callable[[argparse.Namespace], int]



def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except GateError as exc:
        for line in str(exc).splitlines() or [""]:  # a config error: one line per problem
            print(f"gate: error: {line}", file=sys.stderr)
        if getattr(args, "json", False):  # a script reads the failure too
            failure: dict[str, object] = {"ok": False, "error": str(exc),
                                          "error_type": type(exc).__name__}
            if handler is _config_check:
                failure.update(file=str(args.file), valid=False)
            print(json.dumps(failure, ensure_ascii=False, sort_keys=True))
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gate", description="Portique turnstile gate: tickets, checks and the gate itself."
    )
    sub = parser.add_subparsers(metavar="COMMAND")
    _register_keys(sub)
    _register_ticket(sub)
    _register_check(sub)
    _register_config(sub)
    _register_run(sub)
    for group in (feed, hw, decode, steward, mesh, supervisor, ready, journal, platform,
                  wallet, train, venue, setup):
        group.register(sub)
    return parser


# --- keys -----------------------------------------------------------------------------

def _register_keys(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list and withdraw Ed25519 keys")
    ksub = keys.add_subparsers(metavar="ACTION", required=True)

    new = ksub.add_parser("new", help="write a key pair: KID.key (mode 0600) and KID.pub")
    new.add_argument("--kid", required=True, help="key id, 1-16 of A-Z a-z 0-9 . _ -")
    new.add_argument("--out", required=True, type=Path, help="folder to write into")
    new.add_argument("--role", choices=[r.value for r in KeyRole], default="issuer")
    new.add_argument("--events", help="comma-separated events this key may sign for "
                     "(default: any)")
    new.add_argument("--valid-from", type=time_arg, help="ISO-8601 or Unix seconds")
    new.add_argument("--valid-until", type=time_arg, help="ISO-8601 or Unix seconds")
    new.add_argument("--json", action="store_true", help="machine-readable output")
    new.set_defaults(handler=_keys_new)

    withdraw = ksub.add_parser("withdraw", help="mark a key withdrawn (retired, compromised)")
    withdraw.add_argument("--kid", required=True)
    withdraw.add_argument("--keys", required=True, type=Path, help="key folder")
    withdraw.add_argument("--json", action="store_true")
    withdraw.set_defaults(handler=_keys_withdraw)

    listing = ksub.add_parser("list", help="list the public keys of a folder")
    listing.add_argument("--keys", required=True, type=Path, help="key folder")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_keys_list)


def _keys_new(args: argparse.Namespace) -> int:
    events = None if args.events is None else [e for e in args.events.split(",") if e]
    pair = keyfiles.new_key_pair(args.out, args.kid, role=KeyRole(args.role),
                                 valid_from=args.valid_from, valid_until=args.valid_until,
                                 events=events)
    emit(args, f"wrote {pair.private_path} (private, mode 0600) and {pair.public_path}",
         {"kid": pair.kid, "private": str(pair.private_path), "public": str(pair.public_path)})
    return EXIT_OK


def _keys_withdraw(args: argparse.Namespace) -> int:
    key = keyfiles.withdraw(args.keys, args.kid)
    emit(args, f"key {key.kid} withdrawn: codes it signed are now refused",
         keyfiles.public_descriptor(key))
    return EXIT_OK


def _keys_list(args: argparse.Namespace) -> int:
    store = keyfiles.load_trust_dir(args.keys, role=None)
    rows = [keyfiles.public_descriptor(k) for k in store.keys.values()]
    if getattr(args, "json", False):
        print(json.dumps(rows, sort_keys=True))
    else:
        for r in rows:
            state = "WITHDRAWN" if r["withdrawn"] else "ok"
            events = ",".join(r["events"]) if r["events"] else "any event"
            print(f"{r['kid']:<16} {r['role']:<7} {state:<9} {events} "
                  f"[{r['valid_from'] or '-'} .. {r['valid_until'] or '-'}]")
    return EXIT_OK


# --- tickets --------------------------------------------------------------------------

def _register_ticket(sub: Any) -> None:
    ticket = sub.add_parser("ticket", help="mint tickets and show their codes (reference tool)")
    tsub = ticket.add_subparsers(metavar="ACTION", required=True)

    issue = tsub.add_parser("issue", help="mint a level-1 ticket signed by an issuer key")
    issue.add_argument("--key", required=True, type=Path, help="issuer private key (KID.key)")
    issue.add_argument("--kid", help="issuer key id (default: the key file's name)")
    issue.add_argument("--event", required=True)
    issue.add_argument("--ticket", required=True, help="ticket id")
    issue.add_argument("--generation", type=int, default=0,
                       help="bumped at every transfer or resale (default 0)")
    issue.add_argument("--valid-from", required=True, type=time_arg)
    issue.add_argument("--valid-until", required=True, type=time_arg)
    issue.add_argument("--entrances", required=True, type=_entrances_arg,
                       help="comma-separated entrance numbers, e.g. 1,3")
    issue.add_argument("--category", default="")
    issue.add_argument("--flag", action="append", default=[],
                       choices=["accessible", "reentry"], help="repeatable")
    holder = issue.add_mutually_exclusive_group(required=True)
    holder.add_argument("--device-key", type=Path, help="the holder device's KID.pub")
    holder.add_argument("--paper", action="store_true", help="a printed confirmation")
    issue.add_argument("--out", type=Path, help="ticket file to write (default: stdout)")
    issue.add_argument("--json", action="store_true")
    issue.set_defaults(handler=_ticket_issue)

    code = tsub.add_parser("code", help="the exact QR text a ticket shows at a time")
    code.add_argument("ticket", type=Path, help="ticket file from `gate ticket issue`")
    code.add_argument("--device-key", type=Path, help="the holder device's KID.key "
                      "(not needed for paper)")
    code.add_argument("--at", type=time_arg, help="ISO-8601 or Unix seconds (default: now)")
    code.add_argument("--png", type=Path, help="also render the QR code as a PNG file")
    code.add_argument("--json", action="store_true")
    code.set_defaults(handler=_ticket_code)


def _ticket_issue(args: argparse.Namespace) -> int:
    issuer = keyfiles.load_private_key(args.key)
    flags = Flag(0)
    for name in args.flag:
        flags |= Flag[name.upper()]
    device_key = None
    if args.paper:
        flags |= Flag.PAPER
    else:
        device = keyfiles.load_public_key(args.device_key)
        if device.role is not KeyRole.DEVICE:
            raise UsageError(f"--device-key {args.device_key}: role is {device.role.value}, "
                             "not device")
        device_key = device.public_key
    fields = TicketFields(
        kid=args.kid or args.key.name.removesuffix(".key"),
        event=args.event, ticket_id=args.ticket, generation=args.generation,
        valid_from=int(args.valid_from), valid_until=int(args.valid_until),
        entrances=args.entrances, category=args.category, flags=flags, device_key=device_key,
    )
    document = ticket_document(credential.issue(fields, issuer))
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.out:
        if args.out.exists():
            raise UsageError(f"--out {args.out}: already exists; not overwritten")
        try:
            args.out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
        emit(args, f"wrote ticket {fields.ticket_id} (event {fields.event}, generation "
             f"{fields.generation}) to {args.out}", {"out": str(args.out), **document})
    else:
        sys.stdout.write(text)
    return EXIT_OK


def load_ticket(path: Path) -> bytes:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ticket: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{path}: not a ticket file (JSON expected)") from None
    if not isinstance(document, dict) or document.get("format") != TICKET_FORMAT:
        raise UsageError(f"{path}: not a ticket file (format {TICKET_FORMAT} expected)")
    try:
        level1 = base64.b64decode(document["level1"], validate=True)
        credential.parse_level1(level1)
    except (KeyError, ValueError) as exc:
        raise UsageError(f"{path}: level1 is damaged ({exc})") from None
    return level1


def _ticket_code(args: argparse.Namespace) -> int:
    level1 = load_ticket(args.ticket)
    fields = credential.parse_level1(level1)
    at = time.time() if args.at is None else args.at
    step: int | None = None
    if fields.paper:
        text = credential.paper_code(level1)
    else:
        if args.device_key is None:
            raise UsageError("--device-key is needed for a phone ticket")
        device = keyfiles.load_private_key(args.device_key)
        if device.public_key().public_bytes_raw() != fields.device_key:
            raise UsageError(f"--device-key {args.device_key}: not the key this ticket "
                             "was issued to")
        step = credential.step_at(at)
        text = credential.dynamic_code(level1, device, step)
    if args.png:
        import segno

        try:
            segno.make(text, error="m").save(str(args.png), scale=4, border=4)
        except OSError as exc:
            raise UsageError(f"--png {args.png}: cannot write ({exc.strerror or exc})") from None
    emit(args, text, {"code": text, "step": step, "at": format_time(at),
                      "png": None if args.png is None else str(args.png)})
    return EXIT_OK


# --- check ----------------------------------------------------------------------------

def _register_check(sub: Any) -> None:
    check = sub.add_parser("check", help="decide on one code as a gate would "
                           "(exit 0 admit, 1 refuse or steward, 2 error)")
    check.add_argument("code", help="the code text, or - to read it from standard input")
    check.add_argument("--at", type=time_arg, help="ISO-8601 or Unix seconds (default: now)")
    check.add_argument("--config", type=Path, help="gate config (profile, policy, keys)")
    check.add_argument("--keys", type=Path, help="trusted key folder (overrides the config)")
    check.add_argument("--event", help="the gate's event (overrides the config)")
    check.add_argument("--entrance", type=int, help="the gate's entrance (overrides the config)")
    check.add_argument("--gate", default=None, help="the gate's id (overrides the config)")
    check.add_argument("--timezone", default=None, help="the venue's IANA time zone for the "
                       "times in sentences (default: the config's gate.timezone, else "
                       "Europe/Paris)")
    check.add_argument("--clock-untrusted", action="store_true",
                       help="decide as a gate whose clock is not synchronised")
    check.add_argument("--lang", choices=[lang.value for lang in Lang], default=None,
                       help="language of the sentence in human output (default: both)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=_check)


def _check_setup(args: argparse.Namespace) -> tuple[GateProfile, Policy, Path, Config | None]:
    if args.event is not None:
        try:
            credential.check_event(args.event)
        except GateError as exc:
            raise UsageError(f"--event: {exc}") from None
    config = load_config(args.config) if args.config else None
    if config is not None:
        profile, policy, keys_dir = config.profile(), config.policy_record(), \
            config.keys.trust_dir
        if args.event or args.entrance or args.gate:
            profile = dataclasses.replace(
                profile, gate_id=args.gate or profile.gate_id,
                event=args.event or profile.event, entrance=args.entrance or profile.entrance,
                # --event: a gate serving that session alone, always open
                sessions=() if args.event else profile.sessions)
        keys_dir = args.keys or keys_dir
    else:
        missing = [n for n, v in (("--event", args.event), ("--entrance", args.entrance),
                                  ("--keys", args.keys)) if v is None]
        if missing:
            raise UsageError(f"without --config, {' and '.join(missing)} must be given")
        profile = GateProfile(args.gate or "cli", args.event, args.entrance,
                              timezone=_venue_zone(args.timezone or "Europe/Paris"))
        policy, keys_dir = Policy(), args.keys
    if config is not None and args.timezone:
        profile = dataclasses.replace(profile, timezone=_venue_zone(args.timezone))
    return profile, policy, keys_dir, config


def _venue_zone(name: str) -> Any:
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--timezone: unknown time zone {name!r}") from None


def revocation_view(config: Config | None, event: str) -> RevocationView:
    """The revocation view a one-off check for `event` uses: the local feed store when the
    config has one, and then it must hold `event`'s feed (StoreError or UsageError)."""
    if config is None or config.feeds is None:
        return NoRevocations()
    from portique.revocation.store import FeedStore, open_view

    path = config.feeds.store
    if event not in config.events and path.is_file():
        # --event names another event than the one this config's gate syncs: its feed is
        # only there if another gate's sync put it in this store.
        with FeedStore.open(path) as store:
            held = store.status(event) is not None
        if not held:
            raise UsageError(
                f"--event {event}: feeds.store {path} holds no feed of event {event!r} "
                f"(this config syncs {', '.join(config.events)}), so its revocations are "
                "unknown: "
                f"run `gate sync --config FILE` with a config whose gate.event is "
                f"{event!r} (and the same feeds.store) first")
    return open_view(path, event=event)


def decision_json(decision: Decision) -> dict[str, Any]:
    ticket = decision.ticket
    return {
        "verdict": decision.verdict.value,
        "reason": decision.reason.value,
        "sentence": {"en": decision.sentence_en, "fr": decision.sentence_fr},
        "ticket": None if ticket is None else {
            "event": ticket.event, "ticket_id": ticket.ticket_id,
            "generation": ticket.generation},
        "category": None if decision.fields is None else decision.fields.category,
        "at": format_time(decision.at),
        "detail": decision.detail,
    }


def _one_line(text: str) -> str:
    """Standard input without its one line ending (\\n or \\r\\n): anything else is kept, so
    that the strict parser refuses a code with stray blank lines or characters."""
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            return text[: -len(ending)]
    return text


def _check(args: argparse.Namespace) -> int:
    code = _one_line(sys.stdin.read()) if args.code == "-" else args.code
    profile, policy, keys_dir, config = _check_setup(args)
    trust = keyfiles.load_trust_dir(keys_dir)
    now = Now(time.time() if args.at is None else args.at, trusted=not args.clock_untrusted)
    revocations = revocation_view(config, profile.event)
    decision = decide(code, now, trust=trust, revocations=revocations,
                      admissions=MemoryAdmissions({}), profile=profile, policy=policy)
    ticket = decision.ticket
    who = ("" if ticket is None else
           f"  ticket {ticket.ticket_id} generation {ticket.generation} event {ticket.event}")
    langs = [Lang(args.lang)] if args.lang else [Lang.EN, Lang.FR]
    lines = [f"{decision.verdict.value.upper()}  {decision.reason.value}{who}"]
    lines += [f"  {lang.value}: {decision.sentence(lang)}" for lang in langs]
    emit(args, "\n".join(lines), decision_json(decision))
    return EXIT_OK if decision.verdict is Verdict.ADMIT else EXIT_REFUSED


# --- config ---------------------------------------------------------------------------

def _register_config(sub: Any) -> None:
    cfg = sub.add_parser("config", help="check a gate config file, list its keys")
    csub = cfg.add_subparsers(metavar="ACTION", required=True)
    check = csub.add_parser("check", help="validate a config file as `gate run` does: every "
                            "problem, one line each (exit 2 on any)")
    check.add_argument("file", type=Path)
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=_config_check)
    keys = csub.add_parser("keys", help="every config key: its type, default or whether it "
                           "is required, bounds and meaning")
    keys.add_argument("--json", action="store_true")
    keys.set_defaults(handler=_config_keys)


def _config_check(args: argparse.Namespace) -> int:
    from portique.revocation.config import NO_FEED_WARNING

    try:
        config = load_for_run(args.file)  # exactly what `gate run` checks
    except ConfigError as exc:
        if not args.json:
            raise
        for line in str(exc).splitlines() or [""]:
            print(f"gate: error: {line}", file=sys.stderr)
        print(json.dumps({"ok": False, "file": str(args.file), "valid": False,
                          "error": str(exc), "error_type": type(exc).__name__,
                          "errors": list(exc.problems)}, ensure_ascii=False, sort_keys=True))
        return EXIT_USAGE
    trust = keyfiles.load_trust_dir(config.keys.trust_dir)
    g = config.gate
    warning = f"; {NO_FEED_WARNING}" if config.feeds_waived else ""
    emit(args, f"{args.file}: valid (gate {g.id}, event {', '.join(config.events)}, "
         f"entrance {g.entrance}, {len(trust)} issuer key(s){warning})",
         {"file": str(args.file), "valid": True, "gate": g.id, "event": config.event,
          "sessions": list(config.events),
          "entrance": g.entrance, "issuer_keys": len(trust),
          "warnings": [NO_FEED_WARNING] if config.feeds_waived else []})
    return EXIT_OK


def _config_keys(args: argparse.Namespace) -> int:
    from portique.base.configschema import keys
    from portique.runtime.config import Config

    rows = [k for k in keys(Config) if k.key not in ("source", "feeds_waived")]
    width = max(len(k.key) for k in rows)  # the longest key, so the columns line up
    human = "\n".join(
        f"{k.key:<{width}} {k.type}\n{'':<{width}} default: {k.default_text}"
        + (f"; bounds: {k.bounds}" if k.bounds else "") + f"\n{'':<{width}} {k.description}"
        for k in rows)
    emit(args, human, {"keys": [{"key": k.key, "type": k.type, "required": k.required,
                                 "default": k.default, "minimum": k.minimum,
                                 "maximum": k.maximum, "description": k.description}
                                for k in rows]})
    return EXIT_OK


# --- the gate itself -----------------------------------------------------------------

def _register_run(sub: Any) -> None:
    run = sub.add_parser("run", help="run the gate: camera, decisions, turnstile, journal")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument("--replay", type=Path, help="play a recorded clip (folder with clip.json "
                     "or video file) at its recorded clock instead of the camera; exit at "
                     "its end")
    run.add_argument("--fast", action="store_true", help="with --replay: every frame, as "
                     "fast as possible, instead of at recorded pace")
    run.add_argument("--simulate-passage", type=float, metavar="SECONDS",
                     help="mock pins only: a simulated visitor walks through this long after "
                     "each unlock")
    run.add_argument("--stay", action="append", default=[], metavar="TICKET_ID",
                     help="mock pins only: this ticket's simulated holder does not walk "
                     "through (repeatable)")
    run.add_argument("--pin-log", type=Path, help="mock pins only: append every output pin "
                     "change to this file")
    run.add_argument("--print", dest="print_lines", action="store_true",
                     help="print one readable line per decision and a summary")
    run.add_argument("--log-level", default="INFO",
                     choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(handler=_run)

    status = sub.add_parser("status", help="the running gate's health, in one screen")
    status.add_argument("--socket", type=Path, help="control socket (default: from --config, "
                        "else /run/portique/control.sock)")
    status.add_argument("--config", type=Path)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)


def _run(args: argparse.Namespace) -> int:
    from portique.hardware.config import PinFactoryName
    from portique.runtime.lines import summary_lines
    from portique.runtime.wiring import RunOptions, build, install_signal_handlers

    setup_logging(args.log_level)
    config = load_for_run(args.config)
    simulated = config.hardware is not None and \
        config.hardware.pin_factory is PinFactoryName.MOCK
    options: RunOptions
    if simulated:
        from portique.devtools.simulation import SimulatedRun

        options = SimulatedRun(replay=args.replay, fast=args.fast,
                               print_lines=args.print_lines,
                               simulate_passage_s=args.simulate_passage,
                               stays=frozenset(args.stay), pin_log=args.pin_log)
    elif args.pin_log is not None:
        raise ConfigError("--pin-log needs hardware.pin_factory = \"mock\"")
    elif args.simulate_passage is not None or args.stay:
        raise ConfigError("simulated visitors need hardware.pin_factory = \"mock\"")
    else:
        options = RunOptions(replay=args.replay, fast=args.fast, print_lines=args.print_lines)
    app = build(config, options)
    install_signal_handlers(app)
    try:
        app.run()
        summary = summary_lines(app.daemon.counters, app.journal)
    finally:
        app.close()
    if args.print_lines:
        print("\n".join(summary))
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from portique.runtime.statusview import render_status

    status = ask_gate(args, "status")["status"]
    if args.json:
        print(json.dumps(status, ensure_ascii=False, sort_keys=True))
    else:
        print(render_status(status))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
