"""`gate setup`: a config from flags that `gate config check` and the gate's own loader
accept; every bad answer refused by name, with nothing written or changed."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from portique import keyfiles
from portique.commands.main import main
from portique.runtime.config import load
from portique.ticket.trust import KeyRole

from .conftest import FIXTURES

ISSUER_PUB = FIXTURES / "keys" / "fixture-issuer.pub"


def setup_args(tmp: Path, *extra: str) -> list[str]:
    return ["setup", "--config", str(tmp / "etc" / "gate.toml"), "--gate-id", "north-3",
            "--event", "PAR24-ATH05", "--entrance", "2",
            "--feed-url", "https://feeds.example.org/portique",
            "--state-dir", str(tmp / "state"), "--socket", str(tmp / "run" / "control.sock"),
            *extra]


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard input is not a terminal unless a test says so."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))


def test_flags_write_a_config_the_gate_loads(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    feed = keyfiles.new_key_pair(tmp_path / "platform", "feed-1", role=KeyRole.FEED)
    code, out, err = run(capsys, setup_args(
        tmp_path, "--key", str(ISSUER_PUB), str(feed.public_path), "--pin-factory", "mock",
        "--upload-url", "https://platform.example.org/journal"))
    assert (code, err) == (0, "")
    config_path = tmp_path / "etc" / "gate.toml"
    config = load(config_path)
    assert (config.gate.id, config.gate.event, config.gate.entrance) == \
        ("north-3", "PAR24-ATH05", 2)
    assert config.feeds is not None
    assert config.feeds.base_url == "https://feeds.example.org/portique"
    assert config.feeds.store == tmp_path / "state" / "feeds.sqlite"
    assert config.journal.path == tmp_path / "state" / "journal.sqlite"
    assert config.keys.trust_dir == tmp_path / "etc" / "keys"
    assert config.upload is not None and config.upload.url.endswith("/journal")
    assert config.hardware is not None and config.hardware.pin_factory.value == "mock"
    # The keys are imported under their key id, byte for byte.
    trusted = keyfiles.load_trust_dir(config.keys.trust_dir, role=None)
    assert sorted(trusted.keys) == ["feed-1", "fixture-issuer"]
    assert (config.keys.trust_dir / "fixture-issuer.pub").read_bytes() == \
        ISSUER_PUB.read_bytes()
    # The credentials gate.service loads exist, empty and root's alone.
    for secret in (tmp_path / "etc" / "credentials" / "upload-token",
                   tmp_path / "etc" / "supervisors.toml"):
        assert secret.read_bytes() == b""
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o644
    assert "Next steps:" in out
    assert "systemctl enable --now gate-sync.timer gate" in out
    assert "no issuer key" not in out
    # The next steps sync once before the check: `gate run` (so `gate config check`) needs
    # the event's feed, which a new gate does not have yet ...
    assert out.index("gate sync --config") < out.index("gate config check")
    code, _, err = run(capsys, ["config", "check", str(config_path)])
    assert code != 0 and "gate sync" in err
    # (tests/appliance/test_package.py runs setup, sync and check with a served feed in a
    # Debian root.)


def test_real_pins_are_the_default_and_missing_keys_are_next_steps(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, setup_args(tmp_path, "--json"))
    assert code == 0
    result = json.loads(out)
    steps = " ".join(result["next_steps"])
    assert "no issuer key" in steps and "no feed key" in steps
    assert "upload token" in steps
    config = load(tmp_path / "etc" / "gate.toml")
    assert config.hardware is not None and config.hardware.pin_factory.value == "lgpio"
    assert config.hardware.on_stop.value == "fail_safe"


def test_an_existing_config_is_kept_without_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, setup_args(tmp_path, "--key", str(ISSUER_PUB)))[0] == 0
    config_path = tmp_path / "etc" / "gate.toml"
    token = tmp_path / "etc" / "credentials" / "upload-token"
    token.write_text("secret-token\n")
    before = snapshot(tmp_path / "etc")
    argv = setup_args(tmp_path, "--key", str(ISSUER_PUB))
    argv[argv.index("north-3")] = "south-1"
    code, _, err = run(capsys, argv)
    assert code == 2
    assert f"{config_path}: already exists; not overwritten (--force" in err
    assert snapshot(tmp_path / "etc") == before
    # --force replaces it, keeps the old one beside it and leaves the token alone.
    code, _, err = run(capsys, [*argv, "--force"])
    assert (code, err) == (0, "")
    assert load(config_path).gate.id == "south-1"
    assert load(config_path.with_name("gate.toml.old")).gate.id == "north-3"
    assert token.read_text() == "secret-token\n"


@pytest.mark.parametrize(("change", "message"), [
    (("--gate-id", "north 3"), "gate.id: must be 1-32 of A-Z a-z 0-9 . _ -, got 'north 3'"),
    (("--event", "PAR24/ATH05"), "gate.event:"),
    (("--entrance", "40"), "gate.entrance"),
    (("--feed-url", "ftp://feeds.example.org/"), "feeds.base_url: must be an http:// or "
     "https:// URL, got 'ftp://feeds.example.org/'"),
    (("--timezone", "Europe/Atlantis"), "gate.timezone: unknown time zone 'Europe/Atlantis'"),
])
def test_bad_answers_are_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         change: tuple[str, str], message: str) -> None:
    argv = setup_args(tmp_path)
    flag, value = change
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    code, out, err = run(capsys, argv)
    assert code == 2 and out == ""
    assert message in err and "(nothing written)" in err
    assert not (tmp_path / "etc").exists()


def write_key(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(("content", "message"), [
    ((FIXTURES / "keys" / "fixture-issuer.key").read_text(),
     "a private key; a gate holds public keys only"),
    ("not json", "not a JSON public key file"),
    (json.dumps({"kid": "x", "public_key": "00"}), "public_key must be 32 bytes"),
])
def test_bad_key_files_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   content: str, message: str) -> None:
    bad = write_key(tmp_path / "given.pub", content)
    code, _, err = run(capsys, setup_args(tmp_path, "--key", str(ISSUER_PUB), str(bad)))
    assert code == 2
    assert f"--key {bad}: " in err and message in err
    assert not (tmp_path / "etc").exists()


def test_a_different_key_under_a_trusted_id_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, setup_args(tmp_path, "--key", str(ISSUER_PUB)))[0] == 0
    impostor = keyfiles.new_key_pair(tmp_path / "other", "fixture-issuer")
    before = snapshot(tmp_path / "etc")
    code, _, err = run(capsys, setup_args(tmp_path, "--force", "--key",
                                          str(impostor.public_path)))
    assert code == 2
    assert "already holds another key with id fixture-issuer" in err
    assert snapshot(tmp_path / "etc") == before


def test_missing_answers_without_a_terminal_are_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, ["setup", "--config", str(tmp_path / "gate.toml"),
                                "--event", "PAR24-ATH05"])
    assert code == 2
    assert "missing --gate-id, --entrance, --feed-url (no terminal to ask on" in err
    assert not (tmp_path / "gate.toml").exists()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_answers_asked_on_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", Terminal("east-1\nPAR24-ATH05\n4\n"
                                              "https://feeds.example.org/p\n"))
    argv: list[Any] = ["setup", "--config", str(tmp_path / "gate.toml"),
                       "--state-dir", str(tmp_path / "state")]
    code, out, _ = run(capsys, argv)
    assert code == 0
    assert "Gate id (e.g. north-3): " in out and "Entrance number (1-32): " in out
    config = load(tmp_path / "gate.toml")
    assert (config.gate.id, config.gate.entrance) == ("east-1", 4)
    assert config.feeds is not None and config.feeds.base_url == "https://feeds.example.org/p"


def test_no_feed_is_said_out_loud(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = setup_args(tmp_path, "--key", str(ISSUER_PUB), "--pin-factory", "mock")
    del argv[argv.index("--feed-url"):argv.index("--feed-url") + 2]
    code, _, err = run(capsys, [*argv, "--no-feed", "--feed-url", "https://x.example.org/"])
    assert code == 2 and "--no-feed and --feed-url: give one of them" in err
    code, out, _ = run(capsys, [*argv, "--no-feed"])
    assert code == 0
    assert "no revocation feed (--no-feed): resold and cancelled tickets cannot be refused" \
        in out
    assert "no feed key" not in out
    config = load(tmp_path / "etc" / "gate.toml")
    assert config.feeds is None and config.feeds_waived
    code, out, _ = run(capsys, ["config", "check", str(tmp_path / "etc" / "gate.toml")])
    assert code == 0 and "no revocation feed: resold tickets cannot be refused" in out
