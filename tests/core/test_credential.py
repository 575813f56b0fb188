"""The credential format: round trips, strict canonical decoding, bounds, key handling."""

from __future__ import annotations

import pytest

from portique.base.errors import CredentialError, CredentialFormatError, NotATicketError
from portique.ticket import base45, credential
from portique.ticket.credential import Flag

from .conftest import DEVICE, ISSUER, T0, fields, paper_code, phone_code, pub


def test_base45_largest_triplet_is_65535() -> None:
    assert base45.decode("FGW") == b"\xff\xff"


def test_base45_rfc9285_examples() -> None:
    assert base45.encode(b"AB") == "BB8"
    assert base45.encode(b"Hello!!") == "%69 VD92EX0"
    assert base45.encode(b"base-45") == "UJCLQE7W581"
    assert base45.decode("QED8WEX0") == b"ietf!"


@pytest.mark.parametrize("bad", ["GGW", "A", "AAAA", "aBC", "BB8 \n", "ÉÉÉ", "FGX"])
def test_base45_refuses_every_non_canonical_spelling(bad: str) -> None:
    with pytest.raises(CredentialFormatError):
        base45.decode(bad)


def test_phone_code_round_trip() -> None:
    code = phone_code()
    parsed = credential.parse_code(code)
    assert parsed.fields == fields()
    assert parsed.step == credential.step_at(T0)
    assert credential.to_text(credential.text_to_binary(code)) == code


def test_typical_code_fits_a_small_qr_code() -> None:
    import segno

    code = phone_code()
    assert len(code) <= 330
    assert segno.make(code, error="m").version <= 11


def test_paper_code_has_no_level2_and_no_device_key() -> None:
    parsed = credential.parse_code(paper_code())
    assert parsed.step is None and parsed.device_signature is None
    assert parsed.fields.device_key is None and parsed.fields.paper


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.lower(),
        lambda c: c + " ",
        lambda c: " " + c,
        lambda c: c + "\n",
        lambda c: c[:40] + "\n" + c[40:],
        lambda c: c + "==",
        lambda c: c[:-1],
        lambda c: c.replace("PQ1:", "pq1:"),
        lambda c: c.replace("PQ1:", "PQ1: "),
    ],
    ids=["lowercase", "trailing-space", "leading-space", "newline", "inner-newline",
         "padding", "truncated", "lowercase-prefix", "space-after-prefix"],
)
def test_respellings_are_refused(mutate: object) -> None:
    code = phone_code()
    with pytest.raises(CredentialFormatError):
        credential.parse_code(mutate(code))  # type: ignore[operator]


def test_trailing_and_missing_bytes_are_refused() -> None:
    binary = credential.text_to_binary(phone_code())
    for bad in (binary + b"\x00", binary[:-1], binary[:100]):
        with pytest.raises(CredentialFormatError):
            credential.parse_binary(bad)
    paper = credential.text_to_binary(paper_code())
    with pytest.raises(CredentialFormatError, match="after the end"):
        credential.parse_binary(paper + b"\x00")


def test_reserved_flag_bits_are_refused() -> None:
    binary = bytearray(credential.text_to_binary(phone_code()))
    binary[1] |= 0x80
    with pytest.raises(CredentialFormatError, match="reserved flag"):
        credential.parse_binary(bytes(binary))


def test_overlong_code_is_refused_before_decoding() -> None:
    with pytest.raises(NotATicketError, match="longer than"):
        credential.text_to_binary("PQ1:" + "%" * credential.MAX_CODE_CHARS)


def test_longest_legal_code_is_within_the_bound() -> None:
    long_fields = fields(kid="k" * 16, event="E" * 24, ticket_id="T" * 32, category="C" * 16)
    code = credential.dynamic_code(credential.issue(long_fields, ISSUER), DEVICE, 1)
    assert len(code) == credential.MAX_CODE_CHARS
    assert credential.parse_code(code).fields == long_fields


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kid": ""}, "key id"),
        ({"kid": "bad kid"}, "key id"),
        ({"event": "x" * 25}, "event"),
        ({"ticket_id": "é"}, "ticket id"),
        ({"generation": 0xFFFF}, "generation"),
        ({"valid_until": 0}, "validity"),
        ({"entrances": frozenset()}, "entrance"),
        ({"entrances": frozenset({33})}, "entrance"),
        ({"category": "ü"}, "category"),
        ({"device_key": None}, "device key"),
        ({"device_key": b"short"}, "32-byte"),
        ({"flags": Flag.PAPER}, "paper"),
    ],
)
def test_issuing_refuses_bad_fields_with_a_clear_error(changes: dict[str, object],
                                                       message: str) -> None:
    with pytest.raises(CredentialError, match=message):
        credential.issue(fields(**changes), ISSUER)


def test_signatures_are_domain_separated() -> None:
    """A signature made for one purpose verifies for no other (issuer, device, feed)."""
    from cryptography.exceptions import InvalidSignature

    from portique.revocation.format import INDEX_CONTEXT

    level1 = credential.issue(fields(), ISSUER)
    body, issuer_sig = level1[:-64], level1[-64:]
    issuer_pub = ISSUER.public_key()
    issuer_pub.verify(issuer_sig, credential.ISSUER_CONTEXT + body)  # the right context
    for context in (b"", credential.DEVICE_CONTEXT, INDEX_CONTEXT):
        with pytest.raises(InvalidSignature):
            issuer_pub.verify(issuer_sig, context + body)
    step_message = credential.device_message(level1, 5)
    device_sig = DEVICE.sign(step_message)
    tail = step_message[len(credential.DEVICE_CONTEXT):]
    for context in (b"", credential.ISSUER_CONTEXT, INDEX_CONTEXT):
        with pytest.raises(InvalidSignature):
            DEVICE.public_key().verify(device_sig, context + tail)
    contexts = {credential.ISSUER_CONTEXT, credential.DEVICE_CONTEXT, INDEX_CONTEXT}
    assert len(contexts) == 3 and all(c.endswith(b"\0") for c in contexts)


def test_device_key_in_level1_is_the_one_that_signs_level2() -> None:
    parsed = credential.parse_code(phone_code())
    assert parsed.fields.device_key == pub(DEVICE)
    assert credential.verify_device(parsed)
