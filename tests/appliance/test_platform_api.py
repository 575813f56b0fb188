"""The platform's API written down (docs/upload.md, docs/openapi/upload.yaml): the OpenAPI
document is valid, what the gate really sends validates against it field by field, and the
reference receiver (a real HTTP server on loopback, a real SQLite file) stores uploads
idempotently and refuses bad ones naming what was wrong."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from openapi_spec_validator import validate as validate_spec

from portique import keyfiles
from portique.devtools.platform import PlatformReceiver, ReceiverStore
from portique.runtime.journal import Journal, Method
from portique.runtime.upload import UploadConfig, Uploader
from portique.ticket.decision import Decision
from portique.ticket.reasons import Reason, Verdict
from portique.ticket.trust import KeyRole
from portique.ticket.views import TicketKey

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "openapi" / "upload.yaml"
EVENT = "PAR24-ATH05"
T0 = 1722877200.0
GATE_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"platform-api-north-3").digest())


def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    return loaded


def upload_schema() -> dict[str, Any]:
    """The request body's schema, with the document's components to resolve its $refs."""
    doc = spec()
    body = doc["paths"]["/journal"]["post"]["requestBody"]["content"]["application/json"]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **body["schema"],
            "components": doc["components"]}


def varied_journal(path: Path) -> Journal:
    """A journal with every kind of record: camera admissions passed and voided, a
    refusal, a code that was no ticket, a steward's admission with a note, paper."""
    journal = Journal(path, gate_id="north-3")
    journal.signer = ("north-3", GATE_KEY)
    passed = journal.admit(Decision(Verdict.ADMIT, Reason.VALID, T0,
                                    TicketKey(EVENT, "PAR24-000101", 0)), latency_ms=41.5)
    journal.passage(passed, passed=True, at=T0 + 2)
    voided = journal.admit(Decision(Verdict.ADMIT, Reason.VALID, T0 + 5,
                                    TicketKey(EVENT, "PAR24-000102", 1)), latency_ms=39.0)
    journal.passage(voided, passed=False, at=T0 + 15)
    journal.record(Decision(Verdict.REFUSE, Reason.STALE_CODE, T0 + 20,
                            TicketKey(EVENT, "PAR24-000103", 0)), latency_ms=35.0)
    journal.record(Decision(Verdict.REFUSE, Reason.NOT_A_TICKET, T0 + 21, None))
    journal.admit(Decision(Verdict.ADMIT, Reason.MANUAL_ADMIT, T0 + 30,
                           TicketKey(EVENT, "PAR24-000104", 0)), method=Method.STEWARD,
                  steward="marie", note="phone battery dead, id checked")
    journal.admit(Decision(Verdict.ADMIT, Reason.VALID_PAPER, T0 + 40,
                           TicketKey(EVENT, "PAR24-000105", 0)), method=Method.PAPER,
                  steward="marie")
    return journal


