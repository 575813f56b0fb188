"""The feed format (docs/feeds.md): the signed index, snapshot and delta files, their records.

Pure code: bytes in, frozen records out, and the canonical bytes back. No file, network or
database access here; the store streams files through ``iter_records``.

Every check is strict: one feed has exactly one accepted spelling, and an error names the
file, the line and what is wrong.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import itertools
import json
import re
import reprlib
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.revocation.errors import (
    FeedEventError,
    FeedFieldError,
    FeedFormatError,
    FeedKeyError,
    FeedSignatureError,
    FeedTooLargeError,
)
from portique.ticket.credential import MAX_ENTRANCE, MAX_GENERATION, Flag
from portique.ticket.trust import KeyRole, KeyStatus, TrustStore
from portique.ticket.views import CANCELLED

FORMAT = "portique-feed/1"
INDEX_CONTEXT = b"portique/feed/v1/index\x00"
"""Prefix of the signed message: the signature of an index is never valid for anything else."""
INDEX_NAME = "index.json"
MAX_INDEX_BYTES = 1 << 20
SIGNATURE_HEX = 128
MAX_INTEGER = (1 << 53) - 1
"""Every integer of the feed formats is at most this (a JavaScript number holds it exactly)."""
MAX_INTEGER_DIGITS = len(str(MAX_INTEGER))
MAX_LINE_CHARS = 1024
"""The longest line of a snapshot or delta file, its LF included (the longest well-formed
record is about 730 bytes): a longer line is refused before it is held whole."""
MAX_SEQUENCE_JUMP = 1_000_000
"""The most a new sequence may be above the store's (0 for an empty store): a signed
sequence far ahead (2^53-1) would otherwise make every later honest feed look older."""

EVENT_RE = re.compile(r"[A-Za-z0-9._-]{1,24}")
TICKET_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
KID_RE = re.compile(r"[A-Za-z0-9._-]{1,16}")
ORDER_REF_RE = re.compile(r"[!-~]{1,64}")
CATEGORY_RE = re.compile(r"[ -~]{0,16}")
HOLDER_NAME_MAX = 128
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{128}")
_SNAPSHOT_FILE_RE = re.compile(r"snapshot-(0|[1-9][0-9]*)\.tsv\.gz")
_DELTA_FILE_RE = re.compile(r"delta-(0|[1-9][0-9]*)-([1-9][0-9]*)\.tsv\.gz")

_INT = r"(0|[1-9][0-9]{0,9})"
_ENTRANCE = r"(?:[1-9]|[12][0-9]|3[0-2])"
_REVOCATION_LINE = re.compile(r"R\t([A-Za-z0-9._-]{1,32})\t" + _INT)
_MANIFEST_LINE = re.compile(
    r"M\t([A-Za-z0-9._-]{1,32})\t" + _INT + r"\t([!-~]{1,64})\t([^\x00-\x1f\x7f-\x9f]{0,128})"
    r"\t([ -~]{0,16})\t(" + _ENTRANCE + r"(?:," + _ENTRANCE + r")*)\t" + _INT)
_REMOVAL_LINE = re.compile(r"([RM])-\t([A-Za-z0-9._-]{1,32})")
_KNOWN_FLAGS = int(Flag.PAPER | Flag.ACCESSIBLE | Flag.REENTRY)
_LONG_INTEGER = re.compile(rb'"([a-z_]{1,32})":-?[0-9]{%d,}' % (MAX_INTEGER_DIGITS + 1))
UNSAFE_TEXT_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]")
"""Characters a holder name must not carry to a steward's screen: controls (Cc), format
characters (Cf: bidi embeddings, overrides and isolates, zero-width spaces and joiners,
direction marks, soft hyphen, ...) and the line and paragraph separators (Zl, Zp)."""
REPLACEMENT = "\ufffd"


class FileKind(enum.StrEnum):
    SNAPSHOT = "snapshot"
    DELTA = "delta"


class Op(enum.Enum):
    """What one record line does to the store."""

    SET_REVOCATION = "R"
    SET_MANIFEST = "M"
    REMOVE_REVOCATION = "R-"
    REMOVE_MANIFEST = "M-"


@dataclass(frozen=True, slots=True)
class FileRef:
    """A snapshot or delta file as the signed index names it."""

    kind: FileKind
    name: str
    from_sequence: int
    """0 for a snapshot (it applies to an empty store)."""
    to_sequence: int
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class FeedIndex:
    """A verified index: the newest state of one event's feed, as its publisher signed it."""

    event: str
    kid: str
    sequence: int
    published_at: int
    """The publisher's signed time (Unix seconds): a trusted-time source for the gate."""
    ends_at: int | None
    """When the event ends (Unix seconds), if the publisher says; personal data is purged
    a configured time after it."""
    snapshot: FileRef
    revocations: int
    """Revocation entries in the snapshot."""
    manifest: int
    """Manifest entries in the snapshot."""
    deltas: tuple[FileRef, ...]
    sha256: str
    """SHA-256 of the index file's bytes."""


