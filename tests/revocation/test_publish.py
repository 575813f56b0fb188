"""The reference publisher's guards: a mass removal (a truncated export) is refused unless
asked for, CSV errors name their line and column, integers are ASCII digits only, and
holder names carry no control, format or bidi character."""

from __future__ import annotations

from pathlib import Path

import pytest

from portique.commands.main import EXIT_OK, EXIT_USAGE, main
from portique.revocation.errors import MassRemovalError, PublishError
from portique.revocation.format import INDEX_NAME, parse_index
from portique.revocation.publish import (
    MASS_REMOVAL_FLOOR,
    FeedState,
    read_manifest_csv,
    read_revocations_csv,
)
from portique.ticket.views import CANCELLED
from tests.revocation.conftest import EVENT, T0, entry, publish_state, trust

MANIFEST_HEADER = "ticket_id,generation,order_ref,holder_name,category,entrances,flags\n"


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def cancellations(count: int) -> dict[str, int]:
    return {f"T{n:05d}": CANCELLED for n in range(count)}


# --- mass removal ---------------------------------------------------------------------------

def test_a_truncated_export_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    """1,000 cancellations, then an export cut to 10 rows: 990 tickets would be
    un-cancelled at every gate."""
    first = publish_state(tmp_path, FeedState(cancellations(1000), {}), at=T0)
    before = folder_bytes(first.folder)
    with pytest.raises(MassRemovalError) as raised:
        publish_state(tmp_path, FeedState(cancellations(10), {}), at=T0 + 60)
    assert str(raised.value) == (
        f"event {EVENT}: this publication removes 990 of the 1000 revocations of sequence 1 "
        "(99.0%), more than the 50 allowed (max removal share 0.05, at least 10): a "
        "truncated export? Check the input, or publish with --allow-mass-removal; nothing "
        "written")
    assert folder_bytes(first.folder) == before


def test_a_mass_removal_is_published_when_allowed_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from portique.revocation.publish import publish
    from tests.revocation.conftest import FEED_KEY, FEED_KID

    publish_state(tmp_path, FeedState(cancellations(1000), {}), at=T0)
    result = publish(out_dir=tmp_path, event=EVENT, state=FeedState(cancellations(10), {}),
                     key=FEED_KEY, kid=FEED_KID, now=T0 + 60, allow_mass_removal=True)
    assert result.sequence == 2
    index = parse_index((result.folder / INDEX_NAME).read_bytes(), trust=trust(),
                        event=EVENT)
    assert (index.revocations, index.manifest) == (10, 0)  # the signed resulting counts
    assert "mass removal published as allowed: event=PAR24-ATH05 kind=revocations " \
        "removed=990 previous=1000 limit=50 sequence=1" in caplog.text


@pytest.mark.parametrize(("kept", "refused"), [(950, False), (949, True)])
def test_the_share_is_a_bound_on_each_kind(tmp_path: Path, kept: int, refused: bool) -> None:
    manifest = {f"T{n:05d}": entry(f"T{n:05d}", 0, "Anne Martin") for n in range(1000)}
    publish_state(tmp_path, FeedState({}, manifest), at=T0)
    smaller = FeedState({}, dict(list(manifest.items())[:kept]))
    if refused:
        with pytest.raises(MassRemovalError, match="removes 51 of the 1000 manifest entries"):
            publish_state(tmp_path, smaller, at=T0 + 60)
    else:
        assert publish_state(tmp_path, smaller, at=T0 + 60).sequence == 2


