"""The accelerated build: the hot path compiled by mypyc passes the core's, the relay's,
the cluster's and the NetTcp binding's tests.

``scripts/compiled_tree.py`` copies the tree and compiles there, in place, the modules
pyproject.toml lists under ``[tool.soaprelay] compiled`` (as ``SOAPRELAY_COMPILE=1 pip
install`` does); the tests of ``hc``, ``relay``, the cluster and ``bindings/nettcp``
then run on that copy in child pytests.  mypyc is stricter than Python (annotations are
checked at run time, a compiled class cannot be subclassed or patched from Python), so a
change that is fine in Python can break the compiled build: this is where it shows.  Needs mypy (the ``dev`` extra)
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
def tree(compiled_tree: Path) -> Path:
    """A compiled copy of this tree (tests/conftest.py: built from the start of the run)."""
    return compiled_tree


def _run(tree: Path, *argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, *argv], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_the_list_names_existing_modules_of_the_hot_path() -> None:
    assert LISTED == sorted(LISTED)
    for module in LISTED:
        assert (ROOT / module).is_file(), module
        assert module.split("/")[0] in ("hc", "relay", "bindings"), module  # what relay.compiled reports


def _classes(tree: ast.AST) -> list[ast.ClassDef]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def _imports(tree: ast.AST) -> dict[str, str]:
    """Each name a module binds by import, to what it names (``pkg.mod`` or ``pkg.mod.Name``)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update({alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names})
        elif isinstance(node, ast.Import):
            names.update({alias.asname or alias.name: alias.name for alias in node.names if alias.asname})
    return names


def _base_target(base: ast.expr, imports: dict[str, str]) -> str | None:
    """What a class's base names, as ``pkg.mod.Name`` when the module's imports say;
    else its bare name."""
    if isinstance(base, ast.Subscript):  # Generic[T], Base[V]
        base = base.value
    if isinstance(base, ast.Name):
        return imports.get(base.id, base.id)
    if isinstance(base, ast.Attribute):
        owner = imports.get(base.value.id) if isinstance(base.value, ast.Name) else None
        return f"{owner}.{base.attr}" if owner else base.attr
    return None


def test_no_python_class_subclasses_a_compiled_one() -> None:
    """mypyc refuses it at import time ("interpreted classes cannot inherit from compiled"):
    a subclass must be compiled too (listed), or its base not.  A base is matched by the
    module its name was imported from, or by its bare name when that is not known."""
    compiled = {f"{module.removesuffix('.py').replace('/', '.')}.{cls.name}": module
                for module in LISTED for cls in _classes(ast.parse((ROOT / module).read_text()))}
    bare = {name.rpartition(".")[2]: module for name, module in compiled.items()}
    found = []
    for tree in ("hc", "relay", "bindings", "soap", "soaprelay", "samples", "bench", "tests",
                 "interop_tests"):
        for path in sorted((ROOT / tree).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            if "node_modules" in path.parts or module in LISTED:
                continue
            parsed = ast.parse(path.read_text())
            imports = _imports(parsed)
            for cls in _classes(parsed):
                for target in (_base_target(base, imports) for base in cls.bases):
                    source = compiled.get(target) if target and "." in target else bare.get(target or "")
                    if source is not None:
                        found.append(f"{module}: {cls.name}({target}), from {source}")
    assert found == []


#: Calls a compiled slice bound may make: mypyc 2.4 evaluates a slice's bounds twice when
#: the sliced object is not a list, tuple, str or bytes, so only calls without side effects.
_PURE_IN_BOUNDS = {"len", "min", "max", "abs", "int", "end", "start", "find", "rfind"}


def test_no_listed_module_puts_a_call_with_effects_in_a_slice_bound() -> None:
    """``view[os.write(fd, view):]`` on a memoryview wrote everything twice once compiled
    (the NetTcp client's lane sent each request twice): a bound that does something is
    computed first, into a name."""
    found = []
    for module in LISTED:
        for node in ast.walk(ast.parse((ROOT / module).read_text())):
            if not isinstance(node, ast.Slice):
                continue
            for bound in (node.lower, node.upper, node.step):
                for call in (n for n in ast.walk(bound) if isinstance(n, ast.Call)) if bound else ():
                    func = call.func
                    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                    if name not in _PURE_IN_BOUNDS:
                        found.append(f"{module}:{node.lineno}: {ast.unparse(call)}")
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


@pytest.mark.timeout(600)
def test_the_nettcp_tests_pass_on_the_compiled_build(tree: Path) -> None:
    """The NetTcp session's hot path (``bindings/nettcp`` modules in the list) with the
    compiled core under it: sessions, inline and worker hosts, the lane, Hybrid."""
    done = _run(tree, "-m", "pytest", "tests/bindings/nettcp", "-q", "-p", "no:cacheprovider",
                "-x", timeout=540)
    tail = done.stdout[-4000:]
    assert done.returncode == 0, tail
    assert " passed" in tail, tail
