"""`gate setup`: write a gate's config from a few answers, import its trusted keys.

The answers come from flags, or from questions on a terminal for the ones left out. Every
answer is checked before anything is written (the config by the same schema as `gate run`,
each key file as the gate reads it), so a refusal leaves the files as they were. An
existing config is never replaced without --force, and then the old one is kept beside it
as ``gate.toml.old``. The secret files the service needs (the upload token, the
supervisors' PIN hashes) are created empty when missing, never touched when present.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portique import keyfiles
from portique.base.cli import EXIT_OK, emit
from portique.base.errors import ConfigError, GateError, UsageError
from portique.ticket.trust import KeyRole, TrustedKey

DEFAULT_CONFIG = Path("/etc/portique/gate.toml")
DEFAULT_STATE = Path("/var/lib/portique")
DEFAULT_SOCKET = Path("/run/portique/control.sock")
# The pin table of docs/wiring.md (BCM numbers).
PINS = {"lock": 17, "green": 27, "red": 22, "buzzer": 23, "passage": 24, "fire_loop": 25}


def register(sub: Any) -> None:
    setup = sub.add_parser(
        "setup", help="write this gate's config from a few answers and import its keys "
        "(asks on a terminal for what the flags leave out)")
    setup.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                       help=f"the config to write (default {DEFAULT_CONFIG})")
    setup.add_argument("--gate-id", help="this gate's name, e.g. north-3")
    setup.add_argument("--event", help="the session this gate admits to, as in the tickets")
    setup.add_argument("--entrance", type=int, help="entrance number (1-32)")
    setup.add_argument("--direction", choices=["entry", "exit"], default="entry")
    setup.add_argument("--timezone", default="Europe/Paris", help="the venue's IANA time zone")
    setup.add_argument("--key", action="extend", nargs="+", default=[], type=Path,
                       metavar="FILE",
                       help="a public key (KID.pub) to trust: issuer or feed keys, one or more; "
                       "repeatable")
    setup.add_argument("--trust-dir", type=Path, help="where trusted keys live (default: "
                       "keys/ beside the config)")
    setup.add_argument("--feed-url", help="where the revocation feeds are served "
                       "(<url>/<event>/index.json)")
    setup.add_argument("--no-feed", action="store_true",
                       help="run without a revocation feed ([feeds] required = false): "
                       "resold and cancelled tickets cannot be refused")
    setup.add_argument("--upload-url", help="the platform's journal endpoint (default: no "
                       "upload)")
    setup.add_argument("--state-dir", type=Path, default=DEFAULT_STATE,
                       help=f"journal and feed store (default {DEFAULT_STATE})")
    setup.add_argument("--socket", type=Path, default=DEFAULT_SOCKET,
                       help=f"the control socket (default {DEFAULT_SOCKET})")
    setup.add_argument("--camera", default="/dev/video0", help="V4L2 device (default "
                       "/dev/video0; prefer /dev/v4l/by-id/...)")
    setup.add_argument("--pin-factory", choices=["lgpio", "mock"], default="lgpio",
                       help="lgpio: the real pins (default); mock: simulated pins, for "
                       "tests and demos only")
    setup.add_argument("--on-stop", choices=["fail_safe", "fail_secure"], default="fail_safe",
                       help="what the lock does when the gate stops: match the wiring "
                       "(docs/wiring.md; default fail_safe)")
    setup.add_argument("--lock-active-high", action="store_true",
                       help="the lock relay switches on a high input (default: low, as "
                       "most opto-isolated relay boards)")
    setup.add_argument("--force", action="store_true",
                       help="replace an existing config (kept as CONFIG.old)")
    setup.add_argument("--json", action="store_true")
    setup.set_defaults(handler=run_setup)


@dataclass(frozen=True)
class Answer:
    flag: str
    attr: str
    question: str
    convert: Callable[[str], Any]


def _entrance(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--entrance: a number from 1 to 32, got {text!r}") from None


ANSWERS = (
    Answer("--gate-id", "gate_id", "Gate id (e.g. north-3)", str),
    Answer("--event", "event", "Session this gate admits to (event id, e.g. PAR24-ATH05)", str),
    Answer("--entrance", "entrance", "Entrance number (1-32)", _entrance),
    Answer("--feed-url", "feed_url", "Feed URL (https://...)", str),
)


def _ask_missing(args: argparse.Namespace) -> None:
    """Fill the answers the flags left out from a terminal, or refuse naming them."""
    if args.no_feed and args.feed_url is not None:
        raise UsageError("--no-feed and --feed-url: give one of them")
    missing = [a for a in ANSWERS if getattr(args, a.attr) is None
               and not (a.attr == "feed_url" and args.no_feed)]
    if not missing:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"missing {', '.join(a.flag for a in missing)} (no terminal to ask "
                         "on: give them as flags)")
    for answer in missing:
        text = input(f"{answer.question}: ").strip()
        if not text:
            raise UsageError(f"{answer.flag}: no answer given; nothing written")
        setattr(args, answer.attr, answer.convert(text))


def _read_key(path: Path) -> TrustedKey:
    try:
        head = path.read_bytes()[:64]
    except OSError as exc:
        raise UsageError(f"--key {path}: cannot read ({exc.strerror or exc})") from None
    if b"PRIVATE KEY" in head:
        raise UsageError(f"--key {path}: a private key; a gate holds public keys only "
                         "(the KID.pub beside it)")
    try:
        return keyfiles.load_public_key(path)
    except GateError as exc:
        raise UsageError(f"--key {path}: {exc}") from None


def config_table(args: argparse.Namespace, trust_dir: Path) -> dict[str, Any]:
    state: Path = args.state_dir
    table: dict[str, Any] = {
        "gate": {"id": args.gate_id, "event": args.event, "entrance": args.entrance,
                 "direction": args.direction, "timezone": args.timezone},
        "keys": {"trust_dir": str(trust_dir)},
        "scanner": {"camera": {"device": args.camera}},
        "hardware": {"pin_factory": args.pin_factory, "on_stop": args.on_stop,
                     "lock_active_high": args.lock_active_high, "pins": dict(PINS)},
        "feeds": {"required": False} if args.no_feed else
        {"store": str(state / "feeds.sqlite"), "base_url": args.feed_url},
        "journal": {"path": str(state / "journal.sqlite")},
        "control": {"socket": str(args.socket)},
        "steward": {"supervisors": str(args.config.parent / "supervisors.toml")},
    }
    if args.upload_url is not None:
        table["upload"] = {"url": args.upload_url}
    return table


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # A JSON string is a valid TOML basic string (the same escapes).
    return json.dumps(str(value), ensure_ascii=False)


def render_toml(table: dict[str, Any], *, header: str) -> str:
    lines = [header.rstrip(), ""]

    def section(name: str, body: dict[str, Any]) -> None:
        plain = {k: v for k, v in body.items() if not isinstance(v, dict)}
        if plain or not body:
            lines.append(f"[{name}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in plain.items())
            lines.append("")
        for key, sub in body.items():
            if isinstance(sub, dict):
                section(f"{name}.{key}", sub)

    for name, body in table.items():
        section(name, body)
    return "\n".join(lines)


HEADER = """\
# Portique gate configuration, written by `gate setup`.
# Every key with its meaning: `gate config keys`; the documented example with every key
# is gate.toml.example beside this file (config/gate.toml in the source).
# Check after any edit: gate config check {path}"""