def test_a_short_list_may_always_lose_a_few_rows(tmp_path: Path) -> None:
    count = MASS_REMOVAL_FLOOR + 2
    publish_state(tmp_path / "a", FeedState(cancellations(count), {}), at=T0)
    assert publish_state(tmp_path / "a", FeedState(cancellations(2), {}),
                         at=T0 + 60).sequence == 2
    publish_state(tmp_path / "b", FeedState(cancellations(count), {}), at=T0)
    with pytest.raises(MassRemovalError, match=f"removes {count - 1} of the {count} "
                       f"revocations .* more than the {MASS_REMOVAL_FLOOR} allowed"):
        publish_state(tmp_path / "b", FeedState(cancellations(1), {}), at=T0 + 60)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_command_refuses_a_mass_removal_unless_allowed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--kid", "feed-1", "--role", "feed", "--out",
                 str(tmp_path / "keys")]) == EXIT_OK
    manifest = write(tmp_path / "man.csv", MANIFEST_HEADER)
    full = "ticket_id,min_generation\n" + "".join(f"T{n:05d},cancelled\n" for n in range(1000))
    cut = "".join(full.splitlines(keepends=True)[:11])  # the header and 10 rows

    def publish(revocations: str, *extra: str) -> tuple[int, str]:
        code = main(["feed", "publish", "--event", EVENT, "--revocations",
                     str(write(tmp_path / "rev.csv", revocations)), "--manifest",
                     str(manifest), "--key", str(tmp_path / "keys" / "feed-1.key"), "--out",
                     str(tmp_path / "www"), "--at", str(T0), *extra])
        out, err = capsys.readouterr()
        return code, out + err

    assert publish(full)[0] == EXIT_OK
    before = folder_bytes(tmp_path / "www" / EVENT)
    code, out = publish(cut)
    assert code == EXIT_USAGE
    assert "removes 990 of the 1000 revocations of sequence 1 (99.0%)" in out
    assert folder_bytes(tmp_path / "www" / EVENT) == before
    code, out = publish(cut, "--max-removal-share", "2")
    assert (code, "--max-removal-share must be 0-1, got 2" in out) == (EXIT_USAGE, True)
    code, out = publish(cut, "--allow-mass-removal")
    assert code == EXIT_OK and "sequence 2 (delta delta-1-2.tsv.gz)" in out
    assert publish(full, "--max-removal-share", "1")[0] == EXIT_OK  # adding is never limited


# --- CSV errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("number", ["\u0663", "\uff11", "1_0", "+1", "\u00b2", " 1 2 "])
def test_a_generation_must_be_ascii_digits(tmp_path: Path, number: str) -> None:
    path = write(tmp_path / "man.csv", MANIFEST_HEADER + "T1,0,ORD-1,Anne,CAT,1,\n"
                 f"T2,{number},ORD-2,Bob,CAT,1,\n")
    with pytest.raises(PublishError) as raised:
        read_manifest_csv(path)
    assert str(raised.value) == (f"{path}: line 3, column generation: must be a number of "
                                 f"ASCII digits 0-9, got {number.strip()!r}")


@pytest.mark.parametrize("number", ["\u0663", "\uff11", "1_0"])
def test_a_minimum_generation_must_be_ascii_digits(tmp_path: Path, number: str) -> None:
    path = write(tmp_path / "rev.csv", f"ticket_id,min_generation\nT1,{number}\n")
    with pytest.raises(PublishError, match=r"rev\.csv: line 2, column min_generation: must "
                       r"be a number \(ASCII digits 0-9\) or 'cancelled'"):
        read_revocations_csv(path)


@pytest.mark.parametrize("entrances", ["\u0663", "1,\uff12"])
def test_entrances_must_be_ascii_digits(tmp_path: Path, entrances: str) -> None:
    path = write(tmp_path / "man.csv", MANIFEST_HEADER + f'T1,0,ORD-1,Anne,CAT,"{entrances}",\n')
    with pytest.raises(PublishError, match=r"line 2, column entrances: must be a number of "
                       "ASCII digits"):
        read_manifest_csv(path)


