"""`gate hw`: the turnstile's hardware from the command line (`gate hw test`).

Exit codes: 0 every step passed, 1 a step failed or the pins could not be opened, 2 usage
or configuration error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from portique.base.cli import EXIT_OK, EXIT_REFUSED
from portique.base.errors import UsageError
from portique.runtime.config import load as load_config

EXIT_CHECK_FAILED = EXIT_REFUSED


def register(subparsers: Any) -> None:
    hw = subparsers.add_parser("hw", help="the turnstile's hardware: wiring test")
    hsub = hw.add_subparsers(metavar="ACTION", required=True)
    test = hsub.add_parser(
        "test", help="walk through each output and read each input, with prompts "
        "(exit 0 all passed, 1 a check failed, 2 usage or config error)")
    test.add_argument("--config", required=True, type=Path,
                      help="gate config with a [hardware] table")
    test.add_argument("--yes", action="store_true",
                      help="answer yes to every question and wait for no Enter; every step "
                      "still runs (outputs driven, inputs watched for --wait seconds)")
    test.add_argument("--hold", type=_seconds, default=1.0,
                      help="seconds each output stays on (default 1)")
    test.add_argument("--wait", type=_seconds, default=15.0,
                      help="seconds to watch each input for the technician (default 15)")
    test.set_defaults(handler=_hw_test)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {value!r}") from None
    if not 0 <= seconds <= 600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 600 seconds, got {value}")
    return seconds


def _hw_test(args: argparse.Namespace) -> int:
    from portique.hardware.config import PinFactoryName
    from portique.hardware.errors import HardwareError
    from portique.hardware.pins import open_pin_factory
    from portique.hardware.selftest import Console, run_walk

    config = load_config(args.config)
    if config.hardware is None:
        raise UsageError(f"{args.config}: no [hardware] table, so no turnstile to test")
    console = Console(stdin=sys.stdin, stdout=sys.stdout, assume_yes=args.yes)
    try:
        factory = open_pin_factory(config.hardware.pin_factory)
    except HardwareError as exc:
        print(f"gate: hw test: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    technician = None
    if config.hardware.pin_factory is PinFactoryName.MOCK:
        from portique.devtools.simulation import SimulatedTechnician

        # simulated pins: nothing is wired, so a simulated turnstile and technician move
        # the inputs; the walk itself runs as on a real gate
        technician = SimulatedTechnician(config.hardware, factory)
        technician.prepare()
        console.say("simulated turnstile (pin_factory = \"mock\"): the relay feedback "
                    "follows the relay, the fire loop is closed, a simulated technician "
                    "walks through and opens the loop when asked; nothing real is tested")
    try:
        results = run_walk(config.hardware, factory, console, hold_s=args.hold,
                           watch_s=args.wait, technician=technician)
    except HardwareError as exc:
        print(f"gate: hw test: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    finally:
        if technician is not None:
            technician.close()
        factory.close()
    failed = [r.step for r in results if not r.ok]
    console.say(f"{len(results) - len(failed)} of {len(results)} steps passed"
                + (f"; failed: {', '.join(failed)}" if failed else ""))
    return EXIT_CHECK_FAILED if failed else EXIT_OK
