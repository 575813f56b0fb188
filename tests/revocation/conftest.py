"""Real feeds for the revocation tests: seeded keys, the reference publisher's output, a
real loopback HTTP server (the dev server) that injects faults, real SQLite stores."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.revocation.format import ManifestEntry
from portique.revocation.publish import FeedState, PublishResult, publish
from portique.revocation.serve import FeedRequestHandler, make_server
from portique.revocation.store import FeedStore
from portique.revocation.sync import FeedClient, SyncSettings
from portique.ticket import credential
from portique.ticket.credential import Flag, TicketFields
from portique.ticket.decision import Decision, GateProfile, Now, Policy, decide
from portique.ticket.trust import KeyRole, TrustedKey, TrustStore
from portique.ticket.views import CANCELLED, MemoryAdmissions, RevocationView

EVENT = "PAR24-ATH05"
OTHER_EVENT = "PAR24-ATH06"
T0 = 1722877200
FEED_KID, OTHER_FEED_KID, ISSUER_KID = "feed-1", "feed-rogue", "iss-1"


def seeded_key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


FEED_KEY = seeded_key("revocation-feed")
ROGUE_FEED_KEY = seeded_key("revocation-rogue-feed")
ISSUER_KEY = seeded_key("revocation-issuer")


def trust() -> TrustStore:
    """What a gate believes: the feed key and the issuer key (each in its role)."""
    return TrustStore.of([
        TrustedKey(FEED_KID, FEED_KEY.public_key().public_bytes_raw(), KeyRole.FEED),
        TrustedKey(ISSUER_KID, ISSUER_KEY.public_key().public_bytes_raw(), KeyRole.ISSUER),
    ])


def entry(ticket_id: str, generation: int, name: str, order: str = "ORD-1",
          entrances: frozenset[int] = frozenset({1})) -> ManifestEntry:
    return ManifestEntry(ticket_id, generation, order, name, "CAT A", entrances, Flag(0))


STATE_1 = FeedState(
    revocations={"T-SOLD": 2, "T-GONE": CANCELLED},
    manifest={e.ticket_id: e for e in (
        entry("T-SOLD", 2, "Zoë Lefèvre", "ORD-100"),
        entry("T-GONE", 0, "Jean-Pierre Œuvray", "ORD-200"),
        entry("T-KEEP", 0, "Marie Dupont", "ORD-300"),
    )},
)
STATE_2 = FeedState(  # T-KEEP is resold: its generation 0 becomes void
    revocations={"T-SOLD": 2, "T-GONE": CANCELLED, "T-KEEP": 1},
    manifest={e.ticket_id: e for e in (
        entry("T-SOLD", 2, "Zoë Lefèvre", "ORD-100"),
        entry("T-GONE", 0, "Jean-Pierre Œuvray", "ORD-200"),
        entry("T-KEEP", 1, "Søren Müller", "ORD-301"),
    )},
)


def publish_state(out: Path, state: FeedState, *, at: int, event: str = EVENT,
                  key: Ed25519PrivateKey = FEED_KEY, kid: str = FEED_KID,
                  keep_deltas: int = 100, ends_at: int | None = None) -> PublishResult:
    return publish(out_dir=out, event=event, state=state, key=key, kid=kid, now=at,
                   ends_at=ends_at, keep_deltas=keep_deltas)


def paper_code(ticket_id: str, generation: int, event: str = EVENT) -> str:
    fields = TicketFields(kid=ISSUER_KID, event=event, ticket_id=ticket_id,
                          generation=generation, valid_from=T0 - 3600,
                          valid_until=T0 + 3600, entrances=frozenset({1}),
                          flags=Flag.PAPER)
    return credential.paper_code(credential.issue(fields, ISSUER_KEY))


def decide_on(view: RevocationView, ticket_id: str, generation: int) -> Decision:
    """What the gate decides on a genuine paper ticket, with `view` as revocations."""
    return decide(paper_code(ticket_id, generation), Now(T0), trust=trust(),
                  revocations=view, admissions=MemoryAdmissions({}),
                  profile=GateProfile("g1", EVENT, 1), policy=Policy())


def dump(path: Path) -> list[str]:
    """Every row of every table (and the schema) of a store file, as SQL text."""
    connection = sqlite3.connect(path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def rows(path: Path, event: str = EVENT) -> tuple[int | None, list[tuple[object, ...]],
                                                  list[tuple[object, ...]]]:
    """(sequence, revocation rows, manifest rows) of one event."""
    connection = sqlite3.connect(path)
    try:
        state = connection.execute("SELECT sequence FROM feed_state WHERE event = ?",
                                   (event,)).fetchone()
        revocations = connection.execute(
            "SELECT * FROM revocation WHERE event = ? ORDER BY ticket_id", (event,)).fetchall()
        manifest = connection.execute(
            "SELECT * FROM manifest WHERE event = ? ORDER BY ticket_id", (event,)).fetchall()
    finally:
        connection.close()
    return (None if state is None else state[0]), revocations, manifest


# --- a loopback server that misbehaves on demand -------------------------------------------

Fault = Callable[["FaultyHandler", Path], bool]
"""Given the handler and the file asked for: True when it answered (the fault), False to
serve the file normally."""


class FaultyHandler(FeedRequestHandler):
    faults: ClassVar[dict[str, Fault]] = {}  # replaced per server
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        self.requests.append(self.path)
        target = self.resolve()
        name = self.path.rsplit("/", 1)[-1]
        for pattern, fault in self.faults.items():
            if (pattern == name or (pattern.startswith("*") and name.endswith(pattern[1:]))) \
                    and target is not None and fault(self, target):
                return
        super().do_GET()

    def send_body(self, body: bytes, *, length: int | None = None) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


@dataclass
class FeedServer:
    folder: Path
    url: str
    faults: dict[str, Fault]
    requests: list[str]
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def feed_server(tmp_path: Path) -> Iterator[FeedServer]:
    folder = tmp_path / "www"
    folder.mkdir()
    faults: dict[str, Fault] = {}
    requests: list[str] = []
    handler = type("Handler", (FaultyHandler,), {"faults": faults, "requests": requests})
    server = make_server(folder, handler=handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    feed = FeedServer(folder, f"http://{host!s}:{port}", faults, requests)
    try:
        yield feed
    finally:
        feed.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def settings(url: str, **overrides: float) -> SyncSettings:
    values: dict[str, float] = {"timeout_seconds": 0.5, "download_seconds": 5.0,
                                "retries": 1, "backoff_seconds": 0.01}
    values.update(overrides)
    return SyncSettings(base_url=url, timeout_seconds=values["timeout_seconds"],
                        download_seconds=values["download_seconds"],
                        retries=int(values["retries"]),
                        backoff_seconds=values["backoff_seconds"],
                        max_download_bytes=int(values.get("max_download_bytes", 1 << 20)))


def client(store: FeedStore, url: str, *, event: str = EVENT, **overrides: float) -> FeedClient:
    return FeedClient(store, event=event, trust=trust(), settings=settings(url, **overrides),
                      clock=lambda: float(T0))


def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
