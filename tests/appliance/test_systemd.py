"""The unit files in systemd/, checked by systemd's own tools.

The units are copied to a temporary folder and checked there. One thing is rewritten in the
copies: the ExecStart executable, /opt/portique/.venv/bin/gate on a gate, becomes this
checkout's .venv/bin/gate, because `systemd-analyze verify` requires an existing
executable. Nothing else changes: the user, groups, paths and hardening are checked as a
gate uses them (verify does not need the portique user to exist).

systemd-analyze (package systemd, installed by `make setup`) must be present: without it
these tests fail, they do not skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "systemd"
UNITS = ("gate.service", "gate-sync.service", "gate-sync.timer")
SERVICES = ("gate.service", "gate-sync.service")
INSTALLED_GATE = "/opt/portique/.venv/bin/gate"
DROP_IN_EXAMPLE = SYSTEMD / "gate.service.d" / "network.conf.example"
MAX_EXPOSURE = 2.0


def tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for d in ("/usr/bin", "/bin") if os.access(p := f"{d}/{name}", os.X_OK)), None)
    if path is None:
        pytest.fail(f"{name} is not installed: the unit files cannot be checked. Install the "
                    "Debian package systemd (`make setup` does, it is in SYSTEM_PACKAGES).")
    return path


def local_gate() -> str:
    gate = Path(sys.executable).parent / "gate"
    if not os.access(gate, os.X_OK):
        pytest.fail(f"{gate} is missing: install the project into the venv (`make setup`)")
    return str(gate)


def stage(folder: Path, *, drop_in: bool = False) -> Path:
    """Copy the units into folder, ExecStart pointed at this checkout's gate script."""
    folder.mkdir()
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        if name.endswith(".service"):
            assert text.count(f"ExecStart={INSTALLED_GATE} ") == 1, name
            text = text.replace(f"ExecStart={INSTALLED_GATE} ", f"ExecStart={local_gate()} ")
        (folder / name).write_text(text)
    if drop_in:
        (folder / "gate.service.d").mkdir()
        shutil.copy(DROP_IN_EXAMPLE, folder / "gate.service.d" / "network.conf")
    return folder


def verify(folder: Path, *units: str) -> subprocess.CompletedProcess[str]:
    # The trailing colon keeps the default search path (targets the units refer to) after
    # the staged folder, where drop-ins are looked up.
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{folder}:"}
    return subprocess.run([tool("systemd-analyze"), "verify", *(str(folder / u) for u in units)],
                          capture_output=True, text=True, env=env, check=False)


def complaints(result: subprocess.CompletedProcess[str], folder: Path) -> list[str]:
    """Logged lines about our units. systemd-analyze exits 0 on unknown keys and bad values
    (it only logs them), so the log is what tells."""
    ours = (str(folder), *UNITS)
    return [line for line in result.stderr.splitlines()
            if any(name in line for name in ours)]


