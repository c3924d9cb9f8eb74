"""Tests use our objects through their public faces: no test reads or patches a private
attribute of an object from our packages.  Read from the source with ``ast``. No sockets.

A private name is one our packages define with a leading underscore: ``self._x = ...``,
``def _x``, ``class _X``, a module or class level ``_X = ...``.  A test file breaks the
rule when it reads one on something other than ``self``/``cls`` (``server._front``),
patches one (``monkeypatch.setattr(Class, "_x", ...)``, ``getattr(obj, "_x")``) or
imports one (``from relay.x import _y``).  What a test needs is made public instead
(a property, an event, an injectable clock or factory), or tested through behaviour.

Helper classes in ``tests/`` keep their own ``self._x``; names that only other
libraries define (lxml's ``etree._Element``, requests' ``Response._content``) are not
ours and not looked at.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("no_sockets")

ROOT = Path(__file__).resolve().parents[1]
#: Where our objects come from.
PACKAGES = ("hc", "relay", "bindings", "soap", "soaprelay", "samples", "bench")
#: Where tests live.
TEST_TREES = ("tests", "interop_tests")
#: Private names some test still uses, per file: each entry is a debt to pay, and the
#: list only shrinks (a stale entry fails ``test_the_allow_list_holds_only_what_is_still_used``).
ALLOWED: dict[str, frozenset[str]] = {}


@dataclass(frozen=True)
class Use:
    """One use of a private name of ours in a test file."""

    path: str
    line: int
    name: str
    code: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code}"


def _python_files(*trees: str) -> Iterator[Path]:
    for tree in trees:
        for path in sorted((ROOT / tree).rglob("*.py")):
            if "node_modules" not in path.parts:
                yield path


def _defined_private_names(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            yield node.attr
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            yield node.id


@functools.cache
def private_names() -> frozenset[str]:
    """Every single-underscore name our packages define."""
    names: set[str] = set()
    for path in _python_files(*PACKAGES):
        for name in _defined_private_names(_tree(path)):
            if name.startswith("_") and not name.startswith("__"):
                names.add(name)
    return frozenset(names)


def _own(node: ast.expr) -> bool:
    """``self.x`` or ``cls.x``: a helper's own attribute (``super()._x`` reaches into ours)."""
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def _string_arguments(node: ast.Call) -> Iterator[str]:
    """``setattr(obj, "_x", ...)``, ``getattr(obj, "_x")``, ``monkeypatch.setattr(obj, "_x",
    ...)`` and ``monkeypatch.setattr("relay.server._x", ...)``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name not in ("setattr", "getattr", "delattr", "hasattr"):
        return
    first, second = (node.args + [ast.Constant(None), ast.Constant(None)])[:2]
    if isinstance(second, ast.Constant) and isinstance(second.value, str):
        yield second.value  # setattr(obj, "_x", value)
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        yield first.value.rpartition(".")[2]  # monkeypatch.setattr("relay.server._x", value)


def _imported_from_ours(tree: ast.AST) -> set[str]:
    """The names a file imports from our packages (``from relay.server import RelayServer``)."""
    return {alias.asname or alias.name for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES
            for alias in node.names}


def _base_name(base: ast.expr) -> str:
    return base.id if isinstance(base, ast.Name) else ""


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def private_uses(source: str | ast.Module, relative: str, ours: frozenset[str]) -> Iterator[Use]:
    """The uses of ``ours`` in one test file (its source or tree), outside its classes' ``self``."""
    tree = ast.parse(source, relative) if isinstance(source, str) else source
    imported = _imported_from_ours(tree)
    for node in ast.walk(tree):
        found: list[str] = []
        if isinstance(node, ast.ClassDef) and any(_base_name(b) in imported for b in node.bases):
            found = [f.name for f in node.body  # overriding a private method is patching it
                     if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
        elif isinstance(node, ast.Attribute) and not _own(node.value):
            found = [node.attr]
        elif isinstance(node, ast.Call):
            found = list(_string_arguments(node))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
            found = [alias.name for alias in node.names]
        line = getattr(node, "lineno", 0)  # each node found above is a statement or expression
        for name in found:
            if name in ours:
                yield Use(relative, line, name, ast.unparse(node).splitlines()[0][:100])


@functools.cache
def all_private_uses() -> tuple[Use, ...]:
    ours = private_names()
    return tuple(use for path in _python_files(*TEST_TREES)
                 for use in private_uses(_tree(path), path.relative_to(ROOT).as_posix(), ours))


def test_the_scan_sees_reads_patches_and_imports_but_not_a_helpers_own_attributes() -> None:
    source = """
from relay.server import _private_helper, Server
class Subclass(Server):
    def _serve(self):
        pass
class Helper(Base):
    def run(self, server):
        self._front = server._front
        monkeypatch.setattr(Connection, "_on_command", boom)
        getattr(server, "_listeners")
        monkeypatch.setattr("relay.server._run", fake)
        super()._open()
        return etree._Element, server.front
"""
    ours = frozenset({"_private_helper", "_serve", "_front", "_on_command", "_listeners",
                      "_open", "_run"})
    found = [(use.line, use.name) for use in private_uses(source, "t.py", ours)]
    assert sorted(found) == [(2, "_private_helper"), (3, "_serve"), (8, "_front"),
                             (9, "_on_command"), (10, "_listeners"), (11, "_run"), (12, "_open")]


def test_the_private_names_of_ours_are_found() -> None:
    names = private_names()
    assert {"_front", "_abandoned", "_NAMES"} <= names
    assert "_Element" not in names and "__init__" not in names


def test_no_test_uses_a_private_name_of_ours_beyond_the_allow_list() -> None:
    found = [use for use in all_private_uses()
             if use.name not in ALLOWED.get(use.path, frozenset())]
    assert not found, "tests use private names of our packages (make them public):\n" + "\n".join(
        map(str, found))


def test_the_allow_list_holds_only_what_is_still_used() -> None:
    used = {(use.path, use.name) for use in all_private_uses()}
    stale = sorted((path, name) for path, names in ALLOWED.items() for name in names
                   if (path, name) not in used)
    assert not stale, f"no longer used: remove from ALLOWED: {stale}"


#: The one place that builds relays for tests (``Relays``: in a loop, a thread, a process).
RELAY_FACTORY = "tests/support/relay.py"
RELAY_CLASSES = frozenset({"RelayServer", "RelayThread", "RelayProcess"})


def test_relays_are_built_only_by_the_factory() -> None:
    """A test that needs a relay asks ``relays`` (or ``relay``, ``arelay``, ``make_relay``,
    ``relay_thread``), so that start-up, port 0 and teardown are written once."""
    built = []
    for path in _python_files(*TEST_TREES):
        relative = path.relative_to(ROOT).as_posix()
        if relative == RELAY_FACTORY:
            continue
        for node in ast.walk(_tree(path)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in RELAY_CLASSES):
                built.append(f"{relative}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not built, "relays built outside tests.support.relay.Relays:\n" + "\n".join(built)
