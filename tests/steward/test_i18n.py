"""The catalogue: every string of the UI in French and English, with the same blanks."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import portique.runtime.steward
from portique.runtime.steward.i18n import CATALOGUE, T, other, tr
from portique.runtime.steward.model import age_text
from portique.ticket.reasons import Lang


def blanks(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_string_has_both_languages_with_the_same_blanks() -> None:
    assert set(CATALOGUE) == set(T)
    for key, (french, english) in CATALOGUE.items():
        assert french.strip() and english.strip(), key
        assert blanks(french) == blanks(english), key
    assert tr(T.LOOKUP_NONE, Lang.FR, query="x") == "Aucun billet trouvé pour « x »."
    assert other(Lang.FR) is Lang.EN and other(Lang.EN) is Lang.FR


def test_ages_read_naturally() -> None:
    assert [age_text(s, Lang.EN) for s in (5, 95, 600, 7300, 200_000)] == [
        "5 s", "95 s", "10 min", "2 h", "2 d"]
    assert age_text(200_000, Lang.FR) == "2 j"


def test_no_words_outside_the_catalogue() -> None:
    """Screens and widgets pass catalogue strings (or data) to the screen, never a phrase."""
    root = Path(portique.runtime.steward.__file__).parent
    for path in [*root.glob("screens/*.py"), *root.glob("widgets/*.py"), root / "app.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("Text",
                                                                               "Static"):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        assert not any(c.isalpha() for c in arg.value), (path, arg.value)
