"""Run the Node.js interop scripts in ``interop_tests/node`` from pytest.

Long-running scripts (listeners, the WebSocket sender) print one ``READY ...`` line on stdout
when they are ready; :class:`NodeProcess` starts one and returns only after that line (it
never sleeps), keeps every stdout line for the test to inspect, and kills the process on
exit. One-shot scripts (``token.js``, ``soap_client.js``) run with :func:`run_node`.

Example::

    from tests.support.node import NodeProcess, node_available, run_node

    @pytest.mark.node
    @pytest.mark.skipif(not node_available(), reason=NODE_SKIP_REASON)
    def test_echo(relay_port, key):
        with NodeProcess("https_echo_listener.js", "--relay", f"127.0.0.1:{relay_port}",
                         "--path", "echo", "--key", key) as listener:
            ...  # call http://127.0.0.1:{relay_port}/echo/info
            listener.wait_for_line(lambda line: '"event":"request"' in line)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "NODE_DIR",
    "NODE_SKIP_REASON",
    "NodeProcess",
    "NodeProcessError",
    "node_available",
    "run_node",
]

NODE_DIR = Path(__file__).resolve().parents[2] / "interop_tests" / "node"
NODE_SKIP_REASON = (
    "needs `node` on PATH and interop_tests/node/node_modules "
    "(run `make bootstrap` or `cd interop_tests/node && npm ci`)"
)

LineMatch = Callable[[str], bool] | str


def node_available() -> bool:
    """True when ``node`` is on PATH and the npm packages are installed."""
    return shutil.which("node") is not None and (NODE_DIR / "node_modules").is_dir()


class NodeProcessError(Exception):
    """A Node script exited, or did not say what we waited for, in time."""


def _command(script: str | os.PathLike[str], args: tuple[str, ...]) -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise NodeProcessError("node is not on PATH")
    path = Path(script)
    if not path.is_absolute():
        path = NODE_DIR / path
    return [node, str(path), *map(str, args)]


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(os.environ)
    merged.update(env or {})
    return merged


def run_node(
    script: str | os.PathLike[str],
    *args: str,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a one-shot script to completion; stdout/stderr are captured as text."""
    return subprocess.run(
        _command(script, args),
        cwd=NODE_DIR,
        env=_environment(env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _matcher(match: LineMatch) -> Callable[[str], bool]:
    if isinstance(match, str):
        return lambda line: match in line
    return match


class NodeProcess:
    """A Node script running in the background, started and awaited on ``READY``.

    Args:
        script: file name in ``interop_tests/node`` (or an absolute path).
        *args: command-line arguments.
        env: extra environment variables (merged over ``os.environ``), e.g.
            ``{"NODE_EXTRA_CA_CERTS": cert_path}``.
        ready_timeout: seconds to wait for the ``READY`` line.
    """

    def __init__(
        self,
        script: str | os.PathLike[str],
        *args: str,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 20.0,
    ) -> None:
        self.command = _command(script, args)
        self._env = _environment(env)
        self._ready_timeout = ready_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._cond = threading.Condition()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._stdout_closed = False
        self._threads: list[threading.Thread] = []
        self.ready_line: str | None = None

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Start the script and block until it prints ``READY`` (returns self)."""
        self._proc = subprocess.Popen(
            self.command,
            cwd=NODE_DIR,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        try:
            self.ready_line = self.wait_for_line(
                lambda line: line.startswith("READY"), timeout=self._ready_timeout
            )
        except NodeProcessError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> int | None:
        """Terminate (then kill) the process, collect its output; returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        self._close()
        return proc.returncode

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit by itself (e.g. ``ws_sender.js``); returns its code."""
        proc = self._require_proc()
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.stop()
            raise NodeProcessError(
                f"{self._name()} still running after {timeout} s{self._output_tail()}"
            ) from exc
        self._close()
        return code

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- output -------------------------------------------------------------------------

    @property
    def lines(self) -> list[str]:
        """Every stdout line so far (without newlines), READY included."""
        with self._cond:
            return list(self._stdout)

    @property
    def stderr(self) -> str:
        with self._cond:
            return "".join(self._stderr)

    @property
    def returncode(self) -> int | None:
        return self._require_proc().poll()

    def wait_for_line(
        self, match: LineMatch, timeout: float = 10.0, start: int = 0
    ) -> str:
        """Return the first stdout line at index >= ``start`` that matches.

        ``match`` is a substring or a predicate. Raises :class:`NodeProcessError` (with the
        process's stderr) when stdout closes or ``timeout`` passes first.
        """
        predicate = _matcher(match)
        found: list[str] = []

        def seen() -> bool:
            for line in self._stdout[start:]:
                if predicate(line):
                    found.append(line)
                    return True
            return self._stdout_closed

        with self._cond:
            self._cond.wait_for(seen, timeout)
            if found:
                return found[0]
            closed = self._stdout_closed
        if closed:
            code = self._require_proc().wait(5)
            self._close()
            what = f"exited with code {code}"
        else:
            what = f"timed out after {timeout} s"
        raise NodeProcessError(
            f"{self._name()} {what} before a matching line{self._output_tail()}"
        )

    # -- internals ----------------------------------------------------------------------

    def _require_proc(self) -> subprocess.Popen[str]:
        if self._proc is None:
            raise NodeProcessError(f"{self._name()} was not started")
        return self._proc

    def _name(self) -> str:
        return Path(self.command[1]).name

    def _output_tail(self) -> str:
        stdout = "\n".join(self.lines[-20:])
        stderr = self.stderr[-4000:]
        return f"\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"

    def _read_stdout(self) -> None:
        proc = self._require_proc()
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self._stdout.append(line.rstrip("\r\n"))
                self._cond.notify_all()
        with self._cond:
            self._stdout_closed = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        proc = self._require_proc()
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._cond:
                self._stderr.append(line)

    def _close(self) -> None:
        for thread in self._threads:
            thread.join(5)
        proc = self._require_proc()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