class Capture:
    """A real HTTP endpoint that keeps the bodies it receives verbatim."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                capture.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                capture.headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/journal"


@pytest.fixture
def capture() -> Iterator[Capture]:
    c = Capture()
    yield c
    c.server.shutdown()
    c.server.server_close()


def _config(url: str, **more: Any) -> UploadConfig:
    return UploadConfig(url=url, batch=50, interval_s=0.05, timeout_s=5.0,
                        max_backoff_s=0.2, **more)


def _post(url: str, body: Any, *, token: str = "", kind: str = "application/json"
          ) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": kind})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_the_openapi_document_is_valid() -> None:
    doc = spec()
    validate_spec(doc)  # raises on any error of the document
    assert doc["openapi"].startswith("3.1")
    record = doc["components"]["schemas"]["Record"]
    # the journal's checkpoint and proofs are written down, no more a reserved place
    assert "RESERVED" not in SPEC.read_text(encoding="utf-8")
    assert set(doc["components"]["schemas"]["Tree"]["required"]) == {"checkpoint", "leaves"}
    assert set(record["required"]) == set(record["properties"])


def test_what_the_gate_sends_validates_against_the_document(tmp_path: Path,
                                                            capture: Capture) -> None:
    journal = varied_journal(tmp_path / "j.sqlite")
    uploader = Uploader(journal, _config(capture.url, token="s3cret"), gate_id="north-3",
                        event=EVENT)
    assert uploader.run_once().sent == 6
    (raw,) = capture.bodies
    assert capture.headers[0]["Content-Type"] == "application/json"
    assert capture.headers[0]["Authorization"] == "Bearer s3cret"
    body = json.loads(raw)
    assert set(body["tree"]) == {"checkpoint", "leaves"}  # a first upload: no consistency
    jsonschema.validate(body, upload_schema(),
                        cls=jsonschema.Draft202012Validator)
    # a second batch carries the consistency proof from the first; it validates too
    journal.record(Decision(Verdict.REFUSE, Reason.STALE_CODE, T0 + 50,
                            TicketKey(EVENT, "PAR24-000106", 0)))
    assert uploader.run_once().sent == 1
    second = json.loads(capture.bodies[1])
    assert second["tree"]["consistency"]["from_size"] > 0
    jsonschema.validate(second, upload_schema(), cls=jsonschema.Draft202012Validator)
    tree_schema = spec()["components"]["schemas"]["Tree"]
    assert set(second["tree"]) <= set(tree_schema["properties"])
    # additionalProperties is open for receivers: every field the gate sends must still
    # be written down, at both levels
    schemas = spec()["components"]["schemas"]
    assert set(body) <= set(schemas["Upload"]["properties"]), \
        f"fields sent but not in {SPEC.name}: {set(body) - set(schemas['Upload']['properties'])}"
    documented = set(schemas["Record"]["properties"])
    for record in body["records"]:
        assert set(record) <= documented, \
            f"record fields sent but not in {SPEC.name}: {set(record) - documented}"
    states = {(r["method"], r["verdict"], r["admission_state"]) for r in body["records"]}
    assert states == {("camera", "admit", "passed"), ("camera", "admit", "voided"),
                      ("camera", "refuse", None), ("steward", "admit", "open"),
                      ("paper", "admit", "open")}
    # and the document's own example is a valid upload too
    example = spec()["paths"]["/journal"]["post"]["requestBody"]["content"][
        "application/json"]["example"]
    jsonschema.validate(example, upload_schema(), cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(("change", "where"), [
    (lambda b: b["records"][0].update(verdict="yes"), "records[0].verdict"),
    (lambda b: b["records"][1].pop("scan_id"), "records[1]: lacks scan_id"),
    (lambda b: b["records"][0].update(admission_state="inside"),
     "records[0].admission_state"),
    (lambda b: b.update(records=[]), "records: must be a list of 1 to 5000"),
])
def test_the_document_and_the_receiver_refuse_the_same_bad_uploads(
        tmp_path: Path, capture: Capture, change: Any, where: str) -> None:
    journal = varied_journal(tmp_path / "j.sqlite")
    Uploader(journal, _config(capture.url), gate_id="north-3", event=EVENT).run_once()
    body = json.loads(capture.bodies[0])
    change(body)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, upload_schema(), cls=jsonschema.Draft202012Validator)
    with PlatformReceiver(tmp_path / "r.sqlite") as receiver:
        status, answer = _post(receiver.url, body)
        assert status == 400
        assert answer["error"].startswith(where)
        assert receiver.store.records() == []  # nothing of that request stored


def test_receiver_stores_uploads_idempotently_and_keeps_them_across_restarts(
        tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite", gate_id="north-3")
    scan = journal.admit(Decision(Verdict.ADMIT, Reason.VALID, T0,
                                  TicketKey(EVENT, "PAR24-000101", 0)))
    journal.record(Decision(Verdict.REFUSE, Reason.STALE_CODE, T0 + 1,
                            TicketKey(EVENT, "PAR24-000103", 0)))
    db = tmp_path / "receiver.sqlite"
    with PlatformReceiver(db, token="s3cret") as receiver:
        uploader = Uploader(journal, _config(receiver.url, token="s3cret"),
                            gate_id="north-3", event=EVENT)
        assert uploader.run_once().sent == 2
        held = {r["scan_id"]: r for r in receiver.store.records()}
        assert receiver.store.checkpoints("north-3") == []  # this journal signs nothing
        assert held[scan]["admission_state"] == "open" and len(held) == 2

        # a lost receipt: the gate sends the very same batch again; nothing changes
        assert journal.pending_upload(10) == []
        body = {"gate": "north-3", "event": EVENT, "records": list(held_records(held))}
        status, answer = _post(receiver.url, body, token="s3cret")
        assert (status, answer["new"], answer["updated"], answer["unchanged"]) == \
            (200, 0, 0, 2)
        assert len(receiver.store.records()) == 2

        # the admission's state moves on: its row is updated, not doubled
        journal.passage(scan, passed=True, at=T0 + 3)
        assert uploader.run_once().sent == 1
        rows = {r["scan_id"]: r for r in receiver.store.records()}
        assert len(rows) == 2 and rows[scan]["admission_state"] == "passed"
        assert rows[scan]["received"] == 3

        # a late retry of the first batch (state open) does not move the state back
        status, answer = _post(receiver.url, body, token="s3cret")
        assert (status, answer["updated"]) == (200, 0)
        assert {r["scan_id"]: r["admission_state"] for r in receiver.store.records()}[scan] \
            == "passed"

        # a wrong token and a wrong content type are refused, naming what was wrong
        status, answer = _post(receiver.url, body, token="guess")
        assert status == 401 and "Bearer" in answer["error"]
        status, answer = _post(receiver.url, body, token="s3cret", kind="text/plain")
        assert status == 415 and "Content-Type" in answer["error"]
        status, answer = _post(receiver.url, b"{not json", token="s3cret")
        assert status == 400 and answer["error"].startswith("body: not JSON")

        # fields it does not know are kept
        status, _ = _post(receiver.url, {**body, "later": {"size": 2, "sig": "ab"}},
                          token="s3cret")
        assert status == 200
        assert json.loads(receiver.store.batches()[-1]["extra"]) == \
            {"later": {"size": 2, "sig": "ab"}}

    reopened = ReceiverStore(db)  # the receiver's file keeps what it stored
    try:
        assert {r["scan_id"]: r["admission_state"] for r in reopened.records()} == \
            {scan: "passed", **{s: None for s in held if s != scan}}
    finally:
        reopened.close()


def held_records(held: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for r in held.values():
        yield {k: v for k, v in r.items() if k != "received"}


def test_gate_platform_receive_command_serves_and_lists(tmp_path: Path) -> None:
    db = tmp_path / "receiver.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    keyfiles.new_key_pair(tmp_path / "keys", "north-3", role=KeyRole.GATE,
                          private_key=GATE_KEY)
    proc = subprocess.Popen([sys.executable, "-m", "portique", "platform", "receive",
                             "--db", str(db), "--port", "0", "--keys", str(tmp_path / "keys")],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("receiving journal uploads on http://127.0.0.1:")
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        journal = varied_journal(tmp_path / "j.sqlite")
        uploader = Uploader(journal, _config(url), gate_id="north-3", event=EVENT)
        assert uploader.run_once().sent == 6
        # the next batch is checked against the first one's checkpoint and accepted
        journal.passage(journal.admit(Decision(Verdict.ADMIT, Reason.VALID, T0 + 50,
                                               TicketKey(EVENT, "PAR24-000106", 0))),
                        passed=True, at=T0 + 52)
        assert uploader.run_once().sent == 1 and uploader.last_error is None
    finally:
        proc.terminate()
        proc.wait(10)
    out = subprocess.run([sys.executable, "-m", "portique", "platform", "records", "--db",
                          str(db), "--json"], capture_output=True, text=True, env=env,
                         check=True)
    rows = json.loads(out.stdout)
    assert len(rows) == 7 and {r["gate"] for r in rows} == {"north-3"}
    stored = ReceiverStore(db)
    try:
        sizes = [size for size, _ in stored.checkpoints("north-3")]
    finally:
        stored.close()
    assert len(sizes) == 2 and sizes[0] < sizes[1]
    assert {r["reason"] for r in rows} == {"VALID", "STALE_CODE", "NOT_A_TICKET",
                                           "MANUAL_ADMIT", "VALID_PAPER"}


def test_a_late_voided_never_overwrites_passed_and_a_bad_body_says_what_came(
        tmp_path: Path) -> None:
    journal = varied_journal(tmp_path / "j.sqlite")
    with PlatformReceiver(tmp_path / "r.sqlite") as receiver:
        Uploader(journal, _config(receiver.url), gate_id="north-3", event=EVENT).run_once()
        held = {r["scan_id"]: r for r in receiver.store.records()}
        passed = next(s for s, r in held.items() if r["admission_state"] == "passed")
        record = {k: v for k, v in held[passed].items() if k != "received"}
        # a retry that says "voided" for a person who went through changes nothing
        status, answer = _post(receiver.url, {"gate": "north-3", "event": EVENT,
                                              "records": [{**record,
                                                           "admission_state": "voided"}]})
        assert (status, answer["updated"]) == (200, 0)
        assert {r["scan_id"]: r["admission_state"]
                for r in receiver.store.records()}[passed] == "passed"
        # a voided one that is later found passed moves on to passed
        voided = next(s for s, r in held.items() if r["admission_state"] == "voided")
        again = {k: v for k, v in held[voided].items() if k != "received"}
        status, answer = _post(receiver.url, {"gate": "north-3", "event": EVENT,
                                              "records": [{**again,
                                                           "admission_state": "passed"}]})
        assert (status, answer["updated"]) == (200, 1)
        # a body that is not an object: what was expected, and what came, in words
        status, answer = _post(receiver.url, [record])
        assert status == 400
        assert answer["error"] == ('body: expected a JSON object {"gate": ..., '
                                   '"records": [...]}, but this body is an array')


def test_the_receiver_checks_each_uploads_proofs_against_the_checkpoint_before(
        tmp_path: Path) -> None:
    """With the gates' keys, `gate platform receive` keeps the checkpoint of every batch it
    acknowledged and checks the next one's consistency with it (ledger.verify_upload);
    an upload whose proofs fail is refused 409 and nothing of it is stored."""
    journal = varied_journal(tmp_path / "j.sqlite")
    keys = {"north-3": GATE_KEY.public_key()}
    bodies: list[dict[str, Any]] = []
    with PlatformReceiver(tmp_path / "r.sqlite", gate_keys=keys) as receiver:
        uploader = Uploader(journal, _config(receiver.url), gate_id="north-3", event=EVENT)
        assert uploader.run_once().sent == 6
        (first,) = receiver.store.checkpoints("north-3")
        assert "north-3" in first[1]
        journal.record(Decision(Verdict.REFUSE, Reason.STALE_CODE, T0 + 50,
                                TicketKey(EVENT, "PAR24-000106", 0)))
        assert uploader.run_once().sent == 1
        kept = receiver.store.checkpoints("north-3")
        assert len(kept) == 2 and kept[1][0] > first[0]
        extras = [json.loads(b["extra"]) for b in receiver.store.batches()]
        bodies = [{"gate": "north-3", "event": EVENT, "records": [], **e} for e in extras]
        assert all("consistency" in b["tree"] for b in bodies[1:])

        # a journal rewritten behind the platform's back: same gate, a new tree
        journal.record(Decision(Verdict.REFUSE, Reason.STALE_CODE, T0 + 60,
                                TicketKey(EVENT, "PAR24-000107", 0)))
        forged = varied_journal(tmp_path / "forged.sqlite")
        for i in range(3):
            forged.record(Decision(Verdict.REFUSE, Reason.NOT_A_TICKET, T0 + 70 + i, None))
        before = receiver.store.records()
        capture = Capture()
        try:
            Uploader(forged, _config(capture.url), gate_id="north-3",
                     event=EVENT).run_once()
            body = json.loads(capture.bodies[0])
        finally:
            capture.server.shutdown()
            capture.server.server_close()
        status, answer = _post(receiver.url, body)
        assert status == 409
        assert answer["error"].startswith("tree: upload: the journal is another log")
        assert "it was replaced" in answer["error"]
        assert receiver.store.records() == before  # nothing of it stored
        assert len(receiver.store.checkpoints("north-3")) == 2
        # the real gate goes on, consistent with what it sent before
        assert uploader.run_once().sent == 1
        assert len(receiver.store.checkpoints("north-3")) == 3
