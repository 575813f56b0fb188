"""Figures: frame-to-decision latency, frames per second, peak memory and start-to-ready
of the whole gate, each next to its raw anchor measured in the same run.

* latency: from a frame's arrival in the loop to the decision (decode, debounce, decide),
  for every frame that led to a decision, next to raw zxing-cpp's decode time of the
  same frame; goal: overhead at p99 at most 3 ms;
* frames per second of the loop on the clips' frames, next to raw zxing-cpp alone;
* the daemon's peak memory (max RSS) while replaying a crowd clip, next to a bare
  interpreter that imports the same libraries;
* start-to-ready: from process start to "ready" (pins, journal, socket up), next to the
  same bare import.

    .venv/bin/python benchmarks/pipeline.py
"""

from __future__ import annotations

import queue
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import zxingcpp
from gpiozero.pins.mock import MockFactory

from portique.devtools.simulation import SimulatedRun
from portique.runtime.config import from_dict
from portique.runtime.wiring import build
from portique.scanner.sources import ClipSource
from tests.appliance.conftest import CLIPS, gate_table
from tests.appliance.crowd import make_crowd_clip

REPO = Path(__file__).resolve().parents[1]
# The anchor is zxing-cpp asked for QR codes only, on the same grey frame, as a bare loop
# would call it.
IMPORTS = ("import cv2, numpy, zxingcpp, cryptography, gpiozero, sqlite3, prometheus_client, "
           "segno")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def latency_run(clips: list[Path], state: Path
                ) -> tuple[list[float], list[float], list[bool], float, float, int]:
    """Per decision: our frame-to-decision ms, raw zxing ms on that frame, and whether raw
    zxing could not read that frame at all; then loop and raw frames per second."""
    ours: list[float] = []
    raw: list[float] = []
    rescued: list[bool] = []
    loop_time = raw_time = 0.0
    frames_seen = 0
    for n, clip in enumerate(clips):
        folder = state / f"run{n}"
        folder.mkdir()
        config = from_dict(gate_table(folder))
        app = build(config, SimulatedRun(replay=clip, fast=True, simulate_passage_s=0.01),
                    pin_factory=MockFactory())
        try:
            with app.bus.subscription() as events, \
                    ClipSource.open(clip, pace="fast", lossless=True) as source:
                for frame in source:
                    app.clock.current = frame.captured_at  # type: ignore[union-attr]
                    start = time.perf_counter()
                    app.daemon.process_frame(frame)
                    spent = time.perf_counter() - start
                    gray = frame.image if frame.image.ndim == 2 else \
                        cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
                    t0 = time.perf_counter()
                    raw_read = zxingcpp.read_barcodes(gray,
                                                      formats=zxingcpp.BarcodeFormat.QRCode)
                    raw_ms = (time.perf_counter() - t0) * 1e3
                    decided = False
                    while True:
                        try:
                            event = events.get_nowait()
                        except queue.Empty:
                            break
                        if event.get("type") == "decision" and event.get("latency_ms"):
                            ours.append(float(event["latency_ms"]))
                            raw.append(raw_ms)
                            rescued.append(not raw_read)
                            decided = True
                    if not decided:  # a frame without a turnstile cycle: loop throughput
                        loop_time += spent
                        raw_time += raw_ms / 1e3
                        frames_seen += 1
        finally:
            app.close()
    return ours, raw, rescued, frames_seen / loop_time, frames_seen / raw_time, frames_seen


def process_figures(crowd: Path, state: Path) -> tuple[float, float, float, float]:
    """(daemon max RSS MB, bare imports max RSS MB, start-to-ready s, bare import s)."""
    folder = state / "process"
    folder.mkdir()
    from tests.appliance.test_durability import _toml

    config = folder / "gate.toml"
    config.write_text(_toml(gate_table(folder)))
    log = folder / "pins.log"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "portique", "run", "--config", str(config), "--replay", str(crowd),
         "--fast", "--simulate-passage", "0.01", "--pin-log", str(log), "--log-level",
         "ERROR"], cwd=REPO)
    ready = None
    while process.poll() is None:
        if ready is None and log.exists() and "# ready" in log.read_text():
            ready = time.perf_counter() - started
        time.sleep(0.005)
    assert process.returncode == 0 and ready is not None
    daemon_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], check=True)
    bare_s = time.perf_counter() - t0
    bare_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    # RUSAGE_CHILDREN keeps the largest child: measure the bare import alone in a shell
    probe = subprocess.run(
        [sys.executable, "-c", f"{IMPORTS}\nimport resource\n"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
        capture_output=True, text=True, check=True)
    bare_rss = float(probe.stdout.strip())
    return daemon_rss, bare_rss, ready, bare_s


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="portique-bench-") as tmp:
        state = Path(tmp)
        crowd = state / "crowd"
        make_crowd_clip(crowd, people=60)
        clips = [CLIPS / name for name in ("valid_step_change", "screenshot_replay",
                                           "tampered", "paper", "two_phones", "wrong_entrance",
                                           "second_scan", "empty")] + [crowd]
        ours, raw, rescued, loop_fps, raw_fps, frames = latency_run(clips, state)
        overhead = [o - r for o, r in zip(ours, raw, strict=True)]
        rss, bare_rss, ready_s, bare_s = process_figures(crowd, state)
    p99_over = percentile(overhead, 99)
    same = [o for o, r in zip(overhead, rescued, strict=True) if not r]
    print(f"gate pipeline on the recorded clips and a {60}-person crowd clip "
          "(benchmarks/pipeline.py)")
    print(f"  decisions measured                   {len(ours)}")
    print(f"  frame-to-decision p50 / p99          {statistics.median(ours):6.2f} / "
          f"{percentile(ours, 99):6.2f} ms")
    print(f"  raw zxing-cpp, same frames p50 / p99 {statistics.median(raw):6.2f} / "
          f"{percentile(raw, 99):6.2f} ms")
    print(f"  overhead p50 / p99, all decisions    {statistics.median(overhead):6.2f} / "
          f"{p99_over:6.2f} ms")
    print(f"  frames raw zxing-cpp could not read  {sum(rescued)} of {len(rescued)} "
          "(read by the pipeline's retries: those decisions came frames earlier)")
    same_p99 = percentile(same, 99)
    print(f"  overhead p50 / p99, frames both read {statistics.median(same):6.2f} / "
          f"{same_p99:6.2f} ms   (goal p99 <= 3 ms)")
    print(f"  loop frames/s (no decision)          {loop_fps:6.0f}   raw zxing-cpp "
          f"{raw_fps:6.0f}   ratio {loop_fps / raw_fps:.2f}   ({frames} frames)")
    print(f"  daemon peak memory (max RSS)         {rss:6.0f} MB   bare imports "
          f"{bare_rss:6.0f} MB")
    print(f"  start-to-ready                       {ready_s:6.2f} s    bare imports "
          f"{bare_s:6.2f} s")
    ok = same_p99 <= 3.0
    print("  result                               " + ("meets the goal" if ok
                                                        else "MISSES THE GOAL"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
