"""Fixtures for the chaos suite: real processes, the run's mode, and the figures it measured.

``SOAPRELAY_CHAOS=full`` (what ``make chaos`` sets) runs the long form: bigger floods,
longer soaks, and the figures are written to ``tests/chaos/results/latest.json`` and
``latest.md``.  Anything else runs the bounded form ``make test`` runs (about two
minutes on two cores); its figures are only printed in the summary.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.chaos.calls import call, new_id
from tests.support.procs import Child, Children, RelayProcess
from tests.support.relay import Relays

FULL = os.environ.get("SOAPRELAY_CHAOS", "").strip().lower() == "full"
MODE = "full" if FULL else "bounded"
RESULTS = Path(__file__).resolve().parent / "results"
ENTITY = "echo"

_FIGURES: dict[str, dict[str, Any]] = {}


def pick(bounded: Any, full: Any) -> Any:
    """The bounded or the full value, by the run's mode."""
    return full if FULL else bounded


def record(scenario: str, **figures: Any) -> None:
    """Keep figures for the summary (and, in full mode, the results files)."""
    _FIGURES.setdefault(scenario, {}).update(figures)


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    """The processes a test starts; all are stopped (process groups) when it ends."""
    with Children(tmp_path) as started:
        yield started


@pytest.fixture
def relay(relays: Relays, children: Children) -> RelayProcess:
    """``soaprelay serve`` (development namespace) on 127.0.0.1, port 0, log level INFO,
    stopped with the test's other processes (``relays.process``)."""
    return relays.process(children=children)


def start_echo(children: Children, relay: RelayProcess, name: str, *,
               entity: str = ENTITY, record_to: Path | None = None,
               prefix: tuple[str, ...] = (), timeout: float = 60.0) -> Child:
    """Start one echo-service listener process and wait until it is ONLINE."""
    argv = [*prefix, sys.executable, "-m", "tests.chaos.echo_service",
            "--connection-string", relay.connection_string(entity), "--name", name]
    if record_to is not None:
        argv += ["--record", str(record_to)]
    child = children.start(name, argv)
    child.wait_for("READY ", timeout)
    return child


async def assert_serving(relay: RelayProcess, entity: str = ENTITY, timeout: float = 15.0) -> None:
    """A normal call through ``relay`` succeeds within ``timeout`` seconds."""
    async with aiohttp.ClientSession() as session:
        result = await call(session, f"{relay.base_url}/{entity}", relay.token(entity),
                            new_id("final"), timeout=timeout)
    assert result.ok, f"the relay no longer serves a normal call: {result}"


def assert_no_traceback(*processes: Child) -> None:
    """No ``Traceback`` in the stderr logs of ``processes``."""
    for process in processes:
        found = process.tracebacks()
        assert not found, f"{process.name} logged {len(found)} traceback(s):\n{found[0]}"


@pytest.fixture(scope="session", autouse=True)
def _figures_file() -> Iterator[None]:
    started = time.time()
    yield
    if FULL and _FIGURES:
        _write_results(started)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section(f"chaos figures ({MODE})")
        for scenario, figures in sorted(_FIGURES.items()):
            terminalreporter.line(f"{scenario}: {json.dumps(figures)}")


def _write_results(started: float) -> None:
    RESULTS.mkdir(exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False, cwd=RESULTS).stdout.strip()
    document = {
        "mode": MODE, "date": time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started)),
        "commit": commit, "machine": _machine(), "figures": _FIGURES,
    }
    (RESULTS / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [f"# Chaos suite, {document['date']} (`make chaos`, commit {commit})", "",
             f"Machine: {document['machine']}", "", "| scenario | figure | value |",
             "|---|---|--:|"]
    for scenario, figures in sorted(_FIGURES.items()):
        lines += [f"| {scenario} | {key} | {_cell(value)} |" for key, value in figures.items()]
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _machine() -> str:
    cpus = os.cpu_count()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpus} cores {model}, Linux {platform.release()}, Python {platform.python_version()}"


def write_config(folder: Path, entity_lines: str = f'path = "{ENTITY}"') -> tuple[Path, dict[str, str]]:
    """A TOML namespace with one Manage rule (a fresh key) and one entity.

    Returns:
        The file and the rule as ``SharedAccessKeyName`` / ``SharedAccessKey``.
    """
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    path = folder / "relay.toml"
    path.write_text(
        '[namespace]\nname = "chaos"\n\n'
        f'[[rule]]\nname = "RootManageSharedAccessKey"\nkey = "{key}"\n'
        'rights = ["Manage", "Listen", "Send"]\n\n'
        f"[[entity]]\n{entity_lines}\n"
    )
    return path, {"SharedAccessKeyName": "RootManageSharedAccessKey", "SharedAccessKey": key}
