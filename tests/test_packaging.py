"""The package as users install it: a wheel of the project holds one top-level package, `parktwin`, and its
modules keep DESIGN.md's layers and import one another without cycles inside `hydraulics` and `scenarios`
(the import-linter contracts in pyproject.toml), checked on the wheel's own files, so what is checked is
what installs.

The wheel is built from a copy of what it is made of (pyproject.toml, README.md and the package folders),
so that another build's leftovers in the working tree's build/ cannot slip into it.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for folder in sorted(set(config["tool"]["setuptools"]["package-dir"].values())):
        if not (src / folder).exists():
            shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(src)],
                   check=True, capture_output=True, text=True, cwd=src)
    (built,) = out.glob("parktwin-*.whl")
    return built


@pytest.fixture(scope="module")
def unpacked(wheel, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(root)
    return root


def test_the_wheel_holds_one_top_level_package(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"parktwin"}, sorted(tops)
    # the layers and the console script's module are inside it, the bundled park's data too
    for module in ("parktwin/__init__.py", "parktwin/kernels/__init__.py", "parktwin/hydraulics/compile.py",
                   "parktwin/scenarios/__init__.py", "parktwin/twin/park.py", "parktwin/viz/__init__.py",
                   "parktwin/api/cli.py", "parktwin/api/server/app.py", "parktwin/twin/example_park/park.toml"):
        assert module in names, module
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as z:
        assert "parktwin = parktwin.api.cli:main" in z.read(entry_points).decode()


def lint_imports(site: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH first: the unpacked wheel is found before the editable install's finder
    return subprocess.run([str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          capture_output=True, text=True, cwd=site, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})


def test_the_contracts_hold(unpacked):
    run = lint_imports(unpacked)
    assert run.returncode == 0 and "2 kept, 0 broken" in run.stdout, run.stdout + run.stderr


def test_the_layers_contract_fails_when_a_lower_layer_imports_a_higher_one(unpacked, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(unpacked, site)
    (site / "parktwin" / "kernels" / "upward.py").write_text("from parktwin.twin import park  # a kernel reaching up\n")
    run = lint_imports(site)
    assert run.returncode != 0 and "1 kept, 1 broken" in run.stdout, run.stdout + run.stderr
    assert "parktwin.kernels.upward -> parktwin.twin.park" in run.stdout, run.stdout


@pytest.mark.parametrize("importer, imported", [
    ("hydraulics/units_tables.py", "parktwin.hydraulics.compile"),
    ("scenarios/perturbations.py", "parktwin.scenarios.batch"),
], ids=["hydraulics", "scenarios"])
def test_the_acyclic_contract_fails_on_a_cycle_hidden_in_a_function(unpacked, tmp_path, importer, imported):
    # What issue 16 found: a function-level import (or a module __getattr__ importing on first use) that
    # closes a circle the module-level imports do not show.
    site = tmp_path / "site"
    shutil.copytree(unpacked, site)
    module = site / "parktwin" / importer
    module.write_text(module.read_text() + f"\n\ndef _late():\n    import {imported}\n    return {imported}\n")
    run = lint_imports(site)
    assert run.returncode != 0 and "1 kept, 1 broken" in run.stdout, run.stdout + run.stderr
    assert f"No cycles are allowed in parktwin.{importer.split('/')[0]}" in run.stdout, run.stdout


@pytest.mark.parametrize("package", ["hydraulics", "scenarios"])
def test_no_module_getattr_hides_an_import(package):
    # A module-level __getattr__ re-export imports on first use, which neither the reader nor the import
    # graph sees at the import line; every name is imported from the module that defines it instead.
    found = []
    for path in sorted((REPO / package).glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name in ("__getattr__", "__dir__"):
                found.append(f"{package}/{path.name}:{node.lineno}")
    assert not found, found
