"""`make demo`: a tour of the gate on its embedded defaults, ending by itself.

1. A ticket minted with real keys, its rotating code, and a few codes checked offline
   (valid, a screenshot replayed a minute later, tampered, wrong event, paper).
2. The real gate daemon on the committed recorded camera clips (tests/fixtures/clips):
   real QR decoding, a revocation feed published, served on loopback and synced, the
   SQLite journal in a temporary state folder, gpiozero's simulated pins with simulated
   visitors walking through; one line per decision and what the turnstile did.
3. Two gates of one venue sharing admissions through a Mosquitto broker on loopback: a
   ticket admitted at gate 1 is refused at gate 2.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from portique import keyfiles
from portique.runtime.events import DecisionMade
from portique.ticket import credential
from portique.ticket.credential import Flag, TicketFields
from portique.ticket.decision import GateProfile, Now, Policy, decide
from portique.ticket.reasons import Lang, Verdict
from portique.ticket.trust import KeyRole
from portique.ticket.views import MemoryAdmissions, NoRevocations

PARIS = ZoneInfo("Europe/Paris")
START = int(datetime(2024, 8, 5, 19, 0, tzinfo=PARIS).timestamp())
EVENT = "PAR24-ATH05"
COLOURS = {Verdict.ADMIT: "\033[32m", Verdict.REFUSE: "\033[31m", Verdict.STEWARD: "\033[33m"}
RESET = "\033[0m"


def _clock(unix: float) -> str:
    return datetime.fromtimestamp(unix, PARIS).strftime("%H:%M:%S")


def credential_tour(folder: Path) -> int:
    """Mint, show and check; returns how many checks gave an unexpected verdict."""
    print("== 1. A ticket, minted and checked offline\n")
    issuer = keyfiles.new_key_pair(folder / "trust", "demo-issuer")
    phone = keyfiles.new_key_pair(folder / "phone", "alice-phone", role=KeyRole.DEVICE)
    issuer_key = keyfiles.load_private_key(issuer.private_path)
    phone_key = keyfiles.load_private_key(phone.private_path)
    trust = keyfiles.load_trust_dir(folder / "trust")
    base = TicketFields(
        kid="demo-issuer", event=EVENT, ticket_id="0042-7781-22", generation=1,
        valid_from=START - 3 * 3600, valid_until=START + 5 * 3600,
        entrances=frozenset({2}), category="CAT-B",
        device_key=phone_key.public_key().public_bytes_raw(),
    )
    level1 = credential.issue(base, issuer_key)
    print(f"issuer key {issuer.public_path.name}, phone key {phone.public_path.name}")
    print(f"ticket {base.ticket_id} for {EVENT}, entrance 2, {base.category}, "
          f"level 1 = {len(level1)} bytes\n")
    print("the phone's code changes every 15 seconds:")
    for k in range(3):
        at = START + 15 * k
        code = credential.dynamic_code(level1, phone_key, credential.step_at(at))
        print(f"  {_clock(at)}  {code[:20]}...{code[-36:]}  ({len(code)} chars)")
    png = folder / "code.png"
    import segno

    live = credential.dynamic_code(level1, phone_key, credential.step_at(START))
    segno.make(live, error="m").save(str(png), scale=4, border=4)
    print(f"  (the 19:00:00 code as a QR image: {png}; the demo's temporary folder, removed "
          "when it ends)\n")

    other = credential.issue(replace(base, event="PAR24-SWM01"), issuer_key)
    paper = credential.issue(replace(base, ticket_id="0042-7781-23", flags=Flag.PAPER,
                                     device_key=None), issuer_key)
    tampered = live[:80] + ("7" if live[80] != "7" else "8") + live[81:]
    cases = [
        ("the live code, 5 s later", live, START + 5, Verdict.ADMIT),
        ("a screenshot of it, a minute later", live, START + 60, Verdict.REFUSE),
        ("the live code with one character changed", tampered, START + 5, Verdict.REFUSE),
        ("a ticket for another event", credential.dynamic_code(
            other, phone_key, credential.step_at(START)), START + 5, Verdict.REFUSE),
        ("a printed confirmation", credential.paper_code(paper), START + 5, Verdict.STEWARD),
    ]
    profile = GateProfile("3", EVENT, 2, timezone=PARIS)
    surprises = 0
    print("gate 3 (entrance 2) checks:")
    for label, code, at, expected in cases:
        d = decide(code, Now(at), trust=trust, revocations=NoRevocations(),
                   admissions=MemoryAdmissions({}), profile=profile, policy=Policy())
        colour, reset = (COLOURS[d.verdict], RESET) if sys.stdout.isatty() else ("", "")
        print(f"  {_clock(at)}  {label:<42} {colour}{d.verdict.value.upper():<8}{reset}"
              f"{d.reason.value}")
        print(f"            en: {d.sentence(Lang.EN)}")
        print(f"            fr: {d.sentence(Lang.FR)}")
        surprises += d.verdict is not expected
    return surprises


REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
# (clip, what it shows, the outcome the journal must hold for it)
SCENES = [
    ("empty", "the queue with no code", []),
    ("valid_step_change", "a phone held up across a code change", [("admit", "VALID")]),
    ("screenshot_replay", "a screenshot of that code, 90 s later", [("refuse", "STALE_CODE")]),
    ("tampered", "a code with one character changed", [("refuse", "BAD_SIGNATURE")]),
    ("revoked", "the seller's copy of a resold ticket", [("refuse", "SUPERSEDED")]),
    ("paper", "a printed confirmation", [("steward", "PAPER_TICKET")]),
    ("wrong_entrance", "a ticket for entrance 5", [("refuse", "WRONG_ENTRANCE")]),
    ("two_phones", "two phones in one frame", [("admit", "VALID"), ("admit", "VALID")]),
    ("second_scan", "the same ticket shown again 40 s later",
     [("admit", "VALID"), ("refuse", "ALREADY_ADMITTED")]),
    ("no_passage", "a visitor who turns back", [("admit", "VALID")]),
]
STAYS = frozenset({"PAR24-000109"})  # ines turns back: her admission is voided


def _demo_feed(folder: Path) -> Path:
    """Publish the revocation of farid's resold ticket, serve it, sync it like a gate."""
    import threading

    from portique.revocation.publish import FeedState, publish
    from portique.revocation.serve import make_server
    from portique.revocation.store import FeedStore
    from portique.revocation.sync import FeedClient, SyncSettings

    keys = folder / "feed-keys"
    pair = keyfiles.new_key_pair(keys, "demo-feed", role=KeyRole.FEED)
    publish(out_dir=folder / "feed", event=EVENT, key=keyfiles.load_private_key(
        pair.private_path), kid="demo-feed", now=START - 600,
        state=FeedState(revocations={"PAR24-000106": 1}, manifest={}))
    server = make_server(folder / "feed")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with FeedStore.open(folder / "feeds.sqlite") as store:
            result = FeedClient(store, event=EVENT,
                                trust=keyfiles.load_trust_dir(keys, role=None),
                                settings=SyncSettings(base_url=url)).sync()
        print(f"feed: sequence {result.to_sequence} synced from {url} "
              "(PAR24-000106 below generation 1 is void)")
    finally:
        server.shutdown()
        server.server_close()
    return keys


