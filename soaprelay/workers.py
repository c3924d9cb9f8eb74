"""``soaprelay serve --workers N``: N relay processes on one port, one per core.

This process is their supervisor, not a relay.  It starts a NATS server of its
own (``nats-server`` on a free loopback port, no routes, nothing stored), keeps
the public port reserved with ``SO_REUSEPORT``, and starts N ``soaprelay serve``
workers on that port with ``SO_REUSEPORT`` (the kernel spreads connections over
them) as nodes of a cluster on that NATS: the same code path as relay nodes on
several machines (docs/cluster.md).  Each worker also listens on a port of its
own, its ``node_url``, where listeners open the rendezvous a call needs.

A worker that dies is started again; SIGTERM/SIGINT stop the workers gracefully
(their calls in flight finish), then NATS.  With ``--cluster`` (or a
``[cluster]`` table) the workers join that NATS instead of an embedded one.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from relay.namespace import NamespaceConfig

__all__ = ["EmbeddedNats", "Supervisor", "WorkerFailed", "run_workers"]

log = logging.getLogger("soaprelay.workers")
LISTENING = "soaprelay: listening on "
#: Seconds a worker or the embedded NATS may take to become ready.
READY_TIMEOUT = 30.0
#: Seconds before a dead worker is started again.
RESTART_AFTER = 1.0


class WorkerFailed(Exception):
    """A worker or the embedded NATS server could not start."""


def _wait_line(stream: object, marker: str, timeout: float, what: str) -> threading.Event:
    """Read ``stream`` in a thread (to its end, so the pipe never fills); the event is
    set once a line containing ``marker`` went by."""
    seen = threading.Event()

    def read() -> None:
        for raw in stream:  # type: ignore[attr-defined]
            if marker in raw.decode("utf-8", "replace"):
                seen.set()

    threading.Thread(target=read, name=f"{what}-output", daemon=True).start()
    return seen


class EmbeddedNats:
    """``nats-server`` on 127.0.0.1, a free port; :attr:`url` once :meth:`start` returned."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            raise WorkerFailed("--workers needs nats-server (Debian: apt install nats-server)")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(port), "-n", f"soaprelay-{port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,  # stopped by the supervisor, after the workers
        )
        ready = _wait_line(self.process.stderr, "Server is ready", READY_TIMEOUT, "nats")
        if not ready.wait(READY_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            raise WorkerFailed(f"the embedded nats-server did not start on 127.0.0.1:{port}")
        self.url = f"nats://127.0.0.1:{port}"
        log.info("embedded NATS on %s (pid %d)", self.url, self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@dataclass
class _Worker:
    index: int
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        # A session of its own: a terminal's Ctrl-C or a signal to the supervisor's group
        # reaches the supervisor alone, which stops each worker with exactly one SIGTERM
        # (a second one would cut its calls in flight short).  Under systemd: KillMode=mixed.
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        start_new_session=True)
        self.ready = _wait_line(self.process.stdout, LISTENING, READY_TIMEOUT, f"worker{self.index}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Runs ``argv_of(i)`` for each of ``count`` workers until :meth:`stop`."""

    def __init__(self, count: int, argv_of: Callable[[int], Sequence[str]], grace: float) -> None:
        self.workers = [_Worker(i, list(argv_of(i))) for i in range(count)]
        self.grace = grace
        self.stopping = threading.Event()

    def start(self) -> None:
        """Start every worker; return once all are listening."""
        for worker in self.workers:
            worker.start()
        deadline = time.monotonic() + READY_TIMEOUT
        for worker in self.workers:
            if not worker.ready.wait(max(0.0, deadline - time.monotonic())) or not worker.alive():
                self.stop()
                raise WorkerFailed(f"worker {worker.index} did not start (see its log above)")

    def watch(self) -> None:
        """Until :meth:`stop` is asked for (a signal): start dead workers again."""
        while not self.stopping.wait(0.5):
            for worker in self.workers:
                if not worker.alive():
                    assert worker.process is not None
                    log.warning("worker %d exited with %s; starting it again",
                                worker.index, worker.process.returncode)
                    time.sleep(RESTART_AFTER)
                    worker.start()

    def stop(self) -> None:
        """SIGTERM to every worker, SIGKILL to those still running after the grace."""
        self.stopping.set()
        running = [w.process for w in self.workers if w.process is not None and w.alive()]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 5
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT and never listening: the port
    stays ours (and its number known, for port 0) while workers come and go."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def worker_argv(
    base: Sequence[str], index: int, port: int, nats: str | None, node_url: str, name: str
) -> list[str]:
    """``soaprelay serve`` for worker ``index``: the supervisor's flags, then its own.
    ``nats`` is the embedded server's URL (no credentials: safe on a command line);
    None keeps the user's own ``--cluster`` or ``[cluster]`` from ``base``."""
    argv = [sys.executable, "-m", "soaprelay", "serve", *base, "--port", str(port), "--reuse-port"]
    if nats is not None:
        argv += ["--cluster", nats]
    return argv + ["--node-url", node_url, "--node-name", f"{name}-w{index}"]


def run_workers(
    config: NamespaceConfig, count: int, flags: Sequence[str], ready: Callable[[str], None]
) -> None:
    """Serve ``config`` with ``count`` workers until SIGTERM/SIGINT; ``ready(base_url)``
    once they all listen.  ``flags`` are the ``serve`` flags every worker gets."""
    reserved = reserve_port(config.host, config.port)
    port = reserved.getsockname()[1]
    scheme = "https" if config.tls_cert else "http"
    embedded = EmbeddedNats() if config.cluster is None else None
    try:
        if embedded is not None:
            embedded.start()
        node_url, name = _node_of(config, scheme)
        supervisor = Supervisor(
            count, lambda i: worker_argv(flags, i, port, embedded.url if embedded else None,
                                         node_url, name),
            config.shutdown_grace,
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: supervisor.stopping.set())
        try:
            supervisor.start()
            log.info("%d workers on %s:%d", count, config.host, port)
            ready(f"{scheme}://{config.host}:{port}")
            supervisor.watch()
        finally:
            supervisor.stop()
    finally:
        if embedded is not None:
            embedded.stop()
        reserved.close()


def _node_of(config: NamespaceConfig, scheme: str) -> tuple[str, str]:
    """Each worker's ``node_url`` (port 0: a port of its own) and the workers' base name."""
    cluster = config.cluster
    if cluster is not None:
        host = urlsplit(cluster.node_url).hostname or config.host
        name = cluster.node_name or socket.gethostname()
    else:
        host = config.host
        name = socket.gethostname()
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()  # a wildcard is no address a listener can open
    host = f"[{host}]" if ":" in host else host
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:48] or "soaprelay"
    return f"{scheme}://{host}:0", safe
