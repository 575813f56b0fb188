"""A crowd clip: many different valid phone tickets, one after another, cleanly rendered.

For the tests and benchmarks that need many admissions (crash tests, pipeline figures):
each ticket is a real credential signed by the fixture issuer and a seeded phone key,
shown for a few frames, with an empty frame between people.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.ticket import credential
from portique.ticket.credential import TicketFields

from .conftest import fixture_key

EVENT = "PAR24-ATH05"
START = 1722877200.0  # 19:00:00 Paris


def render(text: str, width: int, height: int, module_px: int = 3) -> np.ndarray:
    """The code as a camera-sized grey frame: black modules on white, on a grey background."""
    matrix = np.array(segno.make(text, error="m").matrix, dtype=np.uint8)
    matrix = np.pad(matrix, 4)
    code = np.where(matrix == 1, 0, 255).astype(np.uint8)
    code = cv2.resize(code, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)
    frame = np.full((height, width), 110, dtype=np.uint8)
    y, x = (height - code.shape[0]) // 2, (width - code.shape[1]) // 2
    frame[y:y + code.shape[0], x:x + code.shape[1]] = code
    return frame


def make_crowd_clip(folder: Path, *, people: int, frames_each: int = 2, fps: float = 10.0,
                    width: int = 640, height: int = 480, start: float = START,
                    first: int = 0) -> list[str]:
    """Write the clip (JPEG frames + clip.json); returns the ticket ids in order."""
    folder.mkdir(parents=True, exist_ok=True)
    issuer = fixture_key("fixture-issuer")
    frames: list[dict[str, object]] = []
    ticket_ids: list[str] = []
    t = start
    index = 0

    def add(image: np.ndarray, codes: list[str]) -> None:
        nonlocal t, index
        name = f"{index:04d}.jpg"
        cv2.imwrite(str(folder / name), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        frames.append({"file": name, "captured_at": round(t, 3),
                       "codes": [{"text": c, "visible": True} for c in codes]})
        t += 1.0 / fps
        index += 1

    empty = np.full((height, width), 110, dtype=np.uint8)
    for person in range(first, first + people):
        ticket_id = f"CROWD-{person:05d}"
        device = Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(f"crowd-device-{person}".encode()).digest())
        fields = TicketFields(
            kid="fixture-issuer", event=EVENT, ticket_id=ticket_id, generation=0,
            valid_from=int(start) - 7200, valid_until=int(start) + 6 * 3600,
            entrances=frozenset({2}), category="CAT-C",
            device_key=device.public_key().public_bytes_raw())
        level1 = credential.issue(fields, issuer)
        code = credential.dynamic_code(level1, device, credential.step_at(t))
        image = render(code, width, height)
        for _ in range(frames_each):
            add(image, [code])
        add(empty, [])
        ticket_ids.append(ticket_id)
    (folder / "clip.json").write_text(json.dumps({
        "format": "portique-clip/1", "scenario": "crowd",
        "description": f"{people} valid phone tickets, one after another",
        "width": width, "height": height, "expected": [], "revocations": [],
        "frames": frames}, indent=1), encoding="utf-8")
    return ticket_ids
