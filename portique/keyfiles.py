"""Key files on disk: Ed25519 private keys (PEM, mode 0600) and public key descriptors.

``KID.key``  PKCS#8 PEM private key, readable by its owner only.
``KID.pub``  JSON: {"kid", "role", "algorithm": "Ed25519", "public_key": hex of the 32 raw
             bytes, "valid_from", "valid_until" (ISO-8601 or null), "events" (list or null
             for any event), "withdrawn"}.

A folder of ``*.pub`` files is a trust store. Writing never replaces an existing key.

Reading refuses, as OpenSSH's StrictModes does, what someone other than root and the user
the gate runs as could have changed: a key folder, a public key or a config file owned by
another user or writable by group or others, a folder above them (or above a symbolic
link's target) owned by another user or writable by its group or by everyone (unless
sticky, as /tmp), and a private key that group or others can read (``check_safe``,
``check_folders``). Keys are checked on the descriptor read (``read_checked``), not by
name before reading; docs/operations.md, "Files the gate trusts".
"""

from __future__ import annotations

import json
import os
import pwd
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.base.errors import CredentialError, GateError, KeyFileError
from portique.base.timeparse import format_time, parse_time
from portique.ticket.credential import check_event
from portique.ticket.trust import KeyRole, TrustedKey, TrustStore

_KID_RE = re.compile(r"[A-Za-z0-9._-]{1,16}")
ALGORITHM = "Ed25519"


class UnsafeFileError(GateError, PermissionError):
    """A key, key folder or config file that someone other than root and the gate's user
    could change (or, for a private key, read): refused, the message says what to run."""


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def check_safe(path: Path, *, what: str, secret: bool = False, parents: bool = True) -> None:
    """Refuse `path` (UnsafeFileError) unless only root or the running user can change it.

    It must be owned by root or the running user and not writable by group or others;
    a `secret` (a private key) must not be readable by them either. With `parents`, every
    folder above it is checked too (`check_folders`); without, only the folders above a
    symbolic link's target. A missing file is left to the reader, which says so.
    """
    try:
        st = os.stat(path)
    except OSError:
        return
    if parents or os.path.islink(path):
        check_folders(path, what=what)
    _check_stat(st, path, what=what, secret=secret)


def _check_stat(st: os.stat_result, path: Path, *, what: str, secret: bool) -> None:
    me = os.geteuid()
    if st.st_uid not in (0, me):
        raise UnsafeFileError(
            f"{what} {path}: owned by {_user(st.st_uid)}, not by root or {_user(me)} that "
            f"the gate runs as: if it is genuine run `chown root: {path}`, otherwise remove it")
    mode = stat.S_IMODE(st.st_mode)
    if secret and mode & 0o077:
        raise UnsafeFileError(f"{what} {path}: group or others can read it (mode {mode:04o}): "
                              f"run `chmod 600 {path}` (and replace the key if others read it)")
    if mode & 0o022:
        raise UnsafeFileError(f"{what} {path}: writable by group or others (mode {mode:04o}): "
                              f"run `chmod go-w {path}`")


def check_folders(path: Path, *, what: str) -> None:
    """Refuse `path` (UnsafeFileError) if a folder above it, as written or as its symbolic
    links resolve (the target's folders too), could be changed by someone other than root
    or the running user: owned by another user, or writable by its group or by everyone,
    unless sticky (as /tmp, where nobody may rename or remove another's files)."""
    me = os.geteuid()
    absolute = Path(os.path.abspath(path))
    for folder in dict.fromkeys([*absolute.parents, *absolute.resolve().parents]):
        try:
            fst = os.stat(folder)
        except OSError:
            continue
        mode = stat.S_IMODE(fst.st_mode)
        if fst.st_uid not in (0, me):
            raise UnsafeFileError(
                f"{what} {path}: the folder {folder} above it is owned by "
                f"{_user(fst.st_uid)}, not by root or {_user(me)} that the gate runs as: "
                f"run `chown root: {folder}` (and check what is in it)")
        if mode & stat.S_ISVTX:
            continue
        if mode & stat.S_IWOTH:
            fix = "go-w" if mode & stat.S_IWGRP else "o-w"
            raise UnsafeFileError(
                f"{what} {path}: the folder {folder} above it is writable by everyone "
                f"(mode {mode:04o}): run `chmod {fix} {folder}`")
        if mode & stat.S_IWGRP:
            raise UnsafeFileError(
                f"{what} {path}: the folder {folder} above it is writable by its group "
                f"(mode {mode:04o}): run `chmod g-w {folder}`")


READ_LIMIT = 1024 * 1024
"""The largest key file read (a key is a few hundred bytes)."""


def read_checked(path: Path, *, what: str, secret: bool = False,
                 parents: bool = True) -> bytes:
    """The content of `path`, refused (UnsafeFileError) as `check_safe` refuses, checked on
    the descriptor actually read (fstat), so it cannot be swapped between check and read.

    OSError (missing, unreadable) is the caller's to word. With `parents` the folders above
    are checked; without, only those above a symbolic link's target.
    """
    if parents or os.path.islink(path):
        check_folders(path, what=what)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"{what} {path}: not a regular file")
        _check_stat(st, path, what=what, secret=secret)
        data = handle.read(READ_LIMIT + 1)
    if len(data) > READ_LIMIT:
        raise KeyFileError(f"{path}: larger than {READ_LIMIT // 1024} KiB: not a key file")
    return data


@dataclass(frozen=True)
class KeyPair:
    kid: str
    private_path: Path
    public_path: Path


def check_kid(kid: str) -> str:
    if not _KID_RE.fullmatch(kid):
        raise KeyFileError(f"key id must be 1-16 of A-Z a-z 0-9 . _ - (got {kid!r})")
    return kid


