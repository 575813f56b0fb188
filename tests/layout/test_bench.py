"""`make bench` without the real photos: their benchmark says why it is skipped (exit 3),
and the Makefile's loop runs the others instead of stopping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_real_photo_benchmark_skips_with_its_reason(tmp_path: Path) -> None:
    missing = tmp_path / "no-photos"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "decode_real.py")],
                          env={**os.environ, "PORTIQUE_QR_REAL": str(missing)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    assert f"skipped: the real photos (qr-real) are not at {missing}" in done.stdout
    assert "PORTIQUE_QR_REAL" in done.stdout


def test_make_bench_goes_on_after_a_skipped_benchmark(tmp_path: Path) -> None:
    """The bench rule's loop, run by make on three stand-in scripts: the one that exits 3
    is reported skipped and the next one still runs; a failure still stops the loop."""
    rule = (ROOT / "Makefile").read_text().split("\nbench:")[1].split("\n\n")[0]
    recipe = "\n".join(line for line in rule.splitlines()[1:])
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "a_first.py").write_text("print('first ran')\n")
    (bench / "b_skip.py").write_text("import sys\nprint('skipped: no data')\nsys.exit(3)\n")
    (bench / "c_last.py").write_text("print('last ran')\n")
    (tmp_path / "Makefile").write_text(f"BIN := {Path(sys.executable).parent}\nbench:\n"
                                       f"{recipe}\n")
    done = subprocess.run(["make", "-s", "bench"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.index("first ran") < done.stdout.index("(skipped)") \
        < done.stdout.index("last ran")
    (bench / "b_skip.py").write_text("import sys\nsys.exit(1)\n")
    failed = subprocess.run(["make", "-s", "bench"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=False)
    assert failed.returncode != 0 and "last ran" not in failed.stdout
