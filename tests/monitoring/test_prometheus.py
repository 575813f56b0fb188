"""The alert rules and the dashboard that ship in monitoring/: promtool checks the rules and
runs their unit tests; every metric the dashboard and the rules name is one a gate
serves; and a real Prometheus on loopback scrapes three running gates and fires
PortiqueCameraLost when one gate's camera is lost."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from gpiozero.pins.mock import MockFactory

from portique.devtools.broker import free_port
from portique.devtools.training import TrainingRun
from portique.runtime.config import from_dict
from portique.runtime.control import ControlClient
from portique.runtime.mesh.node import MeshMetrics
from portique.runtime.metrics import GateMetrics
from portique.runtime.wiring import GateApp, build
from tests.appliance.conftest import gate_table

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "prometheus" / "portique-alerts.yml"
RULES_TEST = ROOT / "monitoring" / "prometheus" / "portique-alerts-test.yml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "portique-gates.json"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: `make test` installs it (Debian package prometheus)")
    return path


def served_names() -> set[str]:
    metrics = GateMetrics()
    MeshMetrics(metrics.registry)
    names = {"up"}
    for family in metrics.registry.collect():
        names.add(family.name)
        names |= {s.name for s in family.samples}
        names |= {family.name + suffix for suffix in ("_total", "_bucket", "_sum", "_count")}
    return names


def test_promtool_checks_the_rules_and_their_unit_tests() -> None:
    checked = subprocess.run([tool("promtool"), "check", "rules", str(RULES)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and "SUCCESS: 11 rules found" in checked.stdout, \
        checked.stdout + checked.stderr
    tested = subprocess.run([tool("promtool"), "test", "rules", str(RULES_TEST)],
                            capture_output=True, text=True, check=False, cwd=RULES.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    example = subprocess.run([tool("promtool"), "check", "config",
                              str(RULES.parent / "prometheus-example.yml")],
                             capture_output=True, text=True, check=False)
    assert example.returncode == 0, example.stdout + example.stderr


def test_every_metric_the_rules_and_the_dashboard_name_is_served() -> None:
    names = served_names()
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(dashboard["panels"]) >= 10
    named = {m for e in exprs for m in re.findall(r"\b(portique_[a-z_]+|up)\b", e)}
    assert named - names == set(), f"not served by a gate: {named - names}"


@pytest.fixture
def three_gates(tmp_path: Path) -> Iterator[dict[str, tuple[GateApp, int]]]:
    gates: dict[str, tuple[GateApp, int]] = {}
    threads = []
    try:
        for gate_id in "123":
            state = tmp_path / f"gate{gate_id}" / "state"
            state.mkdir(parents=True)
            port = free_port()
            table = gate_table(state, metrics={"port": port})
            table["gate"]["id"] = gate_id
            app = build(from_dict(table), TrainingRun(), pin_factory=MockFactory())
            thread = threading.Thread(target=app.run)
            thread.start()
            threads.append(thread)
            gates[gate_id] = (app, port)
        yield gates
    finally:
        for app, _ in gates.values():
            app.close()
        for thread in threads:
            thread.join(timeout=30)


def api(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=5) as r:
        return json.loads(r.read())["data"]


def wait_for(condition: Any, what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except OSError:  # Prometheus still starting
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {timeout} s: {what}")
        time.sleep(0.2)


def firing(port: int, name: str) -> set[str]:
    return {a["labels"].get("gate", "?") for a in api(port, "alerts")["alerts"]
            if a["labels"]["alertname"] == name and a["state"] == "firing"}


@pytest.mark.slow  # a real Prometheus, and the rule's 15 s before it fires
def test_a_real_prometheus_fires_camera_lost_for_the_gate_that_lost_it(
        tmp_path: Path, three_gates: dict[str, tuple[GateApp, int]]) -> None:
    web = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "portique", "static_configs": [
            {"targets": [f"127.0.0.1:{port}"], "labels": {"gate": gate}}
            for gate, (_, port) in three_gates.items()]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    checked = subprocess.run([tool("promtool"), "check", "config",
                              str(tmp_path / "prometheus.yml")], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    log = (tmp_path / "prometheus.log").open("wb")
    server = subprocess.Popen([tool("prometheus"), f"--config.file={tmp_path}/prometheus.yml",
                               f"--storage.tsdb.path={tmp_path}/tsdb",
                               f"--web.listen-address=127.0.0.1:{web}"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: [t for t in api(web, "targets")["activeTargets"]
                          if t["health"] == "up"] and
                 len([t for t in api(web, "targets")["activeTargets"]
                      if t["health"] == "up"]) == 3, "Prometheus scrapes the three gates")
        wait_for(lambda: len(api(web, "query?query=portique_camera_up%3D%3D1")["result"]) == 3,
                 "every camera up, as scraped")
        assert firing(web, "PortiqueCameraLost") == set()
        # every panel's query is one this Prometheus evaluates (a bad one answers 400)
        dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                query = urllib.parse.quote(target["expr"], safe="")
                assert "resultType" in api(web, f"query?query={query}"), panel["title"]

        app2 = three_gates["2"][0]
        answer = ControlClient(app2.config.control.socket).request("train",
                                                                     action="camera_lost")
        assert answer["ok"]
        wait_for(lambda: firing(web, "PortiqueCameraLost") == {"2"},
                 "PortiqueCameraLost fires for gate 2")
        alert = next(a for a in api(web, "alerts")["alerts"]
                     if a["labels"]["alertname"] == "PortiqueCameraLost")
        assert alert["annotations"]["summary"] == "gate 2: camera lost"
        assert alert["labels"]["severity"] == "critical"
    finally:
        server.terminate()
        server.wait(30)
        log.close()
