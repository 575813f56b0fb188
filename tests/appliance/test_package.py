"""The Debian package, built and installed as a gate gets it: `packaging/deb/build.sh amd64`,
lintian on the result, then `packaging/check/root-check.sh` installs it into a fresh
Debian Bookworm root (mmdebstrap, cached; a new copy for every run) and there runs, with
the installed /usr/bin/gate and the venv its postinst built offline from the package's
wheelhouse: `gate setup`, `gate config check` as the service's user, `systemd-analyze
verify` on the installed units, the test vectors, `gate decode`, a replayed gate run on
simulated pins and `gate ready`. `make check-arm64` runs the same check on the arm64
package under qemu."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap and chroot need root"),
    pytest.mark.skipif(shutil.which("mmdebstrap") is None or shutil.which("lintian") is None,
                       reason="mmdebstrap and lintian are installed by `make test-slow`"),
]


@pytest.fixture(scope="module")
def amd64_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                      check=True).stdout.strip() != "amd64":
        pytest.skip("the amd64 package is installed into a native amd64 root")
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([str(REPO / "packaging" / "deb" / "build.sh"), "amd64", str(out)],
                           env={**os.environ, "PYTHON": sys.executable},
                           capture_output=True, text=True, timeout=1500, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    debs = list(out.glob("portique_*_amd64.deb"))
    assert len(debs) == 1, build.stdout
    return debs[0]


@pytest.mark.timeout(600)
def test_package_contents_and_lintian(amd64_deb: Path) -> None:
    fields = subprocess.run(["dpkg-deb", "-f", str(amd64_deb), "Package", "Architecture",
                             "Depends"], capture_output=True, text=True, check=True).stdout
    assert "Package: portique" in fields and "Architecture: amd64" in fields
    assert "python3.11-venv" in fields and "libzbar0" in fields
    listing = subprocess.run(["dpkg-deb", "-c", str(amd64_deb)], capture_output=True,
                             text=True, check=True).stdout
    for path in ("./usr/bin/gate", "./lib/systemd/system/gate.service",
                 "./lib/systemd/system/gate-sync.timer", "./usr/lib/sysusers.d/portique.conf",
                 "./usr/lib/tmpfiles.d/portique.conf", "./etc/portique/gate.toml.example"):
        assert f" {path}\n" in listing, path
    wheels = [line for line in listing.splitlines() if "/opt/portique/wheels/" in line
              and line.endswith(".whl")]
    assert any("/portique-" in w for w in wheels)
    assert any("numpy-" in w and "x86_64" in w for w in wheels)
    assert not any("aarch64" in w for w in wheels)
    conffiles = subprocess.run(["dpkg-deb", "-I", str(amd64_deb), "conffiles"],
                               capture_output=True, text=True, check=True).stdout
    assert conffiles.split() == ["/etc/portique/gate.toml.example"]
    # No key, token or journal in the package: those are the operator's.
    assert "/etc/portique/keys/" not in listing and "upload-token" not in listing
    lint = subprocess.run(["lintian", "--pedantic", "--fail-on", "error,warning",
                           str(amd64_deb)],
                          capture_output=True, text=True, timeout=600, check=False)
    tags = [line for line in lint.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert tags == [], lint.stdout
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # The one error tag is overridden, with its reason (packaging/deb/lintian-overrides).
    shown = subprocess.run(["lintian", "--show-overrides", str(amd64_deb)],
                           capture_output=True, text=True, timeout=600, check=False).stdout
    assert "O: portique: dir-or-file-in-opt" in shown
    assert "N: The gate is an appliance package" in shown


@pytest.mark.timeout(1800)
def test_installed_in_a_fresh_debian_root(amd64_deb: Path) -> None:
    check = subprocess.run(
        [str(REPO / "packaging" / "check" / "root-check.sh"), "amd64", str(amd64_deb)],
        env={**os.environ, "HOST_GATE": str(Path(sys.executable).parent / "gate")},
        capture_output=True, text=True, timeout=1700, check=False)
    out = check.stdout + check.stderr
    assert check.returncode == 0, out
    assert "Setting up portique (" in out   # dpkg -i ran the postinst
    for expected in ("ok   python 3.11", "on x86_64",
                     "gate on the PATH, user portique",
                     "valid (gate north-3, event PAR24-ATH05, entrance 2",
                     "ok   gate.service, gate-sync.service, gate-sync.timer",
                     "valid_step_change admitted (VALID), revoked refused (SUPERSEDED)",
                     "the same codes as the build machine on all",
                     "ok   removed and purged: config, keys, token, supervisors and journal "
                     "kept",
                     "all checks passed on amd64"):
        assert expected in out, f"{expected!r} missing:\n{out}"
    assert re.search(r"^ok   \d+ passed in ", out, re.M), out   # the vectors' pytest line
    assert re.search(r"^amd64: \d+ passed, 0 failed$", check.stdout, re.M), out
    assert "READY for doors: all" in out
    assert "ok   gate ready: READY (exit 0) from the running gate" in out
