"""The journal's Merkle tree and its signed checkpoints (docs/journal.md).

RFC 6962 (section 2.1, as restated by RFC 9162) hashing: a leaf's hash is
SHA-256(0x00 || leaf), an inner node's SHA-256(0x01 || left || right), the empty tree's
SHA-256 of nothing; inclusion and consistency proofs as there. Checkpoints are C2SP
tlog-checkpoint signed notes, signed with the gate's Ed25519 key; peer gates add C2SP
tlog-cosignature/v1 lines. Pure functions of bytes: no file, clock or network here.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from portique.base.errors import GateError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
SIGNATURE_DASH = "\u2014"  # the em dash that opens a signature line
NOTE_ED25519 = 0x01
COSIGNATURE_V1 = 0x04


class TlogError(GateError, ValueError):
    """A checkpoint, signature or proof that does not hold; the message says which part."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of these leaf hashes (RFC 6962 MTH)."""
    if not hashes:
        return EMPTY_ROOT
    return Frontier.of(hashes).root()


class Frontier:
    """The tree's right edge: the roots of its perfect subtrees, largest first. Appending a
    leaf costs O(1) amortised; the root is O(log n). How the gate keeps its tree head."""

    __slots__ = ("size", "stack")

    def __init__(self) -> None:
        self.size = 0
        self.stack: list[tuple[int, bytes]] = []  # (subtree height, hash)

    @classmethod
    def of(cls, hashes: Sequence[bytes]) -> Frontier:
        frontier = cls()
        for h in hashes:
            frontier.append(h)
        return frontier

    def append(self, h: bytes) -> None:
        height = 0
        while self.stack and self.stack[-1][0] == height:
            _, left = self.stack.pop()
            h = node_hash(left, h)
            height += 1
        self.stack.append((height, h))
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        acc = self.stack[-1][1]
        for _, h in reversed(self.stack[:-1]):
            acc = node_hash(h, acc)
        return acc


