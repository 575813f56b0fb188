"""Supervisors and their PINs: who may override a manual admit the gate refused.

The venue's operator keeps the supervisors in one file (``[steward] supervisors``, by
default ``/etc/portique/supervisors.toml``, root:root mode 0600), written by
``gate supervisor set ID`` and ``gate supervisor remove ID``. It holds no PIN, only a
slow hash of each:

    [supervisors]
    "sup-9" = "scrypt:n=32768,r=8,p=1:<salt, base64>:<hash, base64>"

* scrypt (hashlib, OpenSSL) with n = 2^15, r = 8, p = 1 (32 MiB of memory and about
  0.1 s on a desktop, 0.3-0.5 s on a gate's Raspberry Pi per try), a random 16-byte salt
  per supervisor and a 32-byte hash; the parameters are stored with each hash, so they
  can be raised later without invalidating the PINs already set.
* A PIN is 6 to 12 digits. It is compared in constant time; an unknown supervisor costs
  the same hash as a known one, so timing does not tell which ids exist.
* Six digits are a million PINs: whoever reads the hashes finds one in hours of
  computing. So no group may read the file (the stewards are in group portique, the
  control socket's): the service is handed a private copy by systemd
  (``LoadCredential=supervisors:/etc/portique/supervisors.toml`` in gate.service), in
  $CREDENTIALS_DIRECTORY, which it reads in preference to the configured file. Without
  one, the configured file must be mode 0600 and owned by root or the gate's user.
* Refused, so that no override is possible until the operator fixes it (the message
  names the file and what to run): a file its group or others may read, one owned by
  another user, a symbolic link, a folder above it that another user could change (as
  for keys: portique.keyfiles.check_folders), a damaged file.

Failed attempts are rate-limited by `OverrideGuard`: after ``override_max_failures``
refusals within ``override_failure_window_s``, every override is refused for
``override_lockout_s``, even with the right PIN. The daemon journals each refusal.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import hmac
import os
import pwd
import re
import secrets
import stat
import struct
import threading
import time
import tomllib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portique.base.errors import GateError
from portique.keyfiles import UnsafeFileError, check_folders
from portique.runtime.credentials import credential_path

DEFAULT_FILE = Path("/etc/portique/supervisors.toml")
CREDENTIAL = "supervisors"
"""The name gate.service gives the file (LoadCredential=supervisors:PATH)."""
GATE_USER = "portique"
"""The account gate.service runs as (User=): it may own the file, as may root."""

SUPERVISOR_ID_MAX = 32
_SUPERVISOR_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")
_PIN = re.compile(r"[0-9]{6,12}")
PIN_FIELD_MAX = 64
"""Longest `pin` field the control protocol takes (any longer is not even tried)."""

SALT_BYTES = 16
HASH_BYTES = 32
ALLOWED_MODE_BITS = 0o600
"""Permission bits a supervisors file may have: read-write owner, nothing else."""


def valid_supervisor_id(value: object) -> bool:
    """1 to 32 of A-Z a-z 0-9 . _ - (as in the journal's "override by ID")."""
    return isinstance(value, str) and _SUPERVISOR_ID.fullmatch(value) is not None


class SupervisorError(GateError, ValueError):
    """The supervisors file is missing, unsafe or damaged, or an id or PIN is malformed."""


class OverrideRefusedError(GateError, PermissionError):
    """A supervisor override that did not authenticate."""

    def __init__(self, message: str, code: str, *, counted: bool,
                 locked_now: bool = False) -> None:
        super().__init__(message)
        self.code = code
        """Stable: supervisor_refused, override_locked, supervisors_unavailable."""
        self.counted = counted
        """It was a guess (unknown supervisor, wrong or missing PIN): it counts to the lock."""
        self.locked_now = locked_now
        """This refusal locked the overrides."""


# --- hashes ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ScryptParams:
    n: int = 2 ** 15
    r: int = 8
    p: int = 1

    def check(self, what: str) -> None:
        if not (2 ** 14 <= self.n <= 2 ** 20 and self.n & (self.n - 1) == 0
                and 1 <= self.r <= 32 and 1 <= self.p <= 16
                and 128 * self.r * self.n * self.p <= 512 * 1024 * 1024):
            raise SupervisorError(f"{what}: scrypt parameters n={self.n} r={self.r} "
                                  f"p={self.p} out of range")

    def spelled(self) -> str:
        return f"n={self.n},r={self.r},p={self.p}"


DEFAULT_PARAMS = ScryptParams()


@dataclass(frozen=True)
class PinHash:
    params: ScryptParams
    salt: bytes
    digest: bytes

    def encode(self) -> str:
        return ":".join(("scrypt", self.params.spelled(),
                         base64.b64encode(self.salt).decode(),
                         base64.b64encode(self.digest).decode()))

    @classmethod
    def decode(cls, text: object, what: str) -> PinHash:
        if not isinstance(text, str):
            raise SupervisorError(f"{what}: not a PIN hash string")
        parts = text.split(":")
        if len(parts) != 4 or parts[0] != "scrypt":
            raise SupervisorError(f"{what}: not a scrypt PIN hash "
                                  "(scrypt:n=..,r=..,p=..:SALT:HASH)")
        try:
            values = dict(item.split("=", 1) for item in parts[1].split(","))
            params = ScryptParams(int(values.pop("n")), int(values.pop("r")),
                                  int(values.pop("p")))
            if values:
                raise ValueError(f"unknown parameter {next(iter(values))}")
            salt = base64.b64decode(parts[2], validate=True)
            digest = base64.b64decode(parts[3], validate=True)
        except (KeyError, ValueError, binascii.Error) as exc:
            raise SupervisorError(f"{what}: damaged PIN hash ({exc})") from None
        params.check(what)
        if len(salt) < 16 or len(digest) != HASH_BYTES:
            raise SupervisorError(f"{what}: damaged PIN hash (salt or hash length)")
        return cls(params, salt, digest)

    def matches(self, pin: str) -> bool:
        return hmac.compare_digest(_derive(pin, self.params, self.salt), self.digest)


def _derive(pin: str, params: ScryptParams, salt: bytes) -> bytes:
    memory = 128 * params.r * params.n * params.p
    return hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=params.n, r=params.r,
                          p=params.p, maxmem=memory + 16 * 1024 * 1024, dklen=HASH_BYTES)


