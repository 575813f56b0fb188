"""Upload of the journal to a real HTTP server on loopback: batches, idempotence, retries,
restarts, and scanning that never waits for it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from portique.devtools.simulation import SimulatedRun
from portique.runtime.journal import Journal
from portique.runtime.upload import UploadConfig, Uploader
from portique.ticket.decision import Decision
from portique.ticket.reasons import Reason, Verdict
from portique.ticket.views import TicketKey

from .conftest import World, clip


@dataclass
class Platform:
    """The platform's journal endpoint: stores records by scan id (an upsert)."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    fail_next: int = 0
    """Answer 500 to this many requests, after storing them (a lost answer)."""
    hold: threading.Event | None = None
    """While set to an unset event, requests wait (a stalled platform)."""
    arrived: threading.Event = field(default_factory=threading.Event)
    url: str = ""


@pytest.fixture
def platform() -> Iterator[Platform]:
    state = Platform()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = json.loads(self.rfile.read(length))
            state.requests += 1
            state.bodies.append(body)
            state.arrived.set()
            if state.hold is not None:
                state.hold.wait(10)
            for record in body["records"]:
                state.records[record["scan_id"]] = record
            status = 500 if state.fail_next > 0 else 200
            state.fail_next = max(0, state.fail_next - 1)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/journal"
    yield state
    if state.hold is not None:
        state.hold.set()
    server.shutdown()
    server.server_close()


def _decision(i: int, verdict: Verdict = Verdict.REFUSE) -> Decision:
    reason = Reason.VALID if verdict is Verdict.ADMIT else Reason.STALE_CODE
    return Decision(verdict, reason, 1722877200.0 + i, TicketKey("PAR24-ATH05", f"T{i}", 0))


def _config(url: str, **more: Any) -> UploadConfig:
    return UploadConfig(**{"url": url, "batch": 3, "interval_s": 0.05, "timeout_s": 2.0,
                           "max_backoff_s": 0.2, **more})


def test_batches_until_everything_is_sent_and_remembered_after_restart(
        tmp_path: Path, platform: Platform) -> None:
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    for i in range(7):
        journal.record(_decision(i))
    uploader = Uploader(journal, _config(platform.url), gate_id="1", event="PAR24-ATH05")
    sent = [uploader.run_once().sent for _ in range(4)]
    assert sent == [3, 3, 1, 0]
    assert len(platform.records) == 7 and platform.requests == 3
    journal.close()
    reopened = Journal(tmp_path / "j.sqlite", gate_id="1")
    assert reopened.upload_backlog() == 0
    assert Uploader(reopened, _config(platform.url), gate_id="1",
                    event="PAR24-ATH05").run_once().sent == 0
    assert platform.requests == 3


def test_lost_answer_is_retried_and_the_platform_keeps_one_record_per_scan(
        tmp_path: Path, platform: Platform) -> None:
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    for i in range(2):
        journal.record(_decision(i))
    platform.fail_next = 1
    uploader = Uploader(journal, _config(platform.url), gate_id="1", event="PAR24-ATH05")
    first = uploader.run_once()
    assert first.sent == 0 and first.error == "platform answered HTTP 500"
    assert journal.upload_backlog() == 2
    assert uploader.delay() >= 0.05  # backing off
    assert uploader.run_once().sent == 2
    assert platform.requests == 2 and len(platform.records) == 2
    assert journal.upload_backlog() == 0


def test_admission_outcome_is_sent_again_when_it_changes(tmp_path: Path,
                                                          platform: Platform) -> None:
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    scan_id = journal.admit(_decision(1, Verdict.ADMIT))
    uploader = Uploader(journal, _config(platform.url), gate_id="1", event="PAR24-ATH05")
    assert uploader.run_once().sent == 1
    assert platform.records[scan_id]["admission_state"] == "open"
    journal.passage(scan_id, passed=False, at=1722877210.0)
    assert journal.upload_backlog() == 1
    assert uploader.run_once().sent == 1
    assert platform.records[scan_id]["admission_state"] == "voided"


def test_unreachable_platform_is_reported_and_nothing_is_lost(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    journal.record(_decision(1))
    uploader = Uploader(journal, _config("http://127.0.0.1:9/journal"), gate_id="1",
                        event="PAR24-ATH05")
    result = uploader.run_once()
    assert result.sent == 0 and result.error is not None
    assert "unreachable" in result.error
    assert journal.upload_backlog() == 1


def test_scanning_never_waits_for_a_stalled_platform(world: World, platform: Platform) -> None:
    platform.hold = threading.Event()
    world.sections["upload"] = {"url": platform.url, "interval_s": 0.05, "timeout_s": 5.0}
    with world.running(SimulatedRun(replay=clip("second_scan"), fast=True,
                                  simulate_passage_s=0.05)) as app:
        assert app.uploader is not None
        app.journal.record(_decision(99))  # something to upload
        assert platform.arrived.wait(5)  # the upload is in flight, and held
        app.run()  # the whole clip is decided meanwhile
        decided = [e.reason.value for e in app.journal.entries(limit=10)]
        assert "VALID" in decided and "ALREADY_ADMITTED" in decided
        assert platform.requests == 1
        from portique.runtime.statusview import render_status

        assert " waiting for upload" in render_status(app.status())
        platform.hold.set()
    assert world.unlocks() == 1
