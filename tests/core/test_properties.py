"""Properties: nothing raises, nothing forged or mangled is admitted, one spelling per code."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portique.base.errors import CredentialFormatError
from portique.ticket import base45, credential
from portique.ticket.decision import PaperPolicy, Policy
from portique.ticket.reasons import Verdict

from .conftest import T0, Gate, paper_code, phone_code

GATE = Gate()
# paper is admitted once at this gate, so "never admitted" means something for paper too
PAPER_GATE = Gate(policy=Policy(paper=PaperPolicy.ADMIT_ONCE))
VALID = phone_code()
PAPER = paper_code()
ALPHABET = base45.ALPHABET
SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def test_the_reference_codes_are_admitted() -> None:
    assert GATE.decide(VALID).verdict is Verdict.ADMIT
    assert PAPER_GATE.decide(PAPER).verdict is Verdict.ADMIT


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise_and_never_admit(data: bytes) -> None:
    d = GATE.decide(credential.to_text(data))
    assert d.verdict is not Verdict.ADMIT


@SETTINGS
@given(st.text(max_size=600))
def test_arbitrary_text_never_raises_and_never_admits(text: str) -> None:
    assert GATE.decide(text).verdict is not Verdict.ADMIT


@SETTINGS
@given(st.text(alphabet=ALPHABET, max_size=500))
def test_arbitrary_base45_after_the_prefix_never_admits(body: str) -> None:
    assert GATE.decide("PQ1:" + body).verdict is not Verdict.ADMIT


def test_every_single_character_substitution_is_refused() -> None:
    """All 44 other alphabet characters at every position of a valid code (about 14,000)."""
    for gate, code in ((GATE, VALID), (PAPER_GATE, PAPER)):
        for i in range(len(code)):
            for c in ALPHABET + "a":
                if c == code[i]:
                    continue
                mutated = code[:i] + c + code[i + 1:]
                assert gate.decide(mutated).verdict is not Verdict.ADMIT, (i, c)


def test_every_single_bit_flip_of_the_bytes_is_refused() -> None:
    for gate, code in ((GATE, VALID), (PAPER_GATE, PAPER)):
        binary = credential.text_to_binary(code)
        for i in range(len(binary) * 8):
            mutated = bytearray(binary)
            mutated[i // 8] ^= 1 << (i % 8)
            assert gate.decide(credential.to_text(bytes(mutated))).verdict is not Verdict.ADMIT, i


@SETTINGS
@given(st.integers(0, len(VALID)), st.text(min_size=1, max_size=3))
def test_insertions_are_refused(position: int, extra: str) -> None:
    mutated = VALID[:position] + extra + VALID[position:]
    assert GATE.decide(mutated).verdict is not Verdict.ADMIT


@SETTINGS
@given(st.integers(0, len(VALID) - 1), st.integers(1, 3))
def test_deletions_are_refused(position: int, length: int) -> None:
    mutated = VALID[:position] + VALID[position + length:]
    assert GATE.decide(mutated).verdict is not Verdict.ADMIT


@SETTINGS
@given(st.text(alphabet=ALPHABET, max_size=400))
def test_one_spelling_per_byte_string(body: str) -> None:
    """Whatever text decodes, encoding its bytes gives the very same text back."""
    text = "PQ1:" + body
    try:
        binary = credential.text_to_binary(text)
    except CredentialFormatError:
        return
    assert credential.to_text(binary) == text


@SETTINGS
@given(st.binary(max_size=300), st.integers(0, 299), st.sampled_from(ALPHABET))
def test_no_second_spelling_of_real_bytes(data: bytes, position: int, char: str) -> None:
    """Changing one character of an encoding never decodes to the same bytes."""
    text = credential.to_text(data)
    i = 4 + position % max(1, len(text) - 4)
    if i >= len(text) or text[i] == char:
        return
    other = text[:i] + char + text[i + 1:]
    with contextlib.suppress(CredentialFormatError):
        assert credential.text_to_binary(other) != data


@SETTINGS
@given(st.text(alphabet=ALPHABET + "abc \n=", max_size=6), st.integers(0, len(VALID)))
def test_respellings_of_a_valid_code_refused_or_same_ticket(noise: str, position: int) -> None:
    mutated = VALID[:position] + noise + VALID[position:]
    d = GATE.decide(mutated, T0)
    if d.verdict is Verdict.ADMIT:
        # only possible when the noise left the text identical
        assert mutated == VALID
        assert d.ticket == GATE.decide(VALID, T0).ticket
