"""Child processes for the benchmarks: start, wait for READY, measure, stop.

Every server, listener and load generator runs in its own process so that the
relay's CPU time can be read from ``/proc/PID/stat`` (utime + stime) and its
memory from ``/proc/PID/status`` without anything else mixed in.  A child says
it is ready by printing one line starting with ``READY`` on stdout; the rest of
its output goes to a log file in the run's work directory.
"""

from __future__ import annotations

import os
import queue
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["Proc", "free_port", "python_argv", "raise_nofile", "wait_port"]

_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent
# Where the child processes run (their cwd, so first on their sys.path): this tree, or
# with ``python -m bench --compiled`` its mypyc-compiled copy (scripts/compiled_tree.py).
CODE = {"root": ROOT}


def python_argv(module: str, *args: str) -> list[str]:
    """``python -m MODULE ARGS`` with this interpreter (the venv's)."""
    return [sys.executable, "-m", module, *args]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    """Until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit (S4 opens 10,000 sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Proc:
    """One child process with a READY handshake and /proc measurements.

    Args:
        name: label for logs and errors.
        argv: the command.
        logdir: where ``NAME.log`` collects the child's stderr and later stdout.
        ready: a line starting with this on stdout means ready; None: no handshake.
        timeout: seconds to wait for the ready line.
        env: extra environment variables.
        stdin: give the child a pipe on stdin (for command-driven load generators).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        logdir: Path,
        ready: str | None = "READY",
        timeout: float = 60.0,
        env: dict[str, str] | None = None,
        stdin: bool = False,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "a", buffering=1)  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.popen = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            text=True,
            env=full_env,
            cwd=cwd or CODE["root"],
            start_new_session=True,
        )
        self.pid = self.popen.pid
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        self.ready_line = ""
        if ready is not None:
            self.ready_line = self.expect(ready, timeout)

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def expect(self, prefix: str, timeout: float) -> str:
        """The next stdout line starting with ``prefix`` (others go to the log)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(0.01, left))
            except queue.Empty:
                raise TimeoutError(
                    f"{self.name}: no {prefix!r} line within {timeout:g} s (see {self.log_path})"
                ) from None
            if line is None:
                raise RuntimeError(
                    f"{self.name} exited ({self.popen.wait()}) before {prefix!r}; see {self.log_path}"
                )
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
            self._log.write(line + "\n")

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    # -- /proc -----------------------------------------------------------------------

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole process (all threads) so far."""
        return _cpu_seconds(self.pid)

    def tree_cpu_seconds(self) -> dict[int, float]:
        """User + system CPU time so far of the process and of each live descendant
        (``soaprelay serve --workers N``: the supervisor, its workers and its NATS), by PID."""
        times = {}
        for pid in _tree(self.pid):
            try:
                times[pid] = _cpu_seconds(pid)
            except FileNotFoundError:  # it ended meanwhile
                continue
        return times

    def switches(self) -> int:
        """Context switches (voluntary and not) of all the process's threads so far: how
        often it was woken or preempted, a load-independent count."""
        total = 0
        for task in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{task}/status") as f:
                    total += sum(int(line.split()[1]) for line in f if "ctxt_switches:" in line)
            except FileNotFoundError:  # a thread that ended meanwhile
                continue
        return total

    def status_kib(self, key: str) -> int:
        """A ``/proc/PID/status`` figure in KiB, e.g. ``VmRSS`` or ``VmHWM``."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    def rss_kib(self) -> int:
        return self.status_kib("VmRSS")

    def reset_peak_rss(self) -> None:
        """Make VmHWM start again from the current RSS (clear_refs 5)."""
        with open(f"/proc/{self.pid}/clear_refs", "w") as f:
            f.write("5")

    # -- end -------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; only this child's process group."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._reader.join(2)
        while not self._lines.empty():
            line = self._lines.get_nowait()
            if line is not None:
                self._log.write(line + "\n")
        self._log.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (``/proc/PID/task/TID/children``)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo.extend(int(child) for child in f.read().split())
            except FileNotFoundError:
                continue
    return found
