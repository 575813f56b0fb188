"""README's "Try it by hand", run as written from a checkout: it works, and writes nothing
(no private key above all) inside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_try_it_by_hand_writes_nothing_in_the_checkout(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Try it by hand")[1].split("```sh\n")[1].split("```")[0]
    checkout = tmp_path / "checkout"
    (checkout / ".venv" / "bin").mkdir(parents=True)
    (checkout / ".venv" / "bin" / "gate").symlink_to(Path(sys.executable).parent / "gate")
    done = subprocess.run(["bash", "-e", "-c", block + "\necho \"exit $?\""], cwd=checkout,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    # the last check refuses (a screenshot): exit 1, which ends `bash -e` there
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ADMIT" in done.stdout and "STALE_CODE" in done.stdout
    assert sorted(p.name for p in checkout.iterdir()) == [".venv"]
    written = [p for p in tmp_path.rglob("*.key") if checkout not in p.parents]
    assert written  # the keys went to the temporary folder


def test_json_is_on_every_command_the_readme_says() -> None:
    import argparse

    from portique.commands.main import build_parser

    without: list[str] = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            if not any("--json" in a.option_strings for a in parser._actions):
                without.append(name)
            return
        for sub, child in subs[0].choices.items():
            walk(child, f"{name} {sub}")

    walk(build_parser(), "gate")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    said = readme.split("The commands that run or talk to a person have no `--json`:")[1]
    said = said.split(". Times")[0]
    named = {" ".join(n.split()) for n in __import__("re").findall(r"`(gate [a-z ]+)`", said)}
    assert {n if not n.startswith("gate supervisor") else "gate supervisor"
            for n in without} == named


def test_every_option_of_gate_run_is_documented() -> None:
    from portique.commands.main import build_parser

    parser = build_parser()
    run = next(a for a in parser._actions if hasattr(a, "choices") and a.choices
               and "run" in a.choices).choices["run"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    options = [o for a in run._actions for o in a.option_strings if o.startswith("--")
               and o != "--help"]
    assert {"--simulate-passage", "--stay", "--pin-log"} <= set(options)
    assert [o for o in options if o not in readme] == []
