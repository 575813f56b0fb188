"""A harder evaluation set: real Portique codes on a phone screen, as a turnstile camera
fails to see them. Seeded and deterministic; the frames are made in memory (or written
with ``--out``), never committed.

Each nuisance follows how the screen or the camera really fails:

* **screen pixel grid and moiré**: the code is drawn on the phone's pixel grid (a few
  screen pixels per module, a dark gap between pixels, RGB sub-pixel stripes); the
  camera samples that grid at 1.8-3 pixels per *module*, far below the grid's own
  frequency, so it aliases into moiré stripes (each sensor pixel integrates 3x3 point
  samples, as a sensor without an optical low-pass filter, the grid's contrast reduced
  by the lens; the sub-pixel stripes are weighed as a grey sensor sees them);
* **rolling-shutter banding**: the screen's brightness is pulse-width modulated (OLED
  dimming, 240 Hz here) while the rolling shutter reads the rows one after the other, so
  the screen shows horizontal bands whose depth grows as the brightness falls (a lower
  duty cycle);
* **motion blur** along a direction (the hand moving during the exposure), a line
  kernel of 0-3.5 pixels; **defocus**, a disk kernel (the phone nearer than the focus);
* **tilt** of the phone up to 45 degrees about any axis in its plane, seen through a
  pinhole camera (perspective, not just a shear);
* **phone brightness** 20-100 %: the camera's auto-exposure raises the gain for a dim
  screen, so the **sensor noise** grows (shot noise scaling with the signal, plus read
  noise scaled by the gain);
* **glare**: a specular reflection of a lamp on the screen's glass, a bright elliptic
  spot that washes the code out and saturates;
* **JPEG / MJPG** artefacts: the frame compressed at quality 35-90, as a USB camera's
  MJPG stream compresses each frame (in grey: the readers only see the luma, which
  4:2:0 chroma subsampling leaves at full resolution).

Three tiers (easy, medium, hard) differ by how far each nuisance goes; two resolutions
(640x480, 1280x720). The **tuning** part (seeds 1000...) is the one the reader is
tuned on; the **held-aside** part (seeds 900000...) is only ever measured. Presentation
clips (a phone coming in, settling and leaving) are made the same way, frame by frame.

Every code is a real credential: a level-1 ticket signed by the fixture issuer
(tests/fixtures/keys), its device key from a seed, and the dynamic code of a step, so a
read must pass the credential's strict decoding to count.

    .venv/bin/python benchmarks/hardset.py --out /tmp/hardset   # write the frames
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import segno
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portique.ticket import credential
from portique.ticket.credential import TicketFields

ROOT = Path(__file__).resolve().parents[1]
KEYS = ROOT / "tests" / "fixtures" / "keys"
EVENT = "PAR24-ATH05"
START = 1722877200  # 19:00:00 Paris, as the fixtures
TIERS = ("easy", "medium", "hard")
SIZES = ((640, 480), (1280, 720))
PARTS = {"tuning": 1000, "held": 900000}
"""Each part's first seed: the held-aside part never shares a seed with the tuning part."""
PWM_HZ = 240.0
ROW_TIME_S = 1 / 30 / 520  # rolling shutter: one row read every ~64 us (30 fps, 520 lines)


@dataclass(frozen=True)
class Nuisance:
    """What one frame suffers; drawn from the tier's ranges by the frame's seed."""

    ppm: float
    """Camera pixels per code module at the code's centre."""
    tilt_x: float
    tilt_y: float
    roll: float
    """Degrees: the phone turned about its horizontal and vertical axes, and in-plane."""
    screen_px_per_module: float
    """Screen pixels per module (the phone's own rendering: 4-9)."""
    brightness: float
    """Phone screen brightness, 0.2-1.0."""
    motion_px: float
    motion_deg: float
    defocus_px: float
    glare: float
    """Strength of the specular spot, 0 (none) to 1 (saturating)."""
    jpeg_quality: int
    ambient: float
    """Light falling on the scene around the phone, 0-1."""
    grid_contrast: float
    """How much of the screen pixel grid's contrast the lens passes (its MTF at the
    grid's frequency), 0-1: the depth of the moiré."""
    cx: float
    cy: float
    """Where the code's centre is, as a fraction of the frame."""


RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "easy": {"ppm": (2.6, 3.0), "tilt": (0, 15), "roll": (-20, 20), "brightness": (0.6, 1.0),
             "motion": (0, 1.5), "defocus": (0, 0.6), "glare": (0, 0), "jpeg": (75, 90),
             "screen": (6, 9), "grid": (0.05, 0.2)},
    "medium": {"ppm": (2.0, 3.0), "tilt": (10, 30), "roll": (-45, 45),
               "brightness": (0.35, 1.0), "motion": (1, 3), "defocus": (0, 0.8),
               "glare": (0, 0.4), "jpeg": (50, 85), "screen": (4, 8), "grid": (0.15, 0.35)},
    "hard": {"ppm": (1.8, 2.8), "tilt": (25, 45), "roll": (-180, 180),
             "brightness": (0.2, 0.6), "motion": (1.5, 3.5), "defocus": (0.2, 0.8),
             "glare": (0.2, 0.7), "jpeg": (35, 65), "screen": (4, 7), "grid": (0.25, 0.5)},
}
"""Each tier's range for each nuisance (tilt and roll in degrees, motion and defocus in
pixels, brightness 0-1, glare 0-1, JPEG quality, screen pixels per module, grid contrast).
The hard tier stays within what a good reader can still resolve: past ~2 modules of
smear or 1.5 px per module with blur, no reader can recover the modules."""


def draw(tier: str, rng: np.random.Generator) -> Nuisance:
    r = RANGES[tier]

    def u(key: str) -> float:
        lo, hi = r[key]
        return float(rng.uniform(lo, hi))

    tilt = u("tilt")
    axis = rng.uniform(0, 2 * math.pi)
    return Nuisance(
        ppm=u("ppm"), tilt_x=tilt * math.cos(axis), tilt_y=tilt * math.sin(axis),
        roll=u("roll"), screen_px_per_module=u("screen"), brightness=u("brightness"),
        motion_px=u("motion"), motion_deg=float(rng.uniform(0, 180)), defocus_px=u("defocus"),
        glare=u("glare") if rng.random() < 0.7 or tier == "hard" else 0.0,
        jpeg_quality=int(u("jpeg")), ambient=float(rng.uniform(0.25, 0.8)),
        grid_contrast=u("grid"),
        cx=float(rng.uniform(0.35, 0.65)), cy=float(rng.uniform(0.35, 0.65)))


# --- real codes ---------------------------------------------------------------------------

def _issuer() -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key((KEYS / "fixture-issuer.key").read_bytes(),
                                             password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


_ISSUER: list[Ed25519PrivateKey] = []


def ticket_code(seed: int, at: float = START) -> str:
    """A real dynamic code of a ticket made from `seed` (issuer: the fixture issuer)."""
    if not _ISSUER:
        _ISSUER.append(_issuer())
    device = Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"hardset-device-{seed}".encode()).digest())
    fields = TicketFields(
        kid="fixture-issuer", event=EVENT, ticket_id=f"HARD-{seed:07d}", generation=0,
        valid_from=START - 7200, valid_until=START + 6 * 3600, entrances=frozenset({2}),
        category="CAT-B", device_key=device.public_key().public_bytes_raw())
    return credential.dynamic_code(credential.issue(fields, _ISSUER[0]), device,
                                   credential.step_at(at))


# --- the screen -----------------------------------------------------------------------------

SUBPIXEL = np.array([0.299, 0.587, 0.114], np.float32) * 3
"""The R, G, B stripes of one screen pixel, left to right, as the grey sensor weighs them
(mean 1)."""
GAP = 0.2
"""The dark gap between screen pixels, as a fraction of the pixel pitch (rows)."""
QUIET, CARD = 4, 3
"""Modules of quiet zone around the code, then of the app's white card."""


def code_matrix(text: str) -> np.ndarray:
    """The code's modules (1 dark), with its quiet zone and the white card around it."""
    matrix = np.array(segno.make(text, error="m").matrix, dtype=np.uint8)
    return np.pad(matrix, QUIET + CARD)


