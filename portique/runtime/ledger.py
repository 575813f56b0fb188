"""The journal's leaves: every record is one, in the order the gate wrote them.

Four kinds of record make leaves (docs/journal.md, "Leaves"): a ``decision`` (every
decision row: admissions, refusals, exits, manual actions), an ``admission`` (the
admission row written with an admitting decision), a ``state`` (each later change of an
admission's state: passed, voided, exited) and a ``gate_event`` (the gate's own events:
fire alarm, free egress ended, faults). A leaf's bytes are a JSON object, written once by
the gate in the same transaction as its record (SQLite triggers call `leaf_*` below) and
never rewritten; its hash is RFC 6962's leaf hash. `verify_journal` reads a journal file
and names the first record that no longer matches its leaf, the first leaf missing or out
of place, and whether the tree still matches the checkpoints the gate and its peers signed.
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
STATE_FIELDS = ("scan_id", "state", "updated_at")
GATE_EVENT_FIELDS = ("rowid", "at", "gate", "kind", "steward", "detail")
FIELDS = {"decision": DECISION_FIELDS, "admission": ADMISSION_FIELDS, "state": STATE_FIELDS,
          "gate_event": GATE_EVENT_FIELDS}


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
    without building the object (an admission writes its leaves in its transaction)."""
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


def register(db: sqlite3.Connection) -> None:
    """The SQL functions the leaf triggers call (on this connection)."""
    for kind, names in FIELDS.items():
        db.create_function(f"journal_leaf_{kind}", 1 + len(names), _LEAF[kind],
                           deterministic=True)


def _append(kind: str, ref: str, values: str) -> str:
    return ("INSERT INTO journal_leaves (idx, kind, ref, body) "
            f"SELECT n, '{kind}', {ref}, journal_leaf_{kind}(n, {values}) FROM (SELECT "
            "COALESCE(MAX(idx), -1) + 1 AS n FROM main.journal_leaves);")


def _new(names: Sequence[str]) -> str:
    return ", ".join(f"NEW.{n}" for n in names)


TRIGGERS = (
    "CREATE TEMP TRIGGER leaf_decision AFTER INSERT ON main.decisions BEGIN "
    + _append("decision", "NEW.scan_id", _new(DECISION_FIELDS)) + " END",
    "CREATE TEMP TRIGGER leaf_admission AFTER INSERT ON main.admissions BEGIN "
    + _append("admission", "NEW.scan_id", _new(ADMISSION_FIELDS)) + " END",
    "CREATE TEMP TRIGGER leaf_state AFTER UPDATE OF state ON main.admissions "
    "WHEN NEW.state IS NOT OLD.state BEGIN "
    + _append("state", "NEW.scan_id", _new(STATE_FIELDS)) + " END",
    "CREATE TEMP TRIGGER leaf_gate_event AFTER INSERT ON main.gate_events BEGIN "
    + _append("gate_event", "NEW.rowid", _new(GATE_EVENT_FIELDS)) + " END",
)
"""TEMP: the gate's own connection writes leaves; a file edited by anything else gets no
leaf, and so shows as edited."""

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
    if kind not in records:
        report.findings.append(Finding(index, "changed", f"leaf {index}: unknown kind"))
        return
    row = records[kind].get(ref)
    if row is None:
        report.findings.append(Finding(index, "removed", (
            f"leaf {index} ({what}): the record is no longer in the journal (removed)")))
        return
    if (kind, ref) in seen:
        report.findings.append(Finding(index, "inserted", (
            f"leaf {index} ({what}): a second leaf for one record")))
    seen[(kind, ref)] = index
    for name in FIELDS[kind]:
        if kind == "admission" and name in ("state", "updated_at"):
            continue  # followed by the state leaves
        if not _same(row[name], leaf.get(name)):
            report.findings.append(Finding(index, "changed", (
                f"leaf {index} ({what}) was changed: {name} is now {row[name]!r}, it was "
                f"written as {leaf.get(name)!r}")))
            return
    if kind == "admission":
        state_of[ref] = (leaf.get("state"), leaf.get("updated_at"), index)


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
        decision = next((d for d in decoded if d.get("leaf") == "decision"), None)
        if decision is None:
            raise tlog.TlogError(f"record {scan_id}: no decision leaf")
        for name in UPLOAD_DECISION_FIELDS:
            if not _same(record.get(name), decision.get(name)):
                raise tlog.TlogError(f"record {scan_id}: {name} is {record.get(name)!r} in "
                                     f"the upload, {decision.get(name)!r} in its leaf")
        states = [d.get("state") for d in decoded if d.get("leaf") in ("admission", "state")]
        if record.get("admission_state") != (states[-1] if states else None):
            raise tlog.TlogError(f"record {scan_id}: admission state "
                                 f"{record.get('admission_state')!r} is not its last leaf's")
    return signed
