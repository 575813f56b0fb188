"""`credential.valid_ticket_id` says yes exactly where the credential's encoder does."""

from __future__ import annotations

import pytest

from portique.base.errors import CredentialError
from portique.ticket import credential
from portique.ticket.credential import TicketFields

CANDIDATES = ["PAR24-000103", "a", "A" * 32, "A" * 33, "", "PAR24 000103", "PAR24-00010\u00e9",
              "x\n", "x/y", "1.2_3-4", "\u0661\u0662", "PAR24-000103\x00", "é" * 10]


def _encodes(ticket_id: str) -> bool:
    fields = TicketFields(kid="k1", event="PAR24-ATH05", ticket_id=ticket_id, generation=0,
                          valid_from=0, valid_until=10, entrances=frozenset({1}),
                          device_key=bytes(32))
    try:
        credential.encode_body(fields)
    except CredentialError:
        return False
    return True


@pytest.mark.parametrize("ticket_id", CANDIDATES)
def test_valid_ticket_id_matches_the_encoder(ticket_id: str) -> None:
    assert credential.valid_ticket_id(ticket_id) is _encodes(ticket_id)


def test_only_strings_are_ticket_ids() -> None:
    assert [credential.valid_ticket_id(v) for v in (None, 103, ["x"], b"PAR24")] == [False] * 4
