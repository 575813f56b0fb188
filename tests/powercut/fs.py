"""A FUSE file system that loses, at a power cut, whatever was never synced.

Every write reaches this process at once (FUSE, no write-back cache) and stays in its
memory, the *volatile layer*, until the file is fsynced (fsync or fdatasync); only then is
it written to the backing folder. Directory entries (create, unlink, rename, mkdir,
rmdir) likewise stay volatile until their directory is fsynced. A *cut* ends this process
on the spot, under the lock every operation takes, so each operation happened entirely
before it or not at all: the volatile layer is gone with the process, the backing folder
holds exactly what was synced. A cut may *tear* the last unsynced write: a random number
of its leading whole 512-byte sectors (of one file's last unsynced write) reach the
backing copy, the rest do not, as a disk
losing power in the middle of a write does.

The backing folder holds ``tree.json`` (the durable names: path to inode, and each
inode's kind and mode) and ``data/INODE`` (each inode's durable bytes). Mounting it again
is the reboot: the file system then shows exactly what was durable.

Run: ``python -m tests.powercut.fs BACKING MOUNTPOINT CONTROL_SOCKET``. The control socket
takes one line: ``cut`` or ``cut tear SEED``; the answer (one JSON line) says what the cut
dropped, then the process ends with the mount (unmount it with ``fusermount3 -u -z``).
``stats`` answers the counts so far without cutting.
"""

from __future__ import annotations

import errno
import json
import os
import random
import socket
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mfusepy as fuse

PAGE = 4096
SECTOR = 512


@dataclass
class Inode:
    kind: str  # "file" or "dir"
    mode: int
    data: bytearray | None = None  # None: not loaded from the backing copy yet
    dirty: set[int] = field(default_factory=set)  # pages changed since the last fsync
    resized: bool = False
    mtime: float = field(default_factory=time.time)
    nlink: int = 1


