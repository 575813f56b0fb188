"""The steward's manifest lookup at scale, on real SQLite stores: index searches only, a
bounded amount of work whatever the manifest's size, a time budget, and never in the way
of the decision (its own read-only connections, portique/runtime/feedview.py)."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portique.revocation import lookup as steward_lookup
from portique.revocation import store as store_module
from portique.revocation.format import FileKind, fold, index_body, parse_index, sign_index
from portique.revocation.publish import write_file
from portique.revocation.store import (
    _WORD_SEARCH_DROP,
    SCHEMA_VERSION,
    WORD_CANDIDATES,
    FeedFile,
    FeedStore,
    MatchKind,
)
from portique.runtime.feedview import LookupBusyError, SharedFeedView
from portique.ticket.views import CANCELLED
from tests.revocation.conftest import EVENT, FEED_KEY, FEED_KID, T0, trust
from tests.revocation.test_store import applied

SYLLABLES = ["ma", "ri", "lo", "pa", "ne", "ka", "to", "mi", "se", "la", "vo", "be", "ni",
             "ro", "sa", "ti", "go", "fe", "li", "an", "el", "or", "is", "ur", "ba", "ce",
             "fa", "gu", "jo", "ke", "mo", "nu", "pi", "ru", "sy", "ve", "wa", "xi", "yo"]
TARGET = 7  # the entry whose name, order and id the lookups below look for
SHARED_WORD = "Zanzibar"  # the last word of every fifth name


def filler_name(rng: random.Random, n: int) -> str:
    def word() -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()

    return f"{word()} {word()}" + (f" {SHARED_WORD}" if n % 5 == 0 else "")


def crowd(n: int) -> str | None:
    """Names sorting before "hélène dupont" that start with "hel", or hold a word starting
    with "dupn": more than the typo pass takes for each of those prefixes alone."""
    if 100 <= n < 350:
        return f"Helea Qo{n}"
    if 400 <= n < 650:
        return f"Adam Dupna{n}"
    return None


def manifest_lines(count: int) -> Iterator[str]:
    rng = random.Random(11)
    for n in range(count):
        name = "Hélène Dupont" if n == count // TARGET else crowd(n) or filler_name(rng, n)
        order = "ORD-TARGET" if n == count // TARGET else f"ORD-{n // 3:08d}"
        yield f"M\tT{n:09d}\t0\t{order}\t{name}\tCAT{n % 4}\t{1 + n % 32}\t{n % 3 * 2}\n"


def big_store(folder: Path, count: int) -> Path:
    """A store holding a snapshot of `count` manifest entries, applied the usual way (the
    publisher's file format, FeedStore.apply): the bulk path builds the search indexes."""
    folder.mkdir(parents=True, exist_ok=True)
    ref = write_file(folder, FileKind.SNAPSHOT, EVENT, 0, 1, manifest_lines(count))
    body = index_body(event=EVENT, kid=FEED_KID, sequence=1, published_at=T0, ends_at=None,
                      snapshot=ref, revocations=0, manifest=count, deltas=[])
    index = parse_index(sign_index(body, FEED_KEY), trust=trust(), event=EVENT)
    path = folder / "feeds.db"
    with FeedStore.open(path) as store:
        store.apply(index, [FeedFile(ref, folder / ref.name)], fetched_at=float(T0))
    return path


def target_id(count: int) -> str:
    return f"T{count // TARGET:09d}"


def traced(store: FeedStore, action: Callable[[], object]) -> list[str]:
    """The SQL statements (parameters expanded) `action` ran on the store's connection."""
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    try:
        action()
    finally:
        store._conn.set_trace_callback(None)
    # FTS5 reads its own shadow tables (its settings, its segments) by statements of its own
    return [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))
            and "'main'.'manifest_words_" not in s]


