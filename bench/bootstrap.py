"""What ``make bench`` needs beyond ``make bootstrap``: wrk, nginx, the ``bench`` extra.

Debian packages come from ``bench/apt-packages.txt`` through the project's
``scripts/apt-bootstrap``; pip packages are the ``bench`` extra in setup.cfg
(installed into the running venv when one is missing).
"""

from __future__ import annotations

import configparser
import importlib.util
import re
import shutil
import subprocess
import sys

from bench.procs import ROOT

__all__ = ["bench_requirements", "bootstrap"]

#: Requirement name -> module it installs, where they differ.
_MODULES = {"py-spy": None}


def bench_requirements() -> list[str]:
    """The ``bench`` extra of setup.cfg, one requirement string each."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    extra = parser.get("options.extras_require", "bench", fallback="")
    return [line.strip() for line in extra.splitlines() if line.strip()]


def _missing(requirement: str) -> bool:
    name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
    if name in _MODULES and _MODULES[name] is None:
        return shutil.which(name, path=str(ROOT / ".venv" / "bin")) is None and shutil.which(name) is None
    module = _MODULES.get(name) or name.replace("-", "_")
    return importlib.util.find_spec(module) is None


def bootstrap() -> None:
    subprocess.run([str(ROOT / "scripts" / "apt-bootstrap"), str(ROOT / "bench" / "apt-packages.txt")],
                   check=True)
    for tool in ("wrk", "nginx", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} is not installed (see bench/apt-packages.txt)")
    missing = [r for r in bench_requirements() if _missing(r)]
    if missing:
        print(f"bench: pip install {' '.join(missing)}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)
    if not (ROOT / "interop_tests" / "node" / "node_modules" / "hyco-https").is_dir():
        raise SystemExit("bench: interop_tests/node/node_modules is missing: run `make bootstrap`")
