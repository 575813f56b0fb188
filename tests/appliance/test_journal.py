"""The journal on its own: durability settings, one admission in force, exits, re-entry."""

from __future__ import annotations

import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from portique.runtime.journal import AlreadyInsideError, Journal, Method
from portique.ticket.decision import Decision, Direction, GateProfile, Now, Policy, decide
from portique.ticket.reasons import Reason, Verdict
from portique.ticket.views import Admission, NoRevocations, TicketKey

T0 = 1722877200.0
KEY = TicketKey("PAR24-ATH05", "T1", 0)


def admit_decision(at: float = T0) -> Decision:
    return Decision(Verdict.ADMIT, Reason.VALID, at, KEY)


def test_wal_and_synchronous_full(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    db = journal._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_one_admission_in_force_per_ticket_even_against_the_caller(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    journal.admit(admit_decision())
    with pytest.raises(AlreadyInsideError):
        journal.admit(admit_decision(T0 + 5))
    rows = journal.entries()
    assert len(rows) == 1  # the refused second admission left nothing behind


def test_an_admission_left_open_by_a_crash_counts_as_inside(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    journal.admit(admit_decision())
    journal.close()  # the process dies with the lock open: no passage outcome written
    again = Journal(tmp_path / "j.sqlite", gate_id="1")
    previous = again.last_admission(KEY.event, KEY.ticket_id)
    assert previous is not None and previous.inside and previous.gate == "1"


def test_voided_admission_frees_the_ticket(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    scan_id = journal.admit(admit_decision())
    journal.passage(scan_id, passed=False, at=T0 + 8)
    assert journal.last_admission(KEY.event, KEY.ticket_id) is None
    journal.admit(admit_decision(T0 + 60))
    assert journal.last_admission(KEY.event, KEY.ticket_id) is not None


def test_exit_then_reentry_through_the_journal(tmp_path: Path) -> None:
    """An exit gate records the exit; an entry gate allowing re-entry admits again."""
    from portique.ticket.credential import Flag
    from tests.core.conftest import TRUST, phone_code

    journal = Journal(tmp_path / "j.sqlite", gate_id="3")
    entry = GateProfile("3", "PAR24-ATH05", 2, allow_reentry=True)
    exit_gate = replace(entry, gate_id="9", direction=Direction.EXIT)

    def run(profile: GateProfile, at: float) -> Decision:
        d = decide(phone_code(at, flags=Flag.REENTRY), Now(at), trust=TRUST,
                   revocations=NoRevocations(), admissions=journal, profile=profile,
                   policy=Policy())
        if d.verdict is Verdict.ADMIT and d.reason is not Reason.EXIT:
            scan = journal.admit(d)
            journal.passage(scan, passed=True, at=at + 2)
        else:
            journal.record(d)
        return d

    assert run(entry, T0).reason is Reason.VALID
    assert run(entry, T0 + 60).reason is Reason.ALREADY_ADMITTED
    assert run(exit_gate, T0 + 120).reason is Reason.EXIT
    last = journal.last_admission("PAR24-ATH05", "T0001234")
    assert isinstance(last, Admission) and not last.inside
    assert run(entry, T0 + 180).reason is Reason.REENTRY
    assert run(entry, T0 + 240).reason is Reason.ALREADY_ADMITTED
    states = [s.value for s in journal.admission_states().values()]
    assert sorted(states) == ["exited", "passed"]


def test_manual_decisions_keep_steward_and_note(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    journal.record(Decision(Verdict.REFUSE, Reason.MANUAL_DENY, T0, KEY), method=Method.STEWARD,
                   steward="S-1", note="no ID")
    entry = journal.entries()[0]
    assert (entry.reason, entry.method, entry.steward, entry.note) == (
        Reason.MANUAL_DENY, Method.STEWARD, "S-1", "no ID")


def test_admission_requires_an_admit_decision(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    with pytest.raises(ValueError, match="only an admit decision"):
        journal.admit(Decision(Verdict.REFUSE, Reason.STALE_CODE, T0, KEY))


def test_journal_file_survives_reopen_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path, gate_id="1")
    journal.admit(admit_decision())
    journal.close()
    with sqlite3.connect(path) as db:
        before = db.execute("SELECT * FROM admissions").fetchall()
    Journal(path, gate_id="1").close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT * FROM admissions").fetchall() == before


def test_control_socket_is_for_the_owner_and_group_only(tmp_path: Path) -> None:
    from portique.runtime.control import ControlConfig, ControlServer, EventBus

    server = ControlServer(ControlConfig(socket=tmp_path / "c.sock"), handle=lambda r: r,
                           bus=EventBus(), status=dict)
    try:
        mode = stat.S_IMODE((tmp_path / "c.sock").stat().st_mode)
        assert mode == 0o660
    finally:
        server.close()