@dataclass(frozen=True, slots=True)
class Revocation:
    ticket_id: str
    min_generation: int
    """Every generation below this one is void; CANCELLED (0xFFFF) voids all."""


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    ticket_id: str
    generation: int
    order_ref: str
    holder_name: str
    category: str
    entrances: frozenset[int]
    flags: Flag


_KIND = {Op.SET_REVOCATION: "R", Op.REMOVE_REVOCATION: "R", Op.SET_MANIFEST: "M",
         Op.REMOVE_MANIFEST: "M"}

Record = tuple[Op, str, tuple[int | str, ...]]
"""(op, ticket id, values): values are (min_generation,) for a revocation; (generation,
order_ref, holder_name, category, entrances as written, flags) for a manifest entry; () for
a removal. Plain tuples: a million of them stream through the store's apply."""


# --- names ------------------------------------------------------------------------------

_LIGATURES = str.maketrans({
    "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ø": "o", "Ø": "o", "ł": "l", "Ł": "l",
    "đ": "d", "Đ": "d", "ß": "ss", "ẞ": "ss", "þ": "th", "Þ": "th", "ð": "d", "Ð": "d",
    "ı": "i",
})
_LIGATURE_RE = re.compile("[" + "".join(chr(c) for c in _LIGATURES) + "]")
_SEPARATORS = re.compile("[-'’‘`´.,_/\u2010-\u2015\u2212]")  # with Unicode dashes
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """The search key of a name or order reference: accents stripped, case folded, and
    separators (spaces, hyphens, apostrophes, dots) reduced to single spaces.

    ``fold("  Zoë  d'Arc-Lefèvre ") == "zoe d arc lefevre"``
    """
    if text.isascii():
        folded = text.lower()
    else:
        if _LIGATURE_RE.search(text):
            text = text.translate(_LIGATURES)
        decomposed = unicodedata.normalize("NFKD", text)
        folded = _COMBINING.sub("", decomposed).casefold()
    return " ".join(_SEPARATORS.sub(" ", folded).split())


def fold_ticket_id(text: str) -> str:
    """The search key of a ticket id: surrounding space dropped, accents stripped, case
    folded; nothing else changes (``-``, ``.`` and ``_`` are part of an id).

    Ticket ids are ASCII, so the key of a stored id is its lower case (SQLite's NOCASE).
    """
    text = text.strip()
    if text.isascii():
        return text.lower()
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text)).casefold()


# --- index ------------------------------------------------------------------------------

