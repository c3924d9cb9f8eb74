"""Real child processes for tests: start, wait for a stdout line, measure, always stop.

Each child runs in a session of its own (its own process group), so stopping it reaches
whatever it started too; :class:`Children` stops every child it started, newest first,
when the test ends, whether it passed or not.  Readiness is a line on stdout, never a
sleep; stderr goes to ``NAME.err`` in the test's folder, where a test can look for
tracebacks.  Memory comes from ``/proc/PID/status`` (``VmRSS``, ``VmHWM``).

:class:`RelayProcess` is ``soaprelay serve`` (the development namespace, or a TOML
config), started by ``tests.support.relay.Relays.process``: it parses the banner (``soaprelay: listening on URL`` and the connection
string) and signs tokens with the printed key.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from hc.sas import create_token
from tests.support.proxies import PROXY_VARIABLES

__all__ = ["Child", "Children", "RelayProcess", "child_env"]

ROOT = Path(__file__).resolve().parents[2]
#: ``python -m soaprelay`` rather than the console script: an installed ``soaprelay``
#: script may belong to another checkout, and PYTHONPATH picks this one.
SOAPRELAY = [sys.executable, "-m", "soaprelay"]
LISTENING = "soaprelay: listening on "
CONNECTION_STRING = "soaprelay: connection string: "


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment for a child: this checkout first on the path, no proxies."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    paths = [str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Child:
    """One child process: its stdout lines in a queue, its stderr in a file.

    Args:
        name: label for errors and the ``NAME.err`` file.
        argv: the command.
        folder: where the stderr file goes.
        env: the whole environment (default :func:`child_env`).
        cwd: its working directory (default: this checkout).
    """

    def __init__(self, name: str, argv: Sequence[str], folder: Path,
                 env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.name, self.argv = name, list(argv)
        self.stderr_path = folder / f"{name}.err"
        with self.stderr_path.open("ab") as err:
            self.popen = subprocess.Popen(
                self.argv, cwd=cwd, env=env or child_env(), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=err, start_new_session=True,
            )
        self.pid = self.popen.pid
        self.lines: queue.Queue[tuple[float, str] | None] = queue.Queue()
        self._pump = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            self.lines.put((time.monotonic(), raw.decode("utf-8", "replace").rstrip("\n")))
        self.lines.put(None)

    # -- output ----------------------------------------------------------------------

    def wait_for(self, prefix: str, timeout: float = 30.0) -> str:
        """The rest of the next stdout line starting with ``prefix`` (earlier lines are dropped)."""
        return self.wait_for_timed(prefix, timeout)[1]

    def wait_for_timed(self, prefix: str, timeout: float = 30.0) -> tuple[float, str]:
        """Like :meth:`wait_for`, with the ``time.monotonic()`` at which the line was read."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(
                    f"{self.name} printed no {prefix!r} line within {timeout:g} s{self.tail()}"
                ) from None
            if item is None:
                self.lines.put(None)  # later waits fail the same way
                raise RuntimeError(
                    f"{self.name} exited ({self.popen.wait()}) before {prefix!r}{self.tail()}"
                )
            if item[1].startswith(prefix):
                return item[0], item[1][len(prefix):].strip()

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, count: int = 20) -> str:
        last = self.stderr_text().strip().splitlines()[-count:]
        return "".join(f"\n    | {line}" for line in last)

    def tracebacks(self) -> list[str]:
        """Each ``Traceback`` in the stderr log, with the 12 lines that follow it."""
        lines = self.stderr_text().splitlines()
        return ["\n".join(lines[i:i + 12]) for i, line in enumerate(lines) if "Traceback" in line]

    # -- /proc -----------------------------------------------------------------------

    def status_kib(self, key: str) -> int:
        """A ``/proc/PID/status`` figure in KiB, e.g. ``VmRSS`` or ``VmHWM``."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    def rss_mib(self) -> float:
        return self.status_kib("VmRSS") / 1024

    def peak_mib(self) -> float:
        return self.status_kib("VmHWM") / 1024

    def reset_peak(self) -> None:
        """Start ``VmHWM`` again from the current RSS (``clear_refs`` 5)."""
        with open(f"/proc/{self.pid}/clear_refs", "w") as refs:
            refs.write("5")

    # -- end -------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the child's whole process group."""
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> int:
        """The exit code; ``subprocess.TimeoutExpired`` when it is still running."""
        return self.popen.wait(timeout)

    def stop(self, grace: float = 10.0) -> int:
        """SIGTERM to the group, SIGKILL after ``grace`` seconds; the exit code."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(10)
        self.signal(signal.SIGKILL)  # anything left in its group
        self._pump.join(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        return self.popen.returncode


class RelayProcess(Child):
    """``soaprelay serve`` on port 0 (or ``port``); ready once :meth:`read_banner` returned.

    Made by ``tests.support.relay.Relays.process``.  With a ``config`` file, ``keys``
    gives the rule to sign tokens with (``SharedAccessKeyName`` and ``SharedAccessKey``,
    as in a connection string); without one it serves the development namespace, its
    key kept in ``state_dir`` (default ``FOLDER/state``).  ``env`` and ``cwd`` are the
    child's (see :class:`Child`); ``args`` more ``serve`` flags (``--workers 2``).
    """

    def __init__(self, name: str, folder: Path, *, host: str = "127.0.0.1", port: int = 0,
                 config: Path | None = None, keys: dict[str, str] | None = None,
                 state_dir: Path | None = None, log_level: str = "INFO",
                 env: dict[str, str] | None = None, cwd: Path = ROOT,
                 args: Sequence[str] = ()) -> None:
        where = (["--config", str(config)] if config
                 else ["--state-dir", str(state_dir or folder / "state")])
        argv = [*SOAPRELAY, "serve", "--host", host, "--port", str(port), *where,
                "--log-level", log_level, *args]
        super().__init__(name, argv, folder, env, cwd)
        self.host, self.dev = host, config is None
        self.base_url, self.port = "", 0
        self.keys: dict[str, str] = dict(keys or {})

    def read_banner(self, timeout: float = 30.0) -> None:
        """Wait for the address (and the development connection string) on stdout."""
        self.base_url = self.wait_for(LISTENING, timeout)
        self.port = int(self.base_url.rsplit(":", 1)[1])
        if self.dev:
            text = self.wait_for(CONNECTION_STRING, timeout)
            self.keys = dict(part.split("=", 1) for part in text.split(";") if part)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1)

    def connection_string(self, entity: str = "") -> str:
        """The development namespace's connection string, with an EntityPath if given."""
        text = (f"Endpoint=sb://{self.host}:{self.port}/;"
                f"SharedAccessKeyName={self.keys['SharedAccessKeyName']};"
                f"SharedAccessKey={self.keys['SharedAccessKey']};UseTls=false")
        return text + (f";EntityPath={entity}" if entity else "")

    def token(self, path: str = "", ttl: float = 3600) -> str:
        return create_token(f"{self.base_url}/{path}", self.keys["SharedAccessKeyName"],
                            self.keys["SharedAccessKey"], ttl=ttl)


class Children:
    """The children a test started; leaving the ``with`` block stops them, newest first."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[Child] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_all()

    def add(self, child: Child) -> Child:
        self.started.append(child)
        return child

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, argv, self.folder, env)
        self.started.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.started):
            child.stop(grace=5.0)
        self.started.clear()
