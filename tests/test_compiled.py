"""The accelerated build: the hot path compiled by mypyc passes the core's, the relay's and
the cluster's tests.

``scripts/compiled_tree.py`` copies the tree and compiles there, in place, the modules
pyproject.toml lists under ``[tool.soaprelay] compiled`` (as ``SOAPRELAY_COMPILE=1 pip
install`` does); the tests of ``hc``, ``relay`` and the cluster then run on that copy in
a child pytest.  mypyc is stricter than Python (annotations are checked at run time, a compiled
class cannot be subclassed or patched from Python), so a change that is fine in Python
can break the compiled build: this is where it shows.  Needs mypy (the ``dev`` extra)
and a C compiler with Python's headers (``gcc``, ``python3.11-dev`` in apt-packages.txt).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LISTED = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["soaprelay"]["compiled"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compiled copy of this tree."""
    dest = tmp_path_factory.mktemp("compiled") / "tree"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "compiled_tree.py"), str(dest)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return dest


def _run(tree: Path, *argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, *argv], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_the_list_names_existing_modules_of_the_hot_path() -> None:
    assert LISTED == sorted(LISTED)
    for module in LISTED:
        assert (ROOT / module).is_file(), module
        assert module.split("/")[0] in ("hc", "relay"), module  # what relay.compiled reports


def _classes(tree: ast.AST) -> list[ast.ClassDef]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def _base_name(base: ast.expr) -> str | None:
    if isinstance(base, ast.Subscript):  # Generic[T], Base[V]
        base = base.value
    if isinstance(base, ast.Name):
        return base.id
    return base.attr if isinstance(base, ast.Attribute) else None


def test_no_python_class_subclasses_a_compiled_one() -> None:
    """mypyc refuses it at import time ("interpreted classes cannot inherit from compiled"):
    a subclass must be compiled too (listed), or its base not."""
    compiled = {cls.name: module for module in LISTED
                for cls in _classes(ast.parse((ROOT / module).read_text()))}
    found = []
    for tree in ("hc", "relay", "bindings", "soap", "soaprelay", "samples", "bench", "tests",
                 "interop_tests"):
        for path in sorted((ROOT / tree).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            if "node_modules" in path.parts or module in LISTED:
                continue
            for cls in _classes(ast.parse(path.read_text())):
                found += [f"{module}: {cls.name}({name}), {name} from {compiled[name]}"
                          for name in map(_base_name, cls.bases) if name in compiled]
    assert found == []


@pytest.mark.timeout(700)
def test_every_listed_module_runs_as_a_c_extension(tree: Path) -> None:
    names = [module.removesuffix(".py").replace("/", ".") for module in LISTED]
    done = _run(tree, "-c", "from relay.compiled import compiled_modules; print(*compiled_modules())",
                timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == names
    version = _run(tree, "-m", "soaprelay", "--version", timeout=60)
    assert f"hot path compiled by mypyc ({len(names)} modules)" in version.stdout, version


def test_the_working_tree_runs_as_python() -> None:
    done = subprocess.run([sys.executable, "-m", "soaprelay", "--version"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert "(pure Python)" in done.stdout, done


@pytest.mark.timeout(900)
def test_the_core_relay_and_cluster_tests_pass_on_the_compiled_build(tree: Path) -> None:
    done = _run(tree, "-m", "pytest", "tests/hc", "tests/relay", "tests/cluster", "-q",
                "-p", "no:cacheprovider", "-x", timeout=840)
    tail = done.stdout[-4000:]
    assert done.returncode == 0, tail
    assert " passed" in tail and " skipped" not in tail, tail
