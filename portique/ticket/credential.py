"""The ticket credential: two signature levels, compact binary, Base45 text.

The wire format is specified byte by byte in ``docs/credential.md``; this module is its
reference implementation. In short:

``PQ1:`` + Base45( level 1 [+ level 2] )

* level 1 is signed once by the issuer (Ed25519) and holds the ticket's identity, its
  validity window, entrances, category, flags and (unless it is paper) the public key of
  the holder's device;
* level 2 is signed by the holder's device every ``STEP_SECONDS``: the time step counter,
  signed over the whole level 1.

Decoding is strict and canonical: the text prefix, the Base45 alphabet, every length,
every reserved bit and the absence of trailing bytes are checked, so one byte string has
exactly one accepted spelling. This module does no I/O and reads no clock.
"""

from __future__ import annotations

import enum
import functools
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from portique.base.errors import (
    CredentialError,
    CredentialFormatError,
    NotATicketError,
    UnsupportedVersionError,
)
from portique.ticket import base45

FORMAT_VERSION = 1
PREFIX = "PQ1:"
PREFIX_FAMILY = "PQ"
STEP_SECONDS = 15
MAX_GENERATION = 0xFFFE
"""Highest generation a ticket may carry; 0xFFFF in a revocation means "cancelled"."""

ISSUER_CONTEXT = b"portique/credential/v1/issuer\x00"
DEVICE_CONTEXT = b"portique/credential/v1/device\x00"

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
STEP_BYTES = 4

_ID_RE = re.compile(rb"[A-Za-z0-9._-]+")
_TEXT_RE = re.compile(rb"[\x20-\x7e]*")
KID_MAX = 16
EVENT_MAX = 24
TICKET_ID_MAX = 32
CATEGORY_MAX = 16
MAX_ENTRANCE = 32

_FIXED = struct.Struct(">HIII")  # generation, valid_from, valid_until, entrances
_STEP = struct.Struct(">I")

