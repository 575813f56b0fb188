"""The format's strictness and the store's behaviour, on real files and real SQLite."""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
from pathlib import Path

import pytest

from portique.revocation.errors import (
    FeedFormatError,
    FeedGapError,
    FeedHashError,
    FeedKeyError,
    FeedReplayError,
)
from portique.revocation.format import (
    FeedIndex,
    FileKind,
    FileRef,
    fold,
    header,
    index_body,
    parse_index,
    sign_index,
)
from portique.revocation.publish import FeedState
from portique.revocation.store import (
    _WORD_SEARCH_DROP,
    SCHEMA_VERSION,
    FeedFile,
    FeedStore,
    MatchKind,
)
from portique.ticket.trust import KeyRole, TrustedKey, TrustStore
from portique.ticket.views import CANCELLED
from tests.revocation.conftest import (
    EVENT,
    FEED_KEY,
    FEED_KID,
    OTHER_EVENT,
    STATE_1,
    STATE_2,
    T0,
    dump,
    entry,
    publish_state,
    trust,
)


def craft(folder: Path, kind: FileKind, lines: list[str], *, sequence: int,
          start: int = 0, event: str = EVENT, revocations: int = 0,
          manifest: int = 0) -> tuple[FeedIndex, FeedFile]:
    """A file of exactly these record lines, and a validly signed index naming it."""
    name = (f"snapshot-{sequence}.tsv.gz" if kind is FileKind.SNAPSHOT
            else f"delta-{start}-{sequence}.tsv.gz")
    data = gzip.compress((header(kind, event, start, sequence) + "".join(lines)).encode(),
                         mtime=0)
    (folder / name).write_bytes(data)
    ref = FileRef(kind, name, start, sequence, hashlib.sha256(data).hexdigest(), len(data))
    snapshot = ref if kind is FileKind.SNAPSHOT else FileRef(
        FileKind.SNAPSHOT, f"snapshot-{sequence}.tsv.gz", 0, sequence, "0" * 64, 1)
    body = index_body(event=event, kid=FEED_KID, sequence=sequence, published_at=T0 + sequence,
                      ends_at=None, snapshot=snapshot, revocations=revocations,
                      manifest=manifest, deltas=[] if kind is FileKind.SNAPSHOT else [ref])
    index = parse_index(sign_index(body, FEED_KEY), trust=trust(), event=event)
    return index, FeedFile(ref, folder / name)


def resigned_delta(index: FeedIndex, feed_file: FeedFile, data: bytes
                   ) -> tuple[FeedIndex, FileRef]:
    """The delta 1->2 of `craft` with `data` as its bytes, in a validly signed index: so that
    only what the file holds, not its hash or signature, can be wrong."""
    feed_file.path.write_bytes(data)
    ref = FileRef(FileKind.DELTA, feed_file.ref.name, 1, 2,
                  hashlib.sha256(data).hexdigest(), len(data))
    body = index_body(event=EVENT, kid=FEED_KID, sequence=2, published_at=T0 + 2,
                      ends_at=None, snapshot=index.snapshot, revocations=0, manifest=0,
                      deltas=[ref])
    return parse_index(sign_index(body, FEED_KEY), trust=trust(), event=EVENT), ref


def applied(tmp_path: Path, state: FeedState = STATE_1, *, at: int = T0) -> FeedStore:
    """A store holding `state` for EVENT at sequence 1."""
    out = tmp_path / "pub"
    result = publish_state(out, state, at=at)
    index = parse_index((result.folder / "index.json").read_bytes(), trust=trust(),
                        event=EVENT)
    store = FeedStore.open(tmp_path / "feeds.db")
    store.apply(index, [FeedFile(index.snapshot, result.folder / index.snapshot.name)],
                fetched_at=float(at))
    return store


def test_fold_ignores_case_accents_ligatures_and_separators() -> None:
    assert fold("  Zoë  d'Arc-Lefèvre ") == "zoe d arc lefevre"
    assert fold("ŒUVRAY Jean‑Pierre") == fold("oeuvray jean pierre")
    assert fold("Nguyễn Văn Ân") == "nguyen van an"
    assert fold("Straße Søren Łukasz") == "strasse soren lukasz"


