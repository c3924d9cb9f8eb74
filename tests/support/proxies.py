"""Real HTTP proxies for tests: Debian's tinyproxy and squid, on a generated config.

Each runs in the foreground as a child of the test, listening on a free port of the
address given (127.0.0.1 by default), and is stopped by its PID when the ``with``
block ends. Readiness is a successful TCP connect, never a sleep::

    with tinyproxy(tmp_path, users={"alice": "s3cret"}) as proxy:
        proxy.url_with("alice", "s3cret")     # http://alice:s3cret@127.0.0.1:PORT
        proxy.log()                           # what it logged (CONNECT lines ...)

Neither can be told to listen on port 0, so the port is one the kernel just gave us
and released (the proxy then binds it at once; a clash fails the start loudly).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["PROXY_VARIABLES", "HttpProxy", "clear_proxy_environment", "squid", "tinyproxy"]

#: The environment variables that route HTTP clients through a proxy (lower-case names;
#: the upper-case ones count too).
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def clear_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy from the environment for this test (both spellings of each variable)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)

#: Seconds a proxy may take to start listening.
START_TIMEOUT = 20.0


@dataclass
class HttpProxy:
    """A running proxy: where it listens and where it logs."""

    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _wait_listening(proxy: HttpProxy) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proxy.process.poll() is not None:
            raise RuntimeError(f"{proxy.name} exited with {proxy.process.returncode}:\n{proxy.log()[-2000:]}")
        try:
            socket.create_connection((proxy.host, proxy.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # polling a connect: readiness is the connect itself
    raise RuntimeError(f"{proxy.name} did not listen on {proxy.url} in {START_TIMEOUT:g} s")


@contextmanager
def _run(name: str, argv: Sequence[str], host: str, port: int, log_path: Path,
         command: Sequence[str] = ()) -> Iterator[HttpProxy]:
    with log_path.open("ab") as out:
        process = subprocess.Popen([*command, *argv], stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    proxy = HttpProxy(name, host, port, process, log_path)
    try:
        _wait_listening(proxy)
        yield proxy
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@contextmanager
def tinyproxy(folder: Path, *, users: dict[str, str] | None = None,
              connect_ports: Sequence[int] = (), host: str = "127.0.0.1",
              command: Sequence[str] = ()) -> Iterator[HttpProxy]:
    """tinyproxy with Basic users (none: no authentication) and, when given, the only
    ports CONNECT may reach (others are refused with 403). ``command`` prefixes the
    command line (e.g. ``ip netns exec NAME``)."""
    binary = shutil.which("tinyproxy")
    if binary is None:
        raise RuntimeError("tinyproxy is not installed (Debian package tinyproxy, in apt-packages.txt)")
    port = _free_port(host)
    lines = [f"Port {port}", f"Listen {host}", "Timeout 60", "MaxClients 64", "LogLevel Connect",
             "Allow 127.0.0.1", "Allow 10.0.0.0/8", "DisableViaHeader Yes"]
    lines += [f"BasicAuth {user} {password}" for user, password in (users or {}).items()]
    lines += [f"ConnectPort {number}" for number in connect_ports]
    config = folder / f"tinyproxy-{port}.conf"
    config.write_text("\n".join(lines) + "\n", "utf-8")
    with _run("tinyproxy", [binary, "-d", "-c", str(config)], host, port,
              folder / f"tinyproxy-{port}.log", command) as proxy:
        yield proxy


@contextmanager
def squid(folder: Path, *, host: str = "127.0.0.1", allow: str = "127.0.0.0/8",
          command: Sequence[str] = ()) -> Iterator[HttpProxy]:
    """squid letting clients of ``allow`` CONNECT anywhere; no cache, no authentication.
    Its access log (``proxy.log()``) has one line per tunnel."""
    binary = shutil.which("squid")
    if binary is None:
        raise RuntimeError("squid is not installed (Debian package squid, in apt-packages.txt)")
    port = _free_port(host)
    # squid drops root for its 'proxy' user, which must reach and write its folder: a
    # test's own folder is private to root, so squid gets one in the system's /tmp.
    with tempfile.TemporaryDirectory(prefix=f"soaprelay-squid-{port}-") as where:
        home = Path(where)
        os.chmod(home, 0o777)
        with _squid(binary, home, host, port, allow, command) as proxy:
            try:
                yield proxy
            finally:  # kept with the test's files, for a failure's post-mortem
                shutil.copy(proxy.log_path, folder / f"squid-{port}-access.log")


@contextmanager
def _squid(binary: str, home: Path, host: str, port: int, allow: str,
           command: Sequence[str]) -> Iterator[HttpProxy]:
    access = home / "access.log"
    config = home / "squid.conf"
    config.write_text("\n".join([
        f"http_port {host}:{port}",
        f"pid_filename {home}/squid.pid",
        f"access_log stdio:{access}",
        f"cache_log {home}/cache.log",
        f"coredump_dir {home}",
        "cache deny all",
        "cache_mem 4 MB",
        "shutdown_lifetime 0 seconds",
        f"acl clients src {allow}",
        "http_access allow clients",
        "http_access deny all",
    ]) + "\n", "utf-8")
    with _run("squid", [binary, "-N", "-f", str(config)], host, port, home / "stdout.log",
              command) as proxy:
        proxy.log_path = access
        yield proxy