def homography(n: Nuisance, side: float, width: int, height: int, scale: float
               ) -> np.ndarray:
    """Code plane (in modules, origin at a corner of the card) -> sensor pixels at
    `scale` times the frame's size: the phone tilted in front of a pinhole camera, the
    code at the nuisance's ppm at its centre."""
    f = 1.2 * width * scale  # focal length, pixels (a ~70 degree lens)
    half = side / 2
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]],
                       np.float64)
    rx, ry, rz = (math.radians(a) for a in (n.tilt_x, n.tilt_y, n.roll))
    rot_x = np.array([[1, 0, 0], [0, math.cos(rx), -math.sin(rx)],
                      [0, math.sin(rx), math.cos(rx)]])
    rot_y = np.array([[math.cos(ry), 0, math.sin(ry)], [0, 1, 0],
                      [-math.sin(ry), 0, math.cos(ry)]])
    rot_z = np.array([[math.cos(rz), -math.sin(rz), 0], [math.sin(rz), math.cos(rz), 0],
                      [0, 0, 1]])
    rot = rot_x @ rot_y @ rot_z
    distance = f / (n.ppm * scale)  # one module at the centre spans ppm*scale pixels
    pts3 = np.c_[corners, np.zeros(4)] @ rot.T + np.array([0, 0, distance])
    cx, cy = n.cx * width * scale, n.cy * height * scale
    projected = np.c_[f * pts3[:, 0] / pts3[:, 2] + cx, f * pts3[:, 1] / pts3[:, 2] + cy]
    src = (corners + half).astype(np.float32)
    return np.asarray(cv2.getPerspectiveTransform(src, projected.astype(np.float32)))


