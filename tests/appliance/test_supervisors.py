"""Supervisor overrides over the control socket of a real gate: the PIN is checked against
the supervisors file (scrypt hashes), every refusal is journalled, too many lock the
overrides (across a restart too); and `gate supervisor` managing the file."""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from portique.devtools.simulation import SimulatedRun
from portique.runtime import supervisors
from portique.runtime.control import ControlClient

from .conftest import World, clip, feed_store

PIN = "482913"


def _setup(world: World, **steward: Any) -> Path:
    world.sections["feeds"] = feed_store(world.state, {}, [
        {"ticket_id": f"PAR24-00020{i}", "generation": "0", "order_ref": f"O{i}",
         "holder_name": f"Holder {i}", "category": "C", "entrances": "2", "flags": ""}
        for i in range(4)])
    path = world.state / "supervisors.toml"
    supervisors.set_pin(path, "SUP-1", PIN)
    world.sections["steward"] = {"manual_admit_limit": 1, "supervisors": str(path),
                                 **steward}
    return path


def _admit(client: ControlClient, ticket: str, **fields: str) -> dict[str, Any]:
    return client.request("admit", ticket_id=ticket, steward="S-4", reason="dead phone",
                          **fields)


def test_an_override_needs_the_supervisors_pin(world: World) -> None:
    _setup(world)
    with world.running(SimulatedRun(replay=clip("empty"), fast=True,
                                  simulate_passage_s=0.05)) as app:
        app.run()
        client = ControlClient(Path(world.config().control.socket))
        assert _admit(client, "PAR24-000200")["ok"]
        assert _admit(client, "PAR24-000201")["code"] == "limit"
        wrong = _admit(client, "PAR24-000201", supervisor="SUP-1", pin="000000")
        unknown = _admit(client, "PAR24-000201", supervisor="SUP-7", pin=PIN)
        no_pin = _admit(client, "PAR24-000201", supervisor="SUP-1")
        for refused in (wrong, unknown, no_pin):
            assert refused["ok"] is False and refused["code"] == "supervisor_refused", refused
        # an unknown supervisor and a wrong PIN read the same: ids are not revealed
        assert wrong["error"].replace("SUP-1", "X").split(";")[0] == \
            unknown["error"].replace("SUP-7", "X").split(";")[0]
        assert "not accepted (unknown supervisor or wrong PIN)" in wrong["error"]
        right = _admit(client, "PAR24-000201", supervisor="SUP-1", pin=PIN)
        assert right["ok"], right
    assert world.rows("SELECT ticket_id, steward, note FROM decisions ORDER BY rowid") == [
        ("PAR24-000200", "S-4", "dead phone"),
        ("PAR24-000201", "S-4", "dead phone (override by SUP-1)")]
    events = world.rows("SELECT kind, steward, detail FROM gate_events ORDER BY rowid")
    assert [(kind, who) for kind, who, _ in events] == \
        [("supervisor_override_refused", "S-4")] * 3
    assert [d.split(":")[0] for _, _, d in events] == [
        "supervisor=SUP-1 ticket=PAR24-000201 code=supervisor_refused",
        "supervisor=SUP-7 ticket=PAR24-000201 code=supervisor_refused",
        "supervisor=SUP-1 ticket=PAR24-000201 code=supervisor_refused"]
    assert all(PIN not in d and "000000" not in d for _, _, d in events)


def test_refused_overrides_lock_every_override_even_after_a_restart(world: World) -> None:
    _setup(world, override_max_failures=3)
    for attempt in range(2):
        with world.running(SimulatedRun(replay=clip("empty"), fast=True,
                                      simulate_passage_s=0.05)) as app:
            app.run()
            client = ControlClient(Path(world.config().control.socket))
            if attempt == 0:
                first, second = (_admit(client, "PAR24-000201", supervisor="SUP-1",
                                        pin=pin) for pin in ("111111", "222222"))
                assert "2 more refused attempt(s)" in first["error"]
                assert "1 more refused attempt(s)" in second["error"]
                third = _admit(client, "PAR24-000201", supervisor="SUP-1", pin="333333")
                assert third["code"] == "supervisor_refused"
                assert "overrides are now locked for 15 min" in third["error"]
            locked = _admit(client, "PAR24-000201", supervisor="SUP-1", pin=PIN)
            assert locked["ok"] is False and locked["code"] == "override_locked", locked
    assert world.rows("SELECT * FROM decisions") == []
    kinds = [k for (k,) in world.rows("SELECT kind FROM gate_events ORDER BY rowid")]
    assert kinds == ["supervisor_override_refused"] * 3 + ["supervisor_overrides_locked"] + \
        ["supervisor_override_blocked"] * 2


