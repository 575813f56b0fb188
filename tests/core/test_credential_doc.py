"""docs/credential.md's numbers are the vectors': the contexts' bytes, the worked
example's length and its shortened hex lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

from portique.ticket import credential

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "credential.md").read_text(encoding="utf-8")
VECTORS = json.loads((ROOT / "tests" / "vectors" / "credential.json").read_text())


def test_contexts_in_hex_in_the_doc_and_the_vectors() -> None:
    for context, name in ((credential.ISSUER_CONTEXT, "issuer"),
                          (credential.DEVICE_CONTEXT, "device")):
        assert f"`{context.hex()}`" in DOC
        assert VECTORS[f"{name}_context_hex"] == context.hex()
        assert bytes.fromhex(VECTORS[f"{name}_context_hex"]).endswith(b"\x00")


def test_the_worked_example_is_the_vector() -> None:
    vector = next(v for v in VECTORS["vectors"] if v["name"] == "valid-phone")
    binary = bytes.fromhex(vector["code_binary_hex"])
    assert f"`PQ1:V50%21ZQE5W5…`, {len(vector['code'])} characters" in DOC
    assert f"{len(binary)} bytes in all" in DOC
    example = DOC.split("### Worked example")[1].split("```")[1]
    hexes = [line.split()[0] for line in example.strip().splitlines()]
    for part in hexes:  # every shortened line: whole bytes, and found in the binary
        for piece in [p for p in part.split("...") if p]:
            assert len(piece) % 2 == 0, part
            assert bytes.fromhex(piece) in binary, part
    assert re.search(r"\b327\b", DOC) is None


def test_every_signature_context_is_given_in_hex_in_its_doc() -> None:
    from portique.revocation.format import INDEX_CONTEXT
    from portique.runtime.mesh.wire import RECORD_CONTEXT, SUMMARY_CONTEXT

    feeds = (ROOT / "docs" / "feeds.md").read_text(encoding="utf-8")
    mesh = (ROOT / "docs" / "mesh.md").read_text(encoding="utf-8")
    assert f"`{INDEX_CONTEXT.hex()}`" in feeds
    assert f"`{RECORD_CONTEXT.hex()}`" in mesh and f"`{SUMMARY_CONTEXT.hex()}`" in mesh
    for doc in (DOC, feeds, mesh):
        assert "\\0`" not in doc  # never a backslash-zero to copy
