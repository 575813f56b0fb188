"""The mesh's signed messages, byte for byte (docs/mesh.md): a record, or a summary.

A **record** says one thing a gate did to one admission: ``admitted``, ``voided`` (nobody
passed before the timeout) or ``exited`` (an exit gate saw the holder out). Every gate
numbers its records 1, 2, 3 ... within an *incarnation* (8 random bytes chosen when its
journal was created), so a peer knows what it is missing. A **summary** lists, for every
(gate, incarnation) stream the sender holds, the highest sequence number up to which it
holds every record: the anti-entropy exchange.

Both are signed with the sending gate's Ed25519 key over a fixed context string and every
byte before the signature. Decoding is strict: one message has exactly one spelling.
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from portique.base.errors import GateError
from portique.ticket import credential

VERSION = 1
RECORD_CONTEXT = b"portique/mesh/v1/record\x00"
SUMMARY_CONTEXT = b"portique/mesh/v1/summary\x00"
SIGNATURE_BYTES = 64
INCARNATION_BYTES = 8
SCAN_ID_BYTES = 16
MAX_SUMMARY_STREAMS = 4096
MAX_MESSAGE_BYTES = 2 + 33 + 33 + 8 + 8 + 2 + MAX_SUMMARY_STREAMS * (33 + 8 + 8) + 64
"""The longest message the format allows (a summary of every stream it may list)."""
MAX_PACKET_BYTES = 256 * 1024
"""The largest MQTT packet a gate accepts (and the venue broker should allow): the longest
message, its topic and the MQTT headers, with room to spare. The client announces it to
the broker (MQTT 5 Maximum Packet Size), which then never sends it anything larger."""

_NAME_RE = re.compile(rb"[A-Za-z0-9._-]{1,32}")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")


class Kind(enum.IntEnum):
    RECORD = 1
    SUMMARY = 2


class State(enum.IntEnum):
    """What a record says happened to an admission."""

    ADMITTED = 1
    VOIDED = 2
    EXITED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Rejection(enum.StrEnum):
    """Why a mesh message was ignored, as a short label (logs, metrics)."""

    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    OTHER_VENUE = "other_venue"
    UNKNOWN_GATE = "unknown_gate"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    WRONG_TOPIC = "wrong_topic"
    STALE = "stale"
    REPLAYED = "replayed"


class MeshMessageError(GateError, ValueError):
    """A mesh message that is malformed, unsigned, forged or from a gate not listed (or a
    record that cannot be encoded); `reason` says which, in one word."""

    def __init__(self, message: str, reason: Rejection = Rejection.MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Record:
    """One signed fact about one admission, as every gate of the venue receives it."""

    venue: str
    origin: str
    """The gate that made (and signed) the record."""
    incarnation: bytes
    seq: int
    state: State
    event: str
    ticket_id: str
    generation: int
    scan_id: str
    """32 lower-case hex digits: the scan id of the admission (or of the exit)."""
    at_ms: int
    """When the ticket was admitted (for ``exited``: when it went out), Unix milliseconds."""
    made_ms: int
    """When the origin made this record, Unix milliseconds (for lag)."""

    @property
    def stream(self) -> tuple[str, bytes]:
        return self.origin, self.incarnation


@dataclass(frozen=True, slots=True)
class Summary:
    """What the sender holds: per (gate, incarnation), every record up to ``head``."""

    venue: str
    origin: str
    incarnation: bytes
    """The sender's own current incarnation."""
    sent_ms: int
    heads: tuple[tuple[str, bytes, int], ...]


def _name(value: str, what: str) -> bytes:
    raw = value.encode("ascii", "replace")
    if not _NAME_RE.fullmatch(raw):
        raise MeshMessageError(f"{what} must be 1-32 of A-Z a-z 0-9 . _ -, got {value!r}")
    return bytes([len(raw)]) + raw


def _event(value: str) -> bytes:
    if not credential.valid_event(value):
        raise MeshMessageError(f"event must be 1-{credential.EVENT_MAX} of A-Z a-z 0-9 . _ -,"
                               f" got {value!r}")
    return _name(value, "event")