def _refused_override(world: World) -> dict[str, Any]:
    with world.running(SimulatedRun(replay=clip("empty"), fast=True,
                                  simulate_passage_s=0.05)) as app:
        app.run()
        client = ControlClient(Path(world.config().control.socket))
        refused = _admit(client, "PAR24-000203", supervisor="SUP-1", pin=PIN)
    assert refused["ok"] is False and refused["code"] == "supervisors_unavailable", refused
    assert world.rows("SELECT * FROM decisions") == []
    assert [k for (k,) in world.rows("SELECT kind FROM gate_events")] == [
        "supervisor_override_blocked"]
    return refused


def test_a_supervisors_file_its_group_may_read_allows_no_override(world: World) -> None:
    # the stewards are in the gate's group: a hash they can read is a PIN found in hours
    path = _setup(world)
    path.chmod(0o640)
    before = path.read_bytes()
    refused = _refused_override(world)
    assert f"supervisors file {path}: mode 0640: its group or others may read" in \
        refused["error"]
    assert f"run `chmod 600 {path}`" in refused["error"]
    assert "set new ones (`gate supervisor set ID`)" in refused["error"]
    result = _supervisor_cli("set", "SUP-2", "--file", str(path), pin="123456")
    assert result.returncode == 2 and "mode 0640" in result.stderr
    assert path.read_bytes() == before  # an unsafe file is not rewritten either


def test_a_supervisors_file_of_another_user_allows_no_override(world: World) -> None:
    path = _setup(world)
    os.chown(path, 65534, 65534)  # mode 0600: that user wrote whichever hashes it likes
    refused = _refused_override(world)
    assert f"supervisors file {path}: owned by uid 65534" in refused["error"]
    assert f"if it is genuine run `chown root: {path}`" in refused["error"]
    result = _supervisor_cli("remove", "SUP-1", "--file", str(path))
    assert result.returncode == 2 and "owned by uid 65534" in result.stderr
    os.chown(path, 0, 0)  # the file is still there, untouched
    assert supervisors.load(path)["SUP-1"].matches(PIN)


def test_a_folder_above_the_supervisors_file_its_group_may_change(world: World) -> None:
    path = _setup(world)
    folder = path.parent
    folder.chmod(0o770)  # its group could put a file of its own in place
    refused = _refused_override(world)
    assert f"supervisors file {path}: the folder {folder} above it is writable by its " \
        "group (mode 0770)" in refused["error"]
    assert f"run `chmod g-w {folder}`" in refused["error"]


_ACL_XATTR = "system.posix_acl_access"


def _systemd_copy(folder: Path, data: bytes, *, acl: list[tuple[int, int, int]]) -> Path:
    """What LoadCredential= leaves in $CREDENTIALS_DIRECTORY: the file 0400 root's, read
    access for the service's user by an access list (whose mask `stat` shows as the
    group's bits), the folder root's 0500 with the same list."""
    folder.mkdir(mode=0o500)
    copy = folder / supervisors.CREDENTIAL
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    copy.chmod(0o400)
    none, mask = 0xFFFFFFFF, [(0x10, 4, 0xFFFFFFFF)]
    entries = [(0x01, 4, none), *acl, *mask, (0x20, 0, none)]
    os.setxattr(copy, _ACL_XATTR, struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, who) for tag, perm, who in entries))
    return copy


