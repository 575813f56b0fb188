"""`gate steward` in a real terminal (tmux) of 80x24 against a real gate: the decisions the
gate made before the screen started are in the live list, their sentences whole; F1 shows
every key; a steward types a lookup with a typo and admits the ticket; the screen is read
back with capture-pane."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.steward.conftest import LiveGate

GATE = Path(sys.executable).parent / "gate"

pytestmark = [pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
              pytest.mark.slow]


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True,
                          timeout=10).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, ready: Callable[[str], bool], what: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        text = screen(session)
        if ready(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"never on screen: {what}\n{text}")
        time.sleep(0.1)


def lookup_focused(session: str) -> bool:
    """Whether the lookup field shows the focus: its border is drawn in a colour of its
    own, while a field without the focus has its border in its pane's background (read
    from the pane with its colours, capture-pane -e)."""
    lines = tmux("capture-pane", "-p", "-e", "-t", session).split("\n")
    title = next((n for n, line in enumerate(lines) if "Manual lookup" in line), None)
    if title is None or title + 1 >= len(lines):
        return False
    border = re.search(r"\x1b\[38;5;(\d+)m\x1b\[48;5;\d+m▔+\x1b\[48;5;(\d+)m▎",
                       lines[title + 1])
    return border is not None and border.group(1) != border.group(2)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never on screen: {what}")
        time.sleep(0.1)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_lookup_and_admit_in_a_real_terminal(gate: LiveGate, tmp_path: Path) -> None:
    gate.run_clip()
    session = f"steward-{tmp_path.name}"[:40]
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24",
         f"{GATE} steward --config {gate.config} --steward s-tmux --lang en")
    try:
        # the status's last decision can be on screen before the journal's catch-up
        # brings the earlier one: wait for both rows, then check how they are drawn
        text = wait_for(session, lambda t: "Feed #1" in t and "Manual lookup" in t
                        and "Welcome, please go through." in t
                        and "already admitted" in t, "the main screen with both decisions")
        # made before the screen started: caught up from the journal, each sentence whole
        # (wrapped in its column) within 80 columns
        assert "This ticket was already admitted at gate 1 at 19:08." in flat(text), text
        assert max(len(line) for line in text.splitlines()) <= 80
        tmux("send-keys", "-t", session, "F1")
        text = wait_for(session, lambda t: "Help: every key" in t, "the help")
        assert "Ctrl+Q" in text and "Live decisions: back to the list" in text
        tmux("send-keys", "-t", session, "Escape")
        wait_for(session, lambda t: "Help: every key" not in t, "the help closed")
        # F2 moves the focus to the lookup; keys sent in the same burst as F2 (faster than
        # anyone types) would reach the widget that had the focus before it
        tmux("send-keys", "-t", session, "Tab")
        wait_until(lambda: not lookup_focused(session), "the focus away from the lookup")
        tmux("send-keys", "-t", session, "F2")
        wait_until(lambda: lookup_focused(session), "the lookup field with the focus")
        tmux("send-keys", "-t", session, "chloe martn", "Enter")
        text = wait_for(session, lambda t: "Chloé Martin" in t, "the lookup result")
        assert "similar name" in text and "PAR24-000103" in text
        tmux("send-keys", "-t", session, "Enter")
        text = wait_for(session, lambda t: "State: Not admitted yet." in t, "the ticket")
        assert "Flags: printed" in flat(text)
        tmux("send-keys", "-t", session, "a")
        wait_for(session, lambda t: "Admit PAR24-000103: why?" in t, "the reason dialog")
        tmux("send-keys", "-t", session, "Enter")
        text = wait_for(session, lambda t: "State: ALREADY INSIDE" in t, "the admission")
        assert "PAR24-000103 admitted: Printed confirmation checked" in text
        assert "s-tmux" in text and "paper" in text
        tmux("send-keys", "-t", session, "C-q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True,
                       check=False)
    assert gate.rows("SELECT reason, method, steward FROM decisions "
                     "WHERE ticket_id = 'PAR24-000103'") == [("MANUAL_ADMIT", "paper", "s-tmux")]
