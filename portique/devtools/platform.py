"""The platform's journal endpoint, for development: a real HTTP server that stores uploads
idempotently in SQLite, as docs/upload.md asks of a platform.

Not the platform: it has no users, no dashboards and no retention policy. It accepts
exactly what docs/openapi/upload.yaml describes, refuses anything else with a 400 naming
what was wrong (storing nothing of that request), and stores each record once per
(gate, scan id): the same record sent again changes nothing, a record whose admission
state moved on (open, then passed or voided) updates its row. Fields of the request it
does not know are kept verbatim beside the batch.

The journal's proofs (`tree`, docs/upload.md section 5): the receiver keeps the checkpoint
of every batch it acknowledged, per gate, and, given the gates' public keys, checks each
upload with the journal's own verification (portique.runtime.ledger.verify_upload, as
`gate journal check-upload` does) against the kept checkpoint its consistency proof starts
from: an upload that fails is refused with 409, naming the first thing that failed, and
nothing of it is stored.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from portique.base.errors import GateError
from portique.runtime import ledger, tlog

MAX_BODY_BYTES = 8 * 1024 * 1024
VERDICTS = ("admit", "refuse", "steward")
METHODS = ("camera", "steward", "paper")
ADMISSION_STATES = ("open", "passed", "voided", "exited")
# the order an admission's state only ever moves in: a person who went through (passed,
# then perhaps exited) is never made "voided" by a late retry of an older batch
_STATE_RANK = {"open": 1, "voided": 2, "passed": 3, "exited": 4}
RECORD_FIELDS = ("scan_id", "at", "gate", "event", "ticket_id", "generation", "verdict",
                 "reason", "method", "latency_ms", "steward", "note", "admission_state")
_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_REASON_RE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    gate            TEXT NOT NULL,
    scan_id         TEXT NOT NULL,
    at              REAL NOT NULL,
    event           TEXT,
    ticket_id       TEXT,
    generation      INTEGER,
    verdict         TEXT NOT NULL,
    reason          TEXT NOT NULL,
    method          TEXT NOT NULL,
    latency_ms      REAL,
    steward         TEXT,
    note            TEXT,
    admission_state TEXT,
    received_at     REAL NOT NULL,
    updated_at      REAL NOT NULL,
    received        INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (gate, scan_id)
);
CREATE TABLE IF NOT EXISTS batches (
    received_at REAL NOT NULL,
    gate        TEXT NOT NULL,
    event       TEXT,
    records     INTEGER NOT NULL,
    new         INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    extra       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    gate        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    checkpoint  TEXT NOT NULL,
    verified    INTEGER NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (gate, size)
);
"""


class UploadFormatError(GateError, ValueError):
    """An upload that is not what docs/upload.md describes; the message says where."""


class UploadInconsistentError(GateError):
    """An upload whose journal proofs do not hold (docs/journal.md, "Proofs in an upload"):
    a bad signature, a journal replaced or cut back, a proof that fails."""


@dataclass(frozen=True)
class Stored:
    records: int
    new: int
    updated: int
    unchanged: int

    def as_json(self) -> dict[str, int]:
        return {"records": self.records, "new": self.new, "updated": self.updated,
                "unchanged": self.unchanged}


def _check(ok: bool, where: str, what: str, value: Any) -> None:
    if not ok:
        shown = json.dumps(value, ensure_ascii=False)
        if len(shown) > 40:
            shown = shown[:40] + f"... ({len(shown)} characters)"
        raise UploadFormatError(f"{where}: {what}, got {shown}")