def check_pin(pin: str) -> None:
    if not _PIN.fullmatch(pin):
        raise SupervisorError("a PIN is 6 to 12 digits")


def hash_pin(pin: str, params: ScryptParams = DEFAULT_PARAMS,
             salt: bytes | None = None) -> PinHash:
    check_pin(pin)
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    return PinHash(params, salt, _derive(pin, params, salt))


_DUMMY: list[PinHash] = []


def _dummy() -> PinHash:
    """What an unknown supervisor's PIN is checked against: the same work as a real one."""
    if not _DUMMY:
        _DUMMY.append(hash_pin("000000", salt=bytes(SALT_BYTES)))
    return _DUMMY[0]


# --- the file -------------------------------------------------------------------------

def trusted_owners() -> frozenset[int]:
    """Who may own the file: root, the user running this, and the gate's user."""
    owners = {0, os.geteuid()}
    with contextlib.suppress(KeyError):
        owners.add(pwd.getpwnam(GATE_USER).pw_uid)
    return frozenset(owners)


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def source(configured: Path) -> tuple[Path, bool]:
    """The file the gate reads: systemd's copy when it gave one, else the configured file;
    and whether it is systemd's copy."""
    handed = credential_path(CREDENTIAL)
    return (configured, False) if handed is None else (handed, True)


_ACL_XATTR = "system.posix_acl_access"
_ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_OTHER = 0x02, 0x04, 0x08, 0x20


def _acl_problem(fd: int, owners: frozenset[int]) -> str | None:
    """Why the group bits of systemd's copy are more than the mask of an ACL that grants
    the gate's user alone (systemd: 0400 root, then `user:portique:r`), or None."""
    try:
        raw = os.getxattr(fd, _ACL_XATTR)
    except OSError:
        return "its group can read it (no access list)"
    if len(raw) < 4 or (len(raw) - 4) % 8 or struct.unpack_from("<I", raw)[0] != 2:
        return "its access list is not one this gate reads"
    for tag, perm, ident in struct.iter_unpack("<HHI", raw[4:]):
        if tag in (_ACL_GROUP_OBJ, _ACL_GROUP) and perm:
            return "its access list lets a group read it"
        if tag == _ACL_USER and perm and ident not in owners:
            return f"its access list lets {_user(ident)} read it"
        if tag == _ACL_OTHER and perm:
            return "its access list lets others read it"
    return None


