"""Figures: the venue mesh on one loopback Mosquitto.

- 50 gates (real journals in SQLite, WAL, synchronous FULL; real signed records; one
  paho client each), spread over worker processes, each gate admitting at stadium rate
  (one person every 2 s per lane, a peak) for 20 s: p50 and p99 time from an admission
  (the moment it is journalled) to its merge into every other gate's journal, per
  delivery and per admission (until the *last* of the 49 others has it). Goal: p99
  under 100 ms on loopback.
- the same gates at 20 admissions per second each for 10 s (1,000 a second venue-wide,
  49,000 deliveries a second asked): deliveries merged per second that broker and
  clients sustain, and the p99 then.
- a raw anchor in the same run: a bare paho publish -> receive round trip through the
  same broker (QoS 1, no signing, no SQLite, no merge).

With ``--bridged``: two Mosquitto brokers, a stand's bridged to the venue core as
docs/mesh.md shows, half the gates on each (each gate lists both, its own first); the
same figures, the raw anchor through the same bridge (published on one broker, received
on the other), then the stand broker killed: the failover time of its gates (from the
kill to each gate connected to the core; anchor: a bare paho connect to the core in the
same run) and a last phase on the core alone, every delivery counted.

    .venv/bin/python benchmarks/mesh.py [--gates 50] [--processes 5]
    .venv/bin/python benchmarks/mesh.py --bridged --gates 200 --processes 4 --rate 0.01 \
        --seconds 30 --summary-interval 600
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EVENT = "BENCH-1"
ANCHOR_TOPIC = "portique/v1/anchor/x"  # inside the bridged topics
VENUE = "bench-venue"


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (every thread of each) so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


Delivery = tuple[str, int, str, float, float]
"""(origin, seq, receiver, seconds from the admission to the merge here, of which seconds
from the admission to its record made at the origin)."""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _worker(ids: list[str], keys: str, root: str, brokers: dict[str, list[str]],
            conn: Any, summary_interval_s: float = 60.0) -> None:
    """Run some gates: connect, admit on command, report merge latencies."""
    import logging
    logging.getLogger("portique").setLevel(logging.ERROR)  # failovers are counted, not logged
    from portique import keyfiles
    from portique.runtime.config import from_dict
    from portique.runtime.journal import Journal
    from portique.runtime.mesh.node import MeshNode, load_peer_keys
    from portique.ticket.decision import Decision
    from portique.ticket.reasons import Reason, Verdict
    from portique.ticket.views import TicketKey

    nodes: dict[str, MeshNode] = {}
    journals: dict[str, Journal] = {}
    lock = threading.Lock()
    latencies: list[Delivery] = []

    for gate_id in ids:
        folder = Path(root) / f"gate{gate_id}"
        folder.mkdir(parents=True)
        mesh = from_dict({
            "gate": {"id": gate_id, "event": EVENT, "entrance": 1},
            "keys": {"trust_dir": keys},
            "mesh": {"venue": VENUE, "brokers": brokers[gate_id],
                     "key_file": f"{keys}/{gate_id}.key",
                     "gates_dir": keys, "summary_interval_s": summary_interval_s,
                     "reconnect_min_s": 0.1, "reconnect_max_s": 1.0}}).mesh
        assert mesh is not None
        journal = Journal(folder / "journal.sqlite", gate_id=gate_id)
        node = MeshNode(mesh, gate_id=gate_id, journal=journal,
                        key=keyfiles.load_private_key(mesh.key_file),
                        peers=load_peer_keys(mesh))

        def merged(records: list[Any], now: float, receiver: str = gate_id) -> None:
            with lock:
                latencies.extend((r.origin, r.seq, receiver, now - r.at_ms / 1000,
                                  (r.made_ms - r.at_ms) / 1000) for r in records)

        node.on_merged = merged
        node.start()
        nodes[gate_id], journals[gate_id] = node, journal
    for node in nodes.values():
        if not node.wait_connected(30):
            raise SystemExit("a gate could not connect to the broker")
    conn.send("ready")
    serial = 0
    while True:
        command = conn.recv()
        if command[0] == "stop":
            break
        if command[0] == "failover":  # when each gate that was on `dead` is connected again
            dead: str = command[1]
            moved = [nodes[g] for g in ids if brokers[g][0] == dead]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not all(
                    n.connected and n.broker != dead for n in moved):
                time.sleep(0.01)
            conn.send([n.state_since for n in moved if n.connected])
            continue
        if command[0] == "counts":
            conn.send([sum(getattr(n, f) for n in nodes.values()) for f in ANTI_ENTROPY])
            continue
        if command[0] == "drain":
            expected: int = command[1]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with lock:
                    if len(latencies) >= expected:
                        break
                time.sleep(0.05)
            with lock:
                conn.send((list(latencies), [sum(getattr(n, f) for n in nodes.values())
                                             for f in ANTI_ENTROPY]))
                latencies.clear()
            continue
        _, rate, seconds, start_at = command  # admit at `rate` per gate for `seconds`
        time.sleep(max(0.0, start_at - time.time()))
        period = 1.0 / rate
        count = 0
        t0 = time.time()
        while time.time() - t0 < seconds:
            for gate_id in ids:  # round-robin, evenly spread over the period
                serial += 1
                now = time.time()
                decision = Decision(Verdict.ADMIT, Reason.VALID, now,
                                    TicketKey(EVENT, f"T{gate_id}-{serial}", 0))
                journals[gate_id].admit(decision)
                nodes[gate_id].wake()
                count += 1
                time.sleep(max(0.0, t0 + count * period / len(ids) - time.time()))
        conn.send(count)
    for node in nodes.values():
        node.close()
    for journal in journals.values():
        journal.close()


def raw_anchor(port: int, samples: int = 500, sub_port: int | None = None) -> list[float]:
    """Bare paho QoS 1 publish -> receive between two clients through the same broker (or
    published on `port`, received on `sub_port`: through the bridge between them)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    got = threading.Event()
    out: list[float] = []
    sent = [0.0]

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        out.append(time.perf_counter() - sent[0])
        got.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anchor-sub",
                      protocol=MQTTProtocolVersion.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", sub_port or port)
    sub.subscribe(ANCHOR_TOPIC, qos=1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anchor-pub",
                      protocol=MQTTProtocolVersion.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    time.sleep(0.5)
    payload = bytes(160)  # a record's size
    for _ in range(samples):
        got.clear()
        sent[0] = time.perf_counter()
        pub.publish(ANCHOR_TOPIC, payload, qos=1)
        got.wait(5)
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return out


def connect_anchor(port: int, samples: int = 20) -> list[float]:
    """Bare paho: TCP connect, CONNECT, CONNACK to the broker, seconds each."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    out = []
    for i in range(samples):
        done = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"anchor-c{i}",
                             protocol=MQTTProtocolVersion.MQTTv5)
        client.on_connect = lambda *_a, done=done: done.set()
        t0 = time.perf_counter()
        client.connect("127.0.0.1", port)
        client.loop_start()
        done.wait(5)
        out.append(time.perf_counter() - t0)
        client.disconnect()
        client.loop_stop()
    return out


def wait_bridged(core: Any, stand: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while f"portique-bridge-{stand}-" not in core.log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise SystemExit("the bridge did not come up")
        time.sleep(0.05)
    time.sleep(1.0)  # its subscriptions follow the connection


CPU_OF: dict[str, list[int]] = {}
"""The processes whose CPU time a phase reports: "gates" (the worker processes) and
"brokers" (the Mosquitto processes)."""


def phase(pipes: list[Any], gates: int, rate: float, seconds: float
          ) -> tuple[int, list[Delivery], float]:
    for p in pipes:
        p.send(("counts",))
    before = [sum(column) for column in zip(*(p.recv() for p in pipes), strict=True)]
    cpu_before = {k: cpu_seconds(v) for k, v in CPU_OF.items()}
    start_at = time.time() + 0.5
    for p in pipes:
        p.send(("admit", rate, seconds, start_at))
    admitted = sum(p.recv() for p in pipes)
    expected = admitted * (gates - 1)
    # every process drains its own receivers: it expects its share of the deliveries
    shares = [expected * len(ids) // gates for ids in PROCESS_IDS]
    for p, share in zip(pipes, shares, strict=True):
        p.send(("drain", share))
    deliveries: list[Delivery] = []
    totals = [0] * len(ANTI_ENTROPY)
    for p in pipes:
        got, counts = p.recv()
        deliveries += got
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
    elapsed = time.time() - start_at
    done = [after - was for after, was in zip(totals, before, strict=True)]
    print(f"  anti-entropy over the phase, all gates: {done[0]} summaries published, "
          f"{done[1]} answers re-sending {done[2]} records")
    if CPU_OF and deliveries:
        used = {k: cpu_seconds(v) - cpu_before[k] for k, v in CPU_OF.items()}
        per = {k: v / len(deliveries) * 1e3 for k, v in used.items()}
        total = sum(per.values())
        cores = os.cpu_count() or 1
        parts = ", ".join(f"{k} {v:.2f}" for k, v in per.items())
        print(f"  CPU per delivery: {total:.2f} ms ({parts}; {sum(used.values()) / elapsed:.2f}"
              f" of the {cores} cores busy with them over the phase)")
        print(f"  one admission to all {gates - 1} others: {total * (gates - 1):.0f} ms of CPU, "
              f"at least {total * (gates - 1) / cores:.0f} ms on {cores} cores")
    return admitted, deliveries, elapsed


PROCESS_IDS: list[list[str]] = []
ANTI_ENTROPY = ("summaries_sent", "answers_sent", "records_resent")
"""MeshNode's counters of anti-entropy traffic, summed over every gate per phase."""


def report(label: str, admitted: int, gates: int, deliveries: list[Delivery],
           seconds: float) -> None:
    lat = [d[3] for d in deliveries]
    per_record: dict[tuple[str, int], float] = {}
    for origin, seq, _, value, _made in deliveries:
        per_record[(origin, seq)] = max(value, per_record.get((origin, seq), 0.0))
    complete = [v for v in per_record.values()]
    expected = admitted * (gates - 1)
    print(f"{label}: {admitted} admissions, {len(deliveries)}/{expected} deliveries "
          f"({len(deliveries) / seconds:,.0f} merged/s over {seconds:.1f} s)")
    print(f"  admission -> merged at one other gate: p50 {statistics.median(lat) * 1e3:6.1f} ms"
          f"  p99 {percentile(lat, 99) * 1e3:6.1f} ms  max {max(lat) * 1e3:6.1f} ms")
    print(f"  admission -> merged at every other gate: p50 "
          f"{statistics.median(complete) * 1e3:6.1f} ms  p99 "
          f"{percentile(complete, 99) * 1e3:6.1f} ms")
    made = [d[4] for d in deliveries]
    rest = [d[3] - d[4] for d in deliveries]
    print(f"  of which admission -> its record made at its gate: p50 "
          f"{statistics.median(made) * 1e3:6.1f} ms  p99 {percentile(made, 99) * 1e3:6.1f} ms;"
          f" record made -> merged at one other gate: p50 {statistics.median(rest) * 1e3:6.1f}"
          f" ms  p99 {percentile(rest, 99) * 1e3:6.1f} ms")


def main() -> int:
    from portique import keyfiles
    from portique.devtools.broker import LoopbackBroker
    from portique.ticket.trust import KeyRole

    parser = argparse.ArgumentParser()
    parser.add_argument("--gates", type=int, default=50)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--rate", type=float, default=0.5, help="admissions per second per "
                        "gate at stadium rate")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--stress-rate", type=float, default=20.0)
    parser.add_argument("--stress-seconds", type=float, default=10.0)
    parser.add_argument("--no-stress", action="store_true", help="skip the stress phase")
    parser.add_argument("--summary-interval", type=float, default=60.0, help="anti-entropy "
                        "summaries this often per gate (with --bridged)")
    parser.add_argument("--settle", type=float, default=10.0, help="with --bridged: seconds "
                        "for the connection summaries to drain before measuring")
    parser.add_argument("--bridged", action="store_true", help="two brokers, a stand's "
                        "bridged to the core, half the gates on each; then kill the stand's")
    args = parser.parse_args()
    if args.bridged:
        return bridged(args)
    ids = [str(i) for i in range(1, args.gates + 1)]
    PROCESS_IDS.extend(ids[i::args.processes] for i in range(args.processes))
    with tempfile.TemporaryDirectory(prefix="portique-mesh-bench-") as tmp:
        root = Path(tmp)
        keys = root / "keys"
        for gate_id in ids:
            keyfiles.new_key_pair(keys, gate_id, role=KeyRole.GATE)
        with LoopbackBroker(root / "broker") as broker:
            brokers = {g: [f"127.0.0.1:{broker.port}"] for g in ids}
            anchor = raw_anchor(broker.port)
            ctx = mp.get_context("spawn")
            pipes, procs = [], []
            for n, chunk in enumerate(PROCESS_IDS):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(chunk, str(keys), str(root / f"p{n}"),
                                                         brokers, child))
                proc.start()
                pipes.append(parent)
                procs.append(proc)
            for p in pipes:
                assert p.recv() == "ready"
            CPU_OF.update(gates=[p.pid for p in procs if p.pid is not None],
                          brokers=[b.process.pid for b in (broker,) if b.process is not None])
            print(f"{args.gates} gates in {args.processes} processes on one loopback "
                  f"Mosquitto (QoS 1, signed records, SQLite WAL synchronous FULL)")
            print(f"raw anchor, bare paho QoS 1 publish -> receive (no signing, no SQLite): "
                  f"p50 {statistics.median(anchor) * 1e3:.2f} ms  "
                  f"p99 {percentile(anchor, 99) * 1e3:.2f} ms")
            admitted, deliveries, seconds = phase(pipes, args.gates, args.rate, args.seconds)
            report(f"stadium rate ({args.rate}/s per gate, {args.rate * args.gates:.0f}/s "
                   "venue-wide)", admitted, args.gates, deliveries, seconds)
            if not args.no_stress:
                admitted, deliveries, seconds = phase(pipes, args.gates, args.stress_rate,
                                                      args.stress_seconds)
                report(f"stress ({args.stress_rate}/s per gate, "
                       f"{args.stress_rate * args.gates:.0f}/s venue-wide)", admitted,
                       args.gates, deliveries, seconds)
            for p in pipes:
                p.send(("stop",))
            for proc in procs:
                proc.join(30)
    return 0


