"""Upload of the journal to the platform: batches over HTTP, idempotent, never in the way.

A background thread sends what the journal has not yet delivered, oldest first, as
``POST {url}`` with a JSON body ``{"gate": ID, "event": E, "records": [...]}``. Each
record carries its ``scan_id``; the platform stores records by scan id (an upsert), so
sending one twice is harmless: after a crash between the platform's answer and our
receipt, the batch simply goes again. The receipt is written in the journal, so what was
uploaded is known after a restart. On any failure the thread waits with exponential
backoff and jitter; scanning never waits for it.

Each batch also carries ``tree`` (docs/journal.md, "Proofs in an upload"): the journal
checkpoint signed just before it, each record's leaves with their inclusion proofs in that
tree, and the consistency proof from the checkpoint of the previous successful upload, so
that the platform can tell the gate's history only ever grew.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from portique.base.configschema import setting
from portique.runtime.journal import Journal, JournalError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadConfig:
    url: str = setting(description="The platform's journal endpoint (POST, JSON)")
    batch: int = setting(200, description="Records per request", minimum=1, maximum=5000)
    interval_s: float = setting(10.0, description="Seconds between uploads when all is sent",
                                minimum=0.05, maximum=3600)
    timeout_s: float = setting(10.0, description="Seconds to wait for the platform's answer",
                               minimum=0.1, maximum=300)
    max_backoff_s: float = setting(300.0, description="Longest wait between failed attempts, "
                                   "seconds", minimum=0.1, maximum=3600)
    token: str = setting("", description="Bearer token for the platform (prefer the systemd "
                         "credential upload-token)")


@dataclass(frozen=True, slots=True)
class UploadResult:
    sent: int
    error: str | None = None


class Uploader:
    """Sends the journal's pending records: `run_once` (tests), or `start` a thread."""

    def __init__(self, journal: Journal, config: UploadConfig, *, gate_id: str, event: str,
                 token: str = "") -> None:
        self.journal, self.config = journal, config
        self.gate_id, self.event = gate_id, event
        self._token = token or config.token
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.last_success: float | None = None
        self.failures = 0

    def run_once(self) -> UploadResult:
        """Send one batch; returns how many records the platform acknowledged."""
        with self.journal.reading():  # records, checkpoint and proofs of one moment
            records = self.journal.pending_upload(self.config.batch)
            if not records:
                return UploadResult(0)
            payload: dict[str, Any] = {"gate": self.gate_id, "event": self.event,
                                       "records": records}
            size = self._tree(payload, records)
        body = json.dumps(payload, separators=(",", ":")).encode()
        request = urllib.request.Request(self.config.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            return self._failed(f"platform answered HTTP {exc.code}")
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return self._failed(f"platform unreachable: {reason}")
        if not 200 <= status < 300:
            return self._failed(f"platform answered HTTP {status}")
        try:
            self.journal.mark_uploaded(records, at=time.time())
            if size is not None:
                self.journal.set_meta("uploaded_checkpoint_size", str(size))
        except JournalError as exc:
            return self._failed(str(exc))
        self.last_error, self.last_success, self.failures = None, time.time(), 0
        log.info("journal uploaded gate=%s records=%d", self.gate_id, len(records))
        return UploadResult(len(records))

    def _tree(self, payload: dict[str, Any], records: list[dict[str, Any]]) -> int | None:
        """Add the signed checkpoint and the proofs; the checkpoint's size (None: the
        journal has no signing key, the batch goes without)."""
        try:
            signed = self.journal.checkpoint(at=time.time())
        except JournalError as exc:
            log.warning("journal checkpoint not signed for the upload gate=%s cause=%s",
                        self.gate_id, exc)
            return None
        if signed is None:
            return None
        size = signed.checkpoint.size
        tree: dict[str, Any] = {
            "checkpoint": signed.encode().decode("utf-8"),
            "leaves": self.journal.proofs([r["scan_id"] for r in records], size)}
        previous = self.journal.meta("uploaded_checkpoint_size")
        if previous is not None and int(previous) <= size:
            tree["consistency"] = {
                "from_size": int(previous),
                "proof": [base64.b64encode(h).decode()
                          for h in self.journal.consistency(int(previous), size)]}
        payload["tree"] = tree
        return size

    def _failed(self, error: str) -> UploadResult:
        self.failures += 1
        self.last_error = error
        log.warning("journal upload failed gate=%s attempt=%d cause=%s", self.gate_id,
                    self.failures, error)
        return UploadResult(0, error)

    def delay(self) -> float:
        """Seconds to wait before the next attempt (backoff with full jitter on failure)."""
        if self.failures == 0:
            return self.config.interval_s
        ceiling = min(self.config.max_backoff_s,
                      self.config.interval_s * 2 ** min(self.failures, 20))
        return random.uniform(self.config.interval_s, max(self.config.interval_s, ceiling))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="journal-upload", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.timeout_s + 1)

    def _loop(self) -> None:
        while not self._stop.is_set():
            result = self.run_once()
            if result.sent and result.error is None:
                continue  # more may be waiting
            self._stop.wait(self.delay())