def canonical_json(value: Mapping[str, Any]) -> bytes:
    """Keys sorted, no whitespace, ASCII only: the one spelling of an index."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def snapshot_name(sequence: int) -> str:
    return f"snapshot-{sequence}.tsv.gz"


def delta_name(from_sequence: int, to_sequence: int) -> str:
    return f"delta-{from_sequence}-{to_sequence}.tsv.gz"


def index_body(*, event: str, kid: str, sequence: int, published_at: int,
               ends_at: int | None, snapshot: FileRef, revocations: int, manifest: int,
               deltas: Iterable[FileRef]) -> dict[str, Any]:
    """The index as a JSON object, without its signature."""
    return {
        "format": FORMAT,
        "event": event,
        "kid": kid,
        "sequence": sequence,
        "published_at": published_at,
        "ends_at": ends_at,
        "snapshot": {"file": snapshot.name, "sequence": snapshot.to_sequence,
                     "sha256": snapshot.sha256, "size": snapshot.size,
                     "revocations": revocations, "manifest": manifest},
        "deltas": [{"file": d.name, "from": d.from_sequence, "to": d.to_sequence,
                    "sha256": d.sha256, "size": d.size} for d in deltas],
    }


def sign_index(body: Mapping[str, Any], key: Ed25519PrivateKey) -> bytes:
    """The bytes of index.json: the canonical body with its signature, and a newline."""
    signature = key.sign(INDEX_CONTEXT + canonical_json(body))
    return canonical_json({**body, "signature": signature.hex()}) + b"\n"


_INDEX_KEYS = frozenset({"format", "event", "kid", "sequence", "published_at", "ends_at",
                         "snapshot", "deltas", "signature"})
_SNAPSHOT_KEYS = frozenset({"file", "sequence", "sha256", "size", "revocations", "manifest"})
_DELTA_KEYS = frozenset({"file", "from", "to", "sha256", "size"})


def parse_index(data: bytes, *, trust: TrustStore, event: str) -> FeedIndex:
    """Check an index.json byte for byte and verify its signature; a verified FeedIndex.

    ``trust`` should hold the keys of every role (``load_trust_dir(role=None)``) so that
    an issuer key is refused as the wrong role rather than as unknown.
    """
    if len(data) > MAX_INDEX_BYTES:
        raise FeedTooLargeError(f"{INDEX_NAME}: {len(data)} bytes, more than "
                                f"{MAX_INDEX_BYTES}")
    try:
        raw = json.loads(data.decode("utf-8"), parse_int=_index_int)
    except _LongIntegerError as exc:
        # Python refuses to convert more than 4,300 digits (a bare ValueError); a feed
        # integer has at most 16 anyway: name the field holding it.
        found = _LONG_INTEGER.search(data)
        field = found[1].decode("ascii") if found is not None else "an array item"
        raise FeedFormatError(f"{INDEX_NAME}: {field}: an integer of {exc.digits} digits; "
                              f"feed integers are at most {MAX_INTEGER} (2^53-1, "
                              f"{MAX_INTEGER_DIGITS} digits)") from None
    except (UnicodeDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise FeedFormatError(f"{INDEX_NAME}: not JSON ({exc})") from None
    except RecursionError:
        # A hostile or broken server can send 100,000 nested brackets well under the size
        # cap; a real index nests three levels deep.
        raise FeedFormatError(f"{INDEX_NAME}: not an index (JSON nested too deeply for "
                              "the decoder)") from None
    if not isinstance(raw, dict):
        raise FeedFormatError(f"{INDEX_NAME}: must be a JSON object")
    if set(raw) != _INDEX_KEYS:
        missing, unknown = sorted(_INDEX_KEYS - set(raw)), sorted(set(raw) - _INDEX_KEYS)
        raise FeedFormatError(f"{INDEX_NAME}: missing {missing or 'nothing'}, "
                              f"unknown {unknown or 'nothing'}")
    if raw["format"] != FORMAT:
        raise FeedFormatError(f"{INDEX_NAME}: format {_show(raw['format'])}, expected "
                              f"{FORMAT!r}")
    escape = data.find(b"\\")
    if escape >= 0:
        raise FeedFormatError(f"{INDEX_NAME}: not in canonical form (escape sequence at byte "
                              f"{escape}; canonical JSON has none)")
    try:
        canonical = canonical_json(raw) + b"\n"
    except (ValueError, RecursionError) as exc:
        raise FeedFormatError(f"{INDEX_NAME}: {exc}") from None
    if canonical != data:
        raise FeedFormatError(f"{INDEX_NAME}: not in canonical form (sorted keys, no spaces, "
                              "ASCII, one final newline)")
    index_event = _text(raw, "event", EVENT_RE)
    if index_event != event:
        raise FeedEventError(f"{INDEX_NAME}: feed of event {index_event!r}, "
                             f"this gate serves {event!r}")
    kid = _text(raw, "kid", KID_RE)
    sequence = _int(raw, "sequence", minimum=1)
    published_at = _int(raw, "published_at", minimum=0)
    ends_at = None if raw["ends_at"] is None else _int(raw, "ends_at", minimum=0)
    signature_hex = raw["signature"]
    if not isinstance(signature_hex, str) or not _SIGNATURE_RE.fullmatch(signature_hex):
        raise FeedFormatError(f"{INDEX_NAME}: signature must be {SIGNATURE_HEX} lowercase "
                              "hex digits")
    status, public_key = trust.lookup(kid, event=event, now=published_at, role=KeyRole.FEED)
    if public_key is None:
        raise FeedKeyError(_key_refusal(kid, status, trust))
    body = {k: v for k, v in raw.items() if k != "signature"}
    try:
        public_key.verify(bytes.fromhex(signature_hex), INDEX_CONTEXT + canonical_json(body))
    except InvalidSignature:
        raise FeedSignatureError(f"{INDEX_NAME}: bad signature (key {kid!r})") from None

    snap = raw["snapshot"]
    if not isinstance(snap, dict) or set(snap) != _SNAPSHOT_KEYS:
        raise FeedFormatError(f"{INDEX_NAME}: snapshot must have exactly "
                              f"{sorted(_SNAPSHOT_KEYS)}")
    snapshot = FileRef(FileKind.SNAPSHOT, _text(snap, "file", _SNAPSHOT_FILE_RE), 0,
                       _int(snap, "sequence", minimum=1), _text(snap, "sha256", _SHA256_RE),
                       _int(snap, "size", minimum=1))
    if snapshot.to_sequence != sequence or snapshot.name != snapshot_name(sequence):
        raise FeedFormatError(f"{INDEX_NAME}: snapshot must be {snapshot_name(sequence)} "
                              f"(sequence {sequence}), got {snapshot.name}")
    deltas: list[FileRef] = []
    if not isinstance(raw["deltas"], list):
        raise FeedFormatError(f"{INDEX_NAME}: deltas must be a list")
    for number, item in enumerate(raw["deltas"]):
        where = f"deltas[{number}]"
        if not isinstance(item, dict) or set(item) != _DELTA_KEYS:
            raise FeedFormatError(f"{INDEX_NAME}: {where} must have exactly "
                                  f"{sorted(_DELTA_KEYS)}")
        ref = FileRef(FileKind.DELTA, _text(item, "file", _DELTA_FILE_RE),
                      _int(item, "from", minimum=0), _int(item, "to", minimum=1),
                      _text(item, "sha256", _SHA256_RE), _int(item, "size", minimum=1))
        if not ref.from_sequence < ref.to_sequence <= sequence \
                or ref.name != delta_name(ref.from_sequence, ref.to_sequence):
            raise FeedFormatError(f"{INDEX_NAME}: {where} {ref.name} from {ref.from_sequence} "
                                  f"to {ref.to_sequence} does not fit sequence {sequence}")
        if deltas and ref.from_sequence <= deltas[-1].from_sequence:
            raise FeedFormatError(f"{INDEX_NAME}: deltas must be sorted by 'from', "
                                  "each 'from' once")
        deltas.append(ref)
    return FeedIndex(event=event, kid=kid, sequence=sequence, published_at=published_at,
                     ends_at=ends_at, snapshot=snapshot,
                     revocations=_int(snap, "revocations", minimum=0),
                     manifest=_int(snap, "manifest", minimum=0), deltas=tuple(deltas),
                     sha256=hashlib.sha256(data).hexdigest())


class _LongIntegerError(FeedFormatError):
    """Raised by the JSON decoder's integer hook; parse_index names the field."""

    def __init__(self, digits: int) -> None:
        super().__init__(f"an integer of {digits} digits")
        self.digits = digits


