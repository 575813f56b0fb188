"""The journal's leaves: every record is one, in the order the gate wrote them.

Four kinds of leaf are written (docs/journal.md, "Leaves"): a ``decision`` (a decision row
written without an admission: refusals, exits, calls for a steward), an ``admit`` (an
admitting decision together with the admission row written with it: one leaf for the two
records), a ``state`` (each later change of an admission's state: passed, voided, exited)
and a ``gate_event`` (the gate's own events: fire alarm, free egress ended, faults).
Journals written before the ``admit`` leaf have, for each admission, a ``decision`` leaf
followed by an ``admission`` leaf; they still verify. A leaf's bytes are a JSON object,
written once by the gate's journal (portique/runtime/journal.py) in the same transaction
as its records and never rewritten; its hash is RFC 6962's leaf hash. `verify_journal`
reads a journal file and names the first record that no longer matches its leaf, the
first leaf missing or out of place, and whether the tree still matches the checkpoints
the gate and its peers signed.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from portique.runtime import tlog

LEAF_VERSION = 1
DECISION_FIELDS = ("scan_id", "at", "gate", "event", "ticket_id", "generation", "verdict",
                   "reason", "method", "latency_ms", "steward", "note", "detail")
ADMISSION_FIELDS = ("scan_id", "event", "ticket_id", "generation", "gate", "at", "state",
                    "updated_at")
"""The fields of an ``admission`` leaf: written by the gate before the ``admit`` leaf, for
an admission row after its decision's leaf; still verified, no longer written."""
ADMIT_FIELDS = (*DECISION_FIELDS, "state", "updated_at")
"""An admitting decision and its admission row: the decision's fields, then the admission's
state and the time of that state (`open`, at the decision's time, as the gate writes it).
The admission row's other fields (SHARED_FIELDS) are the decision's."""
SHARED_FIELDS = ("event", "ticket_id", "generation", "gate", "at")
STATE_FIELDS = ("scan_id", "state", "updated_at")
GATE_EVENT_FIELDS = ("rowid", "at", "gate", "kind", "steward", "detail")
FIELDS = {"decision": DECISION_FIELDS, "admit": ADMIT_FIELDS, "admission": ADMISSION_FIELDS,
          "state": STATE_FIELDS, "gate_event": GATE_EVENT_FIELDS}


def leaf_bytes(kind: str, index: int, values: Sequence[Any]) -> bytes:
    """One leaf: {"v":1,"i":INDEX,"leaf":KIND, then the record's fields in their fixed
    order}, compact JSON in UTF-8 (numbers as Python's shortest round-trip repr)."""
    return _LEAF[kind](index, *values)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""The general encoder: the reference the leaf writers below reproduce byte for byte
(tests/core/test_journal_vectors.py compares them), and the fallback for a value of a
type the journal's columns never hold (it raises as json would)."""


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"a journal number is not finite: {value!r}")
    return float.__repr__(value)


_JSON: dict[type, Callable[[Any], str]] = {
    str: json.encoder.encode_basestring,
    int: int.__repr__, float: _float, type(None): lambda _: "null",
    bool: lambda v: "true" if v else "false"}


def _writer(kind: str) -> Callable[..., bytes]:
    """The leaf writer of one kind: the same bytes as `_ENCODER` on the leaf's object,
    without building the object (an admission writes its leaf in its transaction)."""
    names = FIELDS[kind]
    head = f'{{"v":{LEAF_VERSION},"i":'
    tail = f',"leaf":"{kind}"'
    keys = tuple(f',"{name}":' for name in names)
    count = len(names)
    encode = _JSON.get
    fallback = _ENCODER.encode

    def write(index: int, *values: Any) -> bytes:
        if len(values) != count:
            raise ValueError(f"a {kind} leaf has {count} fields, {len(values)} given")
        parts = [head, int.__repr__(index), tail]
        for key, value in zip(keys, values, strict=True):
            parts.append(key)
            parts.append((encode(type(value)) or fallback)(value))
        parts.append("}")
        return "".join(parts).encode("utf-8")

    return write


_LEAF = {kind: _writer(kind) for kind in FIELDS}