def _ticket_id(value: str) -> bytes:
    if not credential.valid_ticket_id(value):
        raise MeshMessageError(f"ticket id must be 1-{credential.TICKET_ID_MAX} of A-Z a-z "
                               f"0-9 . _ -, got {value!r}")
    return _name(value, "ticket id")


def _u64(value: int, what: str) -> bytes:
    if not 0 <= value < 2**63:
        raise MeshMessageError(f"{what} out of range: {value}")
    return _U64.pack(value)


def record_body(r: Record) -> bytes:
    """Every byte of a record before its signature."""
    if len(r.incarnation) != INCARNATION_BYTES:
        raise MeshMessageError("incarnation must be 8 bytes")
    if r.seq < 1:
        raise MeshMessageError("seq starts at 1")
    if not 0 <= r.generation <= 0xFFFF:
        raise MeshMessageError(f"generation out of range: {r.generation}")
    try:
        scan = bytes.fromhex(r.scan_id)
    except ValueError:
        scan = b""
    if len(scan) != SCAN_ID_BYTES or scan.hex() != r.scan_id:
        raise MeshMessageError(f"scan id must be 32 lower-case hex digits, got {r.scan_id!r}")
    return b"".join([
        bytes([VERSION, Kind.RECORD]), _name(r.venue, "venue"), _name(r.origin, "gate"),
        r.incarnation, _u64(r.seq, "seq"), bytes([r.state]), _event(r.event),
        _ticket_id(r.ticket_id), _U16.pack(r.generation), scan,
        _u64(r.at_ms, "at"), _u64(r.made_ms, "made"),
    ])


def summary_body(s: Summary) -> bytes:
    if len(s.heads) > MAX_SUMMARY_STREAMS:
        raise MeshMessageError(f"a summary lists at most {MAX_SUMMARY_STREAMS} streams")
    parts = [bytes([VERSION, Kind.SUMMARY]), _name(s.venue, "venue"), _name(s.origin, "gate"),
             s.incarnation, _u64(s.sent_ms, "sent"), _U16.pack(len(s.heads))]
    for gate, incarnation, head in s.heads:
        if len(incarnation) != INCARNATION_BYTES:
            raise MeshMessageError("incarnation must be 8 bytes")
        parts += [_name(gate, "gate"), incarnation, _u64(head, "head")]
    return b"".join(parts)


def sign_record(r: Record, key: Ed25519PrivateKey) -> bytes:
    body = record_body(r)
    return body + key.sign(RECORD_CONTEXT + body)