def gate_tour(folder: Path) -> int:
    """Run the daemon on every clip; returns how many outcomes differ from the scene's."""
    from portique.devtools.simulation import SimulatedRun
    from portique.runtime.config import from_dict
    from portique.runtime.daemon import Counters
    from portique.runtime.lines import summary_lines
    from portique.runtime.statusview import render_status
    from portique.runtime.wiring import build

    print("\n== 2. The gate daemon on recorded camera clips\n")
    print("pins: gpiozero's simulated pins (chosen in this demo's config, never a fallback);"
          " simulated visitors walk through after each unlock")
    feed_keys = _demo_feed(folder)
    table = {
        "gate": {"id": "1", "event": EVENT, "entrance": 2, "timezone": "Europe/Paris"},
        "keys": {"trust_dir": str(FIXTURES / "keys")},
        "feeds": {"store": str(folder / "feeds.sqlite"), "base_url": "http://127.0.0.1:9",
                  "trust_dir": str(feed_keys)},
        "journal": {"path": str(folder / "journal.sqlite")},
        "control": {"socket": str(folder / "control.sock")},
        "clock": {"source": "always"},
        "steward": {"language": "en"},
        "hardware": {"pin_factory": "mock", "on_stop": "fail_safe", "lock_active_high": False,
                     "open_timeout_s": 2.0,
                     "pins": {"lock": 17, "green": 27, "red": 22, "buzzer": 23,
                              "passage": 24, "fire_loop": 25}},
    }
    config = from_dict(table)
    surprises = 0
    status, summary = "", []
    totals = Counters()
    """Every clip's counts together: each clip has a daemon of its own, one journal."""
    for name, what, expected in SCENES:
        print(f"-- {name}: {what}")
        app = build(config, SimulatedRun(replay=FIXTURES / "clips" / name, fast=True,
                                       simulate_passage_s=0.2, stays=STAYS,
                                       print_lines=True))
        try:
            with app.bus.subscription() as events:
                app.run()
                got = []
                while not events.empty():
                    event = events.get_nowait()
                    if isinstance(event, DecisionMade):
                        got.append((event.verdict, event.reason))
            status = render_status(app.status())
            counted = app.daemon.counters
            totals.frames += counted.frames
            totals.decided += counted.decided
            totals.displayed += counted.displayed
            totals.by_verdict.update(counted.by_verdict)
            summary = summary_lines(totals, app.journal)
        finally:
            app.close()
        if got != expected:
            surprises += 1
            print(f"   !! expected {expected}, journal holds {got}")
    print(f"\nsummary (all {len(SCENES)} clips):")
    print("\n".join(f"  {line}" for line in summary))
    print("  (the journal is in the demo's temporary folder, removed when it ends)")
    print("\n`gate status` after the last clip:\n")
    print(status)
    return surprises


def mesh_tour() -> int:
    """Two gates, one broker; returns 1 unless gate 2 refused the ticket gate 1 admitted."""
    from portique.devtools.mesh_demo import two_gates

    print("\n== 3. Two gates of one venue sharing admissions through an MQTT broker\n")
    lines = two_gates(FIXTURES / "clips" / "valid_step_change",
                      FIXTURES / "clips" / "valid_step_change")
    print("\n".join(lines))
    refused = any("ALREADY_ADMITTED" in line for line in lines)
    return 0 if refused else 1


def main() -> int:
    print(f"Portique demo, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
          "(tickets dated 2024-08-05, Paris)\n")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="portique-demo-") as tmp:
        surprises = credential_tour(Path(tmp))
        surprises += gate_tour(Path(tmp) / "gate")
        surprises += mesh_tour()
    print(f"\nthe demo's files ({tmp}: keys, ticket, QR image, journal, feed) were "
          "temporary and are removed")
    print("\ndemo finished" + ("" if not surprises else f" with {surprises} surprise(s)"))
    return 1 if surprises else 0


if __name__ == "__main__":
    raise SystemExit(main())