def repeats(admission: Sequence[Any], decision: Sequence[Any]) -> bool:
    """Whether an admission row (its ADMISSION_FIELDS) has its decision row's
    (DECISION_FIELDS) event, ticket, generation, gate and time: then one `admit` leaf
    holds both."""
    a = dict(zip(ADMISSION_FIELDS, admission, strict=True))
    d = dict(zip(DECISION_FIELDS, decision, strict=True))
    return all(_same(a[name], d[name]) for name in SHARED_FIELDS)


SCHEMA = """
CREATE TABLE IF NOT EXISTS journal_leaves (
    idx   INTEGER PRIMARY KEY,
    kind  TEXT NOT NULL,
    ref   TEXT NOT NULL,
    body  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS journal_checkpoints (
    size  INTEGER PRIMARY KEY,
    at    REAL NOT NULL,
    note  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS journal_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# --- verification ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with a journal: where (leaf index, or None for the whole tree),
    what (changed, removed, reordered, inserted, truncated, forked, signature) and a
    sentence."""

    index: int | None
    what: str
    message: str


@dataclass
class Report:
    leaves: int = 0
    records: int = 0
    checkpoints: int = 0
    cosignatures: int = 0
    root: bytes = tlog.EMPTY_ROOT
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def first(self) -> Finding | None:
        ordered = sorted(self.findings, key=lambda f: (f.index is None, f.index or 0))
        return ordered[0] if ordered else None


def _rows(db: sqlite3.Connection, sql: str) -> Iterator[sqlite3.Row]:
    db.row_factory = sqlite3.Row
    yield from db.execute(sql)


def _same(a: Any, b: Any) -> bool:
    return (type(a) is type(b) and a == b) or (isinstance(a, int | float) and not
                                             isinstance(a, bool) and isinstance(b, int | float)
                                             and not isinstance(b, bool) and a == b)


def _describe(kind: str, ref: str) -> str:
    return {"decision": f"decision {ref}", "admission": f"admission {ref}",
            "admit": f"admitting decision {ref} and its admission",
            "state": f"state change of admission {ref}",
            "gate_event": f"gate event #{ref}"}.get(kind, f"{kind} {ref}")


