"""The layers of the tree hold: the contracts pass, they catch a back-import, no cycles."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def copy_of_the_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "portique", tree / "portique",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_contracts_hold_on_the_tree(tmp_path: Path) -> None:
    result = lint_imports(copy_of_the_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Layers: each imports only those below it" in result.stdout
    assert "0 broken" in result.stdout


def test_a_back_import_from_the_ticket_core_breaks_the_layers(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    views = tree / "portique" / "ticket" / "views.py"
    views.write_text(views.read_text() + "\nfrom portique.runtime import journal  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "portique.ticket.views -> portique.runtime.journal" in result.stdout


def test_a_scanner_importing_the_feeds_breaks_the_independence_of_siblings(
        tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    debounce = tree / "portique" / "scanner" / "debounce.py"
    debounce.write_text(debounce.read_text() + "\nfrom portique.revocation import store  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "portique.scanner.debounce -> portique.revocation.store" in result.stdout


def test_no_module_takes_part_in_an_import_cycle() -> None:
    graph = grimp.build_graph("portique")
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.append(" -> ".join((module, *back)))
    assert cycles == []
