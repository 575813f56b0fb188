"""Read rate and wrong reads on generated camera clips of real credentials.

Renders every scenario of tests/fixtures/make_clips.py with another seed and longer holds
(40 frames per appearance) into a temporary folder, then counts, over every frame in which
a code is wholly visible, how many codes the pipeline and raw zxing-cpp read, and any
text read that is not drawn in the frame.

    .venv/bin/python benchmarks/decode_fixtures.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from portique.scanner.decoders import Decoder, PipelineDecoder, ZxingDecoder
from portique.scanner.images import read_image

ROOT = Path(__file__).resolve().parents[1]
SEED, FRAMES = 7, 40


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, str(ROOT / "tests" / "fixtures" / "make_clips.py"),
                        "--out", tmp, "--seed", str(SEED), "--frames", str(FRAMES)],
                       check=True, stderr=subprocess.DEVNULL)
        decoders: list[Decoder] = [ZxingDecoder(), PipelineDecoder()]
        seen = still = 0
        read = dict.fromkeys((d.name for d in decoders), 0)
        read_still = dict(read)
        wrong = dict(read)
        for clip in sorted((Path(tmp) / "clips").iterdir()):
            doc = json.loads((clip / "clip.json").read_text())
            for frame in doc["frames"]:
                image = read_image(clip / frame["file"])
                drawn = {c["text"] for c in frame["codes"]}
                visible = [c for c in frame["codes"] if c["visible"]]
                seen += len(visible)
                still += sum(not c["moving"] for c in visible)
                for decoder in decoders:
                    texts = set(decoder.decode(image))
                    wrong[decoder.name] += len(texts - drawn)
                    read[decoder.name] += sum(c["text"] in texts for c in visible)
                    read_still[decoder.name] += sum(
                        c["text"] in texts for c in visible if not c["moving"])
    print(f"generated clips (seed {SEED}, {FRAMES} frames per appearance): {seen} whole "
          f"codes, {still} of them held still")
    for name in read:
        print(f"{name:<9} read {read[name]}/{seen} ({read[name] / seen:.1%})   held still "
              f"{read_still[name]}/{still} ({read_still[name] / still:.1%})   wrong texts "
              f"{wrong[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