@pytest.mark.parametrize(("row", "column", "message"), [
    ("T 1,0,ORD-1,Anne,CAT,1,", "ticket_id", "must be 1-32 of A-Z a-z 0-9 . _ -, got 'T 1'"),
    ("T1,70000,ORD-1,Anne,CAT,1,", "generation", "must be 0-65534, got 70000"),
    ("T1,0,ORD 1,Anne,CAT,1,", "order_ref", "must be 1-64 printable ASCII characters"),
    ("T1,0,ORD-1,Anne,CATÉGORIE,1,", "category", "must be 0-16 printable ASCII characters"),
    ("T1,0,ORD-1,Anne,CAT,,", "entrances", "at least one entrance is needed"),
    ("T1,0,ORD-1,Anne,CAT,1,vip", "flags", "unknown flag 'vip'"),
    ("T1,0,ORD-1," + "A" * 129 + ",CAT,1,", "holder_name", "129 characters, at most 128"),
])
def test_a_bad_field_is_named_by_its_line_and_column(tmp_path: Path, row: str, column: str,
                                                     message: str) -> None:
    path = write(tmp_path / "man.csv", MANIFEST_HEADER + "T0,0,ORD-0,Zoë,CAT,1,\n" + row + "\n")
    with pytest.raises(PublishError) as raised:
        read_manifest_csv(path)
    assert str(raised.value).startswith(f"{path}: line 3, column {column}: {message}")
    assert "line 0" not in str(raised.value)


def test_a_bad_ticket_id_in_the_revocations_is_named_by_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "rev.csv", "ticket_id,min_generation\nT1,2\nT-2,3\nT 3,2\n")
    with pytest.raises(PublishError) as raised:
        read_revocations_csv(path)
    assert str(raised.value) == (f"{path}: line 4, column ticket_id: must be 1-32 of A-Z a-z "
                                 "0-9 . _ -, got 'T 3'")


# --- holder names -------------------------------------------------------------------------

@pytest.mark.parametrize(("char", "name"), [
    ("\u202e", "RIGHT-TO-LEFT OVERRIDE"), ("\u2066", "LEFT-TO-RIGHT ISOLATE"),
    ("\u2069", "POP DIRECTIONAL ISOLATE"), ("\u200b", "ZERO WIDTH SPACE"),
    ("\u200f", "RIGHT-TO-LEFT MARK"), ("\u00ad", "SOFT HYPHEN"), ("\ufeff",
                                                                   "ZERO WIDTH NO-BREAK SPACE"),
    ("\u2028", "LINE SEPARATOR"), ("\x85", "unnamed"), ("\x1b", "unnamed"),
])
def test_a_holder_name_with_a_control_or_format_character_is_refused(
        tmp_path: Path, char: str, name: str) -> None:
    path = write(tmp_path / "man.csv", MANIFEST_HEADER + "T0,0,ORD-0,Zoë,CAT,1,\n"
                 f"T1,0,ORD-1,Anne {char}Martin,CAT,1,\n")
    with pytest.raises(PublishError) as raised:
        read_manifest_csv(path)
    assert str(raised.value) == (
        f"{path}: line 3, column holder_name: character U+{ord(char):04X} ({name}) at "
        "position 6: control, format (bidi, zero-width) and line separator characters are "
        "refused")


def test_ordinary_white_space_in_a_holder_name_is_still_folded(tmp_path: Path) -> None:
    path = write(tmp_path / "man.csv", MANIFEST_HEADER + 'T1,0,ORD-1,"  Jean-Pierre\t\n'
                 ' Œuvray ",CAT,1,\n')
    assert read_manifest_csv(path)["T1"].holder_name == "Jean-Pierre Œuvray"


def test_publish_refuses_such_a_name_from_any_caller(tmp_path: Path) -> None:
    state = FeedState({}, {"T1": entry("T1", 0, "Anne \u2067Martin")})
    with pytest.raises(PublishError, match=r"manifest entry 'T1': holder_name: character "
                       r"U\+2067 \(RIGHT-TO-LEFT ISOLATE\) at position 6"):
        publish_state(tmp_path, state, at=T0)
    assert not (tmp_path / EVENT / INDEX_NAME).exists()


