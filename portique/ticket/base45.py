"""Base45 (RFC 9285) with one accepted spelling per byte string.

Decoding refuses every text that the encoder would not have produced: characters outside
the 45-character alphabet (lowercase included), a dangling single character, and triplets
or pairs whose value overflows (``GGW`` is 65536). Encode then decode is the identity and
decode then encode is the identity on everything decode accepts.
"""

from __future__ import annotations

import numpy as np

from portique.base.errors import CredentialFormatError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

_VALUE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(ALPHABET):
    _VALUE[ord(_c)] = _i
_WEIGHTS = np.array([1, 45, 45 * 45], dtype=np.uint32)


def encode(data: bytes) -> str:
    """Encode bytes as Base45 text."""
    out: list[str] = []
    a = ALPHABET
    for i in range(0, len(data) - 1, 2):
        n = (data[i] << 8) | data[i + 1]
        out += (a[n % 45], a[(n // 45) % 45], a[n // 2025])
    if len(data) % 2:
        n = data[-1]
        out += (a[n % 45], a[n // 45])
    return "".join(out)


def decode(text: str) -> bytes:
    """Decode strict Base45; raise CredentialFormatError naming what is wrong."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise CredentialFormatError("Base45 text holds a non-ASCII character") from None
    n = len(raw)
    rest = n % 3
    if rest == 1:
        raise CredentialFormatError("Base45 text has a dangling single character")
    values = _VALUE[np.frombuffer(raw, dtype=np.uint8)]
    if n and int(values.max()) == 255:
        raise CredentialFormatError("Base45 text holds a character outside the alphabet")
    triplets = values[: n - rest].reshape(-1, 3) @ _WEIGHTS
    if triplets.size and int(triplets.max()) > 0xFFFF:
        raise CredentialFormatError("Base45 triplet value above 65535")
    out = triplets.astype(">u2").tobytes()
    if rest == 2:
        last = int(values[-2]) + 45 * int(values[-1])
        if last > 0xFF:
            raise CredentialFormatError("Base45 final pair value above 255")
        out += bytes((last,))
    return out
