"""`make demo`: a tour of the gate on its embedded defaults, ending by itself.

Part one mints a demo ticket with real keys, shows its rotating code and checks a few
codes (valid, a screenshot replayed a minute later, tampered, wrong event, paper).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from gate import credential, keyfiles
from gate.credential import Flag, TicketFields
from gate.decision import GateProfile, Now, Policy, decide
from gate.reasons import Lang, Verdict
from gate.trust import KeyRole
from gate.views import MemoryAdmissions, NoRevocations

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
    print(f"  (the 19:00:00 code as a QR image: {png})\n")

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


def main() -> int:
    print(f"Portique demo, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
          "(tickets dated 2024-08-05, Paris)\n")
    with tempfile.TemporaryDirectory(prefix="portique-demo-") as tmp:
        surprises = credential_tour(Path(tmp))
    print("\ndemo finished" + ("" if not surprises else f" with {surprises} surprise(s)"))
    return 1 if surprises else 0


if __name__ == "__main__":
    raise SystemExit(main())
