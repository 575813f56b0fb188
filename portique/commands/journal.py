"""`gate journal verify|checkpoint|check-upload`: the journal's tree, checked by anyone.

``verify`` reads a journal file (never writing it) and recomputes its Merkle tree: it
names the first record changed, removed, reordered or inserted since the gate wrote it,
and any checkpoint (the journal's own, or one given with --checkpoint, kept by a peer gate
or the platform) that the tree no longer matches: a truncation, an older copy, a rewritten
history. ``checkpoint`` prints the journal's latest signed checkpoint, to keep elsewhere.
``check-upload`` is the platform's side: an upload's checkpoint, proofs and records,
against the previous upload's checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from portique.base.cli import EXIT_OK, EXIT_REFUSED, emit
from portique.base.errors import KeyFileError, UsageError

EXIT_TAMPERED = EXIT_REFUSED


def register(sub: Any) -> None:
    journal = sub.add_parser("journal", help="the journal's Merkle tree: verify it, export "
                             "its checkpoint, check an upload (platform side)")
    jsub = journal.add_subparsers(metavar="ACTION", required=True)
    verify = jsub.add_parser("verify", help="recompute the tree, check signatures, name the "
                             "first record changed, removed, reordered or inserted (exit 0 "
                             "verified, 1 not)")
    verify.add_argument("--journal", type=Path, help="journal file (default: journal.path "
                        "of --config)")
    verify.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="a signed checkpoint kept elsewhere (repeatable)")
    verify.add_argument("--config", type=Path, help="gate config (journal path, keys)")
    verify.add_argument("--keys", type=Path, help="folder of gate-role .pub keys (default: "
                        "mesh.gates_dir of --config)")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=_verify)

    checkpoint = jsub.add_parser("checkpoint", help="print the journal's latest signed "
                                 "checkpoint (with its cosignatures)")
    checkpoint.add_argument("--journal", type=Path)
    checkpoint.add_argument("--config", type=Path)
    checkpoint.add_argument("--out", type=Path, help="write it to this file")
    checkpoint.add_argument("--json", action="store_true", help="its origin, size, root and "
                            "note text as one JSON object")
    checkpoint.set_defaults(handler=_checkpoint)

    upload = jsub.add_parser("check-upload", help="platform side: an upload's checkpoint "
                             "and proofs, consistent with the previous upload (exit 0 "
                             "consistent, 1 not)")
    upload.add_argument("--upload", required=True, type=Path, help="the upload's JSON body")
    upload.add_argument("--previous", type=Path, help="the previous accepted upload's JSON "
                        "body, or its checkpoint")
    upload.add_argument("--keys", required=True, type=Path, help="folder of gate-role .pub "
                        "keys")
    upload.add_argument("--json", action="store_true")
    upload.set_defaults(handler=_check_upload)


def _journal_path(args: argparse.Namespace) -> Path:
    if args.journal is not None:
        return Path(args.journal)
    if args.config is None:
        raise UsageError("--journal or --config is needed")
    from portique.runtime.config import load

    return load(args.config).journal.path


def _gate_keys(folder: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from portique import keyfiles
    from portique.ticket.trust import KeyRole

    if folder is None and getattr(args, "config", None) is not None:
        from portique.runtime.config import load

        config = load(args.config)
        if config.mesh is not None:
            folder = config.mesh.gates_dir
    if folder is None:
        raise UsageError("--keys (a folder of gate .pub keys) is needed to check signatures")
    try:
        store = keyfiles.load_trust_dir(folder, role=KeyRole.GATE)
    except KeyFileError as exc:
        raise UsageError(f"--keys {folder}: {exc}") from None
    return {kid: Ed25519PublicKey.from_public_bytes(key.public_key)
            for kid, key in store.keys.items()}


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None


def _verify(args: argparse.Namespace) -> int:
    from portique.runtime import ledger, tlog

    path = _journal_path(args)
    if not path.is_file():
        raise UsageError(f"journal {path}: no such file")
    keys = _gate_keys(args.keys, args)
    external = []
    for file in args.checkpoint:
        try:
            external.append(tlog.parse_checkpoint(_read(file, "--checkpoint")))
        except tlog.TlogError as exc:
            raise UsageError(f"--checkpoint {file}: {exc}") from None
    report = ledger.verify_journal(path, gate_keys=keys, external=external, witnesses=keys)
    first = report.first()
    summary = (f"{report.leaves} leaves for {report.records} records, {report.checkpoints} "
               f"checkpoints, {report.cosignatures} cosignatures")
    if first is None:
        emit(args, f"journal {path}: verified: {summary}; tree root "
             f"{report.root.hex()}", {"ok": True, "leaves": report.leaves,
                                      "records": report.records,
                                      "checkpoints": report.checkpoints,
                                      "cosignatures": report.cosignatures,
                                      "root": report.root.hex()})
        return EXIT_OK
    lines = [f"journal {path}: NOT VERIFIED ({summary})", f"first: {first.message}"]
    lines += [f"also: {f.message}" for f in report.findings if f is not first][:20]
    emit(args, "\n".join(lines), {
        "ok": False, "first": {"index": first.index, "what": first.what,
                               "message": first.message},
        "findings": [{"index": f.index, "what": f.what, "message": f.message}
                     for f in report.findings]})
    return EXIT_TAMPERED


def _checkpoint(args: argparse.Namespace) -> int:
    path = _journal_path(args)
    if not path.is_file():
        raise UsageError(f"journal {path}: no such file")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT note FROM journal_checkpoints ORDER BY size DESC "
                             "LIMIT 1").fetchone()
    except sqlite3.Error as exc:
        raise UsageError(f"journal {path}: cannot read its checkpoints ({exc})") from None
    if row is None:
        raise UsageError(f"journal {path}: no signed checkpoint yet")
    note = bytes(row[0])
    if args.json:
        from portique.runtime import tlog

        cp = tlog.parse_checkpoint(note).checkpoint
        print(json.dumps({"origin": cp.origin, "size": cp.size, "root": cp.root.hex(),
                          "note": note.decode("utf-8")}, ensure_ascii=False, sort_keys=True))
    if args.out is not None:
        try:
            args.out.write_bytes(note)
        except OSError as exc:
            raise UsageError(f"--out {args.out}: cannot write ({exc.strerror or exc})") \
                from None
    elif not args.json:
        print(note.decode("utf-8"), end="")
    return EXIT_OK


def _check_upload(args: argparse.Namespace) -> int:
    from portique.runtime import ledger, tlog

    keys = _gate_keys(args.keys, args)
    try:
        body = json.loads(_read(args.upload, "--upload"))
    except ValueError:
        raise UsageError(f"--upload {args.upload}: not JSON") from None
    previous = None
    if args.previous is not None:
        data = _read(args.previous, "--previous")
        try:
            earlier = json.loads(data)
            note = str(earlier.get("tree", {}).get("checkpoint", "")).encode()
        except ValueError:
            note = data
        try:
            previous = tlog.parse_checkpoint(note)
        except tlog.TlogError as exc:
            raise UsageError(f"--previous {args.previous}: {exc}") from None
    try:
        signed = ledger.verify_upload(body, gate_keys=keys, previous=previous)
    except tlog.TlogError as exc:
        emit(args, f"upload {args.upload}: NOT CONSISTENT: {exc}",
             {"ok": False, "error": str(exc)})
        return EXIT_TAMPERED
    cp = signed.checkpoint
    emit(args, f"upload {args.upload}: consistent: {len(body.get('records', []))} records "
         f"in the tree of size {cp.size}" + ("" if previous is None else
                                            f", which extends size {previous.checkpoint.size}"),
         {"ok": True, "size": cp.size, "records": len(body.get("records", [])),
          "origin": cp.origin})
    return EXIT_OK