def _json_kind(value: Any) -> str:
    """What a JSON value is, in the words of JSON (an array, not a list)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def validate(body: Any) -> tuple[str, str | None, list[dict[str, Any]], dict[str, Any]]:
    """The upload's gate, event, records and its other fields, or UploadFormatError."""
    if not isinstance(body, dict):
        raise UploadFormatError(f"body: expected a JSON object {{\"gate\": ..., "
                                f"\"records\": [...]}}, but this body is {_json_kind(body)}")
    gate, event, records = body.get("gate"), body.get("event"), body.get("records")
    _check(isinstance(gate, str) and bool(_NAME_RE.fullmatch(gate)), "gate",
           "must be the gate's id (1-64 of A-Z a-z 0-9 . _ -)", gate)
    _check(_optional_text(event), "event", "must be a string or null", event)
    _check(isinstance(records, list) and 1 <= len(records) <= 5000, "records",
           "must be a list of 1 to 5000 records", records if not isinstance(records, list)
           else len(records))
    assert isinstance(gate, str) and isinstance(records, list)
    for i, r in enumerate(records):
        where = f"records[{i}]"
        _check(isinstance(r, dict), where, "must be an object", r)
        missing = [k for k in RECORD_FIELDS if k not in r]
        _check(not missing, where, f"lacks {', '.join(missing)}", sorted(r))
        scan = r["scan_id"]
        _check(isinstance(scan, str) and 1 <= len(scan) <= 128, f"{where}.scan_id",
               "must be a string of 1-128 characters", scan)
        _check(isinstance(r["at"], int | float) and not isinstance(r["at"], bool)
               and r["at"] >= 0, f"{where}.at", "must be Unix seconds (a number >= 0)",
               r["at"])
        _check(r["gate"] == gate, f"{where}.gate", f"must be the upload's gate {gate}",
               r["gate"])
        for name in ("event", "ticket_id", "steward", "note"):
            _check(_optional_text(r[name]), f"{where}.{name}", "must be a string or null",
                   r[name])
        g = r["generation"]
        _check(g is None or (isinstance(g, int) and not isinstance(g, bool) and g >= 0),
               f"{where}.generation", "must be an integer >= 0 or null", g)
        _check(r["verdict"] in VERDICTS, f"{where}.verdict",
               f"must be one of {', '.join(VERDICTS)}", r["verdict"])
        _check(isinstance(r["reason"], str) and bool(_REASON_RE.fullmatch(r["reason"])),
               f"{where}.reason", "must be a reason code (A-Z 0-9 _)", r["reason"])
        _check(r["method"] in METHODS, f"{where}.method",
               f"must be one of {', '.join(METHODS)}", r["method"])
        lat = r["latency_ms"]
        _check(lat is None or (isinstance(lat, int | float) and not isinstance(lat, bool)
                               and lat >= 0), f"{where}.latency_ms",
               "must be a number >= 0 or null", lat)
        _check(r["admission_state"] is None or r["admission_state"] in ADMISSION_STATES,
               f"{where}.admission_state",
               f"must be null or one of {', '.join(ADMISSION_STATES)}", r["admission_state"])
    tree = body.get("tree")
    if tree is not None:
        _check(isinstance(tree, dict), "tree", "must be an object (checkpoint, leaves, "
               "consistency)", _json_kind(tree))
        assert isinstance(tree, dict)
        _check(isinstance(tree.get("checkpoint"), str), "tree.checkpoint",
               "must be the signed checkpoint's text", tree.get("checkpoint"))
        _check(isinstance(tree.get("leaves"), dict), "tree.leaves",
               "must be an object of scan id: leaves", _json_kind(tree.get("leaves")))
        consistency = tree.get("consistency")
        _check(consistency is None or (isinstance(consistency, dict)
                                       and isinstance(consistency.get("from_size"), int)
                                       and isinstance(consistency.get("proof"), list)),
               "tree.consistency", "must be an object {from_size, proof}", consistency)
    extra = {k: v for k, v in body.items() if k not in ("gate", "event", "records")}
    return gate, event, records, extra


