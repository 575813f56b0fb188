"""Shared fixtures: the committed clips and their sidecars."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CLIPS = FIXTURES / "clips"
QR_REAL = Path(os.environ.get("PORTIQUE_QR_REAL",
                              Path(__file__).resolve().parents[3] / "shared" / "qr-real"))


def sidecar(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((CLIPS / name / "clip.json").read_text(encoding="utf-8"))
    return doc


def clip_names() -> list[str]:
    return sorted(p.name for p in CLIPS.iterdir() if (p / "clip.json").is_file())


@pytest.fixture(scope="session")
def qr_real() -> Path:
    if not (QR_REAL / "MANIFEST.tsv").is_file():
        pytest.skip(f"real photos not found at {QR_REAL} (set PORTIQUE_QR_REAL)")
    return QR_REAL
