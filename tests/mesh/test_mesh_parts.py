"""The mesh's parts: the message format against its vector, strict decoding, config
errors, a broker with passwords, `gate mesh status`, and the two-gate demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.base.errors import ConfigError
from portique.commands.main import main
from portique.devtools.broker import LoopbackBroker
from portique.devtools.mesh_demo import two_gates
from portique.runtime.config import from_dict
from portique.runtime.journal import Journal
from portique.runtime.mesh import wire
from portique.runtime.mesh.node import MeshNode, load_peer_keys
from portique.runtime.mesh.wire import MeshMessageError, Record, State, Summary
from tests.appliance.conftest import CLIPS, gate_table
from tests.mesh.conftest import ALICE, VENUE, Venue, gate_key, wait_for
from tests.vectors.mesh.generate import vectors

VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "mesh" / "messages.json"


def test_messages_match_the_committed_vector_byte_for_byte() -> None:
    stored = json.loads(VECTOR.read_text())
    assert stored == vectors()
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(stored["private_key_seed"]))
    keys = {"3": key.public_key()}
    record = wire.verify(bytes.fromhex(stored["record"]["message"]), keys,
                         venue="stade-de-france")
    assert isinstance(record, Record)
    fields = stored["record"]["fields"]
    assert (record.origin, record.seq, record.state.label, record.ticket_id, record.scan_id,
            record.at_ms) == (fields["gate"], fields["seq"], fields["state"],
                              fields["ticket_id"], fields["scan_id"], fields["at_ms"])
    summary = wire.verify(bytes.fromhex(stored["summary"]["message"]), keys,
                          venue="stade-de-france")
    assert isinstance(summary, Summary)
    assert [[g, i.hex(), h] for g, i, h in summary.heads] == stored["summary"]["fields"]["heads"]


def test_lifecycle_vectors_verify_with_their_states() -> None:
    stored = json.loads(VECTOR.read_text())
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(stored["private_key_seed"]))
    states = []
    for vector in stored["lifecycle"]:
        record = wire.verify(bytes.fromhex(vector["message"]), {"3": key.public_key()},
                             venue="stade-de-france")
        assert isinstance(record, Record)
        assert record.scan_id == vector["fields"]["scan_id"]
        assert bytes.fromhex(vector["message"]).startswith(bytes.fromhex(vector["body"]))
        states.append(record.state.label)
    assert states == ["admitted", "voided", "admitted", "exited"]


def test_refused_vectors_are_refused_with_their_error() -> None:
    stored = json.loads(VECTOR.read_text())
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(stored["private_key_seed"]))
    assert len(stored["refused"]) >= 12
    for vector in stored["refused"]:
        with pytest.raises(MeshMessageError) as refused:
            wire.verify(bytes.fromhex(vector["message"]), {"3": key.public_key()},
                        venue="stade-de-france")
        assert (str(refused.value.reason), str(refused.value)) == (
            vector["rejection"], vector["error"]), vector["name"]


def _signed() -> tuple[bytes, dict[str, object]]:
    key = gate_key("3")
    r = Record(VENUE, "3", b"\x00" * 8, 1, State.VOIDED, "PAR24-ATH05", ALICE, 2,
               "00" * 16, 1, 2)
    return wire.sign_record(r, key), {"3": key.public_key()}


@pytest.mark.parametrize(("mangle", "reason"), [
    (lambda m: m + b"\x00", "bytes after the body"),
    (lambda m: m[:-1], "bytes after the body"),
    (lambda m: m[:20], "truncated"),
    (lambda m: b"\x02" + m[1:], "unknown version 2"),
    (lambda m: m[:1] + b"\x09" + m[2:], "unknown kind 9"),
    (lambda m: m.replace(b"PAR24-ATH05", b"PAR24 ATH05"), "event is not"),
    (lambda m: m.replace(b"\x02\x0bPAR24", b"\x07\x0bPAR24", 1), "unknown state 7"),
])
def test_decoding_is_strict(mangle: object, reason: str) -> None:
    message, keys = _signed()
    with pytest.raises(MeshMessageError, match=reason):
        wire.verify(mangle(message), keys, venue=VENUE)  # type: ignore[operator]


def test_another_venue_is_refused() -> None:
    message, keys = _signed()
    with pytest.raises(MeshMessageError, match="for venue stade-de-france, not other"):
        wire.verify(message, keys, venue="other")  # type: ignore[arg-type]


def _mesh_table(tmp_path: Path, **mesh: object) -> dict[str, object]:
    table = gate_table(tmp_path, mesh={"venue": VENUE, "key_file": str(tmp_path / "k.key"),
                                       **mesh})
    return table


@pytest.mark.parametrize(("mesh", "message"), [
    ({"gates": [{"id": "2", "public_key": "abcd"}]},
     "mesh.gates: gate 2: public_key must be 64 hex digits"),
    ({"gates": [{"id": "2", "public_key": "00" * 32}, {"id": "2", "public_key": "11" * 32}]},
     "mesh.gates: gate 2 is listed twice"),
    ({"port": 0}, "mesh.port: must be at least 1, got 0"),
    ({"venue": "a b"}, "mesh.venue: must be 1-32"),
    ({"topic_prefix": "a//b"}, "mesh.topic_prefix"),
    ({"tls": {"ca_file": "ca.pem", "cert_file": "c.pem"}},
     "mesh.tls: cert_file and key_file go together"),
    ({"brokr": "x"}, "mesh.brokr: unknown key"),
])
def test_bad_mesh_config_names_the_key(tmp_path: Path, mesh: dict[str, object],
                                       message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        from_dict(_mesh_table(tmp_path, **mesh))


def test_a_gate_not_listed_or_with_another_key_does_not_start(tmp_path: Path,
                                                              venue: Venue) -> None:
    config = from_dict(_mesh_table(tmp_path, gates_dir=str(venue.keys))).mesh
    assert config is not None
    journal = Journal(tmp_path / "j.sqlite", gate_id="9")
    try:
        with pytest.raises(ConfigError, match=r"this gate \(9\) is not listed"):
            MeshNode(config, gate_id="9", journal=journal, key=gate_key("9"),
                     peers=load_peer_keys(config))
        with pytest.raises(ConfigError, match=r"not the one mesh.gates lists .* \(2\)"):
            MeshNode(config, gate_id="2", journal=journal, key=gate_key("9"),
                     peers=load_peer_keys(config))
        # nothing was written for a node that did not start
        assert journal.counts()["admit"] == 0
    finally:
        journal.close()


def test_broker_with_passwords_from_the_systemd_credential(
        tmp_path: Path, venue: Venue, monkeypatch: pytest.MonkeyPatch) -> None:
    secured = LoopbackBroker(tmp_path / "secured", users={"gate-1": "s3cret"})
    secured.start()
    try:
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / "mesh-password").write_text("s3cret\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
        good = venue.gate("1", port=secured.port, username="gate-1")
        good.start("valid_step_change")  # waits until connected: the password was accepted
        bad = venue.gate("2", port=secured.port, username="gate-1", password="wrong")
        monkeypatch.delenv("CREDENTIALS_DIRECTORY")
        bad.start(connected=False)
        wait_for(lambda: "refused" in (bad.mesh.why or ""), "gate 2 refused by the broker")
        assert not bad.mesh.connected
        assert good.play() == [("admit", "VALID", ALICE)]  # and the gate goes on alone
    finally:
        venue.gates["1"].stop()
        venue.gates["2"].stop()
        secured.stop()


def test_gate_mesh_status_command(venue: Venue, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = venue.gate("1"), venue.gate("2")
    one.start("valid_step_change")
    two.start()
    one.play()
    wait_for(lambda: two.knows(ALICE, "1"), "gate 2 learns")
    assert main(["mesh", "status", "--socket", str(two.folder / "control.sock")]) == 0
    out = capsys.readouterr().out
    assert "state        connected" in out
    line = next(x for x in out.splitlines() if x.startswith("1 "))
    assert "never" not in line and line.split()[-1] == "1"  # one record from gate 1
    assert "conflicts    none" in out
    assert main(["mesh", "status", "--json", "--socket",
                 str(one.folder / "control.sock")]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "connected" and status["outbox"] == 0
    assert main(["mesh", "status", "--socket", str(venue.folder / "nobody.sock")]) == 2


def test_demo_two_gates_shows_the_refusal_at_the_second() -> None:
    lines = two_gates(CLIPS / "valid_step_change", CLIPS / "valid_step_change")
    text = "\n".join(lines)
    assert "gate 1 | " in text and "ADMIT" in text
    refused = [x for x in lines if x.startswith("gate 2 |") and "ALREADY_ADMITTED" in x]
    assert refused and "already admitted at gate 1" in refused[0]


def test_an_exit_at_another_gate_ends_this_gates_admission(tmp_path: Path) -> None:
    """Admitted here, out through exit gate 3: a REENTRY ticket may come back in here."""
    from portique.runtime.mesh.store import MeshStore
    from portique.ticket.decision import Decision
    from portique.ticket.reasons import Reason, Verdict
    from portique.ticket.views import TicketKey

    journal = Journal(tmp_path / "j.sqlite", gate_id="1")
    store = MeshStore(journal, gate_id="1", venue=VENUE, key=gate_key("1"))
    t0 = 1722877200.0
    journal.admit(Decision(Verdict.ADMIT, Reason.VALID, t0, TicketKey("PAR24-ATH05", ALICE, 0)))
    exit_record = Record(VENUE, "3", b"\x01" * 8, 1, State.EXITED, "PAR24-ATH05", ALICE, 0,
                         "ab" * 16, int((t0 + 600) * 1000), int((t0 + 600) * 1000))
    store.merge([(exit_record, wire.sign_record(exit_record, gate_key("3")))], now=t0 + 601)
    last = journal.last_admission("PAR24-ATH05", ALICE)
    assert last is not None and not last.inside
    # the partial unique index no longer counts the old admission: re-entry can be recorded
    journal.admit(Decision(Verdict.ADMIT, Reason.REENTRY, t0 + 900,
                           TicketKey("PAR24-ATH05", ALICE, 0)))
    assert sorted(s.value for s in journal.admission_states().values()) == ["exited", "open"]