# --- values quoted in errors ----------------------------------------------------------------

LONG_NUMBER = "9" * 5000


def test_a_5000_digit_minimum_generation_is_quoted_cut_short(tmp_path: Path) -> None:
    path = write(tmp_path / "rev.csv", f"ticket_id,min_generation\nT1,{LONG_NUMBER}\n")
    with pytest.raises(PublishError) as raised:
        read_revocations_csv(path)
    assert str(raised.value) == (
        f"{path}: line 2, column min_generation: must be a number (ASCII digits 0-9) or "
        f"'cancelled', got '{'9' * 40}'... (5000 characters)")


@pytest.mark.parametrize(("row", "column", "shown"), [
    (f"T1,{LONG_NUMBER},ORD-1,Anne,CAT,1,", "generation",
     f"must be a number of ASCII digits 0-9, got '{'9' * 40}'... (5000 characters)"),
    (f'T1,0,ORD-1,Anne,CAT,"1,{LONG_NUMBER}",', "entrances",
     f"must be a number of ASCII digits 0-9, got '{'9' * 40}'... (5000 characters)"),
    ("T1,0,ORD-1,Anne,CAT,1," + "v" * 5000, "flags",
     f"unknown flag '{'v' * 40}'... (5000 characters) (known: accessible, paper, reentry)"),
], ids=["generation", "entrances", "flags"])
def test_long_csv_values_are_quoted_cut_short(tmp_path: Path, row: str, column: str,
                                              shown: str) -> None:
    path = write(tmp_path / "man.csv", MANIFEST_HEADER + row + "\n")
    with pytest.raises(PublishError) as raised:
        read_manifest_csv(path)
    assert str(raised.value) == f"{path}: line 2, column {column}: {shown}"


def test_a_long_header_is_quoted_cut_short(tmp_path: Path) -> None:
    path = write(tmp_path / "rev.csv", "ticket_id," + "x" * 5000 + "\nT1,2\n")
    with pytest.raises(PublishError) as raised:
        read_revocations_csv(path)
    assert str(raised.value) == (
        f"{path}: header must name the columns ticket_id,min_generation (got "
        f"'ticket_id,{'x' * 30}'... (5010 characters))")


@pytest.mark.parametrize(("state", "message"), [
    (FeedState({"T1": 10 ** 5000}, {}),
     "revocation of 'T1': min_generation: must be 1-65535, got an integer of 16610 bits"),
    (FeedState({"T1": 10 ** 100}, {}),
     f"revocation of 'T1': min_generation: must be 1-65535, got 1{'0' * 39}... "
     "(101 characters)"),
    (FeedState({}, {"T1": entry("T1", 10 ** 5000, "Anne")}),
     "manifest entry 'T1': generation: must be 0-65534, got an integer of 16610 bits"),
    (FeedState({}, {"T1": entry("T1", 0, "Anne", entrances=frozenset({10 ** 5000}))}),
     "manifest entry 'T1': entrances: each must be 1-32, got an integer of 16610 bits"),
    (FeedState({"T" * 5000: 2}, {}),
     f"revocation of '{'T' * 40}'... (5000 characters): ticket_id: must be 1-32 of"),
], ids=["min-generation-5000-digits", "min-generation-101-digits", "generation",
        "entrance", "ticket-id-key"])
def test_publish_quotes_a_callers_long_values_cut_short(tmp_path: Path, state: FeedState,
                                                        message: str) -> None:
    """From a caller in Python (not the CSV), an integer past Python's own int-to-text
    limit was a bare ValueError: now a PublishError that quotes it by its size."""
    with pytest.raises(PublishError) as raised:
        publish_state(tmp_path, state, at=T0)
    assert str(raised.value).startswith(message)
    assert len(str(raised.value)) < 300
    assert not (tmp_path / EVENT).exists()
