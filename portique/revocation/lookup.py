"""The steward's manifest lookup: a capped, cleaned query, the store's exact matches, then
names close to the query despite a small typo ("Helene Dupnot" finds "Hélène Dupont").

The feed store answers exact questions (ticket id, order reference, name, name prefix,
words of a name; case and accents ignored). When it finds nothing, the lookup asks it
again with the start of the query's longest words and ranks what comes back by edit
distance (Damerau-Levenshtein, per word), keeping only close names. A query is cut to
`MAX_QUERY` characters and stripped of control characters before anything else, so
whatever a terminal or a client sends costs at most a few bounded store queries.

A whole lookup has one time budget (`LOOKUP_BUDGET_S`): every store query of it stops at
the same deadline, and so does the scoring of near names; an answer cut short says so
(`truncated`). With the gate's feed view, a lookup runs on a read-only connection of its
own (portique/runtime/feedview.py): the decision loop never waits on it.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from portique.revocation.format import fold, sanitise_holder_name
from portique.ticket.views import CANCELLED

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
LOOKUP_BUDGET_S = 0.1
"""Time one lookup may take, store queries and scoring together."""

_TICKET_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")


class StoreAnswer(Protocol):
    """What a store search answers (revocation.store.LookupResult)."""

    @property
    def candidates(self) -> tuple[Any, ...]: ...
    @property
    def truncated(self) -> bool: ...


class ManifestStore(Protocol):
    """What the lookup needs of the feed store (revocation.store.FeedStore)."""

    def search(self, event: str, query: str, *, limit: int = 10,
               deadline: float | None = None) -> StoreAnswer: ...
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


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer of a lookup: candidates (as the control socket sends them), best first,
    and whether the lookup stopped short of its usual answer (time budget, or a query so
    common that only part of the names holding it were ranked)."""

    candidates: tuple[dict[str, Any], ...]
    truncated: bool


def lookup(store: ManifestStore, event: str, raw_query: object, *,
           limit: int = 20) -> list[dict[str, Any]]:
    """The candidates of the control socket's ``lookup`` op, best first."""
    return list(answer(store, event, raw_query, limit=limit).candidates)


def answer(store: ManifestStore, event: str, raw_query: object, *, limit: int = 20,
           budget_s: float = LOOKUP_BUDGET_S) -> Answer:
    """The answer of the control socket's ``lookup`` op, within `budget_s` seconds."""
    limit = max(1, min(limit, 100))
    query = clean_query(raw_query)
    search = Search(store, event, time.monotonic() + budget_s)
    found = find(search, query, limit=limit)
    return Answer(tuple(_candidate(store, event, f) for f in found), search.truncated)


class Search:
    """The store's search for one lookup: one deadline for all its queries."""

    def __init__(self, store: ManifestStore, event: str, deadline: float) -> None:
        self.store = store
        self.event = event
        self.deadline = deadline
        self.truncated = False

    def __call__(self, query: str, *, limit: int) -> list[Any]:
        if self.out_of_time():
            return []
        result = self.store.search(self.event, query, limit=limit, deadline=self.deadline)
        self.truncated = self.truncated or result.truncated
        return list(result.candidates)

    def out_of_time(self) -> bool:
        """True (and the answer marked truncated) once the deadline has passed."""
        if time.monotonic() <= self.deadline:
            return False
        self.truncated = True
        return True


def find(search: Search, query: str, *, limit: int) -> list[Found]:
    if not query:
        return []
    exact = search(query, limit=limit)
    if not exact and _TICKET_ID.fullmatch(query) and query.upper() != query:
        exact = search(query.upper(), limit=limit)
    if exact:
        return [Found(c.match.name.lower(), 1.0, c.entry) for c in exact]
    return near_matches(search, query, limit=limit)


def near_matches(search: Search, query: str, *, limit: int) -> list[Found]:
    """Names within a small typo of the query, closest first."""
    words = fold(query).split(" ")[:MAX_WORDS]
    words = [w for w in words if w]
    if not words:
        return []
    seen: dict[str, Any] = {}
    for prefix in _prefixes(words):
        for candidate in search(prefix, limit=WIDEN_LIMIT):
            seen.setdefault(candidate.entry.ticket_id, candidate.entry)
    scored = []
    scores: dict[str, float] = {}  # names repeat: score each folded name once
    for n, entry in enumerate(seen.values()):
        if n % 16 == 0:
            time.sleep(0)  # let the decision thread have the interpreter
        if n % 64 == 0 and search.out_of_time():
            break
        name = fold(entry.holder_name)
        score = scores.get(name)
        if score is None:
            score = scores[name] = name_similarity(words, name.split(" "))
        if score >= MIN_SIMILARITY:
            scored.append(Found("near", round(score, 3), entry))
    scored.sort(key=lambda f: (-f.score, fold(f.entry.holder_name), f.entry.ticket_id))
    return scored[:limit]


def _prefixes(words: Sequence[str]) -> list[str]:
    """Store queries that reach names with a typo after the first letters of a word: the
    first three letters of the two longest words together (few names hold both, however
    large the manifest), then each word cut short twice (most of it, then its first
    three)."""
    longest = sorted({w for w in words if len(w) >= 3}, key=lambda w: (-len(w), w))[:2]
    prefixes: list[str] = []
    if len(longest) == 2:
        prefixes.append(" ".join(w[:3] for w in words if w in longest))
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
    # The texts as a screen may show them: the parser's own cleaning, again, for names a
    # store holds from before it (or from anything else than a feed).
    return {"match": found.match, "score": found.score, "ticket_id": e.ticket_id,
            "generation": e.generation, "order_ref": sanitise_holder_name(e.order_ref),
            "holder": sanitise_holder_name(e.holder_name),
            "category": sanitise_holder_name(e.category), "entrances": sorted(e.entrances),
            "flags": int(e.flags), "cancelled": minimum is not None and minimum >= CANCELLED}
