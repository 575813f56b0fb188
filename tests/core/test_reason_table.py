"""docs/credential.md lists every reason's sentence in English and French, with every
placeholder and its formatting, exactly as portique/ticket/reasons.py has them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from portique.ticket.decision import Decision
from portique.ticket.reasons import SENTENCES, Lang, Reason, Verdict
from portique.ticket.views import Admission
from tests.vectors import reason_table


def test_the_documented_table_is_the_modules() -> None:
    doc = reason_table.DOC.read_text(encoding="utf-8")
    assert reason_table.rewritten(doc) == doc, (
        "docs/credential.md's reason sentences differ from portique/ticket/reasons.py: run "
        "`python tests/vectors/reason_table.py`")
    for reason in Reason:  # every code, both languages, word for word
        english, french = SENTENCES[reason]
        assert f"| `{reason.value}` | {english} | {french} |" in doc


def test_every_placeholder_is_described_and_filled_as_described() -> None:
    used = {name for pair in SENTENCES.values() for text in pair
            for name in reason_table.placeholders(text)}
    assert used <= set(reason_table.PLACEHOLDERS), used - set(reason_table.PLACEHOLDERS)
    for english, french in SENTENCES.values():  # the same blanks in both languages
        assert sorted(reason_table.placeholders(english)) == \
            sorted(reason_table.placeholders(french))
    paris = ZoneInfo("Europe/Paris")
    at = datetime(2024, 8, 5, 19, 8, 40, tzinfo=paris).timestamp()
    refusal = Decision(Verdict.REFUSE, Reason.ALREADY_ADMITTED, at,
                       previous=Admission("PAR24-ATH05", "T1", 0, "ATH-E2", at - 60),
                       timezone=paris)
    assert refusal.sentence(Lang.EN) == "This ticket was already admitted at gate ATH-E2 at 19:07."
    assert refusal.sentence(Lang.FR) == "Ce billet a déjà été admis au portique ATH-E2 à 19:07."
