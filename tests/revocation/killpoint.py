"""Testing only: run the `gate` command with the process killed (SIGKILL) at one apply step.

    python -m tests.revocation.killpoint STEP gate-arguments...

The feed store calls its test hook at each apply step (revocation.store.HOOK_POINTS);
production code never sets that hook, and nothing outside this module (no environment
variable, no configuration) can. Importing this module alone changes nothing either: only
running it as the main program installs the hook, in its own process.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable

from portique.revocation import store

KILLED_AT = "test hook: killing the process at apply step"


def kill_at(step: str) -> Callable[[str], None]:
    if step not in store.HOOK_POINTS:
        raise SystemExit(f"killpoint: unknown step {step!r}, one of {store.HOOK_POINTS}")

    def hook(point: str) -> None:
        if point == step:
            print(f"{KILLED_AT} {point!r}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)  # SIGKILL is delivered asynchronously

    return hook


def main(argv: list[str]) -> int:
    from portique.commands.main import main as gate_main

    if not argv:
        raise SystemExit("usage: python -m tests.revocation.killpoint STEP gate-arguments...")
    store._test_hook = kill_at(argv[0])
    return gate_main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
