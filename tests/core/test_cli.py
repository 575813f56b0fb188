"""The gate CLI end to end: real key files, real tickets, real checks, exit codes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from portique.commands.main import main

AT = "2024-08-05T19:00:00+02:00"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    keys = tmp_path / "keys"
    assert run(capsys, "keys", "new", "--kid", "iss-1", "--out", str(keys),
               "--events", "PAR24-ATH05")[0] == 0
    assert run(capsys, "keys", "new", "--kid", "phone-1", "--role", "device",
               "--out", str(tmp_path / "phone"))[0] == 0
    common = ["--key", str(keys / "iss-1.key"), "--event", "PAR24-ATH05",
              "--valid-from", "2024-08-05T15:00:00+02:00",
              "--valid-until", "2024-08-05T23:30:00+02:00", "--entrances", "2,5",
              "--category", "CAT-B"]
    assert run(capsys, "ticket", "issue", *common, "--ticket", "T1", "--device-key",
               str(tmp_path / "phone" / "phone-1.pub"), "--out", str(tmp_path / "t1.json"))[0] == 0
    assert run(capsys, "ticket", "issue", *common, "--ticket", "P1", "--paper",
               "--out", str(tmp_path / "p1.json"))[0] == 0
    (tmp_path / "gate.toml").write_text(
        '[gate]\nid = "3"\nevent = "PAR24-ATH05"\nentrance = 2\n\n[keys]\ntrust_dir = "keys"\n'
        + RUNNABLE)
    return tmp_path


RUNNABLE = """
[journal]
path = "state/journal.sqlite"

[control]
socket = "run/control.sock"

[feeds]
required = false

[hardware]
pin_factory = "mock"
on_stop = "fail_safe"
lock_active_high = false

