"""`make demo`'s credential tour runs end to end with the expected verdicts."""

from __future__ import annotations

import subprocess
import sys


def test_demo_tour_prints_each_verdict_and_exits_0() -> None:
    done = subprocess.run([sys.executable, "-m", "gate.demo"], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for label, outcome in [("the live code, 5 s later", "ADMIT   VALID"),
                           ("a screenshot of it, a minute later", "REFUSE  STALE_CODE"),
                           ("with one character changed", "REFUSE  BAD_SIGNATURE"),
                           ("a ticket for another event", "REFUSE  WRONG_EVENT"),
                           ("a printed confirmation", "STEWARD PAPER_TICKET")]:
        line = next(line for line in out.splitlines() if label in line)
        assert outcome in line
    # the rotating code really rotates: three different tails
    codes = [line.split("...")[1].rsplit("(", 1)[0] for line in out.splitlines()
             if line.endswith("chars)")]
    assert len(set(codes)) == 3