def _write_atomic(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def run_setup(args: argparse.Namespace) -> int:
    from portique.runtime.config import from_dict

    _ask_missing(args)
    config: Path = args.config
    trust_dir: Path = args.trust_dir or config.parent / "keys"
    # 1. Every answer checked before anything is written.
    table = config_table(args, trust_dir)
    try:
        from_dict(table, base_dir=config.parent)
    except ConfigError as exc:
        raise UsageError(f"{exc} (nothing written)") from None
    if config.is_dir():
        raise UsageError(f"--config {config}: is a folder")
    if config.exists() and not args.force:
        raise UsageError(f"{config}: already exists; not overwritten (--force replaces it "
                         f"and keeps the old one as {config.name}.old)")
    keys = [(path, _read_key(path)) for path in args.key]
    imports: list[tuple[TrustedKey, Path, bytes]] = []
    for path, key in keys:
        dest = trust_dir / f"{key.kid}.pub"
        data = path.read_bytes()
        if dest.exists() and dest.read_bytes() != data:
            raise UsageError(f"--key {path}: {dest} already holds another key with id "
                             f"{key.kid}; remove or withdraw it first (nothing written)")
        if any(other.kid == key.kid for other, _, _ in imports):
            raise UsageError(f"--key {path}: key id {key.kid} given twice (nothing written)")
        imports.append((key, dest, data))

    # 2. Write: folders, keys, the config, the empty secret files.
    try:
        config.parent.mkdir(parents=True, exist_ok=True)
        trust_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        for _key, dest, data in imports:
            if not dest.exists():
                _write_atomic(dest, data.decode("utf-8"), 0o644)
        if config.exists():
            os.replace(config, config.with_name(config.name + ".old"))
        _write_atomic(config, render_toml(table, header=HEADER.format(path=config)), 0o644)
        created = _secret_files(config.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or config} "
                         f"({exc.strerror or exc})") from None

    trusted = keyfiles.load_trust_dir(trust_dir, role=None)
    roles = {k.role for k in trusted.keys.values()}
    steps = next_steps(config, trust_dir, roles, created, no_feed=args.no_feed)
    if args.no_feed:
        steps.insert(0, "no revocation feed (--no-feed): resold and cancelled tickets "
                     "cannot be refused; run `gate setup --force --feed-url URL` to add one")
    lines = [f"wrote {config} (gate {args.gate_id}, event {args.event}, entrance "
             f"{args.entrance}, pins {args.pin_factory}, on_stop {args.on_stop})"]
    lines += [f"trusted {key.kid} ({key.role.value}) in {dest}" for key, dest, _ in imports]
    lines += [f"created {path} (empty, mode 0600)" for path in created]
    lines += ["", "Next steps:"] + [f"  {n}. {s}" for n, s in enumerate(steps, 1)]
    emit(args, "\n".join(lines), {
        "config": str(config), "trust_dir": str(trust_dir),
        "imported": [key.kid for key, _, _ in imports],
        "created": [str(p) for p in created], "next_steps": steps})
    return EXIT_OK


