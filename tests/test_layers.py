"""The dependency rule between our packages, read from the source with ``ast``. No sockets.

    soaprelay            the command line: may import everything below
    relay   bindings     the two sides: never each other
    hc      soap         the bottom: hc is sans-I/O; soap imports only soap
    hc.asyncio           the SDK shell: inside hc, the one place with asyncio, ssl and
                         socket (and still nothing of ours but hc)

A forbidden import fails with the file, the line and the import; every import
counts, at module level or inside a function, ``import x`` or ``from x import y``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network

ROOT = Path(__file__).resolve().parents[1]
#: Top-level packages that are ours.
OURS = frozenset({"hc", "soap", "relay", "bindings", "soaprelay"})
#: What each of our packages may import of ours.
ALLOWED = {
    "hc": frozenset({"hc"}),
    "soap": frozenset({"soap"}),
    "relay": frozenset({"relay", "hc", "soap"}),
    "bindings": frozenset({"bindings", "hc", "soap"}),
    "soaprelay": frozenset({"soaprelay", "relay", "bindings", "hc", "soap"}),
}
#: Modules that do I/O, which the sans-I/O core may not import.
IO_MODULES = frozenset({"asyncio", "aiohttp", "websockets", "socket", "ssl", "httptools", "selectors"})
SANS_IO = frozenset({"hc"})
#: The asyncio SDK shell inside hc: it may do I/O with the standard library only.
SHELL = "hc.asyncio"
SHELL_IO = frozenset({"asyncio", "ssl", "socket", "selectors"})
#: Not I/O, but a C loop the shell may use when it is there: websockets' XOR masking
#: (hc.asyncio.connection.xor_mask, with hc.frames.apply_mask as its fallback).
SHELL_SPEEDUPS = frozenset({"websockets.speedups"})


@dataclass(frozen=True)
class Import:
    """One imported module and where."""

    module: str
    line: int

    @property
    def top(self) -> str:
        return self.module.split(".")[0]


def imports_of(source: str, package: str, filename: str = "<source>") -> list[Import]:
    """Every module ``source`` imports, anywhere in it; relative ones resolved in ``package``."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # "from . import x" stays inside the package
                found.append(Import(package, node.lineno))
            elif node.module:
                found.append(Import(node.module, node.lineno))
    return found


def violations(
    source: str, package: str, filename: str = "<source>", *, module: str = ""
) -> list[str]:
    """``file:line: package imports module`` for each import the rule forbids.

    ``module`` is the file's dotted name: under ``hc.asyncio`` asyncio, ssl and
    socket are allowed, other I/O libraries (aiohttp, websockets) still are not.
    """
    out = []
    shell = module == SHELL or module.startswith(SHELL + ".")
    for imp in imports_of(source, package, filename):
        if imp.top in OURS and imp.top not in ALLOWED[package]:
            out.append(f"{filename}:{imp.line}: {package} may not import {imp.module}")
        elif package in SANS_IO and imp.top in IO_MODULES and not (
            shell and (imp.top in SHELL_IO or imp.module in SHELL_SPEEDUPS)
        ):
            where = SHELL if shell else package
            out.append(f"{filename}:{imp.line}: {where} is sans-I/O, yet imports {imp.module}")
    return out


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> list[tuple[str, Path]]:
    return [
        (package, path)
        for package in sorted(ALLOWED)
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


def test_every_package_is_there() -> None:
    packages = {package for package, _ in _sources()}
    assert packages == set(ALLOWED), "a package of the rule has no source files"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_what_the_layers_allow(package: str) -> None:
    problems = []
    for owner, path in _sources():
        if owner == package:
            name = str(path.relative_to(ROOT))
            problems += violations(path.read_text(encoding="utf-8"), package, name,
                                   module=_module(path))
    assert not problems, "forbidden imports:\n" + "\n".join(problems)


# -- the rule itself can fail -------------------------------------------------------------


@pytest.mark.parametrize(
    ("package", "source", "expected"),
    [
        ("relay", "import bindings.host\n", "x.py:1: relay may not import bindings.host"),
        ("bindings", "from relay.server import run\n", "x.py:1: bindings may not import relay.server"),
        ("bindings", "from relay import sas\n", "x.py:1: bindings may not import relay"),
        ("hc", "\n\ndef f():\n    from soap import envelope\n", "x.py:4: hc may not import soap"),
        ("hc", "import asyncio\n", "x.py:1: hc is sans-I/O, yet imports asyncio"),
        ("hc", "from websockets.frames import Opcode\n", "x.py:1: hc is sans-I/O, yet imports websockets.frames"),
        ("hc", "import os, ssl\n", "x.py:1: hc is sans-I/O, yet imports ssl"),
        ("soap", "from hc.sas import create_token\n", "x.py:1: soap may not import hc.sas"),
        ("relay", "import soaprelay.cli\n", "x.py:1: relay may not import soaprelay.cli"),
        ("hc", "class A:\n    def m(self):\n        import relay\n", "x.py:3: hc may not import relay"),
    ],
)
def test_a_forbidden_import_is_named_with_file_and_line(
    package: str, source: str, expected: str
) -> None:
    assert violations(source, package, "x.py") == [expected]


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("hc.asyncio.listener", "import aiohttp\n", "x.py:1: hc.asyncio is sans-I/O, yet imports aiohttp"),
        ("hc.asyncio", "from websockets import connect\n",
         "x.py:1: hc.asyncio is sans-I/O, yet imports websockets"),
        ("hc.asyncio.client", "import bindings\n", "x.py:1: hc may not import bindings"),
        ("hc.framing", "import asyncio\n", "x.py:1: hc is sans-I/O, yet imports asyncio"),
        ("hc.asyncio_like", "import ssl\n", "x.py:1: hc is sans-I/O, yet imports ssl"),
    ],
)
def test_the_sdk_shell_may_use_only_the_standard_librarys_io(
    module: str, source: str, expected: str
) -> None:
    assert violations(source, "hc", "x.py", module=module) == [expected]


def test_the_sdk_shell_may_use_asyncio_ssl_and_socket() -> None:
    source = "import asyncio\nimport ssl\nimport socket\nfrom hc.protocol import Role\n"
    assert violations(source, "hc", "x.py", module="hc.asyncio.connection") == []


def test_the_sdk_shell_may_use_websockets_c_masking_and_nothing_else_of_it() -> None:
    fast = "from websockets.speedups import apply_mask\n"
    assert violations(fast, "hc", "x.py", module="hc.asyncio.connection") == []
    assert violations(fast, "hc", "x.py", module="hc.framing") == [
        "x.py:1: hc is sans-I/O, yet imports websockets.speedups"]
    assert violations("from websockets.frames import Frame\n", "hc", "x.py",
                      module="hc.asyncio.connection") == [
        "x.py:1: hc.asyncio is sans-I/O, yet imports websockets.frames"]


def test_the_sdk_shell_is_there() -> None:
    assert (ROOT / "hc" / "asyncio" / "__init__.py").is_file()


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("relay", "from hc.sas import create_token\nimport soap.fault\nimport asyncio\n"),
        ("bindings", "from hc import exceptions\nfrom . import host\nimport websockets\n"),
        ("hc", "import json\nfrom hc.entities import Rights\nfrom .sas import sign\n"),
        ("soaprelay", "from relay.server import run\nfrom bindings.forwarder import run_forwarder\n"),
    ],
)
def test_allowed_imports_pass(package: str, source: str) -> None:
    assert violations(source, package, "x.py") == []
