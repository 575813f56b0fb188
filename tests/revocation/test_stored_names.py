"""Holder names a store already holds with bidi or format characters (written before names
were cleaned on parse, or by anything else than a feed) never reach a lookup's answer nor
`gate feed lookup` as they are: cleaned once when the store is opened for writing (schema
version 4), and cleaned again on the way out, with the parser's own helper."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from portique.commands.main import EXIT_OK, main
from portique.revocation import lookup as steward_lookup
from portique.revocation import store as store_module
from portique.revocation.format import REPLACEMENT, fold
from portique.revocation.store import SCHEMA_VERSION, FeedStore
from tests.revocation.conftest import EVENT
from tests.revocation.test_store import applied

HOSTILE = "Marie \u202eDupont\u2066\u200b"
"""A right-to-left override, an isolate and a zero-width space: none may reach a screen."""
CLEAN = "Marie \ufffdDupont\ufffd\ufffd"
UNSAFE = ("\u202e", "\u2066", "\u200b")


def write_name(path: Path, ticket_id: str, name: str, *, version: int | None = None) -> None:
    """Write a holder name (and its search key, as the store of the time did) straight
    into the SQLite file, past the parser."""
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE manifest SET holder_name = ?, name_key = ? "
                           "WHERE event = ? AND ticket_id = ?",
                           (name, fold(name), EVENT, ticket_id))
        if version is not None:
            connection.execute(f"PRAGMA user_version = {version}")
    connection.close()


def stored_name(path: Path, ticket_id: str) -> tuple[str, str]:
    connection = sqlite3.connect(path)
    try:
        row = connection.execute("SELECT holder_name, name_key FROM manifest WHERE "
                                 "event = ? AND ticket_id = ?", (EVENT, ticket_id)).fetchone()
    finally:
        connection.close()
    return row[0], row[1]


def test_a_store_of_schema_3_has_its_names_cleaned_once_on_open(tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        path = store.path
    write_name(path, "T-KEEP", HOSTILE, version=3)
    with pytest.raises(store_module.StoreError, match="schema version 3"):
        FeedStore.open_reader(path)  # a reader never migrates
    with FeedStore.open(path) as store:
        assert store.manifest_entry(EVENT, "T-KEEP").holder_name == CLEAN  # type: ignore[union-attr]
        assert [c.entry.ticket_id for c in store.lookup(EVENT, "marie")] == ["T-KEEP"]
    assert stored_name(path, "T-KEEP") == (CLEAN, fold(CLEAN))
    assert stored_name(path, "T-SOLD")[0] == "Zoë Lefèvre"  # clean names untouched
    with FeedStore.open_reader(path) as reader:
        assert reader._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    connection = sqlite3.connect(path)
    try:  # the word index followed the update (FTS5 raises on a damaged index)
        connection.execute("INSERT INTO manifest_words (manifest_words) "
                           "VALUES ('integrity-check')")
    finally:
        connection.close()


def test_a_name_written_past_the_parser_is_cleaned_in_the_lookups_answer(
        tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        path = store.path
    write_name(path, "T-KEEP", HOSTILE)  # at the current version: no migration runs
    with FeedStore.open_reader(path) as reader:
        assert reader.manifest_entry(EVENT, "T-KEEP").holder_name == HOSTILE  # type: ignore[union-attr]
        found = steward_lookup.lookup(reader, EVENT, "marie")
        near = steward_lookup.lookup(reader, EVENT, "marei")  # the typo pass too
    assert [c["ticket_id"] for c in found] == ["T-KEEP"]
    assert found[0]["holder"] == CLEAN
    assert [c["holder"] for c in near] == [CLEAN]
    assert not any(char in json.dumps(found + near, ensure_ascii=False) for char in UNSAFE)


def test_gate_feed_lookup_prints_the_cleaned_name(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with applied(tmp_path) as store:
        path = store.path
    write_name(path, "T-KEEP", HOSTILE)
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "g1"\nevent = "{EVENT}"\nentrance = 1\n'
                      f'[keys]\ntrust_dir = "{tmp_path}"\n'
                      f'[feeds]\nstore = "{path}"\nbase_url = "http://127.0.0.1:9/"\n',
                      encoding="utf-8")
    for extra in ([], ["--json"]):
        assert main(["feed", "lookup", "marie", "--config", str(config),
                     *extra]) == EXIT_OK
        out = capsys.readouterr().out
        assert not any(char in out for char in UNSAFE)
        if extra:
            assert json.loads(out)["matches"][0]["holder_name"] == CLEAN
        else:
            assert CLEAN in out and REPLACEMENT in out