def scans(path: Path, statements: list[str]) -> list[str]:
    """Steps of the statements' query plans that read a whole table or index, or all of
    an event's entries (a search on the event alone); a virtual table's own search (FTS5
    MATCH, json_each over a bound list) is not one."""
    connection = sqlite3.connect(path)
    try:
        found = []
        for statement in statements:
            for row in connection.execute("EXPLAIN QUERY PLAN " + statement):
                detail = str(row[3])
                if (detail.startswith("SCAN") and "VIRTUAL TABLE" not in detail) or \
                        detail.endswith("(event=?)"):
                    found.append(f"{detail}  <-  {statement[:120]}")
        return found
    finally:
        connection.close()


@pytest.fixture(scope="module")
def store_20k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return big_store(tmp_path_factory.mktemp("lookup-20k"), 20_000)


@pytest.mark.parametrize("query", ["T000002857", "t000002857", "ORD-TARGET", "ord-00001234",
                                   "Hélène Dup", "helene dupont", "dupont", "dupont helene",
                                   "zanzibar", "Helene Dupnot", "nobody at all", "%"])
def test_every_lookup_query_is_an_index_search(store_20k: Path, query: str) -> None:
    with FeedStore.open(store_20k) as store:
        statements = traced(store, lambda: steward_lookup.lookup(store, EVENT, query))
        assert statements, "the lookup asked the store nothing"
        assert scans(store_20k, statements) == []


def test_exact_id_order_and_name_prefix_use_their_own_index(store_20k: Path) -> None:
    with FeedStore.open(store_20k) as store:
        for query, index in (("T000002857", "manifest_by_ticket"),
                             ("ORD-TARGET", "manifest_by_order"),
                             ("hélène du", "manifest_by_name")):
            plans = " ".join(str(row[3]) for statement in traced(
                store, lambda q=query: store.lookup(EVENT, q)) for row in store._conn.execute(
                "EXPLAIN QUERY PLAN " + statement))
            assert f"USING INDEX {index}" in plans, (query, plans)


@pytest.mark.parametrize("count", [20_000, pytest.param(1_000_000, marks=pytest.mark.slow)])
def test_lookups_on_a_large_manifest_find_the_entry_with_bounded_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    path = big_store(tmp_path, count)
    steps: list[int] = []
    over_time = store_module._Found.over_time

    def counting(found: store_module._Found) -> int:  # SQLite calls it every 1,000 steps
        steps.append(1)
        return over_time(found)

    monkeypatch.setattr(store_module._Found, "over_time", counting)
    wanted = target_id(count)
    with FeedStore.open(path) as store:
        for query, match in ((wanted, "ticket_id"), (wanted.lower(), "ticket_id"),
                             ("ORD-TARGET", "order_ref"), ("Hélène Dupont", "name"),
                             ("helene dup", "name_prefix"), ("dupont", "name_words"),
                             ("Helene Dupnot", "near"), ("Hélène Dupnot", "near")):
            steps.clear()
            answer = steward_lookup.answer(store, EVENT, query, budget_s=600.0)
            assert [(c["ticket_id"], c["match"]) for c in answer.candidates][:1] == [
                (wanted, match)], query
            assert answer.truncated is False, query
            # the same work on 20,000 entries as on 1,000,000: never a pass over them all
            assert len(steps) < 200, (query, len(steps))
        steps.clear()
        assert steward_lookup.answer(store, EVENT, "Quentin Xylophone",
                                     budget_s=600.0).candidates == ()
        assert len(steps) < 200


def test_a_word_shared_by_many_names_is_answered_marked_truncated(store_20k: Path) -> None:
    assert WORD_CANDIDATES < 20_000 // 5  # names holding the shared word
    with FeedStore.open(store_20k) as store:
        result = store.search(EVENT, "zanzibar", limit=10, deadline=time.monotonic() + 600)
        assert result.truncated is True  # 2,000 of the names holding it were ranked
        assert len(result.candidates) == 10
        assert all(c.match is MatchKind.NAME_WORDS and
                   fold(c.entry.holder_name).endswith(" zanzibar") for c in result.candidates)
        keys = [fold(c.entry.holder_name) for c in result.candidates]
        assert keys == sorted(keys)
        assert store.min_valid_generation(EVENT, "T000000001") is None  # still reads