class ReceiverStore:
    """The receiver's SQLite file: records by (gate, scan id), and every batch received."""

    def __init__(self, path: Path, *,
                 gate_keys: dict[str, Ed25519PublicKey] | None = None) -> None:
        """`gate_keys`: the gates' public keys by gate id, to check each upload's proofs;
        None: checkpoints are kept unchecked."""
        self.path = path
        self.gate_keys = gate_keys
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def store(self, body: Any, *, now: float) -> Stored:
        gate, event, records, extra = validate(body)
        new = updated = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                checkpoint = self._check_tree(body, gate)
                for r in records:
                    values = tuple(r[k] for k in RECORD_FIELDS)
                    row = self._db.execute(
                        f"SELECT {', '.join(RECORD_FIELDS)} FROM records WHERE gate = ? AND "
                        "scan_id = ?", (gate, r["scan_id"])).fetchone()
                    if row is None:
                        self._db.execute(
                            f"INSERT INTO records ({', '.join(RECORD_FIELDS)}, received_at, "
                            f"updated_at) VALUES ({', '.join('?' * len(RECORD_FIELDS))}, ?, ?)",
                            (*values, now, now))
                        new += 1
                        continue
                    held_state = row[RECORD_FIELDS.index("admission_state")]
                    if _STATE_RANK.get(r["admission_state"], 0) < \
                            _STATE_RANK.get(held_state, 0):
                        # a late retry of an earlier state: the state never moves back
                        values = (*values[:-1], held_state)
                    changed = tuple(row) != values
                    self._db.execute(
                        f"UPDATE records SET {', '.join(f'{k} = ?' for k in RECORD_FIELDS)}, "
                        "received = received + 1" + (", updated_at = ?" if changed else "")
                        + " WHERE gate = ? AND scan_id = ?",
                        (*values, *((now,) if changed else ()), gate, r["scan_id"]))
                    updated += changed
                self._db.execute(
                    "INSERT INTO batches (received_at, gate, event, records, new, updated, "
                    "extra) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (now, gate, event, len(records), new, updated,
                     json.dumps(extra, ensure_ascii=False, sort_keys=True)))
                if checkpoint is not None:
                    self._db.execute(
                        "INSERT OR IGNORE INTO checkpoints (gate, size, checkpoint, verified, "
                        "received_at) VALUES (?, ?, ?, ?, ?)",
                        (gate, checkpoint.checkpoint.size, checkpoint.encode().decode(),
                         int(self.gate_keys is not None), now))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Stored(len(records), new, updated, len(records) - new - updated)

    def _check_tree(self, body: dict[str, Any], gate: str) -> tlog.SignedCheckpoint | None:
        """The upload's checkpoint, checked against the kept one its consistency proof
        starts from (or the gate's latest); None when the upload has no tree."""
        tree = body.get("tree")
        if tree is None:
            return None
        if self.gate_keys is None:
            try:
                return tlog.parse_checkpoint(tree["checkpoint"].encode("utf-8"))
            except tlog.TlogError as exc:
                raise UploadFormatError(f"tree.checkpoint: {exc}") from None
        consistency = tree.get("consistency")
        row = None
        if consistency is not None:
            row = self._db.execute("SELECT checkpoint FROM checkpoints WHERE gate = ? AND "
                                   "size = ?", (gate, consistency["from_size"])).fetchone()
        if row is None:  # no proof, or from a checkpoint never acknowledged here
            row = self._db.execute("SELECT checkpoint FROM checkpoints WHERE gate = ? "
                                   "ORDER BY size DESC LIMIT 1", (gate,)).fetchone()
        try:
            previous = None if row is None else tlog.parse_checkpoint(row[0].encode())
            return ledger.verify_upload(body, gate_keys=self.gate_keys, previous=previous)
        except tlog.TlogError as exc:
            raise UploadInconsistentError(
                f"tree: {exc} (checked against the checkpoint of size "
                f"{previous.checkpoint.size if previous else '-'} acknowledged before; "
                "nothing of this upload was stored)") from None

    def checkpoints(self, gate: str) -> list[tuple[int, str]]:
        """The checkpoints kept for a gate's acknowledged uploads: (size, text)."""
        with self._lock:
            return [(int(size), str(text)) for size, text in self._db.execute(
                "SELECT size, checkpoint FROM checkpoints WHERE gate = ? ORDER BY size",
                (gate,)).fetchall()]

    def records(self, gate: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute(
                f"SELECT {', '.join(RECORD_FIELDS)}, received FROM records "
                + ("WHERE gate = ? " if gate else "") + "ORDER BY gate, at, scan_id",
                (gate,) if gate else ())
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def batches(self) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute("SELECT received_at, gate, event, records, new, "
                                      "updated, extra FROM batches ORDER BY rowid")
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PlatformReceiver:
    """`start()` the receiver on `host`:`port` (0: a free one), `stop()` it; `url` is the
    journal endpoint to put in a gate's upload.url."""

    def __init__(self, db_path: Path, *, host: str = "127.0.0.1", port: int = 0,
                 path: str = "/journal", token: str = "",
                 gate_keys: dict[str, Ed25519PublicKey] | None = None) -> None:
        self.store = ReceiverStore(db_path, gate_keys=gate_keys)
        self.endpoint, self.token = path, token
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._post(self)

            def do_GET(self) -> None:
                if self.path == "/health":
                    receiver._answer(self, 200, {"ok": True})
                else:
                    receiver._answer(self, 405 if self.path == receiver.endpoint else 404,
                                     {"error": f"{self.command} {self.path}: the journal "
                                      f"endpoint is POST {receiver.endpoint}"})

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{self.endpoint}"

    def _answer(self, handler: BaseHTTPRequestHandler, status: int,
                body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path != self.endpoint:
            self._answer(handler, 404, {"error": f"POST {handler.path}: the journal "
                                        f"endpoint is POST {self.endpoint}"})
            return
        if self.token:
            given = handler.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                self._answer(handler, 401, {"error": "Authorization: a Bearer token is "
                                            "needed, and this one is not it"})
                return
        kind = handler.headers.get("Content-Type", "").split(";")[0].strip()
        if kind != "application/json":
            self._answer(handler, 415, {"error": f"Content-Type: must be application/json, "
                                        f"got {kind or 'none'}"})
            return
        try:
            length = int(handler.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(handler, 411, {"error": "Content-Length: needed"})
            return
        if not 0 <= length <= MAX_BODY_BYTES:
            self._answer(handler, 413, {"error": f"body of {length} bytes: at most "
                                        f"{MAX_BODY_BYTES}"})
            return
        raw = handler.rfile.read(length)
        try:
            body = json.loads(raw)
            stored = self.store.store(body, now=time.time())
        except (ValueError, UnicodeDecodeError) as exc:  # JSON errors and UploadFormatError
            self._answer(handler, 400, {"error": str(exc) if isinstance(exc, UploadFormatError)
                                        else f"body: not JSON ({exc})"})
            return
        except UploadInconsistentError as exc:
            self._answer(handler, 409, {"error": str(exc)})
            return
        self._answer(handler, 200, {"ok": True, **stored.as_json()})

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="receiver",
                                        daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server.server_close()
        with contextlib.suppress(sqlite3.Error):
            self.store.close()

    def __enter__(self) -> PlatformReceiver:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