def sign_summary(s: Summary, key: Ed25519PrivateKey) -> bytes:
    body = summary_body(s)
    return body + key.sign(SUMMARY_CONTEXT + body)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise MeshMessageError(f"truncated at {what} (byte {self.pos})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def name(self, what: str) -> str:
        n = self.byte(what)
        raw = self.take(n, what)
        if not _NAME_RE.fullmatch(raw):
            raise MeshMessageError(f"{what} is not 1-32 of A-Z a-z 0-9 . _ -")
        return raw.decode("ascii")

    def u16(self, what: str) -> int:
        (value,) = _U16.unpack(self.take(2, what))
        return int(value)

    def u64(self, what: str) -> int:
        (value,) = _U64.unpack(self.take(8, what))
        if value >= 2**63:
            raise MeshMessageError(f"{what} out of range")
        return int(value)


def peek(data: bytes) -> tuple[Kind, str]:
    """The kind and the signing gate of a message, before any check of its signature."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MeshMessageError(f"message of {len(data)} bytes is too long (at most "
                               f"{MAX_MESSAGE_BYTES})", Rejection.OVERSIZED)
    r = _Reader(data)
    version = r.byte("version")
    if version != VERSION:
        raise MeshMessageError(f"unknown version {version}")
    kind = r.byte("kind")
    if kind not in (Kind.RECORD, Kind.SUMMARY):
        raise MeshMessageError(f"unknown kind {kind}")
    r.name("venue")
    return Kind(kind), r.name("gate")


def _parse_record(data: bytes) -> tuple[Record, int]:
    r = _Reader(data)
    r.take(2, "version")
    venue, origin = r.name("venue"), r.name("gate")
    incarnation = r.take(INCARNATION_BYTES, "incarnation")
    seq = r.u64("seq")
    if seq < 1:
        raise MeshMessageError("seq 0 (sequences start at 1)")
    state = r.byte("state")
    if state not in State._value2member_map_:
        raise MeshMessageError(f"unknown state {state}")
    event, ticket_id = r.name("event"), r.name("ticket id")
    if not credential.valid_event(event):  # the rule of the tickets the records are about
        raise MeshMessageError(f"event {event!r} is not a ticket's event (1-"
                               f"{credential.EVENT_MAX} of A-Z a-z 0-9 . _ -)")
    if not credential.valid_ticket_id(ticket_id):
        raise MeshMessageError(f"ticket id {ticket_id!r} is not a ticket's id (1-"
                               f"{credential.TICKET_ID_MAX} of A-Z a-z 0-9 . _ -)")
    generation = r.u16("generation")
    scan_id = r.take(SCAN_ID_BYTES, "scan id").hex()
    at_ms, made_ms = r.u64("at"), r.u64("made")
    return Record(venue, origin, incarnation, seq, State(state), event, ticket_id, generation,
                  scan_id, at_ms, made_ms), r.pos


def _parse_summary(data: bytes) -> tuple[Summary, int]:
    r = _Reader(data)
    r.take(2, "version")
    venue, origin = r.name("venue"), r.name("gate")
    incarnation = r.take(INCARNATION_BYTES, "incarnation")
    sent_ms = r.u64("sent")
    count = r.u16("stream count")
    if count > MAX_SUMMARY_STREAMS:
        raise MeshMessageError(f"{count} streams: at most {MAX_SUMMARY_STREAMS}")
    heads = []
    pos, size = r.pos, len(data)
    # The hot loop of anti-entropy (a summary of a 200-gate venue lists 200 streams, and
    # every gate reads every summary): the same checks as `_Reader`, the error's wording
    # only made once something is wrong.
    for i in range(count):
        n = data[pos] if pos < size else -1
        end = pos + 1 + n + INCARNATION_BYTES + 8
        if n < 0 or end > size:
            r.pos = pos
            r.name(f"stream {i} gate")
            r.take(INCARNATION_BYTES, f"stream {i} incarnation")
            r.u64(f"stream {i} head")
        raw = data[pos + 1:pos + 1 + n]
        if not _NAME_RE.fullmatch(raw):
            raise MeshMessageError(f"stream {i} gate is not 1-32 of A-Z a-z 0-9 . _ -")
        (head,) = _U64.unpack_from(data, end - 8)
        if head >= 2**63:
            raise MeshMessageError(f"stream {i} head out of range")
        heads.append((raw.decode("ascii"), data[pos + 1 + n:end - 8], int(head)))
        pos = end
    return Summary(venue, origin, incarnation, sent_ms, tuple(heads)), pos


def verify(data: bytes, keys: dict[str, Ed25519PublicKey], *, venue: str
           ) -> Record | Summary:
    """Parse a message and check its signature against the venue's gate keys.

    MeshMessageError says why it is refused: malformed, another venue, a gate not listed,
    or a signature that does not verify (forged, altered, or unsigned).
    """
    kind, gate = peek(data)
    parsed: Record | Summary
    if kind is Kind.RECORD:
        parsed, end = _parse_record(data)
        context = RECORD_CONTEXT
    else:
        parsed, end = _parse_summary(data)
        context = SUMMARY_CONTEXT
    if parsed.venue != venue:
        raise MeshMessageError(f"for venue {parsed.venue}, not {venue}", Rejection.OTHER_VENUE)
    key = keys.get(gate)
    if key is None:
        raise MeshMessageError(f"gate {gate} is not listed for venue {venue}",
                               Rejection.UNKNOWN_GATE)
    if len(data) - end != SIGNATURE_BYTES:
        what = "no signature" if len(data) == end else \
            f"{len(data) - end} bytes after the body, not a {SIGNATURE_BYTES}-byte signature"
        raise MeshMessageError(f"from gate {gate}: {what}", Rejection.UNSIGNED)
    try:
        key.verify(data[end:], context + data[:end])
    except InvalidSignature:
        raise MeshMessageError(f"from gate {gate}: the signature does not verify "
                               "(forged or altered)", Rejection.BAD_SIGNATURE) from None
    return parsed
