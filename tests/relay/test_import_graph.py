"""No import circle inside ``relay``, read from the source with ``ast``. No sockets.

The handlers share ``relay.state.RelayState``, never the server: nothing in
``relay`` imports ``relay.server``, and no two modules import each other through
any chain.  Imports at module level count, and so do those under
``if TYPE_CHECKING:`` (a circle for the type checker is still a circle for a
reader); imports inside functions do not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "relay"


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements run on import: the module's, and those inside its ``if``/``try``."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_level(block)
            for handler in node.handlers:
                yield from _module_level(handler.body)


def imported_modules(source: str, module: str, modules: frozenset[str]) -> set[str]:
    """The modules of ``modules`` that ``module``'s source imports on import (or for types).

    ``from relay import a, b`` names the modules ``relay.a`` and ``relay.b``;
    ``from relay.a import X`` names ``relay.a``; relative imports resolve in the package.
    """
    package = module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in _module_level(ast.parse(source).body):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name in modules and name != module}


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, for ``sources`` (module -> source)."""
    modules = frozenset(sources)
    return {name: imported_modules(text, name, modules) for name, text in sources.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or ``None`` when there is none."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph.get(node, ())):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done:
                cycle = visit(target)
                if cycle is not None:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle is not None:
                return cycle
    return None


def _relay_sources() -> dict[str, str]:
    sources = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        sources[name] = path.read_text(encoding="utf-8")
    return sources


def test_relay_has_no_import_circle() -> None:
    cycle = find_cycle(import_graph(_relay_sources()))
    assert cycle is None, "import circle in relay: " + " -> ".join(cycle or ())


def test_no_handler_imports_the_server() -> None:
    graph = import_graph(_relay_sources())
    importers = sorted(name for name, targets in graph.items() if "relay.server" in targets)
    assert importers == [], f"these modules import relay.server (take RelayState): {importers}"


def test_the_graph_sees_the_relay_modules_it_should() -> None:
    graph = import_graph(_relay_sources())
    assert {"relay.access", "relay.state", "relay.exceptions"} <= graph["relay.server"] | {
        target for targets in graph.values() for target in targets
    }
    assert "relay.state" in graph["relay.front"]


# -- the check itself can fail ----------------------------------------------------------


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        (
            {"relay.a": "from relay.b import X\n", "relay.b": "import relay.a\n"},
            ["relay.a", "relay.b", "relay.a"],
        ),
        (  # under TYPE_CHECKING, as server/front/http_senders once were
            {
                "relay.server": "from relay import front\n",
                "relay.front": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from relay.server import RelayServer\n",
            },
            ["relay.front", "relay.server", "relay.front"],
        ),
        (  # three modules, relative imports
            {
                "relay.a": "from . import b\n",
                "relay.b": "from .c import thing\n",
                "relay.c": "from relay import a\n",
            },
            ["relay.a", "relay.b", "relay.c", "relay.a"],
        ),
    ],
)
def test_a_circle_is_found_and_named(sources: dict[str, str], expected: list[str]) -> None:
    assert find_cycle(import_graph(sources)) == expected


def test_imports_inside_functions_and_outside_the_package_do_not_count() -> None:
    sources = {
        "relay.a": "import relay.b\nimport asyncio\nfrom hc.sas import Grant\n",
        "relay.b": "def later():\n    from relay import a\n",
    }
    assert import_graph(sources) == {"relay.a": {"relay.b"}, "relay.b": set()}
    assert find_cycle(import_graph(sources)) is None