@pytest.mark.parametrize("drop_in", [False, True], ids=["as shipped", "with network drop-in"])
def test_units_verify_cleanly(tmp_path: Path, drop_in: bool) -> None:
    folder = stage(tmp_path / "units", drop_in=drop_in)
    result = verify(folder, *UNITS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert complaints(result, folder) == []


def test_verify_would_catch_a_mistake_in_a_unit_or_the_drop_in(tmp_path: Path) -> None:
    # The check above is only worth something if a wrong key is reported, drop-in included.
    folder = stage(tmp_path / "units", drop_in=True)
    unit = folder / "gate.service"
    unit.write_text(unit.read_text().replace("ProtectSystem=strict\n", "ProtectSystem=stricter\n"))
    with (folder / "gate.service.d" / "network.conf").open("a") as conf:
        conf.write("IPAddressAlow=192.0.2.30\n")
    found = "\n".join(complaints(verify(folder, "gate.service"), folder))
    assert "stricter" in found
    assert "IPAddressAlow" in found


def exposure(folder: Path, unit: str) -> tuple[float, str]:
    result = subprocess.run([tool("systemd-analyze"), "security", "--offline=true",
                             "--no-pager", str(folder / unit)],
                            capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", output)
    assert match, f"no overall exposure line in:\n{output}"
    assert complaints(result, folder) == [], output
    return float(match[1]), output


@pytest.mark.parametrize("drop_in", [False, True], ids=["as shipped", "with network drop-in"])
@pytest.mark.parametrize("unit", SERVICES)
def test_security_exposure_is_at_most_2(tmp_path: Path, unit: str, drop_in: bool) -> None:
    level, output = exposure(stage(tmp_path / "units", drop_in=drop_in), unit)
    assert level <= MAX_EXPOSURE, f"{unit} exposure {level} > {MAX_EXPOSURE}:\n{output}"


def test_the_gate_opens_only_gpio_chips_and_cameras_and_reaches_only_localhost(
        tmp_path: Path) -> None:
    _, output = exposure(stage(tmp_path / "units"), "gate.service")
    acl = next(line for line in output.splitlines() if line.startswith("✗ DeviceAllow="))
    devices = set(acl.split(":", 1)[1].split()[:-1])  # the last word is the exposure figure
    # char-rtc:r comes with ProtectClock=yes (reading the hardware clock, not setting it).
    assert devices == {"char-gpiochip:rw", "char-video4linux:rw", "char-rtc:r"}, acl
    assert "allow list with only localhost entries" in output


def test_sysusers_creates_the_user_and_its_groups(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run([tool("systemd-sysusers"), f"--root={root}",
                    str(SYSTEMD / "portique.sysusers.conf")],
                   check=True, capture_output=True, text=True)
    passwd = {line.split(":")[0]: line.split(":") for line in
              (root / "etc" / "passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in
              (root / "etc" / "group").read_text().splitlines()}
    user = passwd["portique"]
    assert user[5:] == ["/var/lib/portique", "/usr/sbin/nologin"]
    assert groups["portique"][2] == user[3]  # its own primary group
    for name in ("gpio", "video"):
        assert "portique" in groups[name][3].split(","), name


# The filter MemoryDenyWriteExecute=yes installs (systemd's seccomp-util.c): no mapping
# both writable and executable, no mprotect adding execute, no executable shared memory.
# The child proves the filter bites, then runs the libraries gate.service loads.
_UNDER_W_XOR_X = r"""
import ctypes, ctypes.util, errno, mmap, sys

path = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
try:
    lib = ctypes.CDLL(path)
except OSError:
    sys.exit("libseccomp is missing (Debian package libseccomp2, a dependency of systemd)")

class Arg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]

lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                       ctypes.c_uint, ctypes.POINTER(Arg)]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
SCMP_ACT_ALLOW, SCMP_CMP_MASKED_EQ, SHM_EXEC = 0x7FFF0000, 7, 0o100000
DENY = 0x00050000 | errno.EPERM
ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
for name, mask in (("mmap", mmap.PROT_WRITE | mmap.PROT_EXEC),
                   ("mmap2", mmap.PROT_WRITE | mmap.PROT_EXEC),
                   ("mprotect", mmap.PROT_EXEC), ("pkey_mprotect", mmap.PROT_EXEC),
                   ("shmat", SHM_EXEC)):
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number < 0:
        continue  # not on this architecture (mmap2 is 32-bit only)
    rule = Arg(2, SCMP_CMP_MASKED_EQ, mask, mask)
    assert lib.seccomp_rule_add_array(ctx, DENY, number, 1, ctypes.byref(rule)) == 0, name
assert lib.seccomp_load(ctx) == 0
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    pass
else:
    sys.exit("the W^X filter is not in force")

import io, sqlite3, tempfile
import numpy, cv2, zxingcpp, segno, gpiozero, prometheus_client, paho.mqtt.client
from pyzbar import pyzbar
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

text = "PORTIQUE-W^X-CHECK"
png = io.BytesIO()
segno.make_qr(text).save(png, kind="png", scale=8, border=4)
frame = cv2.imdecode(numpy.frombuffer(png.getvalue(), numpy.uint8), cv2.IMREAD_COLOR)
grey = cv2.cvtColor(cv2.resize(frame, (640, 480)), cv2.COLOR_BGR2GRAY)
assert [r.text for r in zxingcpp.read_barcodes(grey)] == [text]
assert [r.data.decode() for r in pyzbar.decode(grey)] == [text]
assert numpy.allclose(numpy.linalg.inv(numpy.eye(40) * 2.0) @ numpy.eye(40), numpy.eye(40) / 2)
key = Ed25519PrivateKey.generate()
key.public_key().verify(key.sign(b"level 1"), b"level 1")
with tempfile.TemporaryDirectory() as folder:
    db = sqlite3.connect(folder + "/journal.db")
    assert db.execute("pragma journal_mode=wal").fetchone() == ("wal",)
    db.execute("pragma synchronous=full")
    with db:
        db.execute("create table t (x)")
        db.execute("insert into t values (1)")
    db.close()
import portique.commands.main, portique.ticket.decision, portique.runtime.notify, portique.hardware
print("ok")
"""


def test_the_gate_libraries_run_with_memory_deny_write_execute() -> None:
    child = subprocess.run([sys.executable, "-c", _UNDER_W_XOR_X], cwd=ROOT,
                           capture_output=True, text=True, check=False)
    assert child.returncode == 0 and child.stdout.strip() == "ok", child.stdout + child.stderr


def _directives(unit: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in unit.read_text().splitlines()
                if "=" in line and not line.startswith("#"))


def test_the_socket_folder_outlives_a_stop_and_matches_tmpfiles() -> None:
    # `gate config check` as the service's user checks that the control socket's folder
    # is there: the unit keeps it after `systemctl stop gate` (systemd removes a runtime
    # directory at stop unless told otherwise), and tmpfiles makes the same folder with
    # the same owner and mode at install and boot, before the first start.
    service = _directives(SYSTEMD / "gate.service")
    folder = Path("/run") / service["RuntimeDirectory"]
    assert service.get("RuntimeDirectoryPreserve") == "yes"
    tmpfiles = [line.split() for line in
                (ROOT / "packaging" / "deb" / "portique.tmpfiles").read_text().splitlines()
                if line and not line.startswith("#")]
    entry = next(e for e in tmpfiles if e[1] == str(folder))
    assert entry[2:5] == [service["RuntimeDirectoryMode"], service["User"], service["Group"]]
    shipped = tomllib.loads((ROOT / "config" / "gate.toml").read_text())
    assert Path(shipped["control"]["socket"]).parent == folder
