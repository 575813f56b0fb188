"""The format's bounds (integers, line lengths, sequence jumps), the signed counts checked
after every apply, and holder names cleaned of characters that would reach a steward's
screen: each on real files and a real SQLite store."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import sys
import tracemalloc
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from portique.revocation.errors import (
    FeedCountError,
    FeedFormatError,
    FeedSequenceJumpError,
)
from portique.revocation.format import (
    INDEX_NAME,
    MAX_INTEGER,
    MAX_LINE_CHARS,
    MAX_SEQUENCE_JUMP,
    UNSAFE_TEXT_RE,
    FeedIndex,
    FileKind,
    FileRef,
    canonical_json,
    header,
    index_body,
    parse_index,
    sign_index,
)
from portique.revocation.publish import FeedState
from portique.revocation.store import FeedFile, FeedStore
from portique.revocation.sync import SyncOutcome
from portique.ticket.views import CANCELLED
from tests.revocation.conftest import (
    EVENT,
    FEED_KEY,
    FEED_KID,
    STATE_1,
    T0,
    FeedServer,
    client,
    dump,
    entry,
    publish_state,
    trust,
)


def applied(tmp_path: Path, state: FeedState = STATE_1) -> FeedStore:
    """A store holding `state` (sequence 1), applied from the reference publisher's files."""
    result = publish_state(tmp_path / "pub", state, at=T0)
    index = parse_index((result.folder / INDEX_NAME).read_bytes(), trust=trust(), event=EVENT)
    store = FeedStore.open(tmp_path / "feeds.db")
    store.apply(index, [FeedFile(index.snapshot, result.folder / index.snapshot.name)],
                fetched_at=float(T0))
    return store


def feed_file(folder: Path, kind: FileKind, text: str, *, start: int, sequence: int
              ) -> FeedFile:
    name = (f"snapshot-{sequence}.tsv.gz" if kind is FileKind.SNAPSHOT
            else f"delta-{start}-{sequence}.tsv.gz")
    data = gzip.compress((header(kind, EVENT, start, sequence) + text).encode(), mtime=0)
    (folder / name).write_bytes(data)
    ref = FileRef(kind, name, start, sequence, hashlib.sha256(data).hexdigest(), len(data))
    return FeedFile(ref, folder / name)


def signed(*, sequence: int, revocations: int, manifest: int, snapshot: FileRef | None = None,
           deltas: tuple[FileRef, ...] = (), published_at: int = T0 + 10) -> FeedIndex:
    """A validly signed index: only what it states can be wrong, never its signature."""
    snapshot = snapshot or FileRef(FileKind.SNAPSHOT, f"snapshot-{sequence}.tsv.gz", 0,
                                   sequence, "0" * 64, 1)
    body = index_body(event=EVENT, kid=FEED_KID, sequence=sequence, published_at=published_at,
                      ends_at=None, snapshot=snapshot, revocations=revocations,
                      manifest=manifest, deltas=deltas)
    return parse_index(sign_index(body, FEED_KEY), trust=trust(), event=EVENT)


# --- counts -----------------------------------------------------------------------------

def test_a_delta_whose_result_contradicts_the_signed_counts_is_rolled_back(
        tmp_path: Path) -> None:
    """Sequence 1 holds 2 revocations and 3 manifest entries; a delta un-revokes T-GONE
    while its signed index says the state still holds 2 revocations."""
    with applied(tmp_path) as store:
        before = dump(store.path)
        delta = feed_file(tmp_path, FileKind.DELTA, "R-\tT-GONE\n", start=1, sequence=2)
        index = signed(sequence=2, revocations=2, manifest=3, deltas=(delta.ref,))
        with pytest.raises(FeedCountError) as raised:
            store.apply(index, [delta], fetched_at=float(T0))
        assert str(raised.value) == (
            "delta-1-2.tsv.gz: holds 1 revocations and 3 manifest entries at sequence 2, "
            "the signed index says 2 and 3 (nothing applied)")
        assert store.min_valid_generation(EVENT, "T-GONE") == CANCELLED
    assert dump(tmp_path / "feeds.db") == before