def _parent(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


class PowerCutFS(fuse.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, backing: Path) -> None:
        self.backing = backing
        (backing / "data").mkdir(parents=True, exist_ok=True)
        self.mutex = threading.RLock()
        tree = backing / "tree.json"
        if tree.exists():
            saved = json.loads(tree.read_text())
        else:
            saved = {"next": 2, "entries": {"/": 1}, "inodes": {"1": ["dir", 0o40755]}}
        self.next_ino: int = saved["next"]
        self.durable: dict[str, int] = dict(saved["entries"])
        self.durable_attrs: dict[int, list[Any]] = {int(k): v for k, v in
                                                    saved["inodes"].items()}
        self.entries: dict[str, int] = dict(self.durable)
        self.inodes: dict[int, Inode] = {
            ino: Inode(kind, mode) for ino, (kind, mode) in self.durable_attrs.items()}
        for ino, node in self.inodes.items():
            if node.kind == "file":
                node.nlink = list(self.durable.values()).count(ino)
        # data files no durable name reaches are garbage from before the cut
        for item in (backing / "data").iterdir():
            if int(item.name) not in self.durable_attrs:
                item.unlink()
        self.last_writes: dict[int, tuple[int, bytes]] = {}
        """Each file's last write since its fsync: (offset, bytes)."""
        self.stats = {"writes": 0, "bytes_written": 0, "fsyncs": 0, "dir_fsyncs": 0}

    # --- helpers ------------------------------------------------------------------

    def _ino(self, path: str | None, fh: int | None = None) -> int:
        if fh:
            return fh
        if path is None or path not in self.entries:
            raise fuse.FuseOSError(errno.ENOENT)
        return self.entries[path]

    def _data(self, ino: int) -> bytearray:
        node = self.inodes[ino]
        if node.data is None:
            copy = self.backing / "data" / str(ino)
            node.data = bytearray(copy.read_bytes()) if copy.exists() else bytearray()
        return node.data

    def _save_tree(self) -> None:
        tree = {"next": self.next_ino, "entries": self.durable,
                "inodes": {str(k): v for k, v in self.durable_attrs.items()}}
        tmp = self.backing / "tree.json.tmp"
        tmp.write_text(json.dumps(tree))
        os.replace(tmp, self.backing / "tree.json")

    def _children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return [p for p in self.entries if p != "/" and _parent(p) == path
                and p.startswith(prefix)]

    def _new(self, path: str, kind: str, mode: int) -> int:
        if path in self.entries:
            raise fuse.FuseOSError(errno.EEXIST)
        if _parent(path) not in self.entries:
            raise fuse.FuseOSError(errno.ENOENT)
        ino = self.next_ino
        self.next_ino += 1
        self.inodes[ino] = Inode(kind, mode, bytearray() if kind == "file" else None)
        self.entries[path] = ino
        return ino

    # --- metadata -----------------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        with self.mutex:
            ino = self._ino(path, fh)
            node = self.inodes[ino]
            size = len(self._data(ino)) if node.kind == "file" else 0
            return {"st_mode": node.mode, "st_size": size, "st_nlink": node.nlink,
                    "st_uid": os.getuid(), "st_gid": os.getgid(), "st_mtime": node.mtime,
                    "st_ctime": node.mtime, "st_atime": node.mtime, "st_ino": ino,
                    "st_blocks": (size + 511) // 512, "st_blksize": PAGE}

    def readdir(self, path: str, fh: int) -> list[str]:
        with self.mutex:
            return [".", "..", *(p.rsplit("/", 1)[1] for p in self._children(path))]

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self.backing)
        return {k: getattr(st, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree",
                                             "f_bavail", "f_files", "f_ffree", "f_namemax")}

    def chmod(self, path: str | None, mode: int, fh: int | None = None) -> int:
        with self.mutex:
            node = self.inodes[self._ino(path, fh)]
            node.mode = (node.mode & ~0o7777) | (mode & 0o7777)
            return 0

    def chown(self, path: str | None, uid: int, gid: int, fh: int | None = None) -> int:
        return 0

    def utimens(self, path: str | None, times: Any = None, fh: int | None = None) -> int:
        with self.mutex:
            self.inodes[self._ino(path, fh)].mtime = time.time()
            return 0

    # --- names (volatile until the directory's fsync) -------------------------------

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        with self.mutex:
            return self._new(path, "file", stat.S_IFREG | (mode & 0o7777))

    def mkdir(self, path: str, mode: int) -> int:
        with self.mutex:
            self._new(path, "dir", stat.S_IFDIR | (mode & 0o7777))
            return 0

    def unlink(self, path: str) -> int:
        with self.mutex:
            ino = self._ino(path)
            del self.entries[path]
            self.inodes[ino].nlink -= 1
            return 0

    def rmdir(self, path: str) -> int:
        with self.mutex:
            self._ino(path)
            if self._children(path):
                raise fuse.FuseOSError(errno.ENOTEMPTY)
            del self.entries[path]
            return 0

    def rename(self, old: str, new: str, flags: int = 0) -> int:
        with self.mutex:
            ino = self._ino(old)
            if flags & 1 and new in self.entries:  # RENAME_NOREPLACE
                raise fuse.FuseOSError(errno.EEXIST)
            if flags & ~1:
                raise fuse.FuseOSError(errno.EINVAL)
            if new in self.entries:
                target = self.entries[new]
                if self.inodes[target].kind == "dir" and self._children(new):
                    raise fuse.FuseOSError(errno.ENOTEMPTY)
                self.inodes[target].nlink -= 1
            moved = {p: i for p, i in self.entries.items()
                     if p == old or p.startswith(old.rstrip("/") + "/")}
            for p in moved:
                del self.entries[p]
            for p, i in moved.items():
                self.entries[new + p[len(old):]] = i
            self.entries[new] = ino
            return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        with self.mutex:
            self.stats["dir_fsyncs"] += 1
            prefix = path.rstrip("/") + "/"
            for p in [p for p in self.durable if p != "/" and _parent(p) == path
                      and p.startswith(prefix)]:
                del self.durable[p]
            for p in self._children(path):
                ino = self.entries[p]
                self.durable[p] = ino
                node = self.inodes[ino]
                self.durable_attrs[ino] = [node.kind, node.mode]
                copy = self.backing / "data" / str(ino)
                if node.kind == "file" and not copy.exists():
                    copy.touch()
            self._save_tree()
            return 0

    # --- data (volatile until the file's fsync) -----------------------------------

    def open(self, path: str, flags: int) -> int:
        with self.mutex:
            return self._ino(path)

    def opendir(self, path: str) -> int:
        with self.mutex:
            return self._ino(path)

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        with self.mutex:
            return bytes(self._data(self._ino(path, fh))[offset:offset + size])

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        with self.mutex:
            ino = self._ino(path, fh)
            buf = self._data(ino)
            end = offset + len(data)
            if offset > len(buf):
                self.inodes[ino].dirty.update(range(len(buf) // PAGE, offset // PAGE + 1))
            if end > len(buf):
                buf.extend(bytes(end - len(buf)))
                self.inodes[ino].resized = True
            buf[offset:end] = data
            self.inodes[ino].dirty.update(range(offset // PAGE, (end - 1) // PAGE + 1))
            self.inodes[ino].mtime = time.time()
            self.last_writes[ino] = (offset, bytes(data))
            self.stats["writes"] += 1
            self.stats["bytes_written"] += len(data)
            return len(data)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        with self.mutex:
            ino = self._ino(path, fh)
            buf = self._data(ino)
            old = len(buf)
            if length < old:
                del buf[length:]
            else:
                buf.extend(bytes(length - old))
            node = self.inodes[ino]
            node.resized = True
            node.dirty.update(range(min(old, length) // PAGE, max(old, length) // PAGE + 1))
            return 0

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        with self.mutex:
            self.stats["fsyncs"] += 1
            ino = self._ino(path, fh)
            node = self.inodes[ino]
            if node.kind != "file":
                return 0
            buf = self._data(ino)
            fd = os.open(self.backing / "data" / str(ino), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for page in sorted(node.dirty):
                    chunk = buf[page * PAGE:(page + 1) * PAGE]
                    if chunk:
                        os.pwrite(fd, chunk, page * PAGE)
                os.ftruncate(fd, len(buf))
            finally:
                os.close(fd)
            node.dirty.clear()
            node.resized = False
            if ino in self.durable_attrs and self.durable_attrs[ino][1] != node.mode:
                self.durable_attrs[ino] = [node.kind, node.mode]
                self._save_tree()
            self.last_writes.pop(ino, None)
            return 0

    def flush(self, path: str | None, fh: int) -> int:
        return 0

    def release(self, path: str | None, fh: int) -> int:
        return 0

    def releasedir(self, path: str | None, fh: int) -> int:
        return 0

    def destroy(self, path: str) -> None:
        """A clean unmount (no cut) writes everything out, as a clean shutdown does."""
        with self.mutex:
            for ino, node in list(self.inodes.items()):
                if node.kind == "file" and (node.dirty or node.resized):
                    self.fsync(None, 0, ino)
            for p, ino in list(self.entries.items()):
                if self.inodes[ino].kind == "dir":
                    self.fsyncdir(p, 0, ino)

    # --- the cut ------------------------------------------------------------------

    def volatile(self) -> dict[str, int]:
        """What a cut now would drop: unsynced bytes and files, unsynced names."""
        dirty = [n for n in self.inodes.values() if n.dirty]
        changed = sum(1 for p, i in self.entries.items() if self.durable.get(p) != i)
        gone = sum(1 for p in self.durable if p not in self.entries)
        return {"unsynced_files": len(dirty),
                "unsynced_bytes": sum(len(n.dirty) * PAGE for n in dirty),
                "unsynced_names": changed + gone}

    def tear(self, seed: int) -> int:
        """Tear the last unsynced write of one file (picked by `seed` among the files with
        a durable name and unsynced writes): a random number of its leading whole sectors
        reach the backing copy, the rest is lost. Returns the bytes kept."""
        rng = random.Random(seed)
        named = set(self.durable.values())
        candidates = sorted(ino for ino in self.last_writes if ino in named)
        if not candidates:
            return 0
        ino = rng.choice(candidates)
        offset, data = self.last_writes[ino]
        copy = self.backing / "data" / str(ino)
        first = -(-offset // SECTOR) * SECTOR  # the first sector boundary in the write
        boundaries = list(range(first, offset + len(data), SECTOR))
        if not boundaries or offset > copy.stat().st_size:
            return 0
        cut = rng.choice(boundaries)
        kept = data[:cut - offset]
        if kept:
            fd = os.open(copy, os.O_WRONLY)
            try:
                os.pwrite(fd, kept, offset)
            finally:
                os.close(fd)
        return len(kept)


def _serve_control(fs: PowerCutFS, path: Path) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    while True:
        conn, _ = server.accept()
        with conn:
            words = conn.makefile("r").readline().split()
            with fs.mutex:  # no operation is half done while this holds
                answer: dict[str, Any] = {**fs.stats, **fs.volatile()}
                if words[:1] == ["cut"]:
                    answer["torn_bytes"] = (fs.tear(int(words[2])) if words[1:2] == ["tear"]
                                            else 0)
                    answer["torn"] = answer["torn_bytes"] > 0
                conn.sendall((json.dumps(answer) + "\n").encode())
                if words[:1] == ["cut"]:
                    os._exit(0)  # the volatile layer goes with the process's memory


def main(argv: list[str]) -> None:
    backing, mountpoint, control = (Path(a) for a in argv)
    fs = PowerCutFS(backing)
    threading.Thread(target=_serve_control, args=(fs, control), daemon=True).start()
    fuse.FUSE(fs, str(mountpoint), foreground=True, nothreads=False,
              fsname="powercut", subtype="powercut", hard_remove=True)


if __name__ == "__main__":
    main(sys.argv[1:])