def _open_checked(path: Path, *, credential: bool = False) -> tuple[int, os.stat_result]:
    """Open the file (never through a symbolic link) and check what was opened."""
    what = (f"supervisors file {path} (systemd's copy, LoadCredential={CREDENTIAL})"
            if credential else f"supervisors file {path}")
    try:
        check_folders(path, what="supervisors file")
    except UnsafeFileError as exc:
        raise SupervisorError(str(exc)) from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
                     | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SupervisorError(f"{what}: missing (create it with "
                              "`gate supervisor set ID`)") from None
    except PermissionError:
        raise SupervisorError(
            f"{what}: {_user(os.geteuid())} may not read it: gate.service gives it to the "
            f"gate with LoadCredential={CREDENTIAL}:{path}; a gate run otherwise reads it "
            f"itself when it owns it (`chown {GATE_USER}: {path}`)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SupervisorError(f"{what}: a symbolic link: the gate reads no supervisors "
                                  "file through a link: put the file itself there") from None
        raise SupervisorError(f"{what}: cannot open: {exc.strerror or exc}") from None
    try:
        problem = _problem(fd, path, credential=credential)
    except BaseException:
        os.close(fd)
        raise
    if problem is not None:
        os.close(fd)
        raise SupervisorError(f"{what}: {problem}")
    return fd, os.fstat(fd)


def _problem(fd: int, path: Path, *, credential: bool) -> str | None:
    st = os.fstat(fd)
    mode = stat.S_IMODE(st.st_mode)
    owners = trusted_owners()
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_uid not in owners:
        return (f"owned by {_user(st.st_uid)}, not by root or the gate's user "
                f"({GATE_USER}): that user may have written the PIN hashes in it: if it is "
                f"genuine run `chown root: {path}`, otherwise remove it and set the PINs "
                "again (`gate supervisor set ID`)")
    if credential:
        if mode & 0o037:
            return (f"mode {mode:04o}: its group or others may read or change it: see "
                    f"LoadCredential={CREDENTIAL} in gate.service (`systemctl cat gate`)")
        if mode & 0o040:
            acl = _acl_problem(fd, owners)
            if acl is not None:
                return (f"mode {mode:04o}: {acl}: see LoadCredential={CREDENTIAL} in "
                        "gate.service (`systemctl cat gate`)")
        return None
    if mode & ~ALLOWED_MODE_BITS:
        return (f"mode {mode:04o}: its group or others may read the PIN hashes (the "
                f"stewards are in group {GATE_USER}) and find a 6-digit PIN in hours: it "
                f"must be 0600: run `chmod 600 {path}`, and as those PINs may be known, set "
                "new ones (`gate supervisor set ID`)")
    return None


def load(path: Path, *, credential: bool = False) -> dict[str, PinHash]:
    """Every supervisor's PIN hash; SupervisorError names what is wrong with the file.

    `credential`: `path` is systemd's copy (see `source`)."""
    fd, _ = _open_checked(path, credential=credential)
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(1024 * 1024 + 1)
    if len(raw) > 1024 * 1024:
        raise SupervisorError(f"supervisors file {path}: larger than 1 MiB")
    try:
        table = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SupervisorError(f"supervisors file {path}: not valid TOML: {exc}") from None
    unknown = sorted(set(table) - {"supervisors"})
    if unknown:
        raise SupervisorError(f"supervisors file {path}: unknown key {unknown[0]!r}")
    entries = table.get("supervisors", {})
    if not isinstance(entries, dict):
        raise SupervisorError(f"supervisors file {path}: 'supervisors' must be a table")
    records = {}
    for supervisor, text in entries.items():
        if not valid_supervisor_id(supervisor):
            raise SupervisorError(f"supervisors file {path}: {supervisor[:40]!r} is not a "
                                  "supervisor id (1-32 of A-Z a-z 0-9 . _ -)")
        records[supervisor] = PinHash.decode(text, f"supervisors file {path}: "
                                                   f"supervisor {supervisor}")
    return records


