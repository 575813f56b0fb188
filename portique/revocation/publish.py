"""The reference publisher: a feed folder any static web server or CDN can serve.

``publish`` turns the full current state of an event (revocations and manifest, usually
read from the platform's CSV exports) into ``<out>/<event>/``: a new snapshot, a delta
against the previous state and a freshly signed index.json, written last and atomically.
Publishing an unchanged state signs a new index with the same sequence and a newer time.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import math
import os
import re
import reprlib
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.revocation.errors import (
    FeedError,
    FeedFieldError,
    FeedFormatError,
    MassRemovalError,
    PublishError,
)
from portique.revocation.format import (
    EVENT_RE,
    INDEX_NAME,
    UNSAFE_TEXT_RE,
    FeedIndex,
    FileKind,
    FileRef,
    ManifestEntry,
    Op,
    Revocation,
    check_manifest,
    check_revocation,
    delta_name,
    header,
    index_body,
    iter_records,
    manifest_entry,
    manifest_line,
    parse_index,
    removal_line,
    revocation_line,
    sign_index,
    snapshot_name,
)
from portique.ticket.credential import MAX_ENTRANCE, MAX_GENERATION, Flag
from portique.ticket.trust import KeyRole, TrustedKey, TrustStore
from portique.ticket.views import CANCELLED

log = logging.getLogger("portique.revocation.publish")

REVOCATION_COLUMNS = ("ticket_id", "min_generation")
MANIFEST_COLUMNS = ("ticket_id", "generation", "order_ref", "holder_name", "category",
                    "entrances", "flags")
KEEP_DELTAS = 100
MAX_KEEP_DELTAS = 1000
"""The most deltas an index lists: 1,000 keep it far below a gate's 1 MiB index cap."""
KEEP_SNAPSHOTS = 2
GZIP_LEVEL = 6
MAX_REMOVAL_SHARE = 0.05
"""By default a publication may remove at most this share of the previous publication's
revocations (and, separately, of its manifest entries)..."""
MASS_REMOVAL_FLOOR = 10
"""...or this many rows, whichever is more: a short list can still lose a few entries."""
_CSV_INT = re.compile(r"[0-9]{1,16}")
_CSV_WHITE_SPACE = frozenset("\t\n\r")
"""Controls a CSV holder name may hold: white space, turned into single spaces."""
SHOWN_CHARS = 40
"""Characters of a bad input value an error message quotes: longer ones are cut, with
their length (a 5,000-digit number is not printed whole)."""
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = SHOWN_CHARS
_REPR.maxlevel = 2


def _shown(value: object) -> str:
    """A bad input value as an error message quotes it: at most SHOWN_CHARS characters of
    it (quoted, for text), and its length when cut."""
    if isinstance(value, str):
        if len(value) <= SHOWN_CHARS:
            return repr(value)
        return f"{value[:SHOWN_CHARS]!r}... ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            digits = str(value)
        except ValueError:  # past Python's int-to-text limit (4,300 digits by default)
            return f"an integer of {value.bit_length()} bits"
        if len(digits) <= SHOWN_CHARS:
            return digits
        return f"{digits[:SHOWN_CHARS]}... ({len(digits)} characters)"
    try:
        return _REPR.repr(value)
    except ValueError:  # an integer inside past Python's int-to-text limit
        return f"a {type(value).__name__} holding an integer too long to show"


@dataclass(frozen=True, slots=True)
class FeedState:
    """The full content of an event's feed at one sequence."""

    revocations: Mapping[str, int]
    manifest: Mapping[str, ManifestEntry]


@dataclass(frozen=True, slots=True)
class PublishResult:
    event: str
    sequence: int
    previous: int | None
    published_at: int
    snapshot: FileRef
    delta: FileRef | None
    """None on a first publication or when nothing changed."""
    folder: Path


# --- CSV input --------------------------------------------------------------------------

def read_revocations_csv(path: Path) -> dict[str, int]:
    """ticket_id,min_generation (a number 1-65534, or ``cancelled``) -> {ticket: minimum}."""
    result: dict[str, int] = {}
    for number, row in _csv_rows(path, REVOCATION_COLUMNS):
        where = f"{path}: line {number}"
        ticket_id, text = row["ticket_id"].strip(), row["min_generation"].strip().lower()
        if text == "cancelled":
            minimum = CANCELLED
        else:
            if not _CSV_INT.fullmatch(text):
                raise PublishError(f"{where}, column min_generation: must be a number (ASCII "
                                   f"digits 0-9) or 'cancelled', got {_shown(text)}")
            minimum = int(text)
            if not 1 <= minimum < CANCELLED:
                raise PublishError(f"{where}, column min_generation: must be "
                                   f"1-{CANCELLED - 1} or 'cancelled', got {minimum}")
        try:
            check_revocation(Revocation(ticket_id, minimum))
        except FeedFieldError as exc:
            raise PublishError(f"{where}, column {exc.field}: {exc.detail}") from None
        if ticket_id in result:
            raise PublishError(f"{where}, column ticket_id: ticket {_shown(ticket_id)} "
                               "appears twice")
        result[ticket_id] = minimum
    return result