GOOD_M = "M\tT1\t0\tORD-1\tAnne\tCAT\t1,2\t0\n"


@pytest.mark.parametrize(("lines", "kind", "message"), [
    (["M\tT1\t0\tORD-1\tAnne\tCAT\t1\t0\n", "R\tT1\t2\n"], FileKind.SNAPSHOT,
     "line 3: revocation after manifest entries"),
    (["R\tT2\t2\n", "R\tT1\t2\n"], FileKind.SNAPSHOT, "line 3: ticket 'T1' out of order"),
    (["R\tT1\t2\n", "R\tT1\t3\n"], FileKind.SNAPSHOT, "out of order or repeated"),
    (["R\tT1\t0\n"], FileKind.SNAPSHOT, "minimum generation 0 outside 1..65535"),
    (["R\tT1\t65536\n"], FileKind.SNAPSHOT, "outside 1..65535"),
    (["R\tT1\t02\n"], FileKind.SNAPSHOT, "malformed revocation"),
    (["M\tT1\t65535\tORD-1\tAnne\tCAT\t1\t0\n"], FileKind.SNAPSHOT, "generation 65535 above"),
    (["M\tT1\t0\tORD-1\tAnne\tCAT\t33\t0\n"], FileKind.SNAPSHOT, "malformed manifest"),
    (["M\tT1\t0\tORD-1\tAnne\tCAT\t2,1\t0\n"], FileKind.SNAPSHOT, "must be ascending"),
    (["M\tT1\t0\tORD-1\tAnne\tCAT\t1\t8\n"], FileKind.SNAPSHOT, "unknown flag bits"),
    (["M\tT1\t0\tORD-1\tZoe\u0308\tCAT\t1\t0\n"], FileKind.SNAPSHOT, "must be NFC"),
    (["M\tT1\t0\tORD 1\tAnne\tCAT\t1\t0\n"], FileKind.SNAPSHOT, "malformed manifest"),
    (["R-\tT1\n"], FileKind.SNAPSHOT, "line 2: unknown record"),
    (["R\tT1\t2"], FileKind.SNAPSHOT, "no final newline"),
    (["R\tT1\t2\r\n"], FileKind.SNAPSHOT, "malformed revocation"),
    (["X\tT1\n"], FileKind.DELTA, "unknown record"),
])
def test_a_malformed_file_rolls_back_and_names_the_line(tmp_path: Path, lines: list[str],
                                                        kind: FileKind, message: str) -> None:
    with applied(tmp_path) as store:
        before = dump(store.path)
        index, feed_file = craft(tmp_path, kind, lines, sequence=2,
                                 start=0 if kind is FileKind.SNAPSHOT else 1,
                                 revocations=1)
        with pytest.raises(FeedFormatError, match=message):
            store.apply(index, [feed_file], fetched_at=float(T0))
        assert store.min_valid_generation(EVENT, "T-SOLD") == 2
    assert dump(tmp_path / "feeds.db") == before


