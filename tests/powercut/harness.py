"""Mount the power-cut file system (tests/powercut/fs.py), cut its power, mount it again."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FUSERMOUNT = "fusermount3"


class HarnessError(RuntimeError):
    pass


class PowerCutMount:
    """`mount()` shows the backing folder's durable state at `mountpoint`; `cut()` drops
    everything not synced since (optionally tearing the last write) and leaves the mount
    gone; `mount()` again is the reboot."""

    def __init__(self, folder: Path) -> None:
        for tool in (FUSERMOUNT,):
            if shutil.which(tool) is None:
                raise HarnessError(f"{tool} is missing: the power-cut tests need FUSE 3 "
                                   "(Debian packages fuse3 and libfuse3-3; `make test` "
                                   "installs them)")
        if not os.path.exists("/dev/fuse"):
            raise HarnessError("/dev/fuse is missing: the power-cut tests need FUSE")
        self.folder = folder
        self.backing = folder / "backing"
        self.mountpoint = folder / "mnt"
        self.control = folder / "control.sock"
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.cuts: list[dict[str, Any]] = []

    def mount(self, timeout: float = 30.0) -> Path:
        self.control.unlink(missing_ok=True)
        # a mount whose process died (an earlier cut) answers nothing: detach it
        subprocess.run([FUSERMOUNT, "-u", "-z", str(self.mountpoint)], check=False,
                       capture_output=True)
        log = (self.folder / "fs.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.powercut.fs", str(self.backing),
             str(self.mountpoint), str(self.control)], cwd=REPO, stdout=log, stderr=log,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        log.close()
        deadline = time.monotonic() + timeout
        while not (os.path.ismount(self.mountpoint) and self.control.exists()):
            if self.process.poll() is not None:
                raise HarnessError("the power-cut file system did not mount: "
                                   + (self.folder / "fs.log").read_text()[-2000:])
            if time.monotonic() > deadline:
                raise HarnessError("the power-cut file system did not mount in time")
            time.sleep(0.01)
        return self.mountpoint

    def _ask(self, line: str) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.control))
            sock.sendall(line.encode() + b"\n")
            answer = sock.makefile("r").readline()
        if not answer:
            raise HarnessError(f"the power-cut file system gave no answer to {line!r}")
        result: dict[str, Any] = json.loads(answer)
        return result

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def cut(self, *, tear_seed: int | None = None) -> dict[str, Any]:
        """The power cut: what was volatile is gone. Returns what the cut dropped."""
        assert self.process is not None
        dropped = self._ask("cut" if tear_seed is None else f"cut tear {tear_seed}")
        self.process.wait(timeout=30)
        self.process = None
        self.unmount()
        self.cuts.append(dropped)
        return dropped

    def unmount(self) -> None:
        subprocess.run([FUSERMOUNT, "-u", "-z", str(self.mountpoint)], check=False,
                       capture_output=True)
        if self.process is not None:  # a clean stop (end of test): no cut
            self.process.wait(timeout=30)
            self.process = None