def test_a_lookup_past_its_time_budget_answers_what_it_found_marked_truncated(
        store_20k: Path) -> None:
    with FeedStore.open(store_20k) as store:
        late = store.search(EVENT, "zanzibar", limit=10, deadline=time.monotonic() - 1.0)
        assert late.truncated is True and late.candidates == ()
        answer = steward_lookup.answer(store, EVENT, "Helene Dupnot", budget_s=0.0)
        assert answer.truncated is True and answer.candidates == ()
        # the store answers in full again with time to do it
        assert [c.entry.ticket_id for c in store.search(
            EVENT, "dupont", deadline=time.monotonic() + 600).candidates] == [target_id(20_000)]


def test_the_purge_leaves_no_word_of_a_name_in_the_file(tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert b"oeuvray" in store.path.read_bytes()  # the word index holds the name's words
        store.purge_personal_data(EVENT, now=float(T0))
        assert store.lookup(EVENT, "oeuvray") == ()
        data = store.path.read_bytes()
    assert b"oeuvray" not in data and b"Oeuvray" not in data and b"\xc5\x92uvray" not in data


@pytest.mark.parametrize("recursive_triggers", ["OFF", "ON"])
def test_the_word_index_follows_deltas_replacements_and_removals(
        tmp_path: Path, recursive_triggers: str) -> None:
    """Whether replacing an entry fires the delete trigger or not (SQLite's recursive
    triggers, off on the store's own connection, on by default in some builds)."""
    from tests.revocation.test_store import craft

    folder = tmp_path / "files"
    folder.mkdir()
    index, first = craft(folder, FileKind.SNAPSHOT, [
        "M\tA1\t0\tO-1\tAnne Zanzibar\tC\t1\t0\n", "M\tA2\t0\tO-2\tBruno Zanzibar\tC\t1\t0\n",
        "M\tA3\t0\tO-3\tCarla Quince\tC\t1\t0\n"], sequence=1, manifest=3)
    with FeedStore.open(tmp_path / "feeds.db") as store:
        store._conn.execute(f"PRAGMA recursive_triggers = {recursive_triggers}")
        store.apply(index, [first], fetched_at=0.0)
        index, delta = craft(folder, FileKind.DELTA, [  # renamed, removed, same name, new
            "M\tA1\t1\tO-1\tAnne Other\tC\t1\t0\n", "M-\tA2\n",
            "M\tA3\t1\tO-3\tCarla Quince\tC\t2\t0\n",
            "M\tA4\t0\tO-4\tDora Zanzibar\tC\t1\t0\n"], sequence=2, start=1, manifest=3)
        store.apply(index, [delta], fetched_at=0.0)
        assert [c.entry.ticket_id for c in store.lookup(EVENT, "zanzibar")] == ["A4"]
        assert [c.entry.ticket_id for c in store.lookup(EVENT, "other")] == ["A1"]
        assert [(c.entry.ticket_id, c.entry.generation)
                for c in store.lookup(EVENT, "quince")] == [("A3", 1)]
        assert store.lookup(EVENT, "bruno") == ()  # removed, words and all
        connection = store._conn
        (keys,) = connection.execute("SELECT count(*) FROM manifest_word_key").fetchone()
        (entries,) = connection.execute("SELECT count(*) FROM manifest").fetchone()
        assert keys == entries == 3
        # FTS5 checks its own structure (raises on a damaged index)
        connection.execute("INSERT INTO manifest_words (manifest_words) "
                           "VALUES ('integrity-check')")


def test_a_store_of_schema_2_gains_the_word_index_on_open(tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        path = store.path
    connection = sqlite3.connect(path)
    for statement in _WORD_SEARCH_DROP:
        connection.execute(statement)
    connection.execute("PRAGMA user_version = 2")
    connection.commit()
    connection.close()
    with pytest.raises(store_module.StoreError, match="schema version 2"):
        FeedStore.open_reader(path)  # a reader never migrates
    with FeedStore.open(path) as store:
        assert [c.entry.ticket_id for c in store.lookup(EVENT, "dupont")] == ["T-KEEP"]
        assert store.min_valid_generation(EVENT, "T-SOLD") == 2
    with FeedStore.open_reader(path) as reader:
        assert reader._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [c.entry.ticket_id for c in reader.lookup(EVENT, "oeuvray")] == ["T-GONE"]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._conn.execute("DELETE FROM manifest")


# --- the decision never waits on a lookup -------------------------------------------------

def wait_for(event: threading.Event, what: str) -> None:
    if not event.wait(timeout=60):
        raise AssertionError(f"{what} did not happen")


@pytest.mark.parametrize("held_in", ["rows", "query"])
def test_a_decision_never_waits_on_a_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            held_in: str) -> None:
    """A lookup is held still in the middle of its work (reading its rows, or inside a
    running SQLite query, from its progress handler); the decision's revocation question,
    the status and the manual admit's manifest read are answered meanwhile."""
    with applied(tmp_path):
        pass
    view = SharedFeedView(tmp_path / "feeds.db", event=EVENT)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        if threading.current_thread().name == "steward-lookup":
            inside.set()
            wait_for(release, "the release of the lookup")

    if held_in == "rows":
        entry = store_module._entry

        def held_entry(row: object) -> object:
            hold()
            return entry(row)  # type: ignore[arg-type]

        monkeypatch.setattr(store_module, "_entry", held_entry)
    else:
        over_time = store_module._Found.over_time

        def held_progress(found: store_module._Found) -> int:
            hold()
            return over_time(found)

        monkeypatch.setattr(store_module, "_PROGRESS_STEPS", 1)
        monkeypatch.setattr(store_module._Found, "over_time", held_progress)
    answers: list[object] = []

    def look_up() -> None:
        if held_in == "rows":
            answers.extend(view.lookup(EVENT, "dupont"))
        else:  # a deadline far away: the answer is whole however long it was held
            answers.extend(view.search(EVENT, "dupont",
                                       deadline=time.monotonic() + 600).candidates)

    steward = threading.Thread(target=look_up, name="steward-lookup")
    steward.start()
    try:
        wait_for(inside, "the lookup reaching its query")
        decided = threading.Event()
        results: list[object] = []

        def decide() -> None:
            results.extend([view.min_valid_generation(EVENT, "T-GONE"),
                            view.min_valid_generation(EVENT, "T-KEEP"),
                            view.status(EVENT).sequence,  # type: ignore[union-attr]
                            view.manifest_entry(EVENT, "T-SOLD").generation])  # type: ignore[union-attr]
            decided.set()

        threading.Thread(target=decide, name="decision-loop", daemon=True).start()
        wait_for(decided, "the decision while a lookup is held")
        assert results == [CANCELLED, None, 1, 2]
        assert steward.is_alive() and not answers  # the lookup is still held
    finally:
        release.set()
        steward.join(timeout=60)
        view.close()
    assert [c.entry.ticket_id for c in answers] == ["T-KEEP"]  # type: ignore[attr-defined]


def test_lookups_beyond_the_readers_wait_then_are_refused_clearly(tmp_path: Path) -> None:
    with applied(tmp_path):
        pass
    view = SharedFeedView(tmp_path / "feeds.db", event=EVENT, readers=1, wait_s=0.05)
    try:
        with view.lookup_store() as first:
            with pytest.raises(LookupBusyError, match="too many lookups at once"):
                view.search(EVENT, "dupont")
            assert [c.entry.ticket_id for c in first.lookup(EVENT, "dupont")] == ["T-KEEP"]
            assert view.min_valid_generation(EVENT, "T-SOLD") == 2  # decisions go on
        assert [c.entry.ticket_id for c in view.lookup(EVENT, "dupont")] == ["T-KEEP"]
    finally:
        view.close()
