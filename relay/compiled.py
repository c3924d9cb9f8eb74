"""Which of the hot path's modules run as C extensions (an accelerated install).

``SOAPRELAY_COMPILE=1 pip install --no-build-isolation .`` compiles the modules
named in pyproject.toml's ``[tool.soaprelay] compiled`` with mypyc (README,
"Performance"); a plain or editable install runs them as Python.  The relay says
which at start-up and ``soaprelay --version`` says it too.
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from importlib.util import find_spec
from pathlib import Path

__all__ = ["compiled_modules", "describe_build"]

_PACKAGES = ("hc", "relay", "bindings")
_SUFFIXES = sorted(EXTENSION_SUFFIXES, key=len, reverse=True)  # ".cpython-311-...so" before ".so"


def compiled_modules() -> list[str]:
    """Dotted names of the ``hc``, ``relay`` and ``bindings`` modules installed as C
    extensions, sorted (``bindings``: the NetTcp session's hot path)."""
    found: set[str] = set()
    for package in _PACKAGES:
        spec = find_spec(package)
        if spec is None or spec.origin is None:
            continue
        root = Path(spec.origin).parent
        for path in root.rglob("*.*"):
            suffix = next((s for s in _SUFFIXES if path.name.endswith(s)), None)
            if suffix is not None:
                parts = path.relative_to(root).with_name(path.name.removesuffix(suffix)).parts
                found.add(".".join((package, *parts)))
    return sorted(found)


def describe_build() -> str:
    """``"pure Python"`` or ``"hot path compiled by mypyc (N modules)"``."""
    modules = compiled_modules()
    if not modules:
        return "pure Python"
    return f"hot path compiled by mypyc ({len(modules)} modules)"
