"""The table of every reason's sentences in docs/credential.md, made from
portique/ticket/reasons.py so the two cannot drift: `python tests/vectors/reason_table.py`
rewrites the table between its markers; tests/core/test_reason_table.py checks it.

A new reason needs only its sentences in reasons.py (and, for a new placeholder, a line in
`PLACEHOLDERS` here), then this script run once."""

from __future__ import annotations

import string
import sys
from pathlib import Path

from portique.ticket.reasons import SENTENCES, Lang, Reason, sentence

DOC = Path(__file__).parents[2] / "docs" / "credential.md"
BEGIN = "<!-- reason sentences: made by tests/vectors/reason_table.py, do not edit -->"
END = "<!-- end of reason sentences -->"

PLACEHOLDERS: dict[str, str] = {
    "entrances": "the ticket's entrances (level-1 field 9), in increasing order, in "
                 "decimal, separated by a comma and a space: `2, 5`",
    "from": "`valid_from` in the venue's time zone: English `YYYY-MM-DD HH:MM`, French "
            "`DD/MM/YYYY HH:MM` (24-hour clock, no seconds): `2024-08-05 15:00`, "
            "`05/08/2024 15:00`",
    "until": "`valid_until`, formatted as `{from}`",
    "gate": "the id of the gate of the admission in force, as that gate's config names it "
            "(`gate.id`): `1`, `ATH-E2`",
    "time": "the time of that admission in the venue's time zone, `HH:MM` in both "
            "languages: `19:08`",
    "when": "the moment the reason names (a session's opening or closing, the next entry "
            "allowed) in the venue's time zone: `HH:MM` when it falls on the day of the "
            "decision, else with the date as in `{from}`: `15:00`, `2024-08-06 09:00`",
    "info": "what else the reason names, as the config or the rule says it: a gate area "
            "(`the north concourse, gates 10 to 14`), an entries limit in decimal (`2`), "
            "the entrances of a rule as in `{entrances}`",
}
"""Each placeholder a sentence may hold, and how it is filled (portique/ticket/decision.py,
`Decision.sentence`). A placeholder whose value is unknown is filled with `?`."""


def placeholders(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def table() -> str:
    lines = [BEGIN, "", "| code | English | French |", "|---|---|---|"]
    for reason in Reason:
        english, french = SENTENCES[reason]
        lines.append(f"| `{reason.value}` | {cell(english)} | {cell(french)} |")
    used = sorted({name for pair in SENTENCES.values() for text in pair
                   for name in placeholders(text)})
    lines += ["", "| placeholder | filled with |", "|---|---|"]
    lines += [f"| `{{{name}}}` | {PLACEHOLDERS[name]} |" for name in used]
    example = sentence(Reason.WRONG_ENTRANCE, Lang.FR, entrances="2, 5")
    lines += ["", "Sentences are filled once, in the language shown; a placeholder is "
              "replaced by its value as it is, nothing else in the sentence changes (no "
              f"escaping, no plural): `{example}`. The text is UTF-8; the French uses the "
              "apostrophe U+0027 and a plain space before `:`. A time (`{from}`, `{until}`, "
              "`{time}`, `{when}`) that falls in the hour repeated at the autumn clock "
              "change is followed by a space, its zone's abbreviation, a comma, a space and "
              "its offset: `02:30 CET, UTC+01:00`.", "", END]
    return "\n".join(lines)


def rewritten(doc: str) -> str:
    start, end = doc.index(BEGIN), doc.index(END) + len(END)
    return doc[:start] + table() + doc[end:]


if __name__ == "__main__":
    DOC.write_text(rewritten(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    sys.exit(0)