def read_manifest_csv(path: Path) -> dict[str, ManifestEntry]:
    """ticket_id,generation,order_ref,holder_name,category,entrances,flags; entrances as
    ``1,3`` (quoted) or ``1 3``; flags as names (``accessible``, ``paper``, ``reentry``)
    separated by commas or spaces, or empty."""
    result: dict[str, ManifestEntry] = {}
    for number, row in _csv_rows(path, MANIFEST_COLUMNS):
        where = f"{path}: line {number}"
        try:
            entry = ManifestEntry(
                ticket_id=row["ticket_id"].strip(),
                generation=_csv_int(row["generation"], "generation"),
                order_ref=row["order_ref"].strip(),
                holder_name=_csv_holder_name(row["holder_name"]),
                category=row["category"].strip(),
                entrances=frozenset(_csv_int(e, "entrances")
                                    for e in row["entrances"].replace(",", " ").split()),
                flags=_csv_flags(row["flags"]),
            )
            if not entry.entrances:
                raise FeedFieldError("entrances", "at least one entrance is needed")
            check_manifest(entry)
        except FeedFieldError as exc:
            raise PublishError(f"{where}, column {exc.field}: {exc.detail}") from None
        if entry.ticket_id in result:
            raise PublishError(f"{where}, column ticket_id: ticket "
                               f"{_shown(entry.ticket_id)} appears twice")
        result[entry.ticket_id] = entry
    return result