def _index_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INTEGER_DIGITS:
        raise _LongIntegerError(digits)
    return int(text)


def _key_refusal(kid: str, status: KeyStatus, trust: TrustStore) -> str:
    if status is KeyStatus.WRONG_ROLE:
        known = trust.get(kid)
        role = known.role.value if known is not None else "?"
        return f"{INDEX_NAME}: key {kid!r} has role {role}, not feed"
    if status is KeyStatus.UNKNOWN:
        return f"{INDEX_NAME}: unknown key {kid!r} (no such feed key in the trust folder)"
    return f"{INDEX_NAME}: feed key {kid!r} not usable: {status.value}"


def _show(value: object) -> str:
    """A short repr of a value from an untrusted index (bounded in length and depth)."""
    return _REPR.repr(value)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 3


def _text(raw: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = raw[name]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise FeedFormatError(f"{INDEX_NAME}: {name} {_show(value)} is not valid")
    return value


def _int(raw: Mapping[str, Any], name: str, *, minimum: int) -> int:
    value = raw[name]
    if not isinstance(value, int) or isinstance(value, bool) or not \
            minimum <= value <= MAX_INTEGER:
        raise FeedFormatError(f"{INDEX_NAME}: {name} must be an integer "
                              f"{minimum}..2^53-1, got {_show(value)}")
    return value


# --- snapshot and delta files -------------------------------------------------------------

def header(kind: FileKind, event: str, from_sequence: int, to_sequence: int) -> str:
    if kind is FileKind.SNAPSHOT:
        return f"{FORMAT}\tsnapshot\t{event}\t{to_sequence}\n"
    return f"{FORMAT}\tdelta\t{event}\t{from_sequence}\t{to_sequence}\n"


def revocation_line(entry: Revocation) -> str:
    return f"R\t{entry.ticket_id}\t{entry.min_generation}\n"


def manifest_line(entry: ManifestEntry) -> str:
    return (f"M\t{entry.ticket_id}\t{entry.generation}\t{entry.order_ref}\t"
            f"{entry.holder_name}\t{entry.category}\t"
            f"{','.join(str(e) for e in sorted(entry.entrances))}\t{int(entry.flags)}\n")


def removal_line(op: Op, ticket_id: str) -> str:
    return f"{op.value}\t{ticket_id}\n"


def check_revocation(entry: Revocation) -> Revocation:
    """The entry if it can be written to a feed; FeedFieldError naming the field if not."""
    _check_ticket_id(entry.ticket_id)
    minimum = entry.min_generation
    if type(minimum) is not int or not 1 <= minimum <= CANCELLED:
        raise FeedFieldError("min_generation", f"must be 1-{CANCELLED}, got {_show(minimum)}")
    _parse_line(revocation_line(entry)[:-1], f"ticket {entry.ticket_id}", 0, snapshot=True)
    return entry


def check_manifest(entry: ManifestEntry) -> ManifestEntry:
    """The entry if it can be written to a feed; FeedFieldError naming the field if not."""
    _check_ticket_id(entry.ticket_id)
    if type(entry.generation) is not int or not 0 <= entry.generation <= MAX_GENERATION:
        raise FeedFieldError("generation", f"must be 0-{MAX_GENERATION}, got "
                             f"{_show(entry.generation)}")
    if not isinstance(entry.order_ref, str) or not ORDER_REF_RE.fullmatch(entry.order_ref):
        raise FeedFieldError("order_ref", "must be 1-64 printable ASCII characters without "
                             f"space, got {_show(entry.order_ref)}")
    check_holder_name(entry.holder_name)
    if not isinstance(entry.category, str) or not CATEGORY_RE.fullmatch(entry.category):
        raise FeedFieldError("category", "must be 0-16 printable ASCII characters, got "
                             f"{_show(entry.category)}")
    entrances = entry.entrances
    if not entrances or any(type(e) is not int or not 1 <= e <= MAX_ENTRANCE
                            for e in entrances):
        raise FeedFieldError("entrances", f"must be one or more of 1-{MAX_ENTRANCE}, got "
                             f"{_show(sorted(entrances, key=repr))}")
    if int(entry.flags) & ~_KNOWN_FLAGS:
        raise FeedFieldError("flags", f"unknown flag bits in {int(entry.flags)}")
    _parse_line(manifest_line(entry)[:-1], f"ticket {entry.ticket_id}", 0, snapshot=True)
    return entry


def check_holder_name(name: str) -> str:
    """The name if a feed may carry it to a steward's screen; FeedFieldError if not."""
    if not isinstance(name, str):
        raise FeedFieldError("holder_name", f"must be text, got {_show(name)}")
    unsafe = UNSAFE_TEXT_RE.search(name)
    if unsafe is not None:
        char = unsafe[0]
        raise FeedFieldError("holder_name", f"character U+{ord(char):04X} "
                             f"({unicodedata.name(char, 'unnamed')}) at position "
                             f"{unsafe.start() + 1}: control, format (bidi, zero-width) and "
                             "line separator characters are refused")
    if len(name) > HOLDER_NAME_MAX:
        raise FeedFieldError("holder_name", f"{len(name)} characters, at most "
                             f"{HOLDER_NAME_MAX}")
    if name != name.strip() or not unicodedata.is_normalized("NFC", name):
        raise FeedFieldError("holder_name", "must be NFC without surrounding spaces")
    return name


def _check_ticket_id(ticket_id: str) -> None:
    if not isinstance(ticket_id, str) or not TICKET_ID_RE.fullmatch(ticket_id):
        raise FeedFieldError("ticket_id", "must be 1-32 of A-Z a-z 0-9 . _ -, got "
                             f"{_show(ticket_id)}")


def sanitise_holder_name(name: str) -> str:
    """The name with every character UNSAFE_TEXT_RE matches replaced by U+FFFD: what a gate
    stores from a feed, so that no feed injects them into a steward's screen."""
    if name.isprintable():  # no Other (C*) nor Separator (Z*) but the space: fast path
        return name
    return UNSAFE_TEXT_RE.sub(REPLACEMENT, name)


def manifest_entry(ticket_id: str, values: tuple[int | str, ...]) -> ManifestEntry:
    """The record of a manifest line's values (as iter_records yields them)."""
    generation, order_ref, holder, category, entrances, flags = values
    return ManifestEntry(ticket_id, int(generation), str(order_ref), str(holder),
                         str(category), frozenset(int(e) for e in str(entrances).split(",")),
                         Flag(int(flags)))


def iter_records(text: IO[str], ref: FileRef, event: str) -> Iterator[Record]:
    """Records of one snapshot or delta file, checked line by line as they stream by.

    `text` reads the decompressed file as UTF-8 with newline="\\n". The header must match
    `ref`; records come revocations first, then manifest entries, each kind in strictly
    ascending ticket id order (which also rules out duplicates).
    """
    name = ref.name
    first = text.readline(MAX_LINE_CHARS + 1)
    expected = header(ref.kind, event, ref.from_sequence, ref.to_sequence)
    if first != expected:
        raise FeedFormatError(f"{name}: line 1: header {first[:80]!r}, expected {expected!r}")
    snapshot = ref.kind is FileKind.SNAPSHOT
    previous_kind, previous_id = "R", ""
    # readline(limit): a line longer than the bound is cut there, never read whole
    for number, line in enumerate(iter(functools.partial(text.readline, MAX_LINE_CHARS + 1),
                                       ""), start=2):
        if len(line) > MAX_LINE_CHARS:
            raise FeedFormatError(f"{name}: line {number}: longer than {MAX_LINE_CHARS} "
                                  "characters (the format's bound)")
        if not line.endswith("\n"):
            raise FeedFormatError(f"{name}: line {number}: no final newline (truncated?)")
        record = _parse_line(line[:-1], name, number, snapshot=snapshot)
        kind = _KIND[record[0]]
        if kind != previous_kind:
            if kind == "R":
                raise FeedFormatError(f"{name}: line {number}: revocation after manifest "
                                      "entries")
            previous_kind, previous_id = kind, ""
        if record[1] <= previous_id:
            raise FeedFormatError(f"{name}: line {number}: ticket {record[1]!r} out of "
                                  f"order or repeated (after {previous_id!r})")
        previous_id = record[1]
        yield record


def _parse_line(line: str, name: str, number: int, *, snapshot: bool) -> Record:
    """One record line (without its LF); errors name the file and line (`number` 0: not
    from a file, `name` says what)."""
    tag = line[:2]
    if tag == "R\t":
        match = _REVOCATION_LINE.fullmatch(line)
        if match is None:
            raise FeedFormatError(f"{_where(name, number)}: malformed revocation {line[:80]!r}")
        ticket_id, minimum = match[1], int(match[2])
        if not 1 <= minimum <= CANCELLED:
            raise FeedFormatError(f"{_where(name, number)}: minimum generation {minimum} "
                                  f"outside 1..{CANCELLED}")
        return Op.SET_REVOCATION, ticket_id, (minimum,)
    if tag == "M\t":
        match = _MANIFEST_LINE.fullmatch(line)
        if match is None:
            raise FeedFormatError(f"{_where(name, number)}: malformed manifest entry "
                                  f"{line[:80]!r}")
        ticket_id, generation_text, order_ref, holder, category, entrances_text, flags_text \
            = match.groups()
        generation = int(generation_text)
        if generation > MAX_GENERATION:
            raise FeedFormatError(f"{_where(name, number)}: generation {generation} above "
                                  f"{MAX_GENERATION}")
        if holder != holder.strip() or not (holder.isascii()
                                            or unicodedata.is_normalized("NFC", holder)):
            raise FeedFormatError(f"{_where(name, number)}: holder name must be NFC without "
                                  "surrounding spaces")
        if "," in entrances_text:
            entrances = [int(e) for e in entrances_text.split(",")]
            if any(a >= b for a, b in itertools.pairwise(entrances)) or \
                    entrances[-1] > MAX_ENTRANCE:
                raise FeedFormatError(f"{_where(name, number)}: entrances {entrances_text!r} "
                                      "must be ascending, each once")
        flags = int(flags_text)
        if flags & ~_KNOWN_FLAGS:
            raise FeedFormatError(f"{_where(name, number)}: unknown flag bits in {flags}")
        if not holder.isprintable():  # (sanitise_holder_name's own fast path, inlined)
            holder = sanitise_holder_name(holder)
        return Op.SET_MANIFEST, ticket_id, (generation, order_ref, holder, category,
                                            entrances_text, flags)
    if not snapshot:
        match = _REMOVAL_LINE.fullmatch(line)
        if match is not None:
            op = Op.REMOVE_REVOCATION if match[1] == "R" else Op.REMOVE_MANIFEST
            return op, match[2], ()
    raise FeedFormatError(f"{_where(name, number)}: unknown record {line[:80]!r}")


def _where(name: str, number: int) -> str:
    return f"{name}: line {number}" if number else name