def verify_journal(path: Path, *, gate_keys: Mapping[str, Ed25519PublicKey],
                   external: Sequence[tlog.SignedCheckpoint] = (),
                   witnesses: Mapping[str, Ed25519PublicKey] | None = None) -> Report:
    """Check a journal file: leaves against records, the tree against every checkpoint
    (the journal's own and `external` ones, e.g. kept by a peer gate or the platform),
    signatures with `gate_keys` (gate id -> key) and cosignatures with `witnesses`."""
    report = Report()
    uri = f"file:{path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        try:
            meta = dict(db.execute("SELECT name, value FROM journal_meta").fetchall())
            leaves = list(_rows(db, "SELECT idx, kind, ref, body FROM journal_leaves "
                                "ORDER BY idx"))
            stored = [(r["size"], bytes(r["note"])) for r in
                      _rows(db, "SELECT size, note FROM journal_checkpoints ORDER BY size")]
        except sqlite3.Error as exc:
            report.findings.append(Finding(None, "unreadable",
                                           f"{path}: not a journal with a tree ({exc})"))
            return report
        records = _records(db)
    origin = meta.get("origin", "")
    hashes: list[bytes] = []
    seen: dict[tuple[str, str], int] = {}
    state_of: dict[str, tuple[Any, Any, int]] = {}
    for position, row in enumerate(leaves):
        index, kind, ref = row["idx"], row["kind"], str(row["ref"])
        body = bytes(row["body"])
        if index != position:
            report.findings.append(Finding(position, "removed", (
                f"leaf {position} is missing: the journal goes on at leaf {index} (a "
                "record and its leaf were removed)")))
            break
        hashes.append(tlog.leaf_hash(body))
        try:
            leaf = json.loads(body)
        except ValueError:
            report.findings.append(Finding(index, "changed", f"leaf {index}: not JSON"))
            continue
        if leaf.get("leaf") != kind or leaf.get("v") != LEAF_VERSION:
            report.findings.append(Finding(index, "changed", (
                f"leaf {index} ({_describe(kind, ref)}): stored as a {kind} leaf, its bytes "
                f"say {leaf.get('leaf')!r}")))
            continue
        if leaf.get("i") != index:
            report.findings.append(Finding(index, "reordered", (
                f"leaf {index} ({_describe(kind, ref)}) was written as leaf {leaf.get('i')}: "
                "records were reordered")))
            continue
        _check_record(report, index, kind, ref, leaf, records, seen, state_of)
    for ref, (state, updated_at, index) in state_of.items():
        now = records["admission"].get(ref)
        if now is not None and (now["state"], now["updated_at"]) != (state, updated_at):
            report.findings.append(Finding(index, "changed", (
                f"admission {ref}: its state is now {now['state']!r}, the journal's last "
                f"leaf about it (leaf {index}) says {state!r}")))
    for kind, rows in records.items():
        for ref in rows:
            if (kind, ref) not in seen and kind != "state":
                report.findings.append(Finding(len(hashes), "inserted", (
                    f"{_describe(kind, ref)} is in the journal but in no leaf: inserted "
                    "after the fact")))
    report.leaves, report.records = len(hashes), sum(len(r) for r in records.values())
    frontier = tlog.Frontier()
    roots: dict[int, bytes] = {0: tlog.EMPTY_ROOT}
    sizes = {size for size, _ in stored} | {c.checkpoint.size for c in external}
    for h in hashes:
        frontier.append(h)
        if frontier.size in sizes:
            roots[frontier.size] = frontier.root()
    report.root = frontier.root()
    checkpoints: list[tuple[str, tlog.SignedCheckpoint]] = []
    for size, note in stored:
        try:
            checkpoints.append(("the journal's checkpoint", tlog.parse_checkpoint(note)))
        except tlog.TlogError as exc:
            report.findings.append(Finding(None, "signature",
                                           f"stored checkpoint of size {size}: {exc}"))
    checkpoints += [("the checkpoint given", c) for c in external]
    for source, signed in checkpoints:
        _check_checkpoint(report, source, signed, origin, roots, len(hashes), gate_keys,
                          witnesses or {})
    report.checkpoints = len(checkpoints)
    return report


def _records(db: sqlite3.Connection) -> dict[str, dict[str, sqlite3.Row]]:
    out: dict[str, dict[str, sqlite3.Row]] = {}
    out["decision"] = {r["scan_id"]: r for r in _rows(
        db, f"SELECT {', '.join(DECISION_FIELDS)} FROM decisions")}
    out["admission"] = {r["scan_id"]: r for r in _rows(
        db, f"SELECT {', '.join(ADMISSION_FIELDS)} FROM admissions")}
    out["gate_event"] = {str(r["rowid"]): r for r in _rows(
        db, f"SELECT {', '.join(GATE_EVENT_FIELDS)} FROM gate_events")}
    return out


def _check_record(report: Report, index: int, kind: str, ref: str, leaf: dict[str, Any],
                  records: dict[str, dict[str, sqlite3.Row]], seen: dict[tuple[str, str], int],
                  state_of: dict[str, tuple[Any, Any, int]]) -> None:
    what = _describe(kind, ref)
    if kind == "state":
        if ref not in records["admission"]:
            report.findings.append(Finding(index, "removed", (
                f"leaf {index} ({what}): the admission is no longer in the journal")))
        state_of[ref] = (leaf.get("state"), leaf.get("updated_at"), index)
        return
    if kind == "admit":
        _check_admit(report, index, ref, leaf, records, seen, state_of)
        return
    if kind not in records:
        report.findings.append(Finding(index, "changed", f"leaf {index}: unknown kind"))
        return
    row = records[kind].get(ref)
    if row is None:
        report.findings.append(Finding(index, "removed", (
            f"leaf {index} ({what}): the record is no longer in the journal (removed)")))
        return
    _seen(report, index, what, kind, ref, seen)
    names = [n for n in FIELDS[kind]  # an admission's state is followed by the state leaves
             if not (kind == "admission" and n in ("state", "updated_at"))]
    if not _changed(report, index, what, row, leaf, names) and kind == "admission":
        state_of[ref] = (leaf.get("state"), leaf.get("updated_at"), index)