# Longest level 1 + level 2 the format allows, and the longest text that could encode it.
MAX_BINARY_BYTES = (
    2  # version, flags
    + 1 + KID_MAX + 1 + EVENT_MAX + 1 + TICKET_ID_MAX
    + _FIXED.size
    + 1 + CATEGORY_MAX
    + PUBLIC_KEY_BYTES + SIGNATURE_BYTES + STEP_BYTES + SIGNATURE_BYTES
)
MAX_CODE_CHARS = len(PREFIX) + (MAX_BINARY_BYTES // 2) * 3 + (MAX_BINARY_BYTES % 2) * 2
"""Codes longer than this are refused before any decoding work."""


class Flag(enum.IntFlag):
    """Level-1 flags; every other bit is reserved and must be zero."""

    PAPER = 0x01
    """Printed confirmation: no device key and no level 2; goes to a steward by policy."""
    ACCESSIBLE = 0x02
    """The holder needs the accessible lane or assistance."""
    REENTRY = 0x04
    """The holder may go out and come back in, at gates whose profile allows it."""


KNOWN_FLAGS = Flag.PAPER | Flag.ACCESSIBLE | Flag.REENTRY
_RESERVED_BITS = 0xFF & ~int(KNOWN_FLAGS)
_PAPER_BIT = int(Flag.PAPER)
_FLAGS = {value: Flag(value) for value in range(int(KNOWN_FLAGS) + 1)}


@dataclass(frozen=True, slots=True)
class TicketFields:
    """What the issuer states about a ticket: the unsigned content of level 1."""

    kid: str
    event: str
    ticket_id: str
    generation: int
    valid_from: int
    valid_until: int
    entrances: frozenset[int]
    category: str = ""
    flags: Flag = Flag(0)
    device_key: bytes | None = None

    @property
    def paper(self) -> bool:
        return bool(int(self.flags) & _PAPER_BIT)


@dataclass(frozen=True, slots=True)
class Credential:
    """A decoded code: the fields, the exact signed bytes and the signatures."""

    fields: TicketFields
    level1: bytes
    """Level 1 as transmitted: signed body followed by the issuer signature."""
    issuer_signature: bytes
    step: int | None
    device_signature: bytes | None

    @property
    def signed_body(self) -> bytes:
        return self.level1[:-SIGNATURE_BYTES]


def _ascii(value: str, what: str) -> bytes:
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise CredentialError(f"{what} must be ASCII (got {value!r})") from None


def _check_id(value: str, what: str, maximum: int) -> bytes:
    raw = _ascii(value, what)
    if not 1 <= len(raw) <= maximum or not _ID_RE.fullmatch(raw):
        raise CredentialError(
            f"{what} must be 1 to {maximum} characters of A-Z a-z 0-9 . _ - (got {value!r})"
        )
    return raw


def check_event(event: str) -> str:
    """`event` as a ticket can carry it (1 to EVENT_MAX of A-Z a-z 0-9 . _ -), or
    CredentialError: the rule for anything that must match a ticket's event."""
    _check_id(event, "event", EVENT_MAX)
    return event


def _valid_id(value: object, maximum: int) -> bool:
    if not isinstance(value, str) or not 1 <= len(value) <= maximum:
        return False
    try:
        return _ID_RE.fullmatch(value.encode("ascii")) is not None
    except UnicodeEncodeError:
        return False


def valid_ticket_id(value: object) -> bool:
    """Whether a ticket could carry this id: 1 to TICKET_ID_MAX of A-Z a-z 0-9 . _ -."""
    return _valid_id(value, TICKET_ID_MAX)


def valid_event(value: object) -> bool:
    """Whether a ticket could name this event: 1 to EVENT_MAX of A-Z a-z 0-9 . _ -."""
    return _valid_id(value, EVENT_MAX)


def _entrance_mask(entrances: frozenset[int]) -> int:
    if not entrances:
        raise CredentialError("a ticket must allow at least one entrance")
    mask = 0
    for number in entrances:
        if not 1 <= number <= MAX_ENTRANCE:
            raise CredentialError(f"entrance {number} is outside 1..{MAX_ENTRANCE}")
        mask |= 1 << (number - 1)
    return mask


@functools.lru_cache(maxsize=1024)
def entrances_from_mask(mask: int) -> frozenset[int]:
    return frozenset(i + 1 for i in range(MAX_ENTRANCE) if mask >> i & 1)


def encode_body(fields: TicketFields) -> bytes:
    """The level-1 body (everything the issuer signs), validating every field."""
    kid = _check_id(fields.kid, "key id", KID_MAX)
    event = _check_id(fields.event, "event", EVENT_MAX)
    ticket = _check_id(fields.ticket_id, "ticket id", TICKET_ID_MAX)
    category = _ascii(fields.category, "category")
    if len(category) > CATEGORY_MAX or not _TEXT_RE.fullmatch(category):
        raise CredentialError(
            f"category must be at most {CATEGORY_MAX} printable ASCII characters"
        )
    if not 0 <= fields.generation <= MAX_GENERATION:
        raise CredentialError(f"generation must be 0..{MAX_GENERATION}")
    if not 0 <= fields.valid_from < fields.valid_until <= 0xFFFFFFFF:
        raise CredentialError("validity must satisfy 0 <= valid_from < valid_until < 2^32")
    if int(fields.flags) & ~int(KNOWN_FLAGS):
        raise CredentialError(f"unknown flag bits {int(fields.flags) & ~int(KNOWN_FLAGS):#x}")
    if fields.paper != (fields.device_key is None):
        raise CredentialError("a paper ticket has no device key; a phone ticket needs one")
    if fields.device_key is not None and len(fields.device_key) != PUBLIC_KEY_BYTES:
        raise CredentialError("device key must be a 32-byte Ed25519 public key")
    return b"".join(
        (
            bytes((FORMAT_VERSION, int(fields.flags))),
            bytes((len(kid),)), kid,
            bytes((len(event),)), event,
            bytes((len(ticket),)), ticket,
            _FIXED.pack(
                fields.generation,
                fields.valid_from,
                fields.valid_until,
                _entrance_mask(fields.entrances),
            ),
            bytes((len(category),)), category,
            fields.device_key or b"",
        )
    )


def issue(fields: TicketFields, issuer_key: Ed25519PrivateKey) -> bytes:
    """Level 1 as the issuer hands it to the phone: signed body + issuer signature."""
    body = encode_body(fields)
    return body + issuer_key.sign(ISSUER_CONTEXT + body)


def step_at(unix_seconds: float) -> int:
    """The time step counter at a given instant."""
    return int(unix_seconds // STEP_SECONDS)


def device_message(level1: bytes, step: int) -> bytes:
    """The exact bytes the holder's device signs for one step."""
    return DEVICE_CONTEXT + level1 + _STEP.pack(step)


def dynamic_code(level1: bytes, device_key: Ed25519PrivateKey, step: int) -> str:
    """The text the phone shows during `step`: level 1 + level 2, as a code."""
    if not 0 <= step <= 0xFFFFFFFF:
        raise CredentialError("step must fit in 32 bits")
    level2 = _STEP.pack(step) + device_key.sign(device_message(level1, step))
    return to_text(level1 + level2)


def paper_code(level1: bytes) -> str:
    """The text printed on a paper confirmation: level 1 alone."""
    return to_text(level1)


def to_text(binary: bytes) -> str:
    return PREFIX + base45.encode(binary)


def text_to_binary(text: str) -> bytes:
    """Strict text layer: length bound first, then prefix, then Base45."""
    if len(text) > MAX_CODE_CHARS:
        raise NotATicketError(f"code longer than {MAX_CODE_CHARS} characters")
    if not text.startswith(PREFIX):
        if (
            text.startswith(PREFIX_FAMILY)
            and len(text) >= len(PREFIX)
            and text[2] in "0123456789"
            and text[3] == ":"
        ):
            raise UnsupportedVersionError(f"format version {text[2]!r} is not supported")
        raise NotATicketError("not a ticket code (wrong prefix)")
    return base45.decode(text[len(PREFIX):])


def _take_string(data: bytes, pos: int, what: str, maximum: int, pattern: re.Pattern[bytes],
                 minimum: int = 1) -> tuple[str, int]:
    if pos >= len(data):
        raise CredentialFormatError(f"truncated before {what}")
    n = data[pos]
    end = pos + 1 + n
    if not minimum <= n <= maximum:
        raise CredentialFormatError(f"{what} length {n} outside {minimum}..{maximum}")
    if end > len(data):
        raise CredentialFormatError(f"truncated inside {what}")
    raw = data[pos + 1 : end]
    if not pattern.fullmatch(raw):
        raise CredentialFormatError(f"{what} holds a character outside its alphabet")
    return raw.decode("ascii"), end


def parse_binary(data: bytes) -> Credential:
    """Parse level 1 (and level 2 unless paper); refuse anything non-canonical."""
    if len(data) < 2:
        raise CredentialFormatError("truncated before the flags")
    if data[0] != FORMAT_VERSION:
        raise UnsupportedVersionError(f"binary format version {data[0]} is not supported")
    flags_value = data[1]
    if flags_value & _RESERVED_BITS:
        raise CredentialFormatError(f"reserved flag bits set ({flags_value:#04x})")
    flags = _FLAGS[flags_value]
    kid, pos = _take_string(data, 2, "key id", KID_MAX, _ID_RE)
    event, pos = _take_string(data, pos, "event", EVENT_MAX, _ID_RE)
    ticket_id, pos = _take_string(data, pos, "ticket id", TICKET_ID_MAX, _ID_RE)
    if pos + _FIXED.size > len(data):
        raise CredentialFormatError("truncated inside the fixed fields")
    generation, valid_from, valid_until, mask = _FIXED.unpack_from(data, pos)
    pos += _FIXED.size
    if generation > MAX_GENERATION:
        raise CredentialFormatError(f"generation {generation} above {MAX_GENERATION}")
    if valid_from >= valid_until:
        raise CredentialFormatError("valid_from is not before valid_until")
    if mask == 0:
        raise CredentialFormatError("no entrance allowed")
    category, pos = _take_string(data, pos, "category", CATEGORY_MAX, _TEXT_RE, minimum=0)
    paper = bool(flags_value & _PAPER_BIT)
    device_key: bytes | None = None
    if not paper:
        device_key = data[pos : pos + PUBLIC_KEY_BYTES]
        pos += PUBLIC_KEY_BYTES
    level1_end = pos + SIGNATURE_BYTES
    if level1_end > len(data):
        raise CredentialFormatError("truncated inside level 1")
    step: int | None = None
    device_signature: bytes | None = None
    if paper:
        if len(data) != level1_end:
            raise CredentialFormatError("bytes after the end of a paper credential")
    else:
        if len(data) != level1_end + STEP_BYTES + SIGNATURE_BYTES:
            raise CredentialFormatError(
                "level 2 missing, truncated or followed by extra bytes"
            )
        (step,) = _STEP.unpack_from(data, level1_end)
        device_signature = data[level1_end + STEP_BYTES :]
    fields = TicketFields(
        kid=kid,
        event=event,
        ticket_id=ticket_id,
        generation=generation,
        valid_from=valid_from,
        valid_until=valid_until,
        entrances=entrances_from_mask(mask),
        category=category,
        flags=flags,
        device_key=device_key,
    )
    return Credential(
        fields=fields,
        level1=data[:level1_end],
        issuer_signature=data[pos:level1_end],
        step=step,
        device_signature=device_signature,
    )


def parse_code(text: str) -> Credential:
    """Text as scanned to a Credential; raises CredentialFormatError on any flaw."""
    return parse_binary(text_to_binary(text))


def parse_level1(level1: bytes) -> TicketFields:
    """Read a stored level 1 (as issued, before any level 2 is added)."""
    if len(level1) < 2 or level1[1] & Flag.PAPER:
        return parse_binary(level1).fields
    # A phone ticket's level 1 alone lacks level 2: parse it with a placeholder.
    return parse_binary(level1 + bytes(STEP_BYTES + SIGNATURE_BYTES)).fields


def verify_issuer(credential: Credential, issuer_key: Ed25519PublicKey) -> bool:
    try:
        issuer_key.verify(credential.issuer_signature, ISSUER_CONTEXT + credential.signed_body)
    except InvalidSignature:
        return False
    return True


def verify_device(credential: Credential) -> bool:
    key = credential.fields.device_key
    if key is None or credential.step is None or credential.device_signature is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(
            credential.device_signature, device_message(credential.level1, credential.step)
        )
    except (InvalidSignature, ValueError):
        return False
    return True
