#!/usr/bin/env python3
"""A copy of this source tree with its hot path compiled to C by mypyc.

``python scripts/compiled_tree.py DEST``: copies the tree (sources, tests, bench,
configuration; node_modules folders become symlinks to the originals) to DEST and
compiles there, in place, the modules named in pyproject.toml's ``[tool.soaprelay]
compiled`` list, as an accelerated install (``SOAPRELAY_COMPILE=1``) does.  With
DEST first on PYTHONPATH, Python imports the C extensions instead of those
modules' sources.  The compiled-build tests (tests/test_compiled.py) and
``python -m bench --compiled`` run on such a copy; the working tree itself never
gets a stale extension shadowing a source file.

Prints the compiled modules' file names; exits non-zero when mypyc fails.  Needs
mypy (the ``dev`` extra) and a C compiler with Python's headers.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SKIP = shutil.ignore_patterns(
    ".git", ".venv", "build", "node_modules", "__pycache__", "*.so", "*.egg-info", ".soaprelay",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis",
)


def compiled_modules(root: Path = ROOT) -> list[str]:
    """The source files an accelerated build compiles (pyproject.toml)."""
    with (root / "pyproject.toml").open("rb") as file:
        return list(tomllib.load(file)["tool"]["soaprelay"]["compiled"])


def copy_tree(dest: Path) -> None:
    """The tree at ``dest``, node_modules linked rather than copied."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(ROOT, dest, ignore=_SKIP, symlinks=True)
    for modules in ROOT.glob("*/*/node_modules"):
        if modules.is_dir():
            (dest / modules.relative_to(ROOT)).symlink_to(modules.resolve())


def compile_in_place(dest: Path) -> list[Path]:
    """Runs mypyc on the hot path in ``dest``; the extensions it wrote.

    Raises:
        RuntimeError: mypyc failed (its output is in the message).
    """
    modules = compiled_modules(dest)
    done = subprocess.run([sys.executable, "-m", "mypyc", *modules], cwd=dest,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"mypyc failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    built = [next(dest.glob(f"{module.removesuffix('.py')}.*.so"), None) for module in modules]
    missing = [module for module, path in zip(modules, built) if path is None]
    if missing:
        raise RuntimeError(f"mypyc wrote no extension for {', '.join(missing)}")
    return [path for path in built if path is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="where the compiled copy goes (replaced)")
    args = parser.parse_args(argv)
    dest = args.dest.resolve()
    if dest == ROOT or (ROOT in dest.parents and ROOT / "build" not in dest.parents):
        parser.error("DEST must be outside the tree, or under its build/ folder")
    copy_tree(dest)
    try:
        built = compile_in_place(dest)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    for path in built:
        print(path.relative_to(dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