def _scene(width: int, height: int, ambient: float, rng: np.random.Generator) -> np.ndarray:
    """A blurred, lit background (the queue behind the phone), grey float."""
    small = rng.uniform(0.1, 0.9, (max(2, height // 40), max(2, width // 40)))
    scene = cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    return np.asarray(cv2.GaussianBlur(scene, (0, 0), 6) * ambient, np.float32)


def _disk(radius: float) -> np.ndarray:
    r = max(radius, 0.5)
    size = 2 * math.ceil(r) + 1
    yy, xx = np.mgrid[:size, :size] - size // 2
    k = np.clip(r + 0.5 - np.hypot(xx, yy), 0, 1).astype(np.float32)
    return np.asarray(k / k.sum(), np.float32)


def _line(length: float, angle_deg: float) -> np.ndarray:
    length = max(length, 1.0)
    size = 2 * math.ceil(length / 2) + 1
    k = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    for t in np.linspace(-length / 2, length / 2, max(2, int(length * 4))):
        x, y = c + t * dx, c + t * dy
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                          (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= x0 + ox < size and 0 <= y0 + oy < size:
                k[y0 + oy, x0 + ox] += w
    return np.asarray(k / k.sum(), np.float32)


def _screen(matrix: np.ndarray, n: Nuisance, width: int, height: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """The screen's light (relative, before brightness) and its coverage, at the frame's
    size. Each sensor pixel integrates 3x3 point samples, each looking up the screen
    pixel it falls on (its sub-pixel stripe, or the gap, at the contrast the lens
    passes): the grid, far finer than the sensor's pixels, aliases into moiré."""
    scale = 3
    side = float(matrix.shape[0])
    hom = homography(n, side, width, height, scale)
    quad = cv2.perspectiveTransform(np.array([[[0, 0]], [[side, 0]], [[side, side]],
                                              [[0, side]]], np.float32), hom)[:, 0]
    x0 = max(0, int(quad[:, 0].min()) - 3) // scale * scale
    y0 = max(0, int(quad[:, 1].min()) - 3) // scale * scale
    x1 = min(width * scale, int(quad[:, 0].max()) + 3)
    y1 = min(height * scale, int(quad[:, 1].max()) + 3)
    light = np.zeros((height, width), np.float32)
    cover = np.zeros((height, width), np.float32)
    if x1 <= x0 + 2 or y1 <= y0 + 2:
        return light, cover
    x1, y1 = x0 + (x1 - x0) // scale * scale, y0 + (y1 - y0) // scale * scale
    inv = np.linalg.inv(hom)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
    w = inv[2, 0] * xx + inv[2, 1] * yy + inv[2, 2]
    u = (inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]) / w
    v = (inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]) / w
    inside = (u >= 0) & (u < side) & (v >= 0) & (v < side)
    mi = np.clip(v.astype(np.int64), 0, matrix.shape[0] - 1)
    mj = np.clip(u.astype(np.int64), 0, matrix.shape[1] - 1)
    level = np.where(matrix[mi, mj] == 1, 0.03, 1.0).astype(np.float32)
    # the screen pixel grid: screen_px_per_module pixels per module
    su, sv = u * n.screen_px_per_module, v * n.screen_px_per_module
    m = n.grid_contrast
    stripe = 1 + m * (SUBPIXEL[np.clip(((su % 1.0) * 3).astype(np.int64), 0, 2)] - 1)
    gap = 1 + m * (((sv % 1.0) < 1 - GAP).astype(np.float32) / (1 - GAP) - 1)
    sample = level * stripe * gap * inside
    h2, w2 = (y1 - y0) // scale, (x1 - x0) // scale
    binned = sample.reshape(h2, scale, w2, scale).mean(axis=(1, 3))
    covered = inside.astype(np.float32).reshape(h2, scale, w2, scale).mean(axis=(1, 3))
    light[y0 // scale:y0 // scale + h2, x0 // scale:x0 // scale + w2] = binned
    cover[y0 // scale:y0 // scale + h2, x0 // scale:x0 // scale + w2] = covered
    return light, cover


def render(text: str | None, n: Nuisance, width: int, height: int, seed: int,
           frame_seed: int | None = None) -> np.ndarray:
    """One grey camera frame (uint8) of `text` on a phone screen, or of an empty scene
    (text None: the phone shows nothing code-like, or no phone at all)."""
    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng(seed if frame_seed is None else frame_seed)
    image = _scene(width, height, n.ambient, rng)
    if text is not None:
        light, cover = _screen(code_matrix(text), n, width, height)
        # rolling-shutter banding: the PWM duty falls with the brightness
        duty = min(1.0, 0.3 + 0.75 * n.brightness)
        rows = np.arange(height, dtype=np.float32) * (520 / height)
        phase = float(rng.uniform(0, 1)) if frame_seed is None else \
            float(np.random.default_rng(frame_seed).uniform(0, 1))
        on = ((rows * ROW_TIME_S * PWM_HZ + phase) % 1.0) < duty
        band = np.where(on, 1.0, 0.45 + 0.5 * n.brightness).astype(np.float32)
        screen = light * (n.brightness * band)[:, None] + 0.06 * n.ambient
        if n.glare > 0:
            gx, gy = rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height
            ax, ay = rng.uniform(0.04, 0.12) * width, rng.uniform(0.04, 0.10) * height
            yy, xx = np.mgrid[:height, :width].astype(np.float32)
            spot = np.exp(-(((xx - gx) / ax) ** 2 + ((yy - gy) / ay) ** 2))
            screen = screen + 1.2 * n.glare * n.brightness * spot
        image = image * (1 - cover) + screen * cover
    elif rng.random() < 0.5:  # a phone showing a photo, not a code
        y0, x0, ph, pw = height * 3 // 10, width * 4 // 10, height // 3, width // 6
        patch = rng.uniform(0.2, 0.9, (8, 6)).astype(np.float32)
        image[y0:y0 + ph, x0:x0 + pw] = cv2.resize(patch, (pw, ph),
                                                   interpolation=cv2.INTER_CUBIC)
    # optics: defocus, and the hand's motion during the exposure (applied at the frame's
    # size: it commutes with the binning, up to the aliasing already in the samples)
    if n.defocus_px > 0.3:
        image = cv2.filter2D(image, -1, _disk(n.defocus_px))
    if n.motion_px > 0.5:
        image = cv2.filter2D(image, -1, _line(n.motion_px, n.motion_deg))
    # auto-exposure: the gain brings the screen's white to ~0.85 of full scale
    gain = min(6.0, 0.85 / max(0.05, n.brightness))
    signal = np.clip(image * gain, 0, None)
    electrons = 900.0 / gain  # the full well seen through the gain: fewer at high gain
    shot = noise_rng.standard_normal(signal.shape, np.float32) * np.sqrt(signal / electrons)
    read = noise_rng.standard_normal(signal.shape, np.float32) * (0.003 * gain)
    out = np.clip((signal + shot + read) * 255, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, n.jpeg_quality])
    assert ok
    return np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE), np.uint8)


# --- the set --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    part: str
    tier: str
    size: tuple[int, int]
    seed: int
    text: str | None
    nuisance: Nuisance

    def image(self) -> np.ndarray:
        return render(self.text, self.nuisance, *self.size, seed=self.seed)


def samples(part: str, *, per_cell: int = 40, empty: int = 20) -> Iterator[Sample]:
    """Every frame of one part: `per_cell` per tier and size, and `empty` per size."""
    base = PARTS[part]
    for si, size in enumerate(SIZES):
        for ti, tier in enumerate(TIERS):
            for i in range(per_cell):
                seed = base + si * 10000 + ti * 1000 + i
                rng = np.random.default_rng(seed)
                yield Sample(part, tier, size, seed, ticket_code(seed), draw(tier, rng))
        for i in range(empty):
            seed = base + si * 10000 + 5000 + i
            rng = np.random.default_rng(seed)
            yield Sample(part, "empty", size, seed, None, draw("medium", rng))


@dataclass(frozen=True)
class ClipFrame:
    image: np.ndarray
    whole: bool
    """The whole code (and its quiet zone) is inside the frame and the phone has stopped
    coming in: from here a reader could have read it."""


def presentation(seed: int, tier: str, size: tuple[int, int] = (640, 480),
                 frames: int = 24) -> tuple[str, list[ClipFrame]]:
    """A phone coming in from an edge, settling (a hand never quite still) and leaving;
    one nuisance draw for the clip, the motion blur following the phone's speed, and
    fresh sensor noise and rolling-shutter phase every frame."""
    rng = np.random.default_rng(seed)
    text = ticket_code(seed)
    base = draw(tier, rng)
    width, height = size
    enter, leave = 5, frames - 4
    side = rng.choice([-1, 1])
    out: list[ClipFrame] = []
    prev = None
    for k in range(frames):
        if k < enter:  # sliding in from the side, decelerating
            t = (k + 1) / enter
            cx = base.cx + side * (1 - t) ** 2 * 0.7
        elif k >= leave:
            t = (k - leave + 1) / (frames - leave)
            cx = base.cx - side * t ** 2 * 0.8
        else:
            cx = base.cx + float(rng.normal(0, 0.004))
        cy = base.cy + float(rng.normal(0, 0.004))
        speed = 0.0 if prev is None else math.hypot((cx - prev[0]) * width,
                                                    (cy - prev[1]) * height)
        prev = (cx, cy)
        motion = max(base.motion_px, min(speed * 0.5, 25.0))  # exposure ~half the frame
        n = Nuisance(**{**asdict(base), "cx": cx, "cy": cy, "motion_px": motion,
                        "motion_deg": base.motion_deg if speed < 1 else 0.0,
                        "tilt_x": base.tilt_x + float(rng.normal(0, 1.0)),
                        "tilt_y": base.tilt_y + float(rng.normal(0, 1.0))})
        image = render(text, n, width, height, seed=seed, frame_seed=seed * 100 + k)
        out.append(ClipFrame(image, enter <= k < leave))
    return text, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-cell", type=int, default=40)
    args = parser.parse_args()
    for part in PARTS:
        rows = []
        for s in samples(part, per_cell=args.per_cell):
            folder = args.out / part / s.tier / f"{s.size[0]}x{s.size[1]}"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{s.seed}.png"
            cv2.imwrite(str(folder / name), s.image())
            rows.append({"file": str((folder / name).relative_to(args.out)), "text": s.text,
                         "tier": s.tier, "nuisance": asdict(s.nuisance)})
        (args.out / f"{part}.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