def _check_admit(report: Report, index: int, ref: str, leaf: dict[str, Any],
                 records: dict[str, dict[str, sqlite3.Row]], seen: dict[tuple[str, str], int],
                 state_of: dict[str, tuple[Any, Any, int]]) -> None:
    """An `admit` leaf: the decision row and the admission row, both as it says."""
    what = _describe("admit", ref)
    decision, admission = records["decision"].get(ref), records["admission"].get(ref)
    if decision is None or admission is None:
        gone = ("the decision and its admission are" if decision is None and admission is None
                else "the decision is" if decision is None else "its admission is")
        report.findings.append(Finding(index, "removed", (
            f"leaf {index} ({what}): {gone} no longer in the journal (removed)")))
        return
    _seen(report, index, what, "decision", ref, seen)
    _seen(report, index, what, "admission", ref, seen)
    if not (_changed(report, index, what, decision, leaf, DECISION_FIELDS) or _changed(
            report, index, f"admission {ref}, of {what}", admission, leaf, SHARED_FIELDS)):
        state_of[ref] = (leaf.get("state"), leaf.get("updated_at"), index)


def _seen(report: Report, index: int, what: str, kind: str, ref: str,
          seen: dict[tuple[str, str], int]) -> None:
    if (kind, ref) in seen:
        report.findings.append(Finding(index, "inserted", (
            f"leaf {index} ({what}): a second leaf for one record")))
    seen[(kind, ref)] = index


def _changed(report: Report, index: int, what: str, row: sqlite3.Row, leaf: dict[str, Any],
             names: Sequence[str]) -> bool:
    """Whether one of `names` differs between the row and the leaf (the first is named)."""
    for name in names:
        if not _same(row[name], leaf.get(name)):
            report.findings.append(Finding(index, "changed", (
                f"leaf {index} ({what}) was changed: {name} is now {row[name]!r}, it was "
                f"written as {leaf.get(name)!r}")))
            return True
    return False


def _check_checkpoint(report: Report, source: str, signed: tlog.SignedCheckpoint,
                      origin: str, roots: dict[int, bytes], size: int,
                      gate_keys: Mapping[str, Ed25519PublicKey],
                      witnesses: Mapping[str, Ed25519PublicKey]) -> None:
    cp = signed.checkpoint
    label = f"{source} (size {cp.size})"
    if origin and cp.origin != origin:
        report.findings.append(Finding(None, "signature", (
            f"{label} is of another log ({cp.origin!r}, this journal is {origin!r})")))
        return
    signer = next((s.name for s in signed.signatures if s.timestamp is None), None)
    key = gate_keys.get(signer or "")
    if key is None:
        report.findings.append(Finding(None, "signature", (
            f"{label}: signed by {signer!r}, whose key is not given")))
    else:
        try:
            tlog.check_signature(signed, signer or "", key)
        except tlog.TlogError as exc:
            report.findings.append(Finding(None, "signature", f"{source}: {exc}"))
            return
    for s in signed.signatures:
        if s.timestamp is None:
            continue
        witness = witnesses.get(s.name)
        if witness is None:
            continue
        try:
            tlog.check_cosignature(signed, s.name, witness)
            report.cosignatures += 1
        except tlog.TlogError as exc:
            report.findings.append(Finding(None, "signature", f"{source}: {exc}"))
    if cp.size > size:
        report.findings.append(Finding(size, "truncated", (
            f"the journal ends after {size} leaves, but {label} covers {cp.size}: the tail "
            f"from leaf {size} on was cut off (or the file replaced by an older copy)")))
    elif roots.get(cp.size) != cp.root:
        report.findings.append(Finding(None, "forked", (
            f"the journal's first {cp.size} leaves no longer make the tree {label} signed: "
            "its history was rewritten")))


# --- the platform's side: an upload against the previous one ----------------------------

UPLOAD_DECISION_FIELDS = ("scan_id", "at", "gate", "event", "ticket_id", "generation",
                          "verdict", "reason", "method", "latency_ms", "steward", "note")


