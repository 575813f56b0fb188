"""`gate train run` and `gate train simulate`: a steward training gate on simulated pins
that runs until stopped, and the events stewards rehearse (docs/steward.md, "Training")."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from portique.base.cli import EXIT_OK

ACTION_NAMES = ("fire-alarm", "fire-restored", "passage", "camera-lost", "camera-back",
                "feed-stale", "feed-fresh", "status")


def register(sub: Any) -> None:
    train = sub.add_parser("train", help="steward training: a gate on simulated pins that "
                           "does not end, and simulated fire alarms, passages, camera "
                           "losses, stale feeds")
    tsub = train.add_subparsers(metavar="ACTION", required=True)
    run = tsub.add_parser("run", help="run a training gate until stopped (mock pins only)")
    run.add_argument("--config", required=True, type=Path, help="a gate config with "
                     "hardware.pin_factory = \"mock\"")
    run.add_argument("--clip", type=Path, help="play this recorded clip in a loop (default: "
                     "an idle camera, no frames)")
    run.add_argument("--gap", type=float, default=3.0, help="seconds between two rounds "
                     "of the clip (default 3)")
    run.add_argument("--round", type=float, default=10.0, dest="round_s", help="each round "
                     "plays this many seconds later on the clip's clock (default 10)")
    run.add_argument("--simulate-passage", type=float, default=1.0, metavar="SECONDS",
                     help="a simulated visitor walks through this long after each unlock "
                     "(default 1)")
    run.add_argument("--print", dest="print_lines", action="store_true")
    run.add_argument("--log-level", default="INFO",
                     choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(handler=_run)
    simulate = tsub.add_parser("simulate", help="simulate one event at a running training "
                               "gate: " + ", ".join(ACTION_NAMES))
    simulate.add_argument("event", choices=ACTION_NAMES)
    simulate.add_argument("--socket", type=Path, help="control socket (default: from "
                          "--config, else /run/portique/control.sock)")
    simulate.add_argument("--config", type=Path)
    simulate.add_argument("--json", action="store_true")
    simulate.set_defaults(handler=_simulate)


def _run(args: argparse.Namespace) -> int:
    from portique.base.errors import ConfigError
    from portique.commands.common import setup_logging
    from portique.devtools.training import TrainingRun
    from portique.hardware.config import PinFactoryName
    from portique.runtime.config import load as load_config
    from portique.runtime.wiring import build, install_signal_handlers

    setup_logging(args.log_level)
    config = load_config(args.config)
    if config.hardware is None or config.hardware.pin_factory is not PinFactoryName.MOCK:
        raise ConfigError("training runs only on simulated pins: set hardware.pin_factory = "
                          "\"mock\" (a training gate never drives a real lock)")
    options = TrainingRun(clip=args.clip, gap_s=args.gap, round_s=args.round_s,
                          print_lines=args.print_lines,
                          simulate_passage_s=args.simulate_passage)
    app = build(config, options)
    install_signal_handlers(app)
    try:
        app.run()
    finally:
        app.close()
    return EXIT_OK


def _simulate(args: argparse.Namespace) -> int:
    from portique.base.errors import UsageError
    from portique.runtime.config import load as load_config
    from portique.runtime.control import ControlClient

    path = args.socket
    if path is None:
        path = load_config(args.config).control.socket if args.config else \
            Path("/run/portique/control.sock")
    answer = ControlClient(path).request("train", action=args.event)
    if not answer.get("ok"):
        raise UsageError(f"the gate answered: {answer.get('error')}")
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, sort_keys=True))
    else:
        t = answer["training"]
        print(f"TRAINING {args.event}: camera {'LOST' if t['camera_lost'] else 'ok'}, fire "
              f"loop {'OPEN' if t['fire_loop_open'] else 'closed'}, feed "
              f"{'STALE' if t['feed_stale'] else 'fresh'}")
    return EXIT_OK