class Tree:
    """Every level of the tree over the leaves so far: level k holds the hashes of the
    aligned perfect subtrees of 2**k leaves. Any subtree hash, root, inclusion or
    consistency proof then costs O(log² n) node hashes at most."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]

    @classmethod
    def of(cls, hashes: Sequence[bytes]) -> Tree:
        tree = cls()
        for h in hashes:
            tree.append(h)
        return tree

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, h: bytes) -> None:
        self.levels[0].append(h)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            below = self.levels[level]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(node_hash(below[-2], below[-1]))
            level += 1

    def extend(self, hashes: Sequence[bytes]) -> None:
        """Append many leaf hashes at once: the same levels as `append` one by one, each
        level's new nodes made in one pass (what a checkpoint does after many leaves)."""
        self.levels[0].extend(hashes)
        sha256 = hashlib.sha256
        level = 0
        while len(self.levels[level]) >= 2:
            below = self.levels[level]
            if level + 1 == len(self.levels):
                self.levels.append([])
            above = self.levels[level + 1]
            start = 2 * len(above)
            if start + 1 >= len(below):
                break
            above.extend([sha256(b"\x01" + below[i] + below[i + 1]).digest()
                          for i in range(start, len(below) - 1, 2)])
            level += 1

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range the RFC 6962 recursion visits."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self.levels[n.bit_length() - 1][start // n]
        k = _split(n)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        return self.subtree(0, self.size if size is None else size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 6962 PATH(index, D[0:size])."""
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise TlogError(f"no leaf {index} in a tree of {size}")
        proof: list[bytes] = []
        start, end, m = 0, size, index
        while end - start > 1:
            k = _split(end - start)
            if m < k:
                proof.append(self.subtree(start + k, end))
                end = start + k
            else:
                proof.append(self.subtree(start, start + k))
                start, m = start + k, m - k
        return proof[::-1]

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """RFC 6962 PROOF(old, D[0:new])."""
        new = self.size if new is None else new
        if not 0 <= old <= new <= self.size:
            raise TlogError(f"no consistency between sizes {old} and {new}")
        if old in (0, new):
            return []
        proof: list[bytes] = []
        start, end, m, whole = 0, new, old, True
        while True:
            n = end - start
            if m == n:
                if not whole:
                    proof.append(self.subtree(start, end))
                break
            k = _split(n)
            if m <= k:
                proof.append(self.subtree(start + k, end))
                end = start + k
            else:
                proof.append(self.subtree(start, start + k))
                start, m, whole = start + k, m - k, False
        return proof[::-1]


def inclusion_proof(hashes: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:size]) over these leaf hashes."""
    return Tree.of(hashes).inclusion_proof(index, size)


def consistency_proof(hashes: Sequence[bytes], old: int, new: int | None = None) -> list[bytes]:
    """RFC 6962 PROOF(old, D[0:new]) over these leaf hashes."""
    return Tree.of(hashes).consistency_proof(old, new)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     expected_root: bytes) -> None:
    """TlogError unless `proof` shows leaf hash `leaf` at `index` in the tree (RFC 9162
    2.1.3.2)."""
    if not 0 <= index < size:
        raise TlogError(f"inclusion: index {index} is not in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise TlogError("inclusion: the proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise TlogError("inclusion: the proof is too short")
    if r != expected_root:
        raise TlogError("inclusion: the proof leads to another root")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """TlogError unless `proof` shows the tree (old, old_root) is a prefix of (new,
    new_root) (RFC 9162 2.1.4.2)."""
    if old > new:
        raise TlogError(f"consistency: the older tree ({old}) is larger than the newer "
                        f"({new})")
    if old == new:
        if proof:
            raise TlogError("consistency: same size, the proof must be empty")
        if old_root != new_root:
            raise TlogError(f"consistency: two different trees of size {old}")
        return
    if old == 0:
        if proof:
            raise TlogError("consistency: from the empty tree, the proof must be empty")
        return
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        raise TlogError("consistency: the proof is empty")
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise TlogError("consistency: the proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise TlogError("consistency: the proof is too short")
    if fr != old_root:
        raise TlogError(f"consistency: the proof does not lead to the tree of size {old} "
                        "given: a different history")
    if sr != new_root:
        raise TlogError(f"consistency: the proof does not lead to the tree of size {new} "
                        "given")


# --- checkpoints (C2SP tlog-checkpoint, signed-note) ----------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> bytes:
        """The checkpoint's note text: origin, size, root, each line ending in a newline."""
        return (f"{self.origin}\n{self.size}\n"
                f"{base64.b64encode(self.root).decode()}\n").encode()


def key_id(name: str, public: Ed25519PublicKey, kind: int) -> bytes:
    """The 4-byte key id of a signed-note line: SHA-256(name || 0x0A || kind || key)[:4]
    (kind 0x01: an Ed25519 note signature; 0x04: a cosignature/v1)."""
    raw = public.public_bytes_raw()
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + raw).digest()[:4]


def cosigned_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: a header, the time, then the checkpoint's body."""
    return b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + checkpoint.body()


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line of a note: a gate's own (timestamp None) or a cosignature."""

    name: str
    key_id: bytes
    signature: bytes
    timestamp: int | None = None

    def line(self) -> str:
        blob = self.key_id + (b"" if self.timestamp is None
                              else struct.pack(">Q", self.timestamp)) + self.signature
        return f"{SIGNATURE_DASH} {self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    signatures: tuple[Signature, ...]

    def encode(self) -> bytes:
        return self.checkpoint.body() + b"\n" + "".join(
            s.line() for s in self.signatures).encode()

    def with_signature(self, extra: Signature) -> SignedCheckpoint:
        kept = tuple(s for s in self.signatures
                     if (s.name, s.key_id) != (extra.name, extra.key_id))
        return SignedCheckpoint(self.checkpoint, (*kept, extra))


def sign_checkpoint(checkpoint: Checkpoint, name: str,
                    key: Ed25519PrivateKey) -> SignedCheckpoint:
    """The gate's own signature on its checkpoint (a signed note)."""
    sig = Signature(name, key_id(name, key.public_key(), NOTE_ED25519),
                    key.sign(checkpoint.body()))
    return SignedCheckpoint(checkpoint, (sig,))


def cosign(checkpoint: Checkpoint, name: str, key: Ed25519PrivateKey,
           timestamp: int) -> Signature:
    """A witness's cosignature/v1 line on a checkpoint it has verified."""
    return Signature(name, key_id(name, key.public_key(), COSIGNATURE_V1),
                     key.sign(cosigned_message(checkpoint, timestamp)), timestamp)


def parse_checkpoint(data: bytes) -> SignedCheckpoint:
    """A signed checkpoint from its bytes; TlogError naming what is malformed."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TlogError("checkpoint: not UTF-8") from None
    body, sep, sigs = text.partition("\n\n")
    if not sep:
        raise TlogError("checkpoint: no blank line between the body and its signatures")
    lines = body.split("\n")
    if len(lines) < 3:
        raise TlogError("checkpoint: the body needs origin, size and root lines")
    origin, size_text, root_text = lines[:3]
    if not origin or not size_text.isdigit() or (size_text != "0" and size_text[0] == "0"):
        raise TlogError(f"checkpoint: bad origin or size line ({size_text[:24]!r})")
    try:
        root_hash = base64.b64decode(root_text, validate=True)
    except ValueError:
        raise TlogError("checkpoint: the root line is not base64") from None
    if len(root_hash) != HASH_SIZE:
        raise TlogError(f"checkpoint: the root is {len(root_hash)} bytes, not {HASH_SIZE}")
    if len(lines) > 3:
        raise TlogError("checkpoint: extension lines are not accepted")
    signatures = []
    if not sigs.endswith("\n"):
        raise TlogError("checkpoint: the last signature line does not end in a newline")
    for line in sigs[:-1].split("\n"):
        dash, _, rest = line.partition(" ")
        name, _, blob_text = rest.partition(" ")
        if dash != SIGNATURE_DASH or not name or not blob_text:
            raise TlogError(f"checkpoint: bad signature line {line[:40]!r}")
        try:
            blob = base64.b64decode(blob_text, validate=True)
        except ValueError:
            raise TlogError(f"checkpoint: signature of {name} is not base64") from None
        if len(blob) == 4 + 64:
            signatures.append(Signature(name, blob[:4], blob[4:]))
        elif len(blob) == 4 + 8 + 64:
            signatures.append(Signature(name, blob[:4], blob[12:],
                                        struct.unpack(">Q", blob[4:12])[0]))
        else:
            raise TlogError(f"checkpoint: signature of {name} has {len(blob)} bytes")
    if not signatures:
        raise TlogError("checkpoint: not signed")
    return SignedCheckpoint(Checkpoint(origin, int(size_text), root_hash), tuple(signatures))


def check_signature(signed: SignedCheckpoint, name: str, public: Ed25519PublicKey) -> None:
    """TlogError unless `name` signed the checkpoint with this key (its own note
    signature)."""
    want = key_id(name, public, NOTE_ED25519)
    for s in signed.signatures:
        if s.name == name and s.key_id == want and s.timestamp is None:
            try:
                public.verify(s.signature, signed.checkpoint.body())
            except InvalidSignature:
                raise TlogError(f"checkpoint of size {signed.checkpoint.size}: the "
                                f"signature of {name} does not verify") from None
            return
    raise TlogError(f"checkpoint of size {signed.checkpoint.size}: no signature of {name}")


def check_cosignature(signed: SignedCheckpoint, name: str, public: Ed25519PublicKey) -> int:
    """The time of `name`'s valid cosignature on the checkpoint; TlogError if none."""
    want = key_id(name, public, COSIGNATURE_V1)
    for s in signed.signatures:
        if s.name == name and s.key_id == want and s.timestamp is not None:
            try:
                public.verify(s.signature, cosigned_message(signed.checkpoint, s.timestamp))
            except InvalidSignature:
                raise TlogError(f"checkpoint of size {signed.checkpoint.size}: the "
                                f"cosignature of {name} does not verify") from None
            return s.timestamp
    raise TlogError(f"checkpoint of size {signed.checkpoint.size}: no cosignature of {name}")
