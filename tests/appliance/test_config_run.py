"""`gate config check` and `gate run` agree: on every config of a set, valid and invalid,
check accepts exactly the configs run starts, and refuses the others with the very lines
run refuses them with, every problem of the file listed. A gate without a revocation feed
refuses to start unless its config says `[feeds] required = false`, and then says so."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from portique.commands.main import main
from portique.revocation.config import NO_FEED_WARNING
from portique.runtime.config import NO_FEED
from portique.runtime.statusview import render_status

from .conftest import FIXTURES, World, clip, feed_store, gate_table
from .test_durability import _toml


def _write(folder: Path, table: dict[str, Any]) -> Path:
    path = folder / "gate.toml"
    path.write_text(_toml(table), encoding="utf-8")
    return path


def _table(state: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    table = gate_table(state, **sections)
    table["journal"]["path"] = str(state / "journal.sqlite")
    return table


def with_feed(state: Path) -> dict[str, Any]:
    return _table(state, feeds=feed_store(state, {}))


def waived(state: Path) -> dict[str, Any]:
    return _table(state, feeds={"required": False})


def no_feeds(state: Path) -> dict[str, Any]:
    table = _table(state)
    del table["feeds"]
    return table


def waived_with_a_store(state: Path) -> dict[str, Any]:
    return _table(state, feeds={"required": False, "store": str(state / "f.sqlite")})


def many_problems(state: Path) -> dict[str, Any]:
    table = no_feeds(state)
    table["gate"].update(colour="red", entrance="two")
    table["policy"] = {"paper": "sometimes"}
    table["hardware"]["pins"] = {**table["hardware"]["pins"], "lock": 99}
    return table


def no_hardware(state: Path) -> dict[str, Any]:
    table = waived(state)
    del table["hardware"]
    return table


def no_issuer_key(state: Path) -> dict[str, Any]:
    empty = state / "no-keys"
    empty.mkdir(mode=0o755)
    return _table(state, feeds={"required": False}, keys={"trust_dir": str(empty)})


def journal_under_a_file(state: Path) -> dict[str, Any]:
    (state / "plain-file").write_text("not a folder\n")
    table = waived(state)
    table["journal"]["path"] = str(state / "plain-file" / "journal.sqlite")
    return table


def no_feed_store_yet(state: Path) -> dict[str, Any]:
    return _table(state, feeds={"store": str(state / "not-synced.sqlite"),
                                "base_url": "http://127.0.0.1:9/feed"})


def no_mesh_key(state: Path) -> dict[str, Any]:
    table = waived(state)
    table["mesh"] = {"venue": "stade", "key_file": str(state / "no-mesh-key.pem")}
    return table


def mesh_without_this_gate(state: Path) -> dict[str, Any]:
    from portique import keyfiles
    from portique.ticket.trust import KeyRole

    keyfiles.new_key_pair(state / "mesh-keys", "1", role=KeyRole.GATE)
    table = waived(state)
    table["mesh"] = {"venue": "stade", "key_file": str(state / "mesh-keys" / "1.key"),
                     "tls": {"ca_file": str(state / "no-ca.pem")}}
    return table


def no_journal_key(state: Path) -> dict[str, Any]:
    table = waived(state)
    table["journal"]["key_file"] = str(state / "no-journal-key.pem")
    return table


CASES: dict[str, tuple[Callable[[Path], dict[str, Any]], list[str]]] = {
    "with a feed": (with_feed, []),
    "feeds.required = false": (waived, []),
    "no [feeds]": (no_feeds, [NO_FEED]),
    "required = false and a store": (waived_with_a_store, [
        "feeds.required: false says this gate runs without a revocation feed, but "
        "feeds.store configure one", "feeds.base_url: required key is missing"]),
    "many problems": (many_problems, [
        "gate.colour: unknown key", "gate.entrance: must be an integer, got a string",
        "policy.paper: must be one of steward, admit_once, got 'sometimes'",
        "hardware.pins.lock: must be at most 27, got 99", NO_FEED]),
    "no [hardware]": (no_hardware, ["hardware: required to run a gate"]),
    "no issuer key": (no_issuer_key, ["no issuer key"]),
    "journal under a file": (journal_under_a_file, ["journal.path: ", "cannot be a folder"]),
    "no feed store yet": (no_feed_store_yet, [
        "not-synced.sqlite: no feed store yet (run `gate sync` first)"]),
    "no mesh key": (no_mesh_key, ["mesh.key_file: ", "no-mesh-key.pem: cannot read"]),
    "mesh without this gate, no CA file": (mesh_without_this_gate, [
        "mesh.gates: this gate (1) is not listed", "mesh.tls.ca_file: ",
        "no-ca.pem: no such file"]),
    "no journal key": (no_journal_key, [
        "journal.key_file: ", "no-journal-key.pem: cannot read"]),
}


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("gate: error: ")]


@pytest.mark.parametrize("case", list(CASES))
def test_config_check_accepts_exactly_what_gate_run_starts(
        case: str, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    make, expected = CASES[case]
    path = _write(world.state, make(world.state))
    capsys.readouterr()
    checked = main(["config", "check", str(path)])
    check_out, check_err = capsys.readouterr()
    ran = main(["run", "--config", str(path), "--replay", str(clip("empty")), "--fast"])
    _, run_err = capsys.readouterr()
    if not expected:
        assert (checked, ran) == (0, 0), check_err + run_err
        assert check_out.startswith(f"{path}: valid (gate 1, event PAR24-ATH05")
        return
    assert (checked, ran) == (2, 2)
    assert _errors(check_err) == _errors(run_err)  # the same lines, word for word
    lines = _errors(check_err)
    assert len(lines) == len([e for e in expected if not e.startswith(("cannot be", "no-"))])
    assert all(line.startswith(f"gate: error: {path}: ") for line in lines)
    for problem in expected:
        assert any(problem in line for line in lines), (problem, lines)


def test_config_check_lists_every_problem_in_json(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(world.state, many_problems(world.state))
    assert main(["config", "check", str(path), "--json"]) == 2
    answer = json.loads(capsys.readouterr().out)
    assert answer["valid"] is False
    assert answer["errors"] == [f"{path}: {p}" for p in (
        "gate.colour: unknown key (known: allow_reentry, direction, entrance, event, id, "
        "timezone)", "gate.entrance: must be an integer, got a string",
        "policy.paper: must be one of steward, admit_once, got 'sometimes'",
        "hardware.pins.lock: must be at most 27, got 99", NO_FEED)]


def test_a_gate_without_a_feed_on_purpose_says_so_everywhere(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(world.state, waived(world.state))
    assert main(["config", "check", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == [NO_FEED_WARNING]
    world.sections["feeds"] = {"required": False}
    with world.running(_replay()) as app:
        status = app.status()
        assert status["feed_waived"] is True and status["feed"] is None
        assert f"FEED         NONE: {NO_FEED_WARNING} (feeds.required = false)" in \
            render_status(status)
        assert app.metrics.registry.get_sample_value("portique_no_revocation_feed") == 1
        feed_line = next(c for c in status["ready"]["checks"] if c["name"] == "feed")
        assert feed_line["ok"] is True and NO_FEED_WARNING in feed_line["detail"]
    world.sections["feeds"] = feed_store(world.state, {})
    with world.running(_replay()) as app:
        status = app.status()
        assert status["feed_waived"] is False
        assert NO_FEED_WARNING not in render_status(status)
        assert "no upload configured" in render_status(status)  # no backlog to speak of
        assert "waiting for upload" not in render_status(status)
        assert app.metrics.registry.get_sample_value("portique_no_revocation_feed") == 0


def test_the_example_configs_say_what_they_do_about_feeds() -> None:
    from portique.runtime.config import load

    mock = load(FIXTURES.parent.parent / "config" / "hardware-mock.toml")
    assert mock.feeds is None and mock.feeds_waived
    example = load(FIXTURES.parent.parent / "config" / "gate.toml")
    assert example.feeds is not None and example.feeds.required


def _replay() -> Any:
    from portique.devtools.simulation import SimulatedRun

    return SimulatedRun(replay=clip("empty"), fast=True, simulate_passage_s=0.05)