def test_the_copy_systemd_hands_the_gate_is_read_first(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = _setup(world)
    handed = tmp_path / "handed.toml"
    supervisors.set_pin(handed, "SUP-1", "731904")  # only the copy knows this PIN
    # the service's user (this test's) may read it, its group nothing
    copy = _systemd_copy(tmp_path / "credentials", handed.read_bytes(),
                         acl=[(0x02, 4, os.geteuid()), (0x04, 0, 0xFFFFFFFF)])
    assert stat.S_IMODE(copy.stat().st_mode) == 0o440  # the access list's mask
    configured.chmod(0o644)  # not read at all while there is a copy
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(copy.parent))
    with world.running(SimulatedRun(replay=clip("empty"), fast=True,
                                  simulate_passage_s=0.05)) as app:
        app.run()
        client = ControlClient(Path(world.config().control.socket))
        assert _admit(client, "PAR24-000200")["ok"]
        old = _admit(client, "PAR24-000201", supervisor="SUP-1", pin=PIN)
        assert old["code"] == "supervisor_refused", old
        new = _admit(client, "PAR24-000201", supervisor="SUP-1", pin="731904")
        assert new["ok"], new


@pytest.mark.parametrize(("acl", "complaint"), [
    ([(0x02, 4, os.geteuid()), (0x04, 4, 0xFFFFFFFF)], "its access list lets a group read it"),
    ([(0x02, 4, 65534), (0x04, 0, 0xFFFFFFFF)], "its access list lets uid 65534"),
], ids=["group", "another user"])
def test_a_copy_others_may_read_allows_no_override(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        acl: list[tuple[int, int, int]], complaint: str) -> None:
    configured = _setup(world)
    copy = _systemd_copy(tmp_path / "credentials", configured.read_bytes(), acl=acl)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(copy.parent))
    refused = _refused_override(world)
    assert f"supervisors file {copy} (systemd's copy, LoadCredential=supervisors): " \
        f"mode 0440: {complaint}" in refused["error"]
    assert "`systemctl cat gate`" in refused["error"]


def _supervisor_cli(*args: str, pin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portique", "supervisor", *args],
                          input=pin + "\n", capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def test_gate_supervisor_set_replace_and_remove(tmp_path: Path) -> None:
    path = tmp_path / "supervisors.toml"
    made = _supervisor_cli("set", "sup-9", "--file", str(path), pin="470213")
    assert made.returncode == 0, made.stderr
    assert "supervisor sup-9: PIN set" in made.stdout
    assert f"{path}: mode 0600, owner root, readable by its owner only" in made.stdout
    assert "LoadCredential=supervisors" in made.stdout
    assert "run `systemctl restart gate`" in made.stdout
    st = path.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, 0)
    text = path.read_text()
    assert "470213" not in text and '"sup-9" = "scrypt:n=32768,r=8,p=1:' in text
    os.chown(path, 0, 65534)  # a group of the operator's: kept, but it reads nothing
    assert _supervisor_cli("set", "sup-2", "--file", str(path), pin="918273").returncode == 0
    replaced = _supervisor_cli("set", "sup-9", "--file", str(path), pin="555666")
    assert "supervisor sup-9: PIN replaced" in replaced.stdout
    st = path.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 65534)
    records = supervisors.load(path)
    assert records["sup-9"].matches("555666") and not records["sup-9"].matches("470213")
    assert records["sup-2"].matches("918273")
    assert records["sup-9"].salt != records["sup-2"].salt
    before = path.read_bytes()
    for bad_args, pin, complaint in (
            (("set", "sup-9"), "12ab56", "a PIN is 6 to 12 digits"),
            (("set", "sup-9"), "12345", "a PIN is 6 to 12 digits"),
            (("set", "sup 9"), "123456", "supervisor id 'sup 9'"),
            (("remove", "sup-7"), "", "no supervisor 'sup-7'")):
        refused = _supervisor_cli(*bad_args, "--file", str(path), pin=pin)
        assert refused.returncode == 2 and complaint in refused.stderr, refused.stderr
    assert path.read_bytes() == before
    assert _supervisor_cli("set", "sup-9", "123456", "--file", str(path)).returncode == 2
    assert path.read_bytes() == before  # a PIN is never taken from the command line
    assert _supervisor_cli("remove", "sup-2", "--file", str(path)).returncode == 0
    listed = _supervisor_cli("list", "--file", str(path))
    assert listed.stdout.split() == ["sup-9"]
