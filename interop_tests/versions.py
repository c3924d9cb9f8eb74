"""The versions of the peers the interop suite runs against, for the report header.

Each run prints them (``pytest_report_header`` in ``conftest.py``), so a result can
always be matched to what it was checked with; ``README.md`` records the last run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version

from tests.support.node import NODE_DIR

__all__ = ["peer_versions"]

PYTHON_PEERS = ("zeep", "suds-community", "httpx")
NPM_PEERS = ("hyco-https", "hyco-ws", "soap")
#: tool -> argv printing its version on the first line (the part before " (" is kept)
TOOLS = {"node": ["node", "--version"], "curl": ["curl", "--version"],
         "nft": ["nft", "--version"], "chromium": ["chromium", "--version"],
         "mono": ["mono", "--version"]}


def _python(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _npm(name: str) -> str:
    manifest = NODE_DIR / "node_modules" / name / "package.json"
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return "not installed"


def _tool(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    if not lines:
        return "unknown"
    first = lines[0].split(" (")[0]
    return first.removeprefix(f"{argv[0]} ")


def peer_versions() -> dict[str, str]:
    """``{peer: version}`` for every peer, ``"not installed"`` where missing."""
    found = {name: _python(name) for name in PYTHON_PEERS}
    found.update({f"npm {name}": _npm(name) for name in NPM_PEERS})
    found.update({name: _tool(argv) for name, argv in TOOLS.items()})
    return found