[hardware.pins]
lock = 17
green = 27
red = 22
buzzer = 23
passage = 24
fire_loop = 25
"""
"""What `gate run` needs besides the gate and its keys: simulated pins, and no feed."""


def code_at(capsys: pytest.CaptureFixture[str], world: Path, at: str = AT) -> str:
    rc, out, _ = run(capsys, "ticket", "code", str(world / "t1.json"), "--device-key",
                     str(world / "phone" / "phone-1.key"), "--at", at)
    assert rc == 0
    return out.strip()


def check(capsys: pytest.CaptureFixture[str], world: Path, code: str, *extra: str,
          at: str = "2024-08-05T19:00:07+02:00") -> tuple[int, dict[str, object]]:
    rc, out, _ = run(capsys, "check", code, "--config", str(world / "gate.toml"), "--at", at,
                     "--json", *extra)
    return rc, json.loads(out)


def test_private_key_is_owner_only_and_never_overwritten(world: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    key = world / "keys" / "iss-1.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    rc, _, err = run(capsys, "keys", "new", "--kid", "iss-1", "--out", str(world / "keys"))
    assert rc == 2 and "already exists" in err
    assert key.read_bytes() == before


def test_valid_code_admits_with_exit_0(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = check(capsys, world, code_at(capsys, world))
    assert rc == 0
    assert result["verdict"] == "admit" and result["reason"] == "VALID"
    assert result["ticket"] == {"event": "PAR24-ATH05", "ticket_id": "T1", "generation": 0}
    assert result["sentence"]["fr"] == "Bienvenue, vous pouvez passer."


def test_human_output_names_verdict_reason_and_both_sentences(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "check", code_at(capsys, world), "--config",
                     str(world / "gate.toml"), "--at", "1722877207")
    assert rc == 0
    assert out.splitlines()[0].startswith("ADMIT  VALID  ticket T1")
    assert "en: Welcome" in out and "fr: Bienvenue" in out


def test_screenshot_replayed_a_minute_later_exits_1(world: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = check(capsys, world, code_at(capsys, world), at="2024-08-05T19:01:00+02:00")
    assert (rc, result["reason"]) == (1, "STALE_CODE")


def test_tampered_wrong_event_and_paper(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = code_at(capsys, world)
    tampered = code[:60] + ("A" if code[60] != "A" else "B") + code[61:]
    assert check(capsys, world, tampered)[1]["verdict"] == "refuse"
    rc, result = check(capsys, world, code, "--event", "PAR24-SWM01")
    assert (rc, result["reason"]) == (1, "WRONG_EVENT")
    rc, out, _ = run(capsys, "ticket", "code", str(world / "p1.json"), "--json")
    paper = json.loads(out)["code"]
    rc, result = check(capsys, world, paper)
    assert (rc, result["verdict"], result["reason"]) == (1, "steward", "PAPER_TICKET")


def test_withdrawn_key_is_refused(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = code_at(capsys, world)
    assert run(capsys, "keys", "withdraw", "--kid", "iss-1", "--keys", str(world / "keys"))[0] == 0
    assert check(capsys, world, code)[1]["reason"] == "KEY_WITHDRAWN"


def test_code_from_stdin(world: Path) -> None:
    code = subprocess.run(
        [sys.executable, "-m", "portique", "ticket", "code", str(world / "t1.json"),
         "--device-key", str(world / "phone" / "phone-1.key"), "--at", AT],
        capture_output=True, text=True, check=True).stdout
    done = subprocess.run(
        [sys.executable, "-m", "portique", "check", "-", "--config", str(world / "gate.toml"),
         "--at", "2024-08-05T19:00:07+02:00", "--json"],
        input=code, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["reason"] == "VALID"


def _check_stdin(world: Path, text: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "portique", "check", "-", "--config", str(world / "gate.toml"),
         "--at", "2024-08-05T19:00:07+02:00", "--json"],
        input=text.encode("ascii"), capture_output=True, check=False)
    result: dict[str, object] = json.loads(done.stdout)
    return done.returncode, result


@pytest.mark.parametrize(("before", "after", "reason"), [
    ("", "\r\n", "VALID"),
    ("", "", "VALID"),
    ("\n", "\n", "NOT_A_TICKET"),  # the prefix is not at the start
    ("", "\n\n", "MALFORMED"),
    ("", "\r\n\r\n", "MALFORMED"),
])
def test_stdin_loses_exactly_one_line_ending(world: Path, capsys: pytest.CaptureFixture[str],
                                             before: str, after: str, reason: str) -> None:
    code = code_at(capsys, world)
    rc, result = _check_stdin(world, before + code + after)
    assert result["reason"] == reason
    assert rc == (0 if reason == "VALID" else 1)


def test_png_is_a_real_qr_code_of_the_exact_text(world: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import cv2
    import zxingcpp

    png = world / "code.png"
    rc, out, _ = run(capsys, "ticket", "code", str(world / "t1.json"), "--device-key",
                     str(world / "phone" / "phone-1.key"), "--at", AT, "--png", str(png))
    assert rc == 0
    image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert [r.text for r in zxingcpp.read_barcodes(image)] == [out.strip()]


def test_wrong_device_key_is_a_usage_error(world: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "keys", "new", "--kid", "phone-2", "--role", "device", "--out",
        str(world / "phone"))
    rc, _, err = run(capsys, "ticket", "code", str(world / "t1.json"), "--device-key",
                     str(world / "phone" / "phone-2.key"))
    assert rc == 2 and "not the key this ticket was issued to" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "X", "--keys", "k"], "--event and --entrance must be given"),
        (["ticket", "code", "/nonexistent.json"], "cannot read ticket"),
        (["keys", "new", "--kid", "bad kid!", "--out", "k"], "key id must be"),
        (["keys", "new", "--kid", "k", "--out", "k", "--events", "E" * 25],
         "events: event must be 1 to 24 characters"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(argv: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, *argv)
    assert rc == 2 and message in err


def test_time_without_offset_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check", "X", "--at", "2024-08-05T19:00:00", "--event", "E", "--entrance", "1",
              "--keys", "k"])
    assert exc.value.code == 2
    assert "no UTC offset" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[gate]\nid = "3"\nevent = "E"\nentrance = 2\ncolour = "red"\n'
         '[keys]\ntrust_dir = "keys"\n',
         "gate.colour: unknown key"),
        ('[gate]\nid = "3"\nevent = "E"\nentrance = "two"\n[keys]\ntrust_dir = "keys"\n',
         "gate.entrance: must be an integer"),
        ('[gate]\nid = "3"\nevent = "E"\nentrance = 40\n[keys]\ntrust_dir = "keys"\n',
         "gate.entrance: must be at most 32"),
        ('[gate]\nid = "3"\nevent = "E"\nentrance = 2\n[keys]\ntrust_dir = "keys"\n'
         '[policy]\npaper = "sometimes"\n', "policy.paper: must be one of steward, admit_once"),
        ('[gate]\nid = "3"\nevent = "E"\n[keys]\ntrust_dir = "keys"\n',
         "gate.entrance: required key is missing"),
        ('[gate\n', "not valid TOML"),
        (f'[gate]\nid = "3"\nevent = "{"E" * 25}"\nentrance = 2\n[keys]\ntrust_dir = "keys"\n',
         "gate.event: event must be 1 to 24 characters"),
    ],
)
def test_config_check_names_the_bad_key(world: Path, capsys: pytest.CaptureFixture[str],
                                        toml: str, message: str) -> None:
    bad = world / "bad.toml"
    bad.write_text(toml)
    rc, _, err = run(capsys, "config", "check", str(bad))
    assert rc == 2 and message in err


def test_config_check_accepts_a_good_file(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "config", "check", str(world / "gate.toml"))
    assert rc == 0 and "valid" in out and "1 issuer key" in out


def test_the_longest_event_a_ticket_carries_is_a_valid_config_event(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    longest = world / "longest.toml"
    longest.write_text(f'[gate]\nid = "3"\nevent = "{"E" * 24}"\nentrance = 2\n\n'
                       '[keys]\ntrust_dir = "keys"\n' + RUNNABLE)
    rc, out, _ = run(capsys, "config", "check", str(longest))
    assert rc == 0 and f"event {'E' * 24}" in out


def test_check_refuses_an_event_no_ticket_can_carry(world: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "check", code_at(capsys, world), "--config",
                       str(world / "gate.toml"), "--event", "E" * 25, "--at", AT)
    assert (rc, out) == (2, "")
    assert "--event: event must be 1 to 24 characters" in err


@pytest.fixture
def feed_url(tmp_path: Path) -> Iterator[str]:
    """A real loopback feed server on tmp_path/www."""
    from portique.revocation.serve import make_server

    (tmp_path / "www").mkdir()
    server = make_server(tmp_path / "www")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_check_for_another_event_refuses_without_that_events_feed(
        tmp_path: Path, feed_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    keys, this, other = tmp_path / "keys", "PAR24-ATH05", "PAR24-ATH06"
    for kid, role in (("feed-1", "feed"), ("iss-1", "issuer"), ("phone-1", "device")):
        assert run(capsys, "keys", "new", "--kid", kid, "--role", role, "--out",
                   str(keys))[0] == 0
    (tmp_path / "man.csv").write_text(
        "ticket_id,generation,order_ref,holder_name,category,entrances,flags\n"
        "T-GONE,0,ORD-1,Marie Dupont,CAT B,2,\n", encoding="utf-8")
    (tmp_path / "rev.csv").write_text("ticket_id,min_generation\nT-GONE,cancelled\n",
                                      encoding="utf-8")
    for event in (this, other):  # the publisher cancels T-GONE in both events' feeds
        assert run(capsys, "feed", "publish", "--event", event, "--revocations",
                   str(tmp_path / "rev.csv"), "--manifest", str(tmp_path / "man.csv"),
                   "--key", str(keys / "feed-1.key"), "--out", str(tmp_path / "www"),
                   "--at", "2024-08-05T18:50:00+02:00")[0] == 0
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "3"\nevent = "{this}"\nentrance = 2\n'
                      '[keys]\ntrust_dir = "keys"\n'
                      f'[feeds]\nstore = "state/feeds.db"\nbase_url = "{feed_url}"\n'
                      'retries = 0\n', encoding="utf-8")
    assert run(capsys, "sync", "--config", str(config))[0] == 0  # this event's feed only

    def check_ticket(event: str, *extra: str) -> tuple[int, str, str]:
        ticket = tmp_path / f"{event}.json"
        assert run(capsys, "ticket", "issue", "--key", str(keys / "iss-1.key"), "--event",
                   event, "--ticket", "T-GONE", "--valid-from", "2024-08-05T15:00:00+02:00",
                   "--valid-until", "2024-08-05T23:30:00+02:00", "--entrances", "2",
                   "--device-key", str(keys / "phone-1.pub"), "--out", str(ticket))[0] == 0
        rc, code, _ = run(capsys, "ticket", "code", str(ticket), "--device-key",
                          str(keys / "phone-1.key"), "--at", AT)
        assert rc == 0
        return run(capsys, "check", code.strip(), "--config", str(config), "--at", AT,
                   "--json", *extra)

    rc, out, _ = check_ticket(this)  # the store knows this event's cancellation
    assert (rc, json.loads(out)["reason"]) == (1, "CANCELLED")
    rc, out, err = check_ticket(other, "--event", other)
    assert rc == 2  # with --json the failure is JSON too, and the sentence on stderr
    assert json.loads(out)["ok"] is False and f"holds no feed of event {other!r}" in \
        json.loads(out)["error"]
    assert f"holds no feed of event {other!r}" in err
    assert f"gate.event is {other!r}" in err and "gate sync --config" in err


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user "
                                "needs root")


def test_the_files_as_the_gate_writes_them_are_accepted(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = world / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o755
    assert stat.S_IMODE((keys / "iss-1.pub").stat().st_mode) == 0o644
    assert stat.S_IMODE((world / "gate.toml").stat().st_mode) == 0o644
    world.chmod(0o1777)  # a sticky world-writable folder above, as /tmp: acceptable
    rc, out, _ = run(capsys, "config", "check", str(world / "gate.toml"))
    assert rc == 0 and "valid" in out
    rc, result = check(capsys, world, code_at(capsys, world))
    assert (rc, result["reason"]) == (0, "VALID")


def test_a_world_writable_key_folder_is_refused(world: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = code_at(capsys, world)
    keys = world / "keys"
    keys.chmod(0o757)
    for argv in (["config", "check", str(world / "gate.toml")],
                 ["check", code, "--config", str(world / "gate.toml"), "--at", AT]):
        rc, out, err = run(capsys, *argv)
        assert (rc, out) == (2, "")
        assert f"key folder {keys}: writable by group or others (mode 0757)" in err
        assert f"run `chmod go-w {keys}`" in err


def test_a_config_others_can_change_is_refused(world: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = world / "gate.toml"
    config.chmod(0o666)
    rc, out, err = run(capsys, "config", "check", str(config))
    assert (rc, out) == (2, "")
    assert f"config {config}: writable by group or others (mode 0666)" in err
    assert f"chmod go-w {config}" in err


def test_a_folder_above_writable_by_everyone_and_not_sticky_is_refused(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world.chmod(0o777)
    try:
        rc, _, err = run(capsys, "config", "check", str(world / "gate.toml"))
    finally:
        world.chmod(0o755)
    assert rc == 2
    assert f"the folder {world} above it is writable by everyone (mode 0777)" in err
    assert f"run `chmod go-w {world}`" in err  # its group could write too


def test_a_folder_above_writable_by_its_group_is_refused(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = code_at(capsys, world)
    world.chmod(0o775)
    for argv in (["config", "check", str(world / "gate.toml")],
                 ["check", code, "--config", str(world / "gate.toml"), "--at", AT]):
        rc, out, err = run(capsys, *argv)
        assert (rc, out) == (2, "")
        assert f"the folder {world} above it is writable by its group (mode 0775)" in err
        assert f"run `chmod g-w {world}`" in err


def test_a_sticky_folder_writable_by_its_group_is_accepted(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world.chmod(0o1775)  # nobody may rename or remove another's files in it, as in /tmp
    rc, result = check(capsys, world, code_at(capsys, world))
    assert (rc, result["reason"]) == (0, "VALID")


@needs_root
def test_a_folder_above_owned_by_another_user_is_refused(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.chown(world, 65534, 65534)  # mode 0700: only that user could swap the keys
    rc, out, err = run(capsys, "config", "check", str(world / "gate.toml"))
    assert (rc, out) == (2, "")
    assert f"the folder {world} above it is owned by uid 65534" in err
    assert f"run `chown root: {world}`" in err


def test_a_symlinked_public_key_is_checked_where_it_points(
        world: Path, capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    key = world / "keys" / "iss-1.pub"
    (elsewhere / "iss-1.pub").write_bytes(key.read_bytes())
    (elsewhere / "iss-1.pub").chmod(0o644)
    key.unlink()
    key.symlink_to(elsewhere / "iss-1.pub")
    code = code_at(capsys, world)
    rc, result = check(capsys, world, code)  # a link into a safe folder is read
    assert (rc, result["reason"]) == (0, "VALID")
    elsewhere.chmod(0o777)  # anyone could replace the key it points to
    rc, out, err = run(capsys, "check", code, "--config", str(world / "gate.toml"), "--at", AT)
    assert (rc, out) == (2, "")
    assert f"public key {key}: the folder {elsewhere} above it is writable by everyone" in err


def test_a_public_key_that_is_a_fifo_is_refused_without_blocking(
        world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    planted = world / "keys" / "pipe.pub"
    os.mkfifo(planted, 0o644)
    rc, out, err = run(capsys, "config", "check", str(world / "gate.toml"))
    assert (rc, out) == (2, "")
    assert f"public key {planted}: not a regular file" in err


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("gate")
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "check" in done.stdout


@pytest.mark.parametrize("argv", [
    ["keys", "new", "--kid", "x-1", "--out", "/proc/no-such-folder/keys"],
    ["ticket", "issue", "--key", "{world}/keys/iss-1.key", "--event", "PAR24-ATH05",
     "--ticket", "T9", "--paper", "--valid-from", "0", "--valid-until", "10",
     "--entrances", "2", "--out", "/proc/no-such-folder/t.json"],
    ["ticket", "code", "{world}/t1.json", "--device-key", "{world}/phone/phone-1.key",
     "--at", AT, "--png", "{world}/no-such-folder/code.png"],
], ids=["keys new", "ticket issue", "ticket code --png"])
def test_an_output_that_cannot_be_written_is_one_error_line(
        capsys: pytest.CaptureFixture[str], world: Path, argv: list[str]) -> None:
    rc, _, err = run(capsys, *(a.replace("{world}", str(world)) for a in argv))
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("gate: error:"), err
    assert "no-such-folder" in err