def _b64(value: Any, what: str) -> bytes:
    import base64

    if not isinstance(value, str):
        raise tlog.TlogError(f"{what}: base64 text expected")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise tlog.TlogError(f"{what}: not base64") from None


def verify_upload(body: Mapping[str, Any], *, gate_keys: Mapping[str, Ed25519PublicKey],
                  previous: tlog.SignedCheckpoint | None = None) -> tlog.SignedCheckpoint:
    """What the platform checks of one upload (docs/journal.md, "Proofs in an upload"):
    the checkpoint is signed by the gate; it extends `previous` (the checkpoint of the
    gate's last accepted upload) by its consistency proof; every record is in the tree,
    by its leaves' inclusion proofs, and says what its leaves say. Returns the upload's
    checkpoint (the next `previous`); TlogError naming the first thing that fails."""
    tree = body.get("tree")
    if not isinstance(tree, dict):
        raise tlog.TlogError("upload: no tree (checkpoint and proofs)")
    signed = tlog.parse_checkpoint(str(tree.get("checkpoint", "")).encode("utf-8"))
    gate = str(body.get("gate", ""))
    key = gate_keys.get(gate)
    if key is None:
        raise tlog.TlogError(f"upload: gate {gate!r} has no key here")
    tlog.check_signature(signed, gate, key)
    cp = signed.checkpoint
    if previous is not None:
        old = previous.checkpoint
        if old.origin != cp.origin:
            raise tlog.TlogError(f"upload: the journal is another log ({cp.origin!r}) than "
                                 f"the previous upload's ({old.origin!r}): it was replaced")
        if cp.size < old.size:
            raise tlog.TlogError(f"upload: checkpoint of size {cp.size} is older than the "
                                 f"previous upload's ({old.size}): the journal was cut back")
        consistency = tree.get("consistency")
        if old.size == cp.size:
            proof: list[bytes] = []
        elif not isinstance(consistency, dict) or consistency.get("from_size") != old.size:
            raise tlog.TlogError(f"upload: no consistency proof from size {old.size}")
        else:
            proof = [_b64(h, "consistency proof") for h in consistency.get("proof", [])]
        tlog.verify_consistency(old.size, cp.size, old.root, cp.root, proof)
    leaves = tree.get("leaves")
    if not isinstance(leaves, dict):
        raise tlog.TlogError("upload: no leaves for its records")
    for record in body.get("records", []):
        scan_id = record.get("scan_id")
        found = leaves.get(scan_id)
        if not isinstance(found, list) or not found:
            raise tlog.TlogError(f"upload: record {scan_id} comes with no leaf")
        decoded = []
        for item in found:
            leaf = _b64(item.get("leaf"), f"record {scan_id}: leaf")
            index = item.get("index")
            if not isinstance(index, int):
                raise tlog.TlogError(f"record {scan_id}: leaf index missing")
            proof = [_b64(h, f"record {scan_id}: proof") for h in item.get("proof", [])]
            try:
                tlog.verify_inclusion(tlog.leaf_hash(leaf), index, cp.size, proof, cp.root)
            except tlog.TlogError as exc:
                raise tlog.TlogError(f"record {scan_id}, leaf {index}: {exc}") from None
            parsed = json.loads(leaf)
            if parsed.get("i") != index or parsed.get("scan_id") != scan_id:
                raise tlog.TlogError(f"record {scan_id}: leaf {index} is about another record")
            decoded.append(parsed)
        decision = next((d for d in decoded if d.get("leaf") in ("decision", "admit")), None)
        if decision is None:
            raise tlog.TlogError(f"record {scan_id}: no decision or admit leaf")
        for name in UPLOAD_DECISION_FIELDS:
            if not _same(record.get(name), decision.get(name)):
                raise tlog.TlogError(f"record {scan_id}: {name} is {record.get(name)!r} in "
                                     f"the upload, {decision.get(name)!r} in its leaf")
        states = [d.get("state") for d in decoded
                  if d.get("leaf") in ("admit", "admission", "state")]
        if record.get("admission_state") != (states[-1] if states else None):
            raise tlog.TlogError(f"record {scan_id}: admission state "
                                 f"{record.get('admission_state')!r} is not its last leaf's")
    return signed