def _secret_files(folder: Path) -> list[Path]:
    """The files gate.service loads as credentials: created empty (0600) when missing."""
    created = []
    credentials = folder / "credentials"
    credentials.mkdir(mode=0o700, exist_ok=True)
    for path in (credentials / "upload-token", folder / "supervisors.toml"):
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            created.append(path)
    return created


def next_steps(config: Path, trust_dir: Path, roles: set[KeyRole],
               created: list[Path], *, no_feed: bool = False) -> list[str]:
    steps = []
    if KeyRole.ISSUER not in roles:
        steps.append(f"no issuer key in {trust_dir} yet: the gate refuses to start without "
                     "one; add it with `gate setup --force --key ISSUER.pub ...` or copy "
                     "KID.pub there")
    if KeyRole.FEED not in roles and not no_feed:
        steps.append(f"no feed key in {trust_dir} yet: feeds cannot be checked until the "
                     "platform's feed KID.pub is there")
    token = config.parent / "credentials" / "upload-token"
    if token in created:
        steps.append(f"put the platform's upload token in {token} (empty: no upload)")
    steps += [
        "add supervisors: gate supervisor set ID",
        "list the venue's addresses (platform, broker, DNS) in "
        "/etc/systemd/system/gate.service.d/network.conf (example: "
        "/opt/portique/systemd/gate.service.d/network.conf.example)",
        *([] if no_feed else [f"fetch the feeds once (gate run needs the event's feed): "
                               f"sudo -u portique gate sync --config {config}"]),
        f"check as the service: sudo -u portique gate config check {config}",
        f"walk the wiring: sudo -u portique gate hw test --config {config}",
        "start: systemctl enable --now gate-sync.timer gate",
    ]
    return steps