def test_a_header_for_another_place_in_the_chain_is_refused(tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        index, feed_file = craft(tmp_path, FileKind.DELTA, [], sequence=2, start=1)
        data = gzip.compress(header(FileKind.DELTA, EVENT, 0, 2).encode(), mtime=0)
        index, ref = resigned_delta(index, feed_file, data)
        with pytest.raises(FeedFormatError, match="line 1: header"):
            store.apply(index, [FeedFile(ref, feed_file.path)], fetched_at=0.0)


def test_a_file_changed_after_download_is_refused_at_apply(tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        before = dump(store.path)
        index, feed_file = craft(tmp_path, FileKind.DELTA, ["R\tT-KEEP\t1\n"], sequence=2,
                                 start=1)
        feed_file.path.write_bytes(gzip.compress(
            (header(FileKind.DELTA, EVENT, 1, 2) + "R\tT-KEEP\t9\n").encode(), mtime=0))
        with pytest.raises(FeedHashError):
            store.apply(index, [feed_file], fetched_at=0.0)
        assert dump(store.path) == before


def test_snapshot_counts_must_match_the_index(tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        index, feed_file = craft(tmp_path, FileKind.SNAPSHOT, ["R\tT1\t2\n"], sequence=2,
                                 revocations=2)
        with pytest.raises(FeedFormatError, match="holds 1 revocations"):
            store.apply(index, [feed_file], fetched_at=0.0)


def test_the_store_never_goes_back(tmp_path: Path) -> None:
    with applied(tmp_path, at=T0 + 100) as store:
        before = dump(store.path)
        index, feed_file = craft(tmp_path, FileKind.SNAPSHOT, [], sequence=1)
        with pytest.raises(FeedReplayError, match=r"signed at .* before the store's"):
            store.apply(index, [feed_file], fetched_at=0.0)
        index, feed_file = craft(tmp_path, FileKind.SNAPSHOT, [], sequence=2)
        with pytest.raises(FeedReplayError, match=r"signed at .* before the store's"):
            store.apply(index, [feed_file], fetched_at=0.0)  # newer sequence, older time
    assert dump(tmp_path / "feeds.db") == before


def test_the_store_never_goes_to_an_older_sequence(tmp_path: Path) -> None:
    with applied(tmp_path, at=T0) as store:
        index, feed_file = craft(tmp_path, FileKind.SNAPSHOT, [], sequence=1)
        with pytest.raises(FeedReplayError, match="already at sequence 1"):
            store.apply(index, [feed_file], fetched_at=0.0)
        index, feed_file = craft(tmp_path, FileKind.SNAPSHOT, [], sequence=5)
        store.apply(index, [feed_file], fetched_at=0.0)
        index, feed_file = craft(tmp_path, FileKind.SNAPSHOT, [], sequence=4)
        with pytest.raises(FeedReplayError, match="sequence 4 is older than the store's 5"):
            store.apply(index, [feed_file], fetched_at=0.0)
        later, delta = craft(tmp_path, FileKind.DELTA, [], sequence=8, start=7)
        with pytest.raises(FeedGapError, match="does not continue from sequence 5"):
            store.apply(later, [delta], fetched_at=0.0)
        assert store.status(EVENT).sequence == 5  # type: ignore[union-attr]


def test_index_key_checks(tmp_path: Path) -> None:
    result = publish_state(tmp_path, STATE_1, at=T0)
    data = (result.folder / "index.json").read_bytes()
    withdrawn = TrustStore.of([TrustedKey(FEED_KID, FEED_KEY.public_key().public_bytes_raw(),
                                          KeyRole.FEED, withdrawn=True)])
    with pytest.raises(FeedKeyError, match="not usable: withdrawn"):
        parse_index(data, trust=withdrawn, event=EVENT)
    other_event = TrustStore.of([TrustedKey(FEED_KID,
                                            FEED_KEY.public_key().public_bytes_raw(),
                                            KeyRole.FEED, events=frozenset({OTHER_EVENT}))])
    with pytest.raises(FeedKeyError, match="wrong_event"):
        parse_index(data, trust=other_event, event=EVENT)
    expired = TrustStore.of([TrustedKey(FEED_KID, FEED_KEY.public_key().public_bytes_raw(),
                                        KeyRole.FEED, valid_until=T0 - 1)])
    with pytest.raises(FeedKeyError, match="expired"):
        parse_index(data, trust=expired, event=EVENT)


def test_views_and_status(tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        assert store.min_valid_generation(EVENT, "T-SOLD") == 2
        assert store.min_valid_generation(EVENT, "T-GONE") == CANCELLED
        assert store.min_valid_generation(EVENT, "T-KEEP") is None
        assert store.min_valid_generation(OTHER_EVENT, "T-SOLD") is None
        status = store.status(EVENT)
        assert status is not None
        assert (status.sequence, status.published_at, status.revocations,
                status.manifest, status.kid) == (1, T0, 2, 3, FEED_KID)
        assert status.age(T0 + 90) == 90
        assert store.status(OTHER_EVENT) is None


def test_lookup_is_ranked_case_and_accent_insensitive(tmp_path: Path) -> None:
    state = FeedState({}, {e.ticket_id: e for e in (
        entry("T1", 0, "Zoë Lefèvre", "ORD-1"),
        entry("T2", 0, "Zoé Lefebvre", "ORD-2"),
        entry("T3", 0, "Marc Zoe", "ORD-3"),
        entry("ZOE", 0, "Anne Martin", "ORD-4"),
        entry("T5", 0, "Léa Martin-Zoellner", "zoe"),
    )})
    with applied(tmp_path, state) as store:
        found = store.lookup(EVENT, "ZOE", limit=10)
        assert [(c.match, c.entry.ticket_id) for c in found] == [
            (MatchKind.TICKET_ID, "ZOE"), (MatchKind.ORDER_REF, "T5"),
            (MatchKind.NAME_PREFIX, "T2"), (MatchKind.NAME_PREFIX, "T1"),
            (MatchKind.NAME_WORDS, "T3")]
        assert [c.entry.ticket_id for c in store.lookup(EVENT, "zoe lefevre")] == ["T1"]
        assert [c.entry.ticket_id for c in store.lookup(EVENT, "LEFÈVRE zoë")] == ["T1"]
        assert [c.entry.ticket_id for c in store.lookup(EVENT, "martin")] == ["ZOE", "T5"]
        assert len(store.lookup(EVENT, "zoe", limit=2)) == 2
        assert store.lookup(EVENT, "%") == ()


def test_events_are_kept_apart(tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        other = publish_state(tmp_path / "other", STATE_2, at=T0, event=OTHER_EVENT)
        index = parse_index((other.folder / "index.json").read_bytes(), trust=trust(),
                            event=OTHER_EVENT)
        store.apply(index, [FeedFile(index.snapshot, other.folder / index.snapshot.name)],
                    fetched_at=0.0)
        assert store.min_valid_generation(OTHER_EVENT, "T-KEEP") == 1
        assert store.min_valid_generation(EVENT, "T-KEEP") is None
        assert store.status(EVENT).manifest == 3  # type: ignore[union-attr]


def test_the_store_file_is_private_to_its_owner_and_group(tmp_path: Path) -> None:
    path = tmp_path / "feeds.db"
    FeedStore.open(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    os.chmod(path, 0o644)
    FeedStore.open(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_purge_is_due_a_set_time_after_the_event_ends(tmp_path: Path) -> None:
    out = tmp_path / "pub"
    result = publish_state(out, STATE_1, at=T0, ends_at=T0 + 3600)
    index = parse_index((result.folder / "index.json").read_bytes(), trust=trust(),
                        event=EVENT)
    with FeedStore.open(tmp_path / "feeds.db") as store:
        store.apply(index, [FeedFile(index.snapshot, result.folder / index.snapshot.name)],
                    fetched_at=0.0)
        assert store.purge_due(now=T0 + 3600 + 7199, after_seconds=7200) == ()
        assert store.lookup(EVENT, "dupont")[0].entry.holder_name == "Marie Dupont"
        purged = store.purge_due(now=T0 + 3600 + 7200, after_seconds=7200)
        assert [(p.event, p.names) for p in purged] == [(EVENT, 3)]
        assert store.lookup(EVENT, "dupont") == ()
        assert store.manifest_entry(EVENT, "T-KEEP").order_ref == "ORD-300"  # type: ignore[union-attr]
        assert store.status(EVENT).purged_at == T0 + 3600 + 7200  # type: ignore[union-attr]


def test_lookup_by_ticket_id_ignores_case_and_accents(tmp_path: Path) -> None:
    state = FeedState({}, {e.ticket_id: e for e in (
        entry("PAR24-000101", 0, "Anne Martin", "ORD-1"),
        entry("ab.c_d-9", 0, "Marc Zoe", "ORD-2"),
    )})
    with applied(tmp_path, state) as store:
        for query in ("par24-000101", " PAR24-000101 ", "Pár24-000101"):
            found = store.lookup(EVENT, query)
            assert [(c.match, c.entry.ticket_id) for c in found] == [
                (MatchKind.TICKET_ID, "PAR24-000101")], query
        assert [c.entry.ticket_id for c in store.lookup(EVENT, "AB.C_D-9")] == ["ab.c_d-9"]
        assert store.lookup(EVENT, "ab c d 9") == ()  # separators are part of an id
        plan = store._conn.execute(
            "EXPLAIN QUERY PLAN SELECT ticket_id FROM manifest WHERE event = ? AND "
            "ticket_id = ? COLLATE NOCASE", (EVENT, "x")).fetchall()
        assert "manifest_by_ticket" in str(plan)  # an index search, not a scan


def test_a_store_of_schema_1_gains_the_ticket_id_index(tmp_path: Path) -> None:
    import sqlite3

    with applied(tmp_path) as store:
        path = store.path
    connection = sqlite3.connect(path)
    connection.execute("DROP INDEX manifest_by_ticket")
    for statement in _WORD_SEARCH_DROP:  # added by schema 3
        connection.execute(statement)
    connection.execute("PRAGMA user_version = 1")
    connection.commit()
    connection.close()
    with FeedStore.open(path) as store:
        assert [c.entry.ticket_id for c in store.lookup(EVENT, "t-keep")] == ["T-KEEP"]
        assert store.min_valid_generation(EVENT, "T-SOLD") == 2
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert connection.execute("SELECT name FROM sqlite_master WHERE name = "
                              "'manifest_by_ticket'").fetchone() is not None
    connection.close()


def test_purge_warns_when_a_reader_keeps_names_in_the_wal(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import sqlite3

    with applied(tmp_path) as store:
        reader = sqlite3.connect(store.path, isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM manifest").fetchone()[0] == 3
        with caplog.at_level(logging.WARNING, logger="portique.revocation.store"):
            purged = store.purge_personal_data(EVENT, now=float(T0))
        assert (purged.names, purged.wal_truncated) == (3, False)
        assert "may remain" in caplog.text and "feeds.db-wal" in caplog.text
        assert store.lookup(EVENT, "dupont") == ()  # erased for every reader after it
        reader.execute("ROLLBACK")
        reader.close()
        again = store.purge_personal_data(EVENT, now=float(T0 + 1))
        assert (again.names, again.wal_truncated) == (0, True)
        assert os.path.getsize(f"{store.path}-wal") == 0


@pytest.mark.parametrize(("extra", "message"), [
    (gzip.compress(b"R\tT9\t2\n", mtime=0), "bytes after the end of the gzip member"),
    (b"\0" * 8, "bytes after the end of the gzip member"),
    (b"junk", "bytes after the end of the gzip member"),
])
def test_a_file_is_exactly_one_gzip_member(tmp_path: Path, extra: bytes,
                                           message: str) -> None:
    with applied(tmp_path) as store:
        before = dump(store.path)
        index, feed_file = craft(tmp_path, FileKind.DELTA, ["R\tT-KEEP\t1\n"], sequence=2,
                                 start=1)
        data = feed_file.path.read_bytes() + extra
        index, ref = resigned_delta(index, feed_file, data)
        with pytest.raises(FeedFormatError, match=message):
            store.apply(index, [FeedFile(ref, feed_file.path)], fetched_at=0.0)
        assert dump(store.path) == before


def test_a_truncated_gzip_member_is_refused(tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        index, feed_file = craft(tmp_path, FileKind.DELTA, ["R\tT-KEEP\t1\n"], sequence=2,
                                 start=1)
        data = feed_file.path.read_bytes()[:-6]
        index, ref = resigned_delta(index, feed_file, data)
        with pytest.raises(FeedFormatError, match="cannot be read as gzip"):
            store.apply(index, [FeedFile(ref, feed_file.path)], fetched_at=0.0)