def test_a_chain_of_deltas_is_checked_as_a_whole_and_rolled_back_whole(tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        before = dump(store.path)
        first = feed_file(tmp_path, FileKind.DELTA, "R\tT-KEEP\t1\n", start=1, sequence=2)
        second = feed_file(tmp_path, FileKind.DELTA, "M-\tT-KEEP\n", start=2, sequence=3)
        index = signed(sequence=3, revocations=3, manifest=3,  # T-KEEP's removal not counted
                       deltas=(first.ref, second.ref))
        with pytest.raises(FeedCountError, match="holds 3 revocations and 2 manifest entries "
                           "at sequence 3, the signed index says 3 and 3"):
            store.apply(index, [first, second], fetched_at=float(T0))
        assert store.min_valid_generation(EVENT, "T-KEEP") is None  # not even the first
    assert dump(tmp_path / "feeds.db") == before
    with FeedStore.open(tmp_path / "feeds.db") as store:  # the honest counts apply
        index = signed(sequence=3, revocations=3, manifest=2, deltas=(first.ref, second.ref))
        assert store.apply(index, [first, second], fetched_at=float(T0)).manifest == 2


def test_a_resigned_index_of_the_same_sequence_must_state_the_same_counts(
        tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        before = dump(store.path)
        index = signed(sequence=1, revocations=0, manifest=3)
        with pytest.raises(FeedCountError, match=r"index\.json: holds 2 revocations and 3 "
                           "manifest entries at sequence 1, the signed index says 0 and 3"):
            store.apply(index, [], fetched_at=float(T0))
    assert dump(tmp_path / "feeds.db") == before


def test_a_sync_whose_deltas_contradict_the_counts_takes_the_snapshot(
        feed_server: FeedServer, tmp_path: Path) -> None:
    publish_state(feed_server.folder, STATE_1, at=T0 - 600)
    with FeedStore.open(tmp_path / "feeds.db") as store:
        client(store, feed_server.url).sync()
        folder = feed_server.folder / EVENT
        # sequence 2: T-GONE un-revoked by the delta, still revoked in the snapshot, and
        # the index counting the snapshot's 2 revocations
        delta = feed_file(folder, FileKind.DELTA, "R-\tT-GONE\n", start=1, sequence=2)
        state_2 = publish_state(tmp_path / "pub", STATE_1, at=T0 - 300)
        snapshot = feed_file(folder, FileKind.SNAPSHOT, gzip.decompress(
            (state_2.folder / "snapshot-1.tsv.gz").read_bytes()).decode().split("\n", 1)[1],
            start=0, sequence=2)
        body = index_body(event=EVENT, kid=FEED_KID, sequence=2, published_at=T0 - 300,
                          ends_at=None, snapshot=snapshot.ref, revocations=2, manifest=3,
                          deltas=[delta.ref])
        (folder / INDEX_NAME).write_bytes(sign_index(body, FEED_KEY))
        # the delta is smaller than the snapshot, so it is tried first
        assert delta.ref.size < snapshot.ref.size
        result = client(store, feed_server.url).sync()
        assert (result.outcome, result.files) == (SyncOutcome.SNAPSHOT, ("snapshot-2.tsv.gz",))
        assert store.min_valid_generation(EVENT, "T-GONE") == CANCELLED


# --- integers and sequence jumps ----------------------------------------------------------

def index_bytes(**changes: object) -> bytes:
    body = json.loads(sign_index(index_body(
        event=EVENT, kid=FEED_KID, sequence=1, published_at=T0, ends_at=None,
        snapshot=FileRef(FileKind.SNAPSHOT, "snapshot-1.tsv.gz", 0, 1, "0" * 64, 1),
        revocations=0, manifest=0, deltas=[]), FEED_KEY))
    body.update(changes)
    return canonical_json(body) + b"\n"


@pytest.mark.parametrize(("field", "spliced"), [
    ("sequence", b'"sequence":' + b"9" * 5000),
    ("published_at", b'"published_at":-' + b"1" * 20),
])
def test_an_index_integer_of_thousands_of_digits_is_a_format_error_naming_its_field(
        field: str, spliced: bytes) -> None:
    data = index_bytes()
    start = data.index(f'"{field}":'.encode())
    end = data.index(b",", start)
    with pytest.raises(FeedFormatError) as raised:
        parse_index(data[:start] + spliced + data[end:], trust=trust(), event=EVENT)
    assert str(raised.value).startswith(f"{INDEX_NAME}: {field}: an integer of ")
    assert "at most 9007199254740991 (2^53-1, 16 digits)" in str(raised.value)


def test_a_long_integer_inside_an_array_is_a_format_error_too() -> None:
    data = index_bytes().replace(b'"deltas":[]', b'"deltas":[' + b"7" * 5000 + b"]")
    with pytest.raises(FeedFormatError, match=r"an array item: an integer of 5000 digits"):
        parse_index(data, trust=trust(), event=EVENT)


def test_an_index_integer_above_2_53_is_refused() -> None:
    with pytest.raises(FeedFormatError, match=r"published_at must be an integer "
                       r"0\.\.2\^53-1, got 9007199254740992"):
        parse_index(index_bytes(published_at=MAX_INTEGER + 1), trust=trust(), event=EVENT)


def test_a_sequence_jump_beyond_the_limit_is_refused_and_honest_feeds_go_on(
        tmp_path: Path) -> None:
    with applied(tmp_path) as store:
        before = dump(store.path)
        far = MAX_INTEGER
        snapshot = feed_file(tmp_path, FileKind.SNAPSHOT, "", start=0, sequence=far)
        index = signed(sequence=far, revocations=0, manifest=0, snapshot=snapshot.ref)
        with pytest.raises(FeedSequenceJumpError) as raised:
            store.apply(index, [snapshot], fetched_at=float(T0))
        assert str(raised.value) == (
            f"feed of event {EVENT}: sequence {far} is {far - 1} above the store's 1, more "
            f"than the {MAX_SEQUENCE_JUMP} a feed may jump at once")
        assert dump(store.path) == before
        # the honest next feed still applies; a jump of exactly the limit is allowed
        limit = 1 + MAX_SEQUENCE_JUMP
        snapshot = feed_file(tmp_path, FileKind.SNAPSHOT, "", start=0, sequence=limit)
        index = signed(sequence=limit, revocations=0, manifest=0, snapshot=snapshot.ref)
        assert store.apply(index, [snapshot], fetched_at=float(T0)).sequence == limit


def test_an_empty_store_refuses_a_first_sequence_beyond_the_limit(tmp_path: Path) -> None:
    far = MAX_SEQUENCE_JUMP + 1
    snapshot = feed_file(tmp_path, FileKind.SNAPSHOT, "", start=0, sequence=far)
    index = signed(sequence=far, revocations=0, manifest=0, snapshot=snapshot.ref)
    with FeedStore.open(tmp_path / "feeds.db") as store:
        with pytest.raises(FeedSequenceJumpError, match="above the store's 0"):
            store.apply(index, [snapshot], fetched_at=float(T0))
        assert store.status(EVENT) is None


def test_the_sync_client_refuses_a_sequence_jump_before_downloading(
        feed_server: FeedServer, tmp_path: Path) -> None:
    publish_state(feed_server.folder, STATE_1, at=T0 - 600)
    with FeedStore.open(tmp_path / "feeds.db") as store:
        client(store, feed_server.url).sync()
        before = dump(store.path)
        folder = feed_server.folder / EVENT
        far = 2 + MAX_SEQUENCE_JUMP
        snapshot = feed_file(folder, FileKind.SNAPSHOT, "", start=0, sequence=far)
        body = index_body(event=EVENT, kid=FEED_KID, sequence=far, published_at=T0 - 60,
                          ends_at=None, snapshot=snapshot.ref, revocations=0, manifest=0,
                          deltas=[])
        (folder / INDEX_NAME).write_bytes(sign_index(body, FEED_KEY))
        feed_server.requests.clear()
        with pytest.raises(FeedSequenceJumpError, match=f"sequence {far} is"):
            client(store, feed_server.url).sync()
        assert not any(r.endswith(".tsv.gz") for r in feed_server.requests)
        assert dump(store.path) == before


# --- line lengths ---------------------------------------------------------------------------

@contextlib.contextmanager
def held_at_most(limit: int) -> Iterator[None]:
    """Fails when Python objects of more than `limit` bytes in all were alive at once
    inside the block (tracemalloc's peak: a count of bytes, not a time)."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= limit, f"{peak} bytes held at once, more than {limit}"


def test_a_line_longer_than_the_bound_is_refused_by_its_number(tmp_path: Path) -> None:
    long_name = "A" * (8 << 20)  # an 8 MiB line: refused after its first 1,024 characters
    text = f"R\tT1\t2\nM\tT1\t0\tORD-1\t{long_name}\tCAT\t1\t0\n"
    with applied(tmp_path) as store:
        before = dump(store.path)
        snapshot = feed_file(tmp_path, FileKind.SNAPSHOT, text, start=0, sequence=2)
        index = signed(sequence=2, revocations=1, manifest=1, snapshot=snapshot.ref)
        with held_at_most(2 << 20), pytest.raises(FeedFormatError) as raised:
            store.apply(index, [snapshot], fetched_at=float(T0))
        assert str(raised.value) == (f"snapshot-2.tsv.gz: line 3: longer than {MAX_LINE_CHARS} "
                                     "characters (the format's bound)")
    assert dump(tmp_path / "feeds.db") == before


def test_a_header_line_longer_than_the_bound_is_refused(tmp_path: Path) -> None:
    data = gzip.compress(b"portique-feed/1\tsnapshot\t" + b"E" * (4 << 20) + b"\n", mtime=0)
    (tmp_path / "snapshot-2.tsv.gz").write_bytes(data)
    ref = FileRef(FileKind.SNAPSHOT, "snapshot-2.tsv.gz", 0, 2,
                  hashlib.sha256(data).hexdigest(), len(data))
    with applied(tmp_path) as store:
        index = signed(sequence=2, revocations=0, manifest=0, snapshot=ref)
        with held_at_most(2 << 20), pytest.raises(
                FeedFormatError, match=r"line 1: header 'portique-feed/1\\tsnapshot"):
            store.apply(index, [FeedFile(ref, tmp_path / ref.name)], fetched_at=float(T0))


def test_the_longest_well_formed_line_is_within_the_bound() -> None:
    from portique.revocation.format import manifest_line

    widest = entry("T" * 32, 65534, "O" * 64, "\U0001F600" * 128, frozenset(range(1, 33)))
    line = manifest_line(widest)
    assert len(line) <= MAX_LINE_CHARS and len(line.encode()) <= MAX_LINE_CHARS


# --- holder names at the gate -------------------------------------------------------------

def test_format_and_bidi_characters_in_a_feed_are_replaced_before_the_steward_sees_them(
        tmp_path: Path) -> None:
    """A feed from another platform carries U+202E (right-to-left override), U+2066 (an
    isolate) and U+200B (zero-width space): the store keeps U+FFFD in their place."""
    name = "Zoë \u202eervèfeL\u2066 x\u200b"
    text = f"M\tT1\t0\tORD-1\t{name}\tCAT\t1\t0\n"
    with applied(tmp_path) as store:
        snapshot = feed_file(tmp_path, FileKind.SNAPSHOT, text, start=0, sequence=2)
        index = signed(sequence=2, revocations=0, manifest=1, snapshot=snapshot.ref)
        store.apply(index, [snapshot], fetched_at=float(T0))
        stored = store.manifest_entry(EVENT, "T1")
        assert stored is not None
        assert stored.holder_name == "Zoë \ufffdervèfeL\ufffd x\ufffd"
        assert [c.entry.ticket_id for c in store.lookup(EVENT, "zoe")] == ["T1"]


def test_the_unsafe_character_class_is_every_control_format_and_separator_character() -> None:
    wanted = {"Cc", "Cf", "Zl", "Zp"}
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        category = unicodedata.category(char)
        matched = UNSAFE_TEXT_RE.fullmatch(char) is not None
        # characters unassigned in this Python's Unicode may be listed ahead of time
        assert matched == (category in wanted) or (matched and category == "Cn"), hex(code)