def bridged(args: Any) -> int:
    from portique import keyfiles
    from portique.devtools.broker import Bridge, LoopbackBroker
    from portique.ticket.trust import KeyRole

    ids = [str(i) for i in range(1, args.gates + 1)]
    PROCESS_IDS.extend(ids[i::args.processes] for i in range(args.processes))
    with tempfile.TemporaryDirectory(prefix="portique-mesh-bench-") as tmp:
        root = Path(tmp)
        keys = root / "keys"
        for gate_id in ids:
            keyfiles.new_key_pair(keys, gate_id, role=KeyRole.GATE)
        with LoopbackBroker(root / "core", name="core") as core, \
                LoopbackBroker(root / "stand", name="stand",
                               bridges=[Bridge("core", core.port)]) as stand:
            wait_bridged(core, "stand")
            s_addr, c_addr = f"127.0.0.1:{stand.port}", f"127.0.0.1:{core.port}"
            # odd gates on the stand's broker, even ones on the core: every delivery
            # between an odd and an even gate crosses the bridge
            brokers = {g: [s_addr, c_addr] if int(g) % 2 else [c_addr, s_addr] for g in ids}
            anchor = raw_anchor(stand.port, sub_port=core.port)
            ctx = mp.get_context("spawn")
            pipes, procs = [], []
            for n, chunk in enumerate(PROCESS_IDS):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(chunk, str(keys), str(root / f"p{n}"),
                                                         brokers, child,
                                                         args.summary_interval))
                proc.start()
                pipes.append(parent)
                procs.append(proc)
            for p in pipes:
                assert p.recv() == "ready"
            CPU_OF.update(gates=[p.pid for p in procs if p.pid is not None],
                          brokers=[b.process.pid for b in (core, stand)
                                   if b.process is not None])
            time.sleep(args.settle)  # the first summaries of every gate, answered
            print(f"{args.gates} gates in {args.processes} processes on two loopback "
                  "Mosquitto brokers, a stand's bridged to the venue core (QoS 1, signed "
                  "records, SQLite WAL synchronous FULL); half the gates on each")
            print(f"raw anchor, bare paho QoS 1 publish on the stand -> receive on the core, "
                  f"through the bridge: p50 {statistics.median(anchor) * 1e3:.2f} ms  "
                  f"p99 {percentile(anchor, 99) * 1e3:.2f} ms")
            admitted, deliveries, seconds = phase(pipes, args.gates, args.rate, args.seconds)
            report(f"stadium rate ({args.rate}/s per gate, {args.rate * args.gates:.0f}/s "
                   "venue-wide)", admitted, args.gates, deliveries, seconds)
            connects = connect_anchor(core.port)
            killed_at = time.time()
            stand.kill()
            for p in pipes:
                p.send(("failover", s_addr))
            back = [t - killed_at for p in pipes for t in p.recv()]
            print(f"failover: stand broker killed, {len(back)} of {len(ids) // 2 + len(ids) % 2}"
                  f" gates on the core after p50 {statistics.median(back) * 1e3:.0f} ms, "
                  f"max {max(back) * 1e3:.0f} ms; anchor, bare paho connect to the core: "
                  f"p50 {statistics.median(connects) * 1e3:.2f} ms")
            admitted, deliveries, seconds = phase(pipes, args.gates, args.rate, args.seconds)
            report("after the failover, every gate on the core", admitted, args.gates,
                   deliveries, seconds)
            for p in pipes:
                p.send(("stop",))
            for proc in procs:
                proc.join(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
