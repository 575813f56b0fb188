"""`gate supervisor set|remove|list`: the supervisors' PINs file (docs/steward.md)."""

from __future__ import annotations

import argparse
import pwd
import stat
import sys
from pathlib import Path
from typing import Any

from portique.runtime.supervisors import (
    CREDENTIAL,
    DEFAULT_FILE,
    GATE_USER,
    SupervisorError,
    load,
    remove,
    set_pin,
    valid_supervisor_id,
)


def register(sub: Any) -> None:
    sup = sub.add_parser("supervisor", help="supervisors' PINs for overriding refused "
                         "manual admits (docs/steward.md)")
    ssub = sup.add_subparsers(metavar="ACTION", required=True)
    for name, help_text in (("set", "add a supervisor or replace their PIN (read from a "
                             "prompt, or one line on standard input; never an argument)"),
                            ("remove", "remove a supervisor"),
                            ("list", "the supervisors in the file (ids only)")):
        action = ssub.add_parser(name, help=help_text)
        if name != "list":
            action.add_argument("supervisor", metavar="ID",
                                help="supervisor id, 1-32 of A-Z a-z 0-9 . _ -")
        action.add_argument("--file", type=Path, help="the supervisors file (default: "
                            "[steward] supervisors of --config, else "
                            f"{DEFAULT_FILE})")
        action.add_argument("--config", type=Path, help="the gate's config")
        action.set_defaults(handler={"set": _cli_set, "remove": _cli_remove,
                                     "list": _cli_list}[name])


def _file(args: argparse.Namespace) -> Path:
    if args.file is not None:
        return Path(args.file)
    if args.config is not None:
        from portique.runtime.config import load as load_config

        return load_config(args.config).steward.supervisors
    return DEFAULT_FILE


def _read_pin(supervisor: str) -> str:
    if sys.stdin.isatty():
        import getpass

        pin = getpass.getpass(f"PIN for supervisor {supervisor} (6-12 digits): ")
        if getpass.getpass("The same PIN again: ") != pin:
            raise SupervisorError("the two PINs differ: nothing changed")
        return pin
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def _cli_set(args: argparse.Namespace) -> int:
    path = _file(args)
    if not valid_supervisor_id(args.supervisor):
        raise SupervisorError(f"supervisor id {args.supervisor[:40]!r}: 1-32 of "
                              "A-Z a-z 0-9 . _ -")
    replaced = set_pin(path, args.supervisor, _read_pin(args.supervisor))
    print(f"supervisor {args.supervisor}: PIN {'replaced' if replaced else 'set'} in {path}")
    print(how_the_gate_reads(path))
    return 0


def _cli_remove(args: argparse.Namespace) -> int:
    path = _file(args)
    remove(path, args.supervisor)
    print(f"supervisor {args.supervisor}: removed from {path}")
    print(how_the_gate_reads(path))
    return 0


def how_the_gate_reads(path: Path) -> str:
    """What the operator needs to know after a change: who may read the file, and when the
    gate sees the change."""
    st = path.stat()
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = f"uid {st.st_uid}"
    return (f"{path}: mode {stat.S_IMODE(st.st_mode):04o}, owner {owner}, readable by its "
            "owner only. gate.service hands the gate a copy made when it starts "
            f"(LoadCredential={CREDENTIAL}:{path}): run `systemctl restart gate` for the gate "
            f"to use the change. A gate run without it reads the file itself at each "
            f"override, which needs the file to be the gate's (`chown {GATE_USER}: {path}`).")


def _cli_list(args: argparse.Namespace) -> int:
    for supervisor in sorted(load(_file(args))):
        print(supervisor)
    return 0