def _csv_rows(path: Path, columns: tuple[str, ...]) -> Iterable[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise PublishError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle, strict=True)
        try:
            found = tuple(reader.fieldnames or ())
            if set(found) != set(columns) or len(found) != len(columns):
                raise PublishError(f"{path}: header must name the columns "
                                   f"{','.join(columns)} (got "
                                   f"{_shown(','.join(found)) if found else 'nothing'})")
            for row in reader:
                if None in row or any(v is None for v in row.values()):
                    raise PublishError(f"{path}: line {reader.line_num}: expected "
                                       f"{len(columns)} columns")
                yield reader.line_num, row
        except csv.Error as exc:
            raise PublishError(f"{path}: line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError:
            raise PublishError(f"{path}: not UTF-8 text") from None


def _csv_int(text: str, what: str) -> int:
    """A number of ASCII digits only: int() would also take '١', '１', '1_0' or '+1'."""
    text = text.strip()
    if not _CSV_INT.fullmatch(text):
        raise FeedFieldError(what, f"must be a number of ASCII digits 0-9, got "
                             f"{_shown(text)}")
    return int(text)


def _csv_holder_name(text: str) -> str:
    """The cell's name, NFC with white space runs as single spaces; a control, format or
    separator character (UNSAFE_TEXT_RE) other than TAB, CR and LF is refused, before the
    white space folding could hide it."""
    for found in UNSAFE_TEXT_RE.finditer(text):
        char = found[0]
        if char not in _CSV_WHITE_SPACE:
            raise FeedFieldError("holder_name", f"character U+{ord(char):04X} "
                                 f"({unicodedata.name(char, 'unnamed')}) at position "
                                 f"{found.start() + 1}: control, format (bidi, zero-width) and "
                                 "line separator characters are refused")
    return " ".join(unicodedata.normalize("NFC", text).split())


def _csv_flags(text: str) -> Flag:
    flags = Flag(0)
    for name in text.replace(",", " ").lower().split():
        try:
            flags |= Flag[name.upper()]
        except KeyError:
            raise FeedFieldError("flags", f"unknown flag {_shown(name)} (known: "
                                 "accessible, paper, reentry)") from None
    return flags


# --- files ------------------------------------------------------------------------------

def write_file(folder: Path, kind: FileKind, event: str, from_sequence: int,
               to_sequence: int, lines: Iterable[str]) -> FileRef:
    """Write one gzip file of record lines (already in order) atomically; its FileRef."""
    name = snapshot_name(to_sequence) if kind is FileKind.SNAPSHOT \
        else delta_name(from_sequence, to_sequence)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as raw:
            hashing = _HashingWriter(raw)
            with gzip.GzipFile(filename="", mode="wb", fileobj=hashing,
                               compresslevel=GZIP_LEVEL, mtime=0) as compressed:
                compressed.write(header(kind, event, from_sequence, to_sequence)
                                 .encode("utf-8"))
                buffer: list[str] = []
                for line in lines:
                    buffer.append(line)
                    if len(buffer) >= 4096:
                        compressed.write("".join(buffer).encode("utf-8"))
                        buffer.clear()
                compressed.write("".join(buffer).encode("utf-8"))
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return FileRef(kind, name, from_sequence, to_sequence, hashing.hexdigest(), hashing.size)


def snapshot_lines(state: FeedState) -> Iterable[str]:
    for ticket_id in sorted(state.revocations):
        yield revocation_line(Revocation(ticket_id, state.revocations[ticket_id]))
    for ticket_id in sorted(state.manifest):
        yield manifest_line(state.manifest[ticket_id])


def delta_lines(old: FeedState, new: FeedState) -> list[str]:
    """The records that turn `old` into `new`, in file order."""
    lines: list[str] = []
    for ticket_id in sorted(set(old.revocations) | set(new.revocations)):
        if ticket_id not in new.revocations:
            lines.append(removal_line(Op.REMOVE_REVOCATION, ticket_id))
        elif old.revocations.get(ticket_id) != new.revocations[ticket_id]:
            lines.append(revocation_line(Revocation(ticket_id, new.revocations[ticket_id])))
    for ticket_id in sorted(set(old.manifest) | set(new.manifest)):
        if ticket_id not in new.manifest:
            lines.append(removal_line(Op.REMOVE_MANIFEST, ticket_id))
        elif old.manifest.get(ticket_id) != new.manifest[ticket_id]:
            lines.append(manifest_line(new.manifest[ticket_id]))
    return lines


def read_state(path: Path, ref: FileRef, event: str) -> FeedState:
    """The full state held by a snapshot file (read back to compute the next delta)."""
    revocations: dict[str, int] = {}
    manifest: dict[str, ManifestEntry] = {}
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as text:
        for op, ticket_id, values in iter_records(text, ref, event):
            if op is Op.SET_REVOCATION:
                revocations[ticket_id] = int(values[0])
            else:
                manifest[ticket_id] = manifest_entry(ticket_id, values)
    return FeedState(revocations, manifest)


# --- publishing ---------------------------------------------------------------------------

def publish(*, out_dir: Path, event: str, state: FeedState, key: Ed25519PrivateKey, kid: str,
            now: int, ends_at: int | None = None, keep_deltas: int = KEEP_DELTAS,
            max_removal_share: float = MAX_REMOVAL_SHARE,
            allow_mass_removal: bool = False) -> PublishResult:
    """Publish `state` as the newest feed of `event` under out_dir/event/.

    A publication removing more of the previous one's revocations (or of its manifest
    entries) than `max_removal_share` of them, and more than MASS_REMOVAL_FLOOR, is refused
    (MassRemovalError, nothing written) unless `allow_mass_removal`."""
    if not EVENT_RE.fullmatch(event):
        raise PublishError(f"event must be 1-24 of A-Z a-z 0-9 . _ - (got {_shown(event)})")
    if ends_at is not None and ends_at < 0:
        raise PublishError("ends_at must be a time after 1970")
    if not 0 <= keep_deltas <= MAX_KEEP_DELTAS:
        raise PublishError(f"keep_deltas must be 0-{MAX_KEEP_DELTAS}, got {keep_deltas}")
    if not 0 <= max_removal_share <= 1:
        raise PublishError(f"max_removal_share must be 0-1, got {max_removal_share:g}")
    for ticket_id, minimum in state.revocations.items():
        try:
            _check_integer("min_generation", minimum, 1, CANCELLED)
            check_revocation(Revocation(ticket_id, minimum))
        except FeedFormatError as exc:
            raise PublishError(f"revocation of {_shown(ticket_id)}: {exc}") from None
    for ticket_id, entry in state.manifest.items():
        try:
            if entry.ticket_id != ticket_id:
                raise FeedFormatError(f"keyed as {_shown(ticket_id)}, entry says "
                                      f"{_shown(entry.ticket_id)}")
            _check_integer("generation", entry.generation, 0, MAX_GENERATION)
            for entrance in entry.entrances:
                _check_integer("entrances", entrance, 1, MAX_ENTRANCE, each=True)
            check_manifest(entry)
        except FeedFormatError as exc:
            raise PublishError(f"manifest entry {_shown(ticket_id)}: {exc}") from None
    folder = out_dir / event
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishError(f"{folder}: cannot create: {exc.strerror}") from None
    previous = _previous_index(folder, event, key, kid)
    published_at = now if previous is None else max(now, previous.published_at)
    if previous is None:
        sequence = 1
        snapshot = write_file(folder, FileKind.SNAPSHOT, event, 0, sequence,
                              snapshot_lines(state))
        deltas: tuple[FileRef, ...] = ()
        delta = None
    else:
        old = read_state(folder / previous.snapshot.name, previous.snapshot, event)
        _check_removals(event, old, state, share=max_removal_share,
                        allowed=allow_mass_removal, sequence=previous.sequence)
        lines = delta_lines(old, state)
        deltas = previous.deltas
        if lines:
            sequence = previous.sequence + 1
            delta = write_file(folder, FileKind.DELTA, event, previous.sequence, sequence,
                               lines)
            snapshot = write_file(folder, FileKind.SNAPSHOT, event, 0, sequence,
                                  snapshot_lines(state))
            deltas = (*deltas, delta)[-keep_deltas:] if keep_deltas > 0 else ()
        else:
            sequence, snapshot, delta = previous.sequence, previous.snapshot, None
    body = index_body(event=event, kid=kid, sequence=sequence, published_at=published_at,
                      ends_at=ends_at, snapshot=snapshot, revocations=len(state.revocations),
                      manifest=len(state.manifest), deltas=deltas)
    _write_atomic(folder / INDEX_NAME, sign_index(body, key))
    _prune(folder, snapshot, deltas)
    log.info("feed published: event=%s sequence=%d previous=%s delta=%s revocations=%d "
             "manifest=%d published_at=%d", event, sequence,
             None if previous is None else previous.sequence,
             None if delta is None else delta.name, len(state.revocations),
             len(state.manifest), published_at)
    return PublishResult(event, sequence, None if previous is None else previous.sequence,
                         published_at, snapshot, delta, folder)


def _check_integer(field: str, value: object, low: int, high: int, *,
                   each: bool = False) -> None:
    """FeedFieldError unless `value` is an int in low..high, quoting it cut short (before
    the entry's own checks, which would quote it whole)."""
    if type(value) is not int or not low <= value <= high:
        raise FeedFieldError(field, f"{'each ' if each else ''}must be {low}-{high}, got "
                             f"{_shown(value)}")


def _check_removals(event: str, old: FeedState, new: FeedState, *, share: float,
                    allowed: bool, sequence: int) -> None:
    """Refuse (MassRemovalError) a publication dropping more entries of either kind than
    `share` of the previous publication's, and more than MASS_REMOVAL_FLOOR: most likely
    an export cut short, which would un-cancel every ticket it lost at every gate."""
    for kind, before, after in (("revocations", old.revocations, new.revocations),
                                ("manifest entries", old.manifest, new.manifest)):
        removed = sum(1 for ticket_id in before if ticket_id not in after)
        limit = max(MASS_REMOVAL_FLOOR, math.floor(share * len(before)))
        if removed <= limit:
            continue
        what = (f"event {event}: this publication removes {removed} of the {len(before)} "
                f"{kind} of sequence {sequence} ({100 * removed / len(before):.1f}%), more "
                f"than the {limit} allowed (max removal share {share:g}, at least "
                f"{MASS_REMOVAL_FLOOR})")
        if not allowed:
            raise MassRemovalError(f"{what}: a truncated export? Check the input, or "
                                   "publish with --allow-mass-removal; nothing written")
        log.warning("mass removal published as allowed: event=%s kind=%s removed=%d "
                    "previous=%d limit=%d sequence=%d", event, kind.split()[0], removed,
                    len(before), limit, sequence)


def _previous_index(folder: Path, event: str, key: Ed25519PrivateKey,
                    kid: str) -> FeedIndex | None:
    path = folder / INDEX_NAME
    if not path.exists():
        return None
    own = TrustStore.of([TrustedKey(kid, key.public_key().public_bytes_raw(), KeyRole.FEED)])
    try:
        return parse_index(path.read_bytes(), trust=own, event=event)
    except FeedError as exc:
        raise PublishError(f"{path}: the previous index cannot be continued with key "
                           f"{kid!r}: {exc}") from None


def _prune(folder: Path, snapshot: FileRef, deltas: tuple[FileRef, ...]) -> None:
    """Remove files the index no longer names, keeping the previous snapshot a while for
    clients that fetched the previous index."""
    keep = {snapshot.name, INDEX_NAME, *(d.name for d in deltas)}
    snapshots = sorted(folder.glob("snapshot-*.tsv.gz"),
                       key=lambda p: int(p.name.split("-")[1].split(".")[0]))
    keep |= {p.name for p in snapshots[-KEEP_SNAPSHOTS:]}
    for path in folder.iterdir():
        if path.name.endswith(".tsv.gz") and path.name not in keep:
            path.unlink()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _HashingWriter:
    """A binary sink that hashes and counts what goes through to `raw`."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
