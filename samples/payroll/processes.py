"""The demo's child processes: a relay and the listeners, started and always stopped.

Readiness is read from each child's stdout (``soaprelay: listening on URL``,
``READY ADDRESS``), never guessed with sleeps; every wait has a deadline.
Children's stderr goes to ``<name>.err`` in the demo folder and its tail is
shown when a child fails.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


class DemoFailure(Exception):
    """A child did not start or stop as it should; the message says which and why."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[str]
    stderr: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def pump(self) -> None:
        """Forward stdout lines to :attr:`lines` (None at end of file)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, prefix: str, timeout: float = START_TIMEOUT) -> str:
        """The rest of the first stdout line starting with ``prefix``."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                waited = f"{self.name} did not print {prefix!r} within {timeout:g} s"
                raise DemoFailure(waited + self.tail()) from None
            if line is None:
                code = self.process.wait(STOP_TIMEOUT)
                exited = f"{self.name} exited with code {code} before it was ready"
                raise DemoFailure(exited + self.tail())
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def tail(self, lines: int = 15) -> str:
        if not self.stderr.exists():
            return ""
        text = self.stderr.read_text(encoding="utf-8", errors="replace")
        last = text.strip().splitlines()[-lines:]
        return "".join(f"\n    | {line}" for line in last)


class Processes:
    """Starts children in ``folder``; leaving the ``with`` block stops them, newest first."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.children: list[Child] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        failures = self.stop_all()
        if failures and kind is None:
            raise DemoFailure("; ".join(failures))

    def start_relay(self, config: Path) -> str:
        """Start ``python -m soaprelay serve`` on a free port; return its base URL."""
        argv = ["-m", "soaprelay", "serve", "--config", str(config), "--log-level", "WARNING"]
        return self._start("relay", argv, {}).wait_for("soaprelay: listening on ")

    def start_listener(self, service: str, args: list[str], env: dict[str, str]) -> str:
        """Start one listener process; return the relay address it serves once online."""
        argv = ["-m", "samples.payroll.listener", "--service", service, *args]
        return self._start(service, argv, env).wait_for("READY ")

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        stderr = self.folder / f"{name}.err"
        environ = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        paths = [str(ROOT), environ.get("PYTHONPATH", "")]
        environ["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
        with stderr.open("w", encoding="utf-8") as err:
            process = subprocess.Popen(
                [sys.executable, *argv], cwd=ROOT, env=environ, text=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
            )
        child = Child(name, process, stderr)
        self.children.append(child)
        threading.Thread(target=child.pump, name=f"{name}-stdout", daemon=True).start()
        return child

    def stop_all(self) -> list[str]:
        """SIGTERM each child (listeners before the relay); kill what does not stop."""
        failures = []
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.terminate()
            try:
                code = child.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
                failures.append(f"{child.name} did not stop within {STOP_TIMEOUT:g} s")
                continue
            if code not in (0, -15):
                failures.append(f"{child.name} exited with code {code}{child.tail()}")
        self.children.clear()
        return failures
