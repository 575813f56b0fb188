"""The steward's manifest lookup: a capped, cleaned query, the store's exact matches, then
names close to the query despite a small typo ("Helene Dupnot" finds "Hélène Dupont").

The feed store answers exact questions (ticket id, order reference, name, name prefix,
words of a name; case and accents ignored). When it finds nothing, the lookup asks it
again with the start of the query's longest words and ranks what comes back by edit
distance (Damerau-Levenshtein, per word), keeping only close names. A query is cut to
`MAX_QUERY` characters and stripped of control characters before anything else, so
whatever a terminal or a client sends costs at most a few bounded store queries.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gate.views import CANCELLED
from revocation.format import fold

MAX_QUERY = 100
"""Characters of a query kept: longer than any ticket id, order reference or name typed."""
MAX_WORDS = 8
"""Words of a query kept for the typo-tolerant pass."""
WIDEN_LIMIT = 200
"""Entries asked of the store per widened query."""
MIN_SIMILARITY = 0.75
"""Mean word similarity (1 = identical) a name needs to be offered as a near match."""
MIN_WORD_SIMILARITY = 0.6
"""Every word of the query must be at least this close to a word of the name."""

_TICKET_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")


class ManifestStore(Protocol):
    """What the lookup needs of the feed store (revocation.store.FeedStore)."""

    def lookup(self, event: str, query: str, *, limit: int = 10) -> tuple[Any, ...]: ...
    def min_valid_generation(self, event: str, ticket_id: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Found:
    """One manifest entry found, how it matched, and how close (1.0 for exact kinds)."""

    match: str
    score: float
    entry: Any


def clean_query(raw: object, *, limit: int = MAX_QUERY) -> str:
    """The query as a person meant it: text only, NFC, no control or format characters,
    white space collapsed, at most `limit` characters."""
    text = raw if isinstance(raw, str) else ("" if raw is None else str(raw))
    text = text[: limit * 4]  # bound the work below whatever arrives
    text = unicodedata.normalize("NFC", text)
    kept = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c
                   for c in text)
    return " ".join(kept.split())[:limit].strip()


def lookup(store: ManifestStore, event: str, raw_query: object, *,
           limit: int = 20) -> list[dict[str, Any]]:
    """The answer of the control socket's ``lookup`` op: candidates, best first."""
    limit = max(1, min(limit, 100))
    query = clean_query(raw_query)
    found = find(store, event, query, limit=limit)
    return [_candidate(store, event, f) for f in found]


def find(store: ManifestStore, event: str, query: str, *, limit: int) -> list[Found]:
    if not query:
        return []
    exact = list(store.lookup(event, query, limit=limit))
    if not exact and _TICKET_ID.fullmatch(query) and query.upper() != query:
        exact = list(store.lookup(event, query.upper(), limit=limit))
    if exact:
        return [Found(c.match.name.lower(), 1.0, c.entry) for c in exact]
    return near_matches(store, event, query, limit=limit)


def near_matches(store: ManifestStore, event: str, query: str, *, limit: int) -> list[Found]:
    """Names within a small typo of the query, closest first."""
    words = fold(query).split(" ")[:MAX_WORDS]
    words = [w for w in words if w]
    if not words:
        return []
    seen: dict[str, Any] = {}
    for prefix in _prefixes(words):
        for candidate in store.lookup(event, prefix, limit=WIDEN_LIMIT):
            seen.setdefault(candidate.entry.ticket_id, candidate.entry)
    scored = []
    for entry in seen.values():
        score = name_similarity(words, fold(entry.holder_name).split(" "))
        if score >= MIN_SIMILARITY:
            scored.append(Found("near", round(score, 3), entry))
    scored.sort(key=lambda f: (-f.score, fold(f.entry.holder_name), f.entry.ticket_id))
    return scored[:limit]


def _prefixes(words: Sequence[str]) -> list[str]:
    """Store queries that reach names with a typo after the first letters of a word: the
    two longest words, each cut short twice (most of the word, then its first three)."""
    longest = sorted({w for w in words if len(w) >= 3}, key=lambda w: (-len(w), w))[:2]
    prefixes: list[str] = []
    for word in longest:
        for cut in (max(3, len(word) - 2), 3):
            if word[:cut] not in prefixes:
                prefixes.append(word[:cut])
    return prefixes


def name_similarity(query_words: Sequence[str], name_words: Iterable[str]) -> float:
    """Mean, over the query's words, of the best similarity to one of the name's words;
    0 when one query word is far from every word of the name."""
    names = [w for w in name_words if w]
    if not names or not query_words:
        return 0.0
    total = 0.0
    for word in query_words:
        best = max(similarity(word, name) for name in names)
        if best < MIN_WORD_SIMILARITY:
            return 0.0
        total += best
    return total / len(query_words)


def similarity(a: str, b: str) -> float:
    """1 - Damerau-Levenshtein distance (optimal string alignment) / the longer length."""
    if a == b:
        return 1.0
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return 1.0 - damerau_levenshtein(a, b) / longest


def damerau_levenshtein(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def _candidate(store: ManifestStore, event: str, found: Found) -> dict[str, Any]:
    e = found.entry
    minimum = store.min_valid_generation(event, e.ticket_id)
    return {"match": found.match, "score": found.score, "ticket_id": e.ticket_id,
            "generation": e.generation, "order_ref": e.order_ref, "holder": e.holder_name,
            "category": e.category, "entrances": sorted(e.entrances), "flags": int(e.flags),
            "cancelled": minimum is not None and minimum >= CANCELLED}