def save(path: Path, records: dict[str, PinHash]) -> None:
    """Replace the file in one step (write, fsync, rename): mode 0600, its owner and group
    kept (a new file is its writer's, root's when run by root)."""
    uid, gid = -1, -1
    if os.path.lexists(path):
        fd, st = _open_checked(path)
        os.close(fd)
        uid, gid = st.st_uid, st.st_gid
    else:
        try:
            check_folders(path, what="supervisors file")
        except UnsafeFileError as exc:
            raise SupervisorError(str(exc)) from None
    lines = ["# Portique supervisors: scrypt hashes of their PINs, never the PINs.",
             "# Written by `gate supervisor set|remove`; see docs/steward.md.",
             "", "[supervisors]"]
    lines += [f'"{who}" = "{record.encode()}"' for who, record in sorted(records.items())]
    data = ("\n".join(lines) + "\n").encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise SupervisorError(f"supervisors file {path}: cannot write: "
                              f"{exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            if (uid, gid) != (-1, -1):
                with contextlib.suppress(PermissionError):
                    os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise SupervisorError(f"supervisors file {path}: cannot write: "
                              f"{exc.strerror or exc}") from None
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def set_pin(path: Path, supervisor: str, pin: str) -> bool:
    """Add or replace one supervisor's PIN; True if it replaced one. Nothing else changes."""
    if not valid_supervisor_id(supervisor):
        raise SupervisorError(f"supervisor id {supervisor[:40]!r}: 1-32 of "
                              "A-Z a-z 0-9 . _ -")
    check_pin(pin)
    try:
        records = load(path)
    except SupervisorError:
        if os.path.lexists(path):
            raise  # a damaged or unsafe file is the operator's to look at, not to overwrite
        records = {}
    replaced = supervisor in records
    records[supervisor] = hash_pin(pin)
    save(path, records)
    return replaced


def remove(path: Path, supervisor: str) -> None:
    records = load(path)
    if supervisor not in records:
        raise SupervisorError(f"supervisors file {path}: no supervisor {supervisor[:40]!r}")
    del records[supervisor]
    save(path, records)


# --- authentication and its rate limit ------------------------------------------------

@dataclass(frozen=True)
class OverrideLimits:
    max_failures: int = 5
    window_s: float = 600.0
    lockout_s: float = 900.0


class OverrideGuard:
    """Refused attempts in a sliding window; too many lock every override for a while.

    Times are monotonic: setting the wall clock neither ends nor extends a lock.
    """

    def __init__(self, limits: OverrideLimits) -> None:
        self.limits = limits
        self._failures: deque[float] = deque()
        self._locked_until = 0.0

    def locked_for(self, now: float) -> float:
        """Seconds the overrides stay locked (0: not locked)."""
        return max(0.0, self._locked_until - now)

    def failed(self, now: float) -> int:
        """Count a refused attempt; the attempts left before the lock (0: locked now)."""
        window = self.limits.window_s
        while self._failures and self._failures[0] <= now - window:
            self._failures.popleft()
        self._failures.append(now)
        if len(self._failures) >= self.limits.max_failures:
            self._failures.clear()
            self._locked_until = now + self.limits.lockout_s
            return 0
        return self.limits.max_failures - len(self._failures)

    def seed(self, ages: list[float], now: float) -> None:
        """Refusals from before a restart, `ages` seconds ago (from the journal)."""
        horizon = self.limits.window_s + self.limits.lockout_s
        for age in sorted((a for a in ages if 0 <= a < horizon), reverse=True):
            self.failed(now - age)  # oldest first, as they happened


class Authenticator:
    """Checks a supervisor's id and PIN against the file, one attempt at a time."""

    def __init__(self, path: Path, limits: OverrideLimits,
                 clock: Any = time.monotonic) -> None:
        self.path = path
        self.guard = OverrideGuard(limits)
        self._clock = clock
        self._lock = threading.Lock()
        """Attempts run one after the other: N refusals are N guesses, never more."""

    def authenticate(self, supervisor: str, pin: str | None) -> None:
        """Return if the supervisor's PIN is right; OverrideRefusedError otherwise."""
        with self._lock:
            now = self._clock()
            locked = self.guard.locked_for(now)
            if locked > 0:
                raise OverrideRefusedError(
                    f"supervisor overrides are locked for {_minutes(locked)} after too many "
                    "refused attempts", "override_locked", counted=False)
            try:
                path, credential = source(self.path)
                records = load(path, credential=credential)
            except SupervisorError as exc:
                raise OverrideRefusedError(f"supervisor overrides are unavailable: {exc}",
                                           "supervisors_unavailable", counted=False) from None
            record = records.get(supervisor)
            if pin is None:
                accepted, why = False, "no PIN given"
            elif not _PIN.fullmatch(pin):
                accepted, why = False, "unknown supervisor or wrong PIN"
            else:
                accepted = (record or _dummy()).matches(pin) and record is not None
                why = "unknown supervisor or wrong PIN"
            if accepted:
                return
            left = self.guard.failed(self._clock())
            if left == 0:
                raise OverrideRefusedError(
                    f"supervisor {supervisor} not accepted ({why}): supervisor overrides "
                    f"are now locked for {_minutes(self.guard.limits.lockout_s)}",
                    "supervisor_refused", counted=True, locked_now=True)
            raise OverrideRefusedError(
                f"supervisor {supervisor} not accepted ({why}); {left} more refused "
                "attempt(s) lock supervisor overrides", "supervisor_refused", counted=True)


def _minutes(seconds: float) -> str:
    return f"{max(1, round(seconds / 60))} min"