def _check_events(events: list[str] | None, where: str) -> None:
    """Each event a key may sign for must be one a ticket can carry."""
    for event in events or ():
        try:
            check_event(event)
        except CredentialError as exc:
            raise KeyFileError(f"{where}: {exc}") from None


def public_descriptor(key: TrustedKey) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "role": key.role.value,
        "algorithm": ALGORITHM,
        "public_key": key.public_key.hex(),
        "valid_from": None if key.valid_from is None else format_time(key.valid_from),
        "valid_until": None if key.valid_until is None else format_time(key.valid_until),
        "events": None if key.events is None else sorted(key.events),
        "withdrawn": key.withdrawn,
    }


def new_key_pair(
    out_dir: Path,
    kid: str,
    *,
    role: KeyRole = KeyRole.ISSUER,
    valid_from: float | None = None,
    valid_until: float | None = None,
    events: Iterable[str] | None = None,
    private_key: Ed25519PrivateKey | None = None,
) -> KeyPair:
    """Write KID.key (0600) and KID.pub in out_dir; refuse to replace existing files."""
    check_kid(kid)
    events = None if events is None else list(events)
    _check_events(events, "events")
    if valid_from is not None and valid_until is not None and valid_from >= valid_until:
        raise KeyFileError("valid_from must be before valid_until")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyFileError(f"{out_dir}: cannot create the key folder "
                           f"({exc.strerror or exc})") from None
    private_path, public_path = out_dir / f"{kid}.key", out_dir / f"{kid}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path}: already exists; keys are never overwritten")
    key = private_key or Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    trusted = TrustedKey(kid=kid, public_key=key.public_key().public_bytes_raw(), role=role,
                         valid_from=valid_from, valid_until=valid_until,
                         events=None if events is None else frozenset(events))
    _write_atomic(public_path, json.dumps(public_descriptor(trusted), indent=2) + "\n",
                  exclusive=True)
    return KeyPair(kid, private_path, public_path)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = read_checked(path, what="private key", secret=True)
    except UnsafeFileError:
        raise  # a PermissionError too, but it says what is wrong and what to run
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read private key: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> TrustedKey:
    return _read_public_key(path, parents=True)


def _read_public_key(path: Path, *, parents: bool) -> TrustedKey:
    try:
        raw = json.loads(read_checked(path, what="public key", parents=parents)
                         .decode("utf-8"))
    except UnsafeFileError:
        raise
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read public key: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: not a JSON public key file ({exc})") from None
    return parse_public_descriptor(raw, str(path))


def parse_public_descriptor(raw: Any, where: str) -> TrustedKey:
    if not isinstance(raw, dict):
        raise KeyFileError(f"{where}: must be a JSON object")
    known = {"kid", "role", "algorithm", "public_key", "valid_from", "valid_until", "events",
             "withdrawn"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise KeyFileError(f"{where}: unknown field(s) {', '.join(unknown)}")
    try:
        kid = check_kid(str(raw["kid"]))
        if raw.get("algorithm", ALGORITHM) != ALGORITHM:
            raise KeyFileError(f"{where}: algorithm must be {ALGORITHM}")
        role = KeyRole(raw.get("role", "issuer"))
        public = bytes.fromhex(raw["public_key"])
        if len(public) != 32:
            raise KeyFileError(f"{where}: public_key must be 32 bytes (64 hex digits)")
        events = raw.get("events")
        if events is not None and (not isinstance(events, list)
                                   or not all(isinstance(e, str) for e in events)):
            raise KeyFileError(f"{where}: events must be a list of event names or null")
        _check_events(events, f"{where}: events")
        withdrawn = raw.get("withdrawn", False)
        if not isinstance(withdrawn, bool):
            raise KeyFileError(f"{where}: withdrawn must be true or false")
        return TrustedKey(
            kid=kid, public_key=public, role=role,
            valid_from=None if raw.get("valid_from") is None else parse_time(raw["valid_from"]),
            valid_until=None if raw.get("valid_until") is None
            else parse_time(raw["valid_until"]),
            events=None if events is None else frozenset(events),
            withdrawn=withdrawn,
        )
    except KeyError as exc:
        raise KeyFileError(f"{where}: missing field {exc.args[0]}") from None
    except ValueError as exc:
        raise KeyFileError(f"{where}: {exc}") from None


def load_trust_dir(folder: Path, *, role: KeyRole | None = KeyRole.ISSUER) -> TrustStore:
    """Every *.pub in folder (of `role`, or all roles when None) as a trust store."""
    if not folder.is_dir():
        raise KeyFileError(f"{folder}: no such key folder")
    check_safe(folder, what="key folder")
    keys = []
    for path in sorted(folder.glob("*.pub")):
        # its folder is checked above; a symbolic link's target folders are checked here
        keys.append(_read_public_key(path, parents=False))
    return TrustStore.of(k for k in keys if role is None or k.role is role)


def withdraw(folder: Path, kid: str) -> TrustedKey:
    """Mark KID.pub withdrawn (retired or compromised), atomically."""
    path = folder / f"{check_kid(kid)}.pub"
    key = load_public_key(path)
    withdrawn = TrustedKey(key.kid, key.public_key, key.role, key.valid_from,
                           key.valid_until, key.events, withdrawn=True)
    _write_atomic(path, json.dumps(public_descriptor(withdrawn), indent=2) + "\n")
    return withdrawn


def _write_atomic(path: Path, text: str, *, exclusive: bool = False) -> None:
    if exclusive and path.exists():
        raise KeyFileError(f"{path}: already exists; keys are never overwritten")
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
