"""`make demo` runs end to end: the credential tour, then the real daemon on the clips."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_prints_each_verdict_and_a_summary_and_exits_0() -> None:
    done = subprocess.run([sys.executable, "-m", "portique.devtools.demo"],
                          capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    lines = out.splitlines()
    for label, outcome in [("the live code, 5 s later", "ADMIT   VALID"),
                           ("a screenshot of it, a minute later", "REFUSE  STALE_CODE"),
                           ("with one character changed", "REFUSE  BAD_SIGNATURE"),
                           ("a ticket for another event", "REFUSE  WRONG_EVENT"),
                           ("a printed confirmation", "STEWARD PAPER_TICKET")]:
        line = next(line for line in lines if label in line)
        assert outcome in line
    # the rotating code really rotates: three different tails
    codes = [line.split("...")[1].rsplit("(", 1)[0] for line in lines
             if line.endswith("chars)")]
    assert len(set(codes)) == 3
    # part 2: the daemon's own lines, what the turnstile did, and the summary
    assert "SUPERSEDED           ticket PAR24-000106   red light + buzzer" in out
    assert "ALREADY_ADMITTED     ticket PAR24-000108" in out
    assert "nobody passed: admission voided, lock closed" in out
    part2 = out.split("== 2.")[1].split("== 3.")[0]
    assert sum("lock opened" in line for line in part2.splitlines()) == 5
    assert "admissions: 4 passed through, 1 voided (nobody passed)" in out
    # the summary counts every clip's decisions, not the last clip's
    decided = [line for line in part2.splitlines()
               if re.match(r"\d\d:\d\d:\d\d  [A-Z]", line)]  # one line per decision
    summary = part2.split("summary (all ")[1]
    total = int(summary.split("decisions ")[1].split(" ")[0])
    assert total == len(decided) > 5
    # the paths it printed were temporary, and it says so
    assert "temporary folder, removed when it ends" in out
    assert "were temporary and are removed" in out
    # part 3: the same ticket at a second gate of the venue, through the broker
    part3 = out.split("== 3.")[1]
    assert "ALREADY_ADMITTED" in part3 and "gate 1" in part3
    assert "!!" not in out
    assert lines[-1] == "demo finished"
