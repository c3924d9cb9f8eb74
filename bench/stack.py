"""The processes a scenario runs against: the relay under test and its peers."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from bench import keys
from bench.procs import Proc, python_argv

__all__ = ["Run", "med", "start_relay"]


def med(values: list[float]) -> float:
    return float(median(values)) if values else float("nan")


@dataclass
class Run:
    """One ``make bench`` run: where logs go, how long each point lasts, what was measured."""

    workdir: Path
    seconds: float = 5.0
    reps: int = 3
    quick: bool = False
    procs: list[Proc] = field(default_factory=list)
    relay_loop: str = ""

    def start(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def log(self, text: str) -> None:
        print(f"bench: {text}", flush=True)


def start_relay(run: Run, name: str, spec: dict[str, object]) -> tuple[Proc, str]:
    """The relay under test in its own process; returns it and its base URL."""
    proc = run.start(
        Proc(name, python_argv("bench.relay_proc", json.dumps(spec)), logdir=run.workdir)
    )
    url, _, loop = proc.ready_line.partition(" ")
    run.relay_loop = loop
    return proc, url


def root_token(base_url: str) -> str:
    return keys.token(base_url)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
